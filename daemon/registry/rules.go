package registry

import (
	"errors"
	"fmt"
	"slices"

	"github.com/lockstep-io/lockstep/hal"
)

// The storage rules of DESIGN.md §4 that the registry's content decides.

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
		if !slices.ContainsFunc(db.storage[serial], Connection.CarriesHeartbeat) {
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
	if conns == nil {
		return Removal{}, fmt.Errorf("%w: storage system %s", ErrNotFound, serial)
	}
	left := slices.DeleteFunc(slices.Clone(conns), func(c Connection) bool {
		return connection == "" || c.Name == connection
	})
	if len(left) == len(conns) {
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
			"its sessions will be suspended", serial))
	}
	if connection == "" {
		r.Record = Record{Version: RecordVersion, Kind: KindStorageRemoved, Serial: serial}
	} else {
		r.Record = Record{Version: RecordVersion, Kind: KindConnectionRemoved, Serial: serial, Name: connection}
	}
	return r, nil
}
