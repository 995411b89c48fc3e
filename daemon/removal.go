package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lockstep-io/lockstep/daemon/engine"
	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// The forced removal of the last TCP/IP connection of storage systems
// while the heartbeat is on (docs/operations.md, "Removing
// connections"): the registry's rule (registry.DB.Remove, RemoveHMC)
// names the systems and the sessions over them; here the sessions are
// suspended, at once, by the freeze core.

// sessionsUsing names, for a storage system, this server's sessions
// whose copy sets use it and that the heartbeat covers, sorted: the ones
// a lost TCP/IP connection suspends. A HyperSwap session (its z/OS host
// protects it, no heartbeat is sent for it) and a Defined one (no pairs)
// lose nothing.
func (s *Server) sessionsUsing() registry.Sessions {
	sessions := s.db().Sessions()
	return func(serial hal.Serial) []string {
		var out []string
		for _, se := range sessions {
			if se.Type.Heartbeat() && se.State != session.Defined && slices.Contains(se.Serials(), serial) {
				out = append(out, se.Name)
			}
		}
		slices.Sort(out)
		return out
	}
}

// suspendForRemoval freezes the consistency groups of rm.Sessions (a
// forced removal that leaves rm.Suspend without a TCP/IP connection while
// the heartbeat is on), and answers what to warn of: the groups whose
// freeze not every storage system acknowledged.
//
// It runs before the removal is recorded and the driver closed, on
// purpose. Once the TCP/IP connection is gone no heartbeat can be
// refreshed, so the systems would freeze themselves at H anyway; but
// until then they are silent and the core would only freeze on doubt,
// after the detection window, through what is left (z/OS, which may be
// slow, or unusable on this server outside the sysplex), and a freeze no
// system acknowledges is certain only at last heartbeat + H + request
// timeout. Freezing first goes through the composed driver while every
// connection still works, the one about to go included: acknowledged,
// the sessions are Suspended and Recoverable at once. Freezing is never
// unsafe for consistency, so if the removal is then not recorded the
// sessions stay suspended and the connection stays (removalNotRecorded
// says so).
func (s *Server) suspendForRemoval(ctx context.Context, d *duties, rm registry.Removal) []string {
	if len(rm.Sessions) == 0 {
		return nil
	}
	serials := make([]string, 0, len(rm.Suspend))
	for _, serial := range rm.Suspend {
		serials = append(serials, string(serial))
	}
	reason := fmt.Sprintf("last TCP/IP connection of %s removed (--force)", strings.Join(serials, ", "))
	var groups []string
	for _, name := range rm.Sessions {
		if se, ok := s.db().Session(name); ok && !slices.Contains(groups, engine.GroupName(se)) {
			groups = append(groups, engine.GroupName(se))
		}
	}
	var warnings []string
	for _, g := range groups {
		err := d.core.Freeze(ctx, g, reason)
		switch {
		case err == nil:
			s.log.Warn("consistency group frozen: its last TCP/IP connection removed", "group", g, "serials", strings.Join(serials, ","))
		case errors.Is(err, freeze.ErrUnknownGroup):
			// No session of the group was ever started: nothing mirrors.
		default:
			s.log.Error("freeze for a forced removal not acknowledged", "group", g, "err", err)
			warnings = append(warnings, fmt.Sprintf("the freeze of consistency group %s is not certain yet (%v): "+
				"the freeze core keeps at it, and the storage systems freeze themselves at H", g, err))
		}
	}
	s.updateStatus()
	return warnings
}

// removalNotRecorded is the error of a removal whose record failed after
// its sessions were suspended.
func removalNotRecorded(rm registry.Removal, err error) error {
	if len(rm.Sessions) == 0 {
		return err
	}
	return fmt.Errorf("sessions %s were suspended, but the removal was not recorded (the connection stays): %w",
		strings.Join(rm.Sessions, ", "), err)
}
