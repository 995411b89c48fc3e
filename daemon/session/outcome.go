package session

import (
	"fmt"
	"strings"

	"github.com/lockstep-io/lockstep/hal"
)

// The functions of this file decide what a session becomes: pure
// functions of the session and what happened, so that they can be tested
// by table and so that the Manager only sequences them. Each returns a
// Change that passes Session.check for a session that does.

// statusFor is the status that goes with a state (after CSM): Normal
// where a consistent copy exists or is maintained, Warning while copying
// towards one or while an operation is in flight, Severe with suspended
// pairs or a failure.
func statusFor(st State, failed bool) Status {
	switch {
	case st == Defined:
		return Inactive
	case failed:
		return Severe
	}
	switch st {
	case Prepared, TargetAvailable:
		return Normal
	case Suspended, SuspendedPartial:
		return Severe
	}
	return Warning // Preparing, Suspending, Recovering
}

// succeeded clears the error flag of a change: the command worked.
func succeeded(c Change) Change {
	c.Error = false
	c.Status = statusFor(c.State, false)
	return c
}

// failedChange keeps the session where it is and says the command failed:
// the state already tells the truth (a transitional state when the
// command had one), and the error flag says that the hardware may not
// match; a refresh finds out.
func failedChange(s *Session, cmd Command, err error) Change {
	c := changeFrom(s)
	c.Error = true
	c.Status = statusFor(c.State, true)
	c.Reason = fmt.Sprintf("%s failed: %v", cmd, err)
	return c
}

// startingChange is the transitional record of a start: Preparing in the
// command's direction, production at its source. The target stops being a
// consistent image as soon as a resync begins, so Recoverable goes.
func startingChange(s *Session, cmd Command) Change {
	dir := H1ToH2
	if cmd == CmdStartH2H1 {
		dir = H2ToH1
	}
	return Change{
		State:      Preparing,
		Status:     statusFor(Preparing, false),
		Copying:    s.Copying,
		IOHeld:     s.IOHeld,
		Direction:  dir,
		ActiveSite: dir.Source(),
		Reason:     string(cmd) + " issued",
	}
}

// startedChange: the copy runs (copy-pending). Prepared comes from a
// refresh or poll that sees every pair full-duplex.
func startedChange(s *Session, cmd Command, err error) Change {
	if err != nil {
		return failedChange(s, cmd, err)
	}
	c := changeFrom(s)
	c.Copying = true
	c.IOHeld = false // the start ended any hold: writes are mirrored again
	c.Reason = "copy started " + s.Direction.Label()
	return succeeded(c)
}

// mayBeMirroring is the set of states a freeze concerns: pairs in them
// are, or may still be, mirroring.
func mayBeMirroring(st State) bool {
	return st == Preparing || st == Prepared || st == Suspending || st == SuspendedPartial
}

// freezingChange: a freeze of the session's scope began. The freeze
// starts extended long busy on the source LSSs. FromPrepared remembers
// whether every pair was full-duplex, which a consistent image needs.
func freezingChange(s *Session, reason string) (Change, bool) {
	if !mayBeMirroring(s.State) {
		return heldAgainChange(s, reason)
	}
	c := changeFrom(s)
	c.State = Suspending
	c.Status = statusFor(Suspending, c.Error)
	c.Recoverable = false
	c.IOHeld = true
	c.FromPrepared = s.State == Prepared || s.State == Suspending && s.FromPrepared
	c.Reason = reason
	return c, true
}

// heldAgainChange: a freeze of the scope reached a session that was
// already frozen (Suspended, Recovering, Target Available). Its pairs do
// not mirror, so its state and recoverability stay; but the freeze starts
// extended long busy on every source LSS of the scope, its own included:
// its I/O is held again, until a release-io (or, under the release-io
// policy, the core's thaw) ends it.
func heldAgainChange(s *Session, reason string) (Change, bool) {
	if s.State == Defined || s.IOHeld {
		return Change{}, false
	}
	c := changeFrom(s)
	c.IOHeld = true
	c.Reason = "I/O held again by a freeze of its consistency group: " + reason
	return c, true
}

// frozenChange: the freeze of the scope ended. certain means every LSS
// pair of the scope is known frozen, each storage system having
// acknowledged or certainly frozen itself (daemon/freeze/doc.go). The image is
// recoverable only if, in addition, every pair was full-duplex when the
// freeze began. Under hold-io the writes stay held; under release-io the
// core thaws once the freeze is certain. An uncertain freeze is never
// thawed by the core and never recoverable.
func frozenChange(s *Session, certain bool, reason string) (Change, bool) {
	if !mayBeMirroring(s.State) {
		return Change{}, false
	}
	c := changeFrom(s)
	// A freeze that began from Prepared stays "from Prepared" while it is
	// partial: when the last system becomes certain (its heartbeat expiry),
	// the image is as consistent as if every system had answered at once.
	wasPrepared := s.State == Prepared || (s.State == Suspending || s.State == SuspendedPartial) && s.FromPrepared
	c.FromPrepared = false
	c.Reason = reason
	if certain {
		c.State = Suspended
		c.Recoverable = wasPrepared
		c.Copying = false
		c.IOHeld = s.Policy == HoldIO
	} else {
		c.State = SuspendedPartial
		c.Recoverable = false
		c.FromPrepared = wasPrepared
		c.IOHeld = true
		// Copying stays: the systems that did not confirm may be mirroring.
	}
	c.Status = statusFor(c.State, c.Error)
	return c, true
}

// swappedChange: a z/OS host writes the session's host I/O to the
// target site now (a HyperSwap). The session is Target Available with
// the target site active, whatever freeze state it was in: the host's
// swap is the fact, and a freeze of the group recorded before or after
// it (the host's own freeze raises suspend events too) does not change
// it (frozenChange leaves Target Available alone; freezingChange only
// records the hold of the old production site's LSSs). Recoverable: the
// target image is known consistent, which a host's swap gives when the
// pairs were all full-duplex (it swaps no other image) and the freeze
// did not break it: the session was Prepared, or frozen from Prepared,
// and certain (the freeze the manager saw settle, if any, was certain).
// Status is Normal for a planned swap of a consistent image, Severe
// otherwise: an unplanned swap follows a failure at the old production
// site, which an administrator must repair (then start back).
// It returns false when there is nothing to record: a Defined session
// (no pairs), or one already swapped to that site.
func swappedChange(s *Session, certain bool, sw Swap) (Change, bool) {
	target := s.Direction.Target()
	if s.State == Defined || s.State == TargetAvailable && s.ActiveSite == target {
		return Change{}, false
	}
	consistent := certain && (s.State == Prepared || s.Recoverable ||
		(s.State == Suspending || s.State == SuspendedPartial) && s.FromPrepared)
	c := changeFrom(s)
	c.State = TargetAvailable
	c.ActiveSite = target
	c.Recoverable = consistent
	c.Copying = false
	c.FromPrepared = false
	c.Error = false
	c.Status = Normal
	if !consistent || !sw.Planned {
		c.Status = Severe
	}
	kind := "unplanned"
	if sw.Planned {
		kind = "planned"
	}
	c.Reason = fmt.Sprintf("HyperSwap (%s) by z/OS host %s: %s; %s is active", kind, sw.Host, sw.Trigger, target)
	if !consistent {
		c.Reason += "; the image there is not known consistent"
	}
	return c, true
}

// releasedChange: the scope's source LSSs were thawed.
func releasedChange(s *Session, reason string) (Change, bool) {
	if !s.IOHeld {
		return Change{}, false
	}
	c := changeFrom(s)
	c.IOHeld = false
	c.Reason = reason
	return c, true
}

// contactChange is what the freeze core's report of its contact with a
// mirroring session's storage systems makes of the session. The state
// stays (the manager cannot know more than that it cannot see); the
// status says it: Warning while a system is unreachable, Severe once one
// has been unreachable longer than the lowest CG timeout. Recoverable is
// false in the mirroring states already, and stays so. Contact regained
// gives the state's own status back. Sessions in a freeze or frozen are
// left to the freeze's records.
func contactChange(s *Session, ct Contact) (Change, bool) {
	if s.State != Prepared && s.State != Preparing {
		return Change{}, false
	}
	c := changeFrom(s)
	c.Status = statusFor(s.State, s.Error)
	c.Recoverable = false
	switch {
	case ct.Severe:
		c.Status = Severe
	case ct.Lost:
		c.Status = max(c.Status, Warning)
	}
	if ct.Lost {
		c.Reason = "out of contact: " + ct.Reason
	} else if s.Status != c.Status || strings.HasPrefix(s.Reason, "out of contact: ") {
		c.Reason = "contact restored: every storage system answers"
	}
	return c, true
}

// recoveringChange is the transitional record of a recover. Recover is
// allowed only from a recoverable Suspended session, so the image stays
// known consistent through it.
func recoveringChange(s *Session) Change {
	return Change{
		State:       Recovering,
		Status:      statusFor(Recovering, false),
		Recoverable: s.Recoverable,
		IOHeld:      s.IOHeld,
		Reason:      "recover issued",
	}
}

// recoveredChange: the target site is writable and becomes production.
// On failure the session goes back to Suspended, still recoverable, so
// that the admin can retry (recover is idempotent) or refresh.
func recoveredChange(s *Session, err error) Change {
	if err != nil {
		c := failedChange(s, CmdRecover, err)
		c.State = Suspended
		c.Status = statusFor(Suspended, true)
		return c
	}
	c := changeFrom(s)
	c.State = TargetAvailable
	c.ActiveSite = s.Direction.Target()
	c.Reason = "recovered: " + s.Direction.Target().String() + " volumes writable"
	return succeeded(c)
}

// terminatedChange: the pairs are gone; back to Defined. A
// failover/failback session keeps its production site, so its next start
// copies from there; a single-direction one goes back to H1.
func terminatedChange(s *Session, err error) Change {
	if err != nil {
		return failedChange(s, CmdTerminate, err)
	}
	site := s.ActiveSite
	if s.Type == MetroMirrorSingleDirection {
		site = H1
	}
	return Change{
		State:      Defined,
		Status:     Inactive,
		Direction:  DirectionFrom(site),
		ActiveSite: site,
		Reason:     "terminated: pairs removed",
	}
}

// observedChange is what a refresh or a poll makes of the hardware's
// answer. It can take Recoverable away but never grant it: only a certain
// freeze (frozenChange) knows that no dependent write slipped through.
// It returns false for a Defined session, which has nothing to observe.
func observedChange(s *Session, o Observed) (Change, bool) {
	if s.State == Defined {
		return Change{}, false
	}
	n := len(s.CopySets)
	sum := o.summary()
	c := changeFrom(s)
	if len(o.Unreachable) > 0 {
		// Part of the truth is missing: keep the state, say so.
		names := make([]string, len(o.Unreachable))
		for i, u := range o.Unreachable {
			names[i] = string(u)
		}
		c.Status = max(c.Status, Warning)
		c.Reason = "refresh: could not query " + strings.Join(names, ", ") + ": " + sum
		return c, true
	}
	disagree := func(why string) (Change, bool) {
		c.Error = true
		c.Status = statusFor(c.State, true)
		c.Reason = "refresh: " + why + ": " + sum
		return c, true
	}
	set := func(st State, why string) (Change, bool) {
		c.State = st
		c.FromPrepared = false
		c.IOHeld = o.IOHeld
		c.Reason = "refresh: " + why + ": " + sum
		return succeeded(c), true
	}
	fd, cp, su := o.Pairs[hal.FullDuplex], o.Pairs[hal.CopyPending], o.Pairs[hal.Suspended]
	if o.Total() != n || fd+cp+su != n {
		return disagree(fmt.Sprintf("%d copy sets but %d pairs found as sources", n, fd+cp+su))
	}
	if s.State == Recovering || s.State == TargetAvailable {
		switch {
		case su == n && o.Recovered == n:
			c.ActiveSite = s.Direction.Target()
			c.Copying = false
			return set(TargetAvailable, "every target volume writable")
		case su == n && o.Recovered == 0 && s.State == Recovering:
			c.Copying = false
			return set(Suspended, "the recover did not take effect")
		}
		return disagree(fmt.Sprintf("%d of %d target volumes writable", o.Recovered, n))
	}
	if o.Recovered > 0 {
		return disagree("target volumes writable in a session that was not recovered")
	}
	switch {
	case fd == n:
		c.Copying, c.Recoverable = true, false
		return set(Prepared, "every pair full-duplex")
	case su == 0:
		c.Copying, c.Recoverable = true, false
		return set(Preparing, "copying")
	case su == n && (s.State == Suspended || s.State == SuspendedPartial):
		c.Copying = false
		return set(s.State, "every pair suspended")
	case su == n:
		c.Copying, c.Recoverable = false, false
		return set(Suspended, "every pair suspended but no freeze was confirmed, not recoverable")
	}
	c.Copying, c.Recoverable = true, false
	return set(SuspendedPartial, "pairs suspended while others mirror, not recoverable")
}
