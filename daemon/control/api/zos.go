package api

import (
	"fmt"
	"slices"

	"github.com/lockstep-io/lockstep/hal"
)

// ZOSSpec is the argument of ZOSAdd: one z/OS connection (docs/architecture.md,
// Storage connections), a z/OS host of a sysplex reached in-band, with
// the credentials this manager logs on with and the storage systems the
// host has online, named explicitly (they are not discovered).
type ZOSSpec struct {
	// Name is the z/OS host's name (zos show, zos remove); its
	// certificate must name it unless a pin is configured.
	Name string `json:"name"`
	// Addresses are the host's agent, host:port, one or two.
	Addresses []string `json:"addresses"`
	// Sysplex is the sysplex the host belongs to: a server uses the
	// connection only when it is in the same sysplex.
	Sysplex string `json:"sysplex"`
	// User and PasswordFile as in ConnectionSpec: both or neither.
	User         string `json:"user,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
	// Systems are the storage systems the host has online.
	Systems []hal.Serial `json:"systems"`
}

// Validate checks the spec on its own, with the rules of a storage
// connection of kind zos, and at least one storage system, each named
// once. Errors wrap ErrInvalid.
func (s ZOSSpec) Validate() error {
	err := StorageSpec{Serial: "zos", Connections: []ConnectionSpec{{Name: s.Name, Kind: ZOS,
		Addresses: s.Addresses, Sysplex: s.Sysplex, User: s.User, PasswordFile: s.PasswordFile}}}.validate(true)
	if err != nil {
		return fmt.Errorf("z/OS connection: %w", err)
	}
	if len(s.Systems) == 0 {
		return fmt.Errorf("%w: z/OS connection %q: name the storage systems the host has online (--serial S[,S])", ErrInvalid, s.Name)
	}
	for i, serial := range s.Systems {
		if err := CheckSerial(serial); err != nil {
			return fmt.Errorf("z/OS connection %q: %w", s.Name, err)
		}
		if slices.Contains(s.Systems[:i], serial) {
			return fmt.Errorf("%w: z/OS connection %q: storage system %s named twice", ErrInvalid, s.Name, serial)
		}
	}
	return nil
}

// ZOSDoc is a z/OS connection as ZOSList and ZOSShow show it.
type ZOSDoc struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
	Sysplex   string   `json:"sysplex"`
	User      string   `json:"user,omitempty"`
	// Systems are the storage systems online through it, each with
	// whether this server can use the connection to reach it, and why
	// not (e.g. "not in sysplex PLEX1").
	Systems []ZOSSystemDoc `json:"systems"`
}

// ZOSSystemDoc is one storage system a z/OS connection has online.
type ZOSSystemDoc struct {
	Serial hal.Serial `json:"serial"`
	// State is "connected", "connecting" or "unusable", as in
	// ConnectionDoc.
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}
