package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lockstep-io/lockstep/hal"
)

// The storage connection rules that the registry's content decides.

var (
	// ErrInUse: a storage system cannot go while a session uses it.
	ErrInUse = errors.New("registry: storage system in use")
	// ErrLastIPConnection: the last TCP/IP connection of a storage system
	// cannot go while the heartbeat is on, without force.
	ErrLastIPConnection = errors.New("registry: last TCP/IP connection while the heartbeat is on")
)

// HeartbeatWarnings name the storage systems the heartbeat cannot reach:
// no connection of theirs carries it (z/OS only). Enabling the heartbeat
// succeeds with these warnings.
func (db *DB) HeartbeatWarnings() []string {
	out := []string{}
	for _, serial := range db.Serials() {
		if !slices.ContainsFunc(db.Connections(serial), Connection.CarriesHeartbeat) {
			out = append(out, fmt.Sprintf("%s is reachable only through z/OS: the heartbeat does not work without an IP connection", serial))
		}
	}
	return out
}

// Removal is a removal the rules allow: its record, the connections the
// storage system keeps, and what to warn of.
type Removal struct {
	Record   Record
	Left     []Connection
	Warnings []string
}

// Remove checks the removal of one connection of a storage system, or
// of the whole system (connection ""), against the rules: the system and
// the connection must exist (ErrNotFound); the whole system cannot go
// while a session uses it (usedBy names one; ErrInUse); and the last
// TCP/IP connection of a system that keeps others (z/OS) cannot go while
// the heartbeat is on (ErrLastIPConnection) unless force, which warns
// that its sessions will be suspended. The record is not applied.
func (db *DB) Remove(serial hal.Serial, connection, usedBy string, force bool) (Removal, error) {
	conns := db.storage[serial]
	all := db.Connections(serial)
	viaHMC := func() error {
		var names []string
		for _, c := range all {
			switch {
			case c.HMC != "":
				names = append(names, "HMC connection "+c.HMC)
			case c.ZOS != "":
				names = append(names, "z/OS connection "+c.ZOS)
			}
		}
		return fmt.Errorf("%w: %s is reached through %s, defined there: "+
			"it goes with lockstepctl hmc remove or lockstepctl zos remove", ErrNotFound, serial, strings.Join(names, ", "))
	}
	if conns == nil {
		if len(all) > 0 {
			return Removal{}, viaHMC()
		}
		return Removal{}, fmt.Errorf("%w: storage system %s", ErrNotFound, serial)
	}
	if connection != "" && !slices.ContainsFunc(conns, func(c Connection) bool { return c.Name == connection }) &&
		slices.ContainsFunc(all, func(c Connection) bool { return c.HMC == connection || c.ZOS == connection }) {
		return Removal{}, viaHMC()
	}
	left := slices.DeleteFunc(slices.Clone(all), func(c Connection) bool {
		return c.HMC == "" && c.ZOS == "" && (connection == "" || c.Name == connection)
	})
	if len(all)-len(left) == 0 {
		return Removal{}, fmt.Errorf("%w: %s has no connection %q", ErrNotFound, serial, connection)
	}
	if len(left) == 0 && usedBy != "" {
		return Removal{}, fmt.Errorf("%w: session %s uses %s: remove its copy sets first", ErrInUse, usedBy, serial)
	}
	r := Removal{Left: left, Warnings: []string{}}
	lastIP := !slices.ContainsFunc(left, Connection.CarriesHeartbeat)
	if db.heartbeat && lastIP && len(left) > 0 {
		if !force {
			return Removal{}, fmt.Errorf("%w: this is the last TCP/IP connection of %s and the heartbeat is on: "+
				"its Metro Mirror sessions would be suspended and applications would see extended long busy until "+
				"the storage timer expires; disable the heartbeat first (lockstepctl heartbeat off), or use --force",
				ErrLastIPConnection, serial)
		}
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s keeps no TCP/IP connection while the heartbeat is on: "+
			"its sessions will be suspended, and applications see extended long busy until the storage timer expires", serial))
	}
	if connection == "" {
		r.Record = Record{Version: RecordVersion, Kind: KindStorageRemoved, Serial: serial}
	} else {
		r.Record = Record{Version: RecordVersion, Kind: KindConnectionRemoved, Serial: serial, Name: connection}
	}
	return r, nil
}

// RemoveHMC checks the removal of HMC connection name against the rules,
// for each storage system it fronts: a system that would keep no
// connection cannot lose it while a session uses it (usedBy names that
// session, "" for none; ErrInUse); and a system that would keep no
// TCP/IP connection cannot lose it while the heartbeat is on
// (ErrLastIPConnection) unless force, which warns that its sessions will
// be suspended. The record is not applied.
func (db *DB) RemoveHMC(name string, usedBy func(hal.Serial) string, force bool) (Removal, error) {
	h, ok := db.hmcs[name]
	if !ok {
		return Removal{}, fmt.Errorf("%w: HMC connection %q", ErrNotFound, name)
	}
	r := Removal{Record: Record{Version: RecordVersion, Kind: KindHMCRemoved, Name: name}, Warnings: []string{}}
	var lastIP []string
	for _, serial := range h.Attached {
		left := slices.DeleteFunc(db.Connections(serial), func(c Connection) bool { return c.HMC == name })
		if se := usedBy(serial); len(left) == 0 && se != "" {
			return Removal{}, fmt.Errorf("%w: session %s uses %s, which HMC connection %s is the only connection of: "+
				"remove its copy sets first", ErrInUse, se, serial, name)
		}
		if db.heartbeat && !slices.ContainsFunc(left, Connection.CarriesHeartbeat) {
			lastIP = append(lastIP, string(serial))
		}
	}
	if len(lastIP) > 0 {
		if !force {
			return Removal{}, fmt.Errorf("%w: HMC connection %s is the last TCP/IP connection of %s and the heartbeat is on: "+
				"their Metro Mirror sessions would be suspended and applications would see extended long busy until "+
				"the storage timer expires; disable the heartbeat first (lockstepctl heartbeat off), or use --force",
				ErrLastIPConnection, name, strings.Join(lastIP, ", "))
		}
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s keep no TCP/IP connection while the heartbeat is on: "+
			"their sessions will be suspended", strings.Join(lastIP, ", ")))
	}
	return r, nil
}

// RemoveZOS checks the removal of z/OS connection name against the rules,
// for each storage system it has online: a system that would keep no
// connection cannot lose it while a session uses it (usedBy names that
// session, "" for none; ErrInUse). A z/OS connection carries no
// heartbeat, so the last-TCP/IP rule does not concern it. The record is
// not applied.
func (db *DB) RemoveZOS(name string, usedBy func(hal.Serial) string) (Removal, error) {
	z, ok := db.zoss[name]
	if !ok {
		return Removal{}, fmt.Errorf("%w: z/OS connection %q", ErrNotFound, name)
	}
	for _, serial := range z.Systems {
		left := slices.DeleteFunc(db.Connections(serial), func(c Connection) bool { return c.ZOS == name })
		if se := usedBy(serial); len(left) == 0 && se != "" {
			return Removal{}, fmt.Errorf("%w: session %s uses %s, which z/OS connection %s is the only connection of: "+
				"remove its copy sets first", ErrInUse, se, serial, name)
		}
	}
	return Removal{Record: Record{Version: RecordVersion, Kind: KindZOSRemoved, Name: name}, Warnings: []string{}}, nil
}
