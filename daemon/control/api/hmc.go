package api

import (
	"fmt"

	"github.com/lockstep-io/lockstep/hal"
)

// HMCSpec is the argument of HMCAdd: one HMC connection (docs/architecture.md, Storage connections),
// one HMC or two (a dual HMC: CSM's "HMC1;HMC2"), with the credentials
// this manager logs on to them with. The storage systems it fronts are
// discovered from it.
type HMCSpec struct {
	// Name identifies the connection (hmc show, hmc remove). A single
	// HMC's certificate must name it (urn:lockstep:hmc:NAME) unless a pin
	// is configured; the two HMCs of a dual connection prove names of
	// their own.
	Name string `json:"name"`
	// Addresses are the HMCs, host:port, one or two.
	Addresses []string `json:"addresses"`
	// User and PasswordFile as in ConnectionSpec: both or neither; the
	// daemon reads the file itself.
	User         string `json:"user,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
}

// Validate checks the spec on its own, with the rules of a direct
// storage connection (a name, one or two host:port, both credentials or
// neither). Errors wrap ErrInvalid.
func (s HMCSpec) Validate() error {
	err := StorageSpec{Serial: "hmc", Connections: []ConnectionSpec{{Name: s.Name, Kind: Direct,
		Addresses: s.Addresses, User: s.User, PasswordFile: s.PasswordFile}}}.Validate()
	if err != nil {
		return fmt.Errorf("HMC connection: %w", err)
	}
	return nil
}

// HMCDoc is an HMC connection as HMCList and HMCShow show it (CSM's
// lsmc/showmc).
type HMCDoc struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
	User      string   `json:"user,omitempty"`
	// Attached are the storage systems discovered behind it (the last
	// list its HMCs gave, journaled): usable in sessions by serial.
	Attached []hal.Serial `json:"attached"`
	// Consoles are its HMCs as this server sees them now: the local
	// connection status.
	Consoles []HMCConsoleDoc `json:"consoles"`
	// Partner is the HA partner's view (remote connection status), one
	// entry per address as in Consoles, as the partner last reported it
	// over the HA link (State "unknown" for an HMC it did not report);
	// absent when this server has none, and PartnerDetail says why (no
	// partner, not connected, not reported yet).
	Partner       []HMCConsoleDoc `json:"partner,omitempty"`
	PartnerDetail string          `json:"partner_detail,omitempty"`
}

// HMCConsoleDoc is one HMC of an HMC connection.
type HMCConsoleDoc struct {
	Addr string `json:"addr"`
	// Name is the name the HMC's certificate proved, or the configured
	// one before it connected.
	Name string `json:"name,omitempty"`
	// State is "connected", "connecting" or "disconnected".
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
	// Attached are the storage systems it said it fronts.
	Attached []hal.Serial `json:"attached"`
}
