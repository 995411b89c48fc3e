package registry

import (
	"errors"
	"fmt"
	"maps"
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
// storage system keeps, what to warn of, and what the caller must
// suspend.
type Removal struct {
	Record   Record
	Left     []Connection
	Warnings []string
	// Suspend are the systems that lose their last TCP/IP connection
	// while the heartbeat is on and sessions use them (a forced removal):
	// no heartbeat reaches them any more, so they will freeze themselves
	// at H. The caller freezes the consistency groups of Sessions at
	// once, through the connections still there, rather than leave it to
	// them.
	Suspend  []hal.Serial
	Sessions []string
}

// Sessions names, for a storage system, the sessions whose copy sets use
// it (sorted, none for nil).
type Sessions func(hal.Serial) []string

// lastIP is the rule of the last TCP/IP connection (docs/operations.md,
// "Removing connections"), one for storage remove and hmc remove: lost
// are the systems the removal leaves with no TCP/IP connection (true:
// it keeps another one, z/OS), what names what goes ("connection direct
// of A", "HMC connection H1"). With the heartbeat on, the systems of lost
// that sessions use would be suspended (no heartbeat reaches them, so
// they freeze themselves at H, and applications see extended long busy
// until the storage timer expires): refused (ErrLastIPConnection) naming
// them and their sessions, unless force, which warns the same and fills
// r.Suspend and r.Sessions for the caller to suspend them at once. A
// system no session uses suspends nothing: it is not refused, only
// warned about when it stays reachable through z/OS alone.
func (db *DB) lastIP(r *Removal, what string, lost map[hal.Serial]bool, sessions Sessions, force bool) error {
	if !db.heartbeat || len(lost) == 0 {
		return nil
	}
	var named []string
	var all []string
	for _, serial := range slices.Sorted(maps.Keys(lost)) {
		users := sessions(serial)
		if len(users) == 0 {
			if lost[serial] {
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s is reachable only through z/OS: "+
					"the heartbeat does not work without an IP connection", serial))
			}
			continue
		}
		named = append(named, fmt.Sprintf("%s (%s %s)", serial, plural(len(users), "session", "sessions"), strings.Join(users, ", ")))
		r.Suspend = append(r.Suspend, serial)
		for _, u := range users {
			if !slices.Contains(all, u) {
				all = append(all, u)
			}
		}
	}
	if len(named) == 0 {
		return nil
	}
	slices.Sort(all)
	list := strings.Join(named, ", ")
	if !force {
		return fmt.Errorf("%w: removing %s leaves %s with no TCP/IP connection while the heartbeat is on: "+
			"no heartbeat would reach %s, so the Metro Mirror sessions would be suspended and applications would see "+
			"extended long busy until the storage timer expires; disable the heartbeat first (lockstepctl heartbeat off), "+
			"or use --force to suspend the sessions now", ErrLastIPConnection, what, list, plural(len(named), "it", "them"))
	}
	r.Sessions = all
	r.Warnings = append(r.Warnings, fmt.Sprintf("removing %s leaves %s with no TCP/IP connection while the heartbeat is on: "+
		"the Metro Mirror sessions are suspended, and applications see extended long busy until the storage timer expires",
		what, list))
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Remove checks the removal of one connection of a storage system, or
// of the whole system (connection ""), against the rules: the system and
// the connection must exist (ErrNotFound); the whole system cannot go
// while a session uses it (ErrInUse, naming them); and the last TCP/IP
// connection of a system that keeps others (z/OS) follows lastIP. The
// record is not applied.
func (db *DB) Remove(serial hal.Serial, connection string, sessions Sessions, force bool) (Removal, error) {
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
	if users := sessions(serial); len(left) == 0 && len(users) > 0 {
		return Removal{}, fmt.Errorf("%w: %s %s uses %s: remove its copy sets first", ErrInUse,
			plural(len(users), "session", "sessions"), strings.Join(users, ", "), serial)
	}
	r := Removal{Left: left, Warnings: []string{}}
	what := fmt.Sprintf("connection %s of %s", connection, serial)
	if connection == "" {
		what = "the direct connections of " + string(serial)
	}
	if err := db.lastIP(&r, what, lostIP(serial, all, left), sessions, force); err != nil {
		return Removal{}, err
	}
	if connection == "" {
		r.Record = Record{Version: RecordVersion, Kind: KindStorageRemoved, Serial: serial}
	} else {
		r.Record = Record{Version: RecordVersion, Kind: KindConnectionRemoved, Serial: serial, Name: connection}
	}
	return r, nil
}

// lostIP is {serial: it stays reachable} when the system had a TCP/IP
// connection among before and keeps none among left, else empty.
func lostIP(serial hal.Serial, before, left []Connection) map[hal.Serial]bool {
	if !slices.ContainsFunc(before, Connection.CarriesHeartbeat) || slices.ContainsFunc(left, Connection.CarriesHeartbeat) {
		return nil
	}
	return map[hal.Serial]bool{serial: len(left) > 0}
}

// RemoveHMC checks the removal of HMC connection name against the rules,
// for each storage system it fronts: a system that would keep no
// connection cannot lose it while a session uses it (ErrInUse); and a
// system that would keep no TCP/IP connection follows lastIP. The record
// is not applied.
func (db *DB) RemoveHMC(name string, sessions Sessions, force bool) (Removal, error) {
	h, ok := db.hmcs[name]
	if !ok {
		return Removal{}, fmt.Errorf("%w: HMC connection %q", ErrNotFound, name)
	}
	r := Removal{Record: Record{Version: RecordVersion, Kind: KindHMCRemoved, Name: name}, Warnings: []string{}}
	lost := map[hal.Serial]bool{}
	for _, serial := range h.Attached {
		all := db.Connections(serial)
		left := slices.DeleteFunc(slices.Clone(all), func(c Connection) bool { return c.HMC == name })
		if users := sessions(serial); len(left) == 0 && len(users) > 0 {
			return Removal{}, fmt.Errorf("%w: %s %s uses %s, which HMC connection %s is the only connection of: "+
				"remove its copy sets first", ErrInUse, plural(len(users), "session", "sessions"), strings.Join(users, ", "), serial, name)
		}
		maps.Copy(lost, lostIP(serial, all, left))
	}
	if err := db.lastIP(&r, "HMC connection "+name, lost, sessions, force); err != nil {
		return Removal{}, err
	}
	return r, nil
}

// RemoveZOS checks the removal of z/OS connection name against the rules,
// for each storage system it has online: a system that would keep no
// connection cannot lose it while a session uses it (ErrInUse). A z/OS connection carries no
// heartbeat, so the last-TCP/IP rule does not concern it. The record is
// not applied.
func (db *DB) RemoveZOS(name string, sessions Sessions) (Removal, error) {
	z, ok := db.zoss[name]
	if !ok {
		return Removal{}, fmt.Errorf("%w: z/OS connection %q", ErrNotFound, name)
	}
	for _, serial := range z.Systems {
		left := slices.DeleteFunc(db.Connections(serial), func(c Connection) bool { return c.ZOS == name })
		if users := sessions(serial); len(left) == 0 && len(users) > 0 {
			return Removal{}, fmt.Errorf("%w: %s %s uses %s, which z/OS connection %s is the only connection of: "+
				"remove its copy sets first", ErrInUse, plural(len(users), "session", "sessions"), strings.Join(users, ", "), serial, name)
		}
	}
	return Removal{Record: Record{Version: RecordVersion, Kind: KindZOSRemoved, Name: name}, Warnings: []string{}}, nil
}
