package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// ErrNoHyperSwap: this server has no HyperSwap (no SwapHosts: the build
// links no z/OS HyperSwap support).
var ErrNoHyperSwap = errors.New("engine: HyperSwap is unavailable: this lockstepd cannot reach a z/OS host's HyperSwap")

// SwapHost is the HyperSwap side of one z/OS connection (zos add), by
// its name.
type SwapHost struct {
	Name string
	hal.SwapHost
}

// swapHosts are the z/OS hosts that HyperSwap s: each z/OS connection of
// this server's sysplex that has every H1 and H2 system of s online
// (Options.SwapHosts decides; an error names the systems without one).
// Each of them runs its own host I/O, so each is given the pairs, and
// each swaps.
func (e *Engine) swapHosts(s *session.Session) ([]SwapHost, error) {
	if e.swaps == nil {
		return nil, fmt.Errorf("session %s (%s): %w", s.Name, s.Type.Label(), ErrNoHyperSwap)
	}
	hosts, err := e.swaps(s.Serials())
	if err != nil {
		return nil, fmt.Errorf("session %s (%s): %w", s.Name, s.Type.Label(), err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("session %s (%s): no z/OS connection has its storage systems online", s.Name, s.Type.Label())
	}
	return hosts, nil
}

func hostNames(hosts []SwapHost) string {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	return strings.Join(names, ", ")
}

// vetSharedBeat refuses a start that would put a HyperSwap session and a
// session the heartbeat covers on one LSS pair (in another consistency
// group: a group holds one kind only, session.DB): the heartbeat is
// armed per LSS pair, and a storage system whose heartbeat expired would
// freeze the HyperSwap session's pairs there behind its z/OS host's back.
func (e *Engine) vetSharedBeat(s *session.Session) error {
	mine := bothWays(s)
	all := e.mgrSessions()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, o := range all {
		if o.Name == s.Name || o.State == session.Defined || e.gone[o.Name] || o.Type.Heartbeat() == s.Type.Heartbeat() {
			continue
		}
		for _, lp := range bothWays(o) {
			if slices.Contains(mine, lp) {
				return fmt.Errorf("%w: LSS pair %s is also used by session %s (%s): the heartbeat, armed per LSS pair, "+
					"would cover the %s session's pairs there; keep HyperSwap sessions on LSS pairs of their own",
					session.ErrVetoed, lp, o.Name, o.Type.Label(), session.MetroMirrorHyperSwap.Label())
			}
		}
	}
	return nil
}

// loadSwap gives every z/OS host of a HyperSwap session its pairs, as
// started (the source volumes are the host's I/O, the targets where it
// swaps to), once they are established: from then on the host swaps the
// session when I/O to a source fails and every pair is full-duplex. A
// start in the other direction after a swap loads that direction: the
// host swaps back once the session is Prepared again (what a CSM
// administrator expects: HyperSwap is enabled again in the new
// direction, without a command of its own).
func (e *Engine) loadSwap(ctx context.Context, s *session.Session) error {
	if !s.Type.HyperSwap() {
		return nil
	}
	hosts, err := e.swapHosts(s)
	if err != nil {
		return fmt.Errorf("pairs established, but HyperSwap not enabled: %w", err)
	}
	epoch, pairs := e.epoch(), s.VolumePairs()
	var errs []error
	for _, h := range hosts {
		if err := h.LoadSwap(ctx, epoch, s.Name, pairs); err != nil {
			errs = append(errs, fmt.Errorf("pairs established, but HyperSwap not enabled on z/OS host %s: %w", h.Name, err))
		}
	}
	return errors.Join(errs...)
}

// unloadOther makes every z/OS host of a HyperSwap session forget it if
// it holds the session with other pairs (a start in the other direction
// after a swap or a recover), before the start changes them: the host
// must not swap by the old direction's pairs while they are established
// the other way. The pairs of the new direction are loaded once
// established (loadSwap).
func (e *Engine) unloadOther(ctx context.Context, s *session.Session) error {
	if !s.Type.HyperSwap() {
		return nil
	}
	hosts, err := e.swapHosts(s)
	if err != nil {
		return err
	}
	epoch, pairs := e.epoch(), s.VolumePairs()
	for _, h := range hosts {
		held, err := h.SwapStatus(ctx, epoch)
		if err != nil {
			return fmt.Errorf("asking z/OS host %s what it holds: %w", h.Name, err)
		}
		i := slices.IndexFunc(held, func(st hal.SwapState) bool { return st.Session == s.Name })
		if i < 0 || slices.Equal(held[i].Pairs, pairs) {
			continue
		}
		if err := h.UnloadSwap(ctx, epoch, s.Name); err != nil {
			return fmt.Errorf("HyperSwap of the other direction not disabled on z/OS host %s: %w", h.Name, err)
		}
	}
	return nil
}

// unloadSwap makes every z/OS host of a HyperSwap session forget it
// (terminate), before its pairs are removed. A session without a z/OS
// host now (the connection removed) has none to tell: its pairs, once
// removed, are no longer full-duplex, and a host swaps no other.
func (e *Engine) unloadSwap(ctx context.Context, s *session.Session) error {
	if !s.Type.HyperSwap() {
		return nil
	}
	hosts, err := e.swapHosts(s)
	if err != nil {
		e.log.Warn("HyperSwap not disabled before the terminate: no z/OS host to tell", "session", s.Name, "err", err)
		return nil
	}
	epoch := e.epoch()
	for _, h := range hosts {
		if err := h.UnloadSwap(ctx, epoch, s.Name); err != nil {
			return fmt.Errorf("HyperSwap not disabled on z/OS host %s: %w", h.Name, err)
		}
	}
	return nil
}

// HyperSwap is the planned HyperSwap (session.Swapper): every z/OS host
// of the session swaps its host I/O to the target site, then the core
// freezes the session's consistency group (Suspend: the rest of the
// scope; the host froze the session's own pairs). Each host is asked,
// whatever another answered: a host that did not swap is named in the
// swap error. The group is frozen whatever the swaps' outcome.
//
// The host goes first because it is the one that can hold its I/O: a
// freeze through the core first left the application writing to H1
// until the swap began, and a release-I/O group, thawed once the freeze
// was certain, acknowledged writes on H1 alone that the swap then lost
// (internal/scenario TestPlannedSwapOfAReleaseIOGroupLosesNothing). The
// group is marked as the command's own freeze from the start, so the
// core's report of the freeze the host's suspend events set off is the
// command's outcome, not news that conflicts with it.
func (e *Engine) HyperSwap(ctx context.Context, s *session.Session) (hosts string, swapErr, freezeErr error) {
	defer e.running(GroupName(s), "freeze")()
	found, err := e.swapHosts(s)
	if err != nil {
		swapErr = err
	} else {
		epoch := e.epoch()
		var errs []error
		for _, h := range found {
			if err := h.Swap(ctx, epoch, s.Name); err != nil {
				errs = append(errs, fmt.Errorf("z/OS host %s: %w", h.Name, err))
			}
		}
		hosts, swapErr = hostNames(found), errors.Join(errs...)
	}
	return hosts, swapErr, e.Suspend(ctx, s)
}

// Swapped hears a swap report of a z/OS host (its SwapEvents, on the
// acting server only). A planned one is a hyperswap command's, whose
// outcome the command records; an unplanned one is recorded on the
// session at once (session.Manager.MarkSwapped), and the session's
// consistency group is frozen through the core if it still mirrors: the
// host froze the pairs it swapped, and the rest of the group must not
// mirror on. Either order of that freeze and the report gives the same
// session (Target Available, the target site active).
func (e *Engine) Swapped(ev hal.SwapEvent) {
	if ev.Planned {
		e.log.Info("planned HyperSwap reported by the z/OS host", "session", ev.Session, "host", ev.Host)
		return
	}
	e.queueSwap(ev.Session, session.Swap{Host: ev.Host, Trigger: ev.Trigger}, ev.At, nil)
}

// FoundSwapped hears what a z/OS host's status shows (SwapStatus: at
// the start of an acting period, a restart or a takeover, and on every
// poll): a session the host swapped that the journal does not show
// swapped is recorded so, as a report would have been (the report was
// lost). A state is taken only for the pairs the session has now: a host
// that still holds the other direction's pairs (a start back under way)
// says nothing of it.
func (e *Engine) FoundSwapped(host string, states []hal.SwapState) {
	at := e.clock.Now()
	for _, st := range states {
		if !st.Swapped {
			continue
		}
		e.queueSwap(st.Session, session.Swap{Host: host,
			Trigger: "found swapped in the z/OS host's status (its report was not received)"}, at, st.Pairs)
	}
}

// queueSwap records a swap on the session, in order with the core's
// reports (Run). pairs, if not nil, must be the session's pairs now.
func (e *Engine) queueSwap(name string, sw session.Swap, at time.Time, pairs []hal.VolumePair) {
	e.mu.Lock()
	mgr := e.mgr
	e.mu.Unlock()
	if mgr == nil {
		return
	}
	select {
	case e.marks <- func(ctx context.Context) { e.recordSwap(ctx, mgr, name, sw, at, pairs) }:
	default:
		e.log.Error("record queue full; the z/OS host's status will be read again", "session", name)
	}
}

// busyRetry is how soon a swap the host's status showed while a command
// ran on the session is recorded again.
const busyRetry = 250 * time.Millisecond

func (e *Engine) recordSwap(ctx context.Context, mgr *session.Manager, name string, sw session.Swap, at time.Time, pairs []hal.VolumePair) {
	s, ok := mgr.DB().Session(name)
	if !ok || !s.Type.HyperSwap() {
		e.log.Warn("a z/OS host swapped a session this server does not manage as HyperSwap", "session", name, "host", sw.Host)
		return
	}
	if pairs != nil && !slices.Equal(pairs, s.VolumePairs()) {
		return
	}
	record := mgr.MarkSwapped
	if pairs != nil {
		record = mgr.FoundSwapped
	}
	changed, err := record(ctx, name, sw, at)
	switch {
	case errors.Is(err, session.ErrBusy):
		// A command runs on the session: tried again once it may have
		// ended, not left to the next status read, which back-to-back
		// commands (a refresh loop) could meet busy every time.
		e.clock.AfterFunc(busyRetry, func() { e.queueSwap(name, sw, at, pairs) })
		return
	case err != nil:
		e.log.Error("recording a HyperSwap failed", "session", name, "host", sw.Host, "err", err)
		return
	case !changed:
		return
	}
	e.log.Warn("HyperSwap: the z/OS host writes the session's I/O to the target site", "session", name,
		"host", sw.Host, "trigger", sw.Trigger)
	group := GroupName(s)
	reason := fmt.Sprintf("HyperSwap of session %s by z/OS host %s: %s", name, sw.Host, sw.Trigger)
	e.work.Go(func() {
		if err := e.core.Freeze(ctx, group, reason); err != nil && ctx.Err() == nil {
			e.log.Warn("consistency group not frozen everywhere after a HyperSwap", "group", group, "err", err)
		}
	})
}

var _ session.Swapper = (*Engine)(nil)
