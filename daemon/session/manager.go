package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Manager runs admin commands on sessions and records what the freeze core
// reports. Every change goes through the Store as a record; the Manager
// keeps no session state of its own beyond one command slot per session.
//
// Commands to one session run one at a time, in arrival order as far as
// the Go scheduler gives it; commands to different sessions run in
// parallel. The freeze core's reports (Mark*) never wait for a command:
// a freeze is news that must land at once. A command whose session was
// changed by such a report while the hardware worked does not overwrite
// it: its outcome is dropped and it returns ErrConflict.
type Manager struct {
	store Store
	hw    Hardware
	clock clock.Clock

	mu sync.Mutex
	// slots holds one command slot per session name ever commanded: a
	// send takes the slot, a receive frees it. Channels rather than
	// mutexes so that a waiting command honours its context.
	slots map[string]chan struct{}
}

// NewManager returns a Manager proposing to store and commanding hw; a nil
// clk means the real clock.
func NewManager(store Store, hw Hardware, clk clock.Clock) *Manager {
	return &Manager{store: store, hw: hw, clock: clock.OrReal(clk), slots: make(map[string]chan struct{})}
}

// DB is the store's current state.
func (m *Manager) DB() *DB { return m.store.DB() }

func (m *Manager) stamp(at time.Time) time.Time {
	if at.IsZero() {
		return m.clock.Now()
	}
	return at
}

func (m *Manager) record(kind Kind, name string, at time.Time) Record {
	return Record{Version: RecordVersion, Kind: kind, Session: name, At: m.stamp(at)}
}

// Create defines a new session: Defined, production at H1.
func (m *Manager) Create(ctx context.Context, name string, t Type, cg string, p Policy) error {
	r := m.record(KindSessionCreated, name, time.Time{})
	r.Create = &Create{Type: t, CGName: cg, Policy: p}
	return m.store.Propose(ctx, r)
}

// AddCopySet adds copy sets to a Defined session, all or none.
func (m *Manager) AddCopySet(ctx context.Context, name string, cs ...CopySet) error {
	if len(cs) == 0 {
		return invalid("no copy set to add to %q", name)
	}
	r := m.record(KindCopySetsAdded, name, time.Time{})
	r.CopySets = cs
	return m.store.Propose(ctx, r)
}

// RemoveCopySet removes copy sets from a Defined session, all or none.
func (m *Manager) RemoveCopySet(ctx context.Context, name string, cs ...CopySet) error {
	if len(cs) == 0 {
		return invalid("no copy set to remove from %q", name)
	}
	r := m.record(KindCopySetsRemoved, name, time.Time{})
	r.CopySets = cs
	return m.store.Propose(ctx, r)
}

// Remove deletes a Defined session (terminate it first).
func (m *Manager) Remove(ctx context.Context, name string) error {
	return m.store.Propose(ctx, m.record(KindSessionRemoved, name, time.Time{}))
}

func (m *Manager) slot(name string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.slots[name]
	if !ok {
		ch = make(chan struct{}, 1)
		m.slots[name] = ch
	}
	return ch
}

// Command runs cmd on the named session once the commands before it have
// finished: checks the allowed-commands table, records the transitional
// state if the command has one, calls the Hardware, and records the
// outcome. A Hardware error is returned (wrapped) after the session has
// recorded it: Error set, Status Severe, the state telling what is known.
// The outcome is recorded even if ctx ends meanwhile, since the hardware
// may have acted.
func (m *Manager) Command(ctx context.Context, name string, cmd Command) error {
	if !cmd.Valid() {
		return fmt.Errorf("%w: unknown command %q", ErrNotAllowed, string(cmd))
	}
	if _, ok := m.store.DB().Session(name); !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSession, name)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ch := m.slot(name)
	select {
	case ch <- struct{}{}:
		defer func() { <-ch }()
	case <-ctx.Done():
		return ctx.Err()
	}
	s, ok := m.store.DB().Session(name)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSession, name)
	}
	if cmd == CmdTerminate && s.State == Defined {
		// Already terminated: a terminate repeated after a lost answer
		// succeeds, and changes nothing (nothing of a Defined session is
		// on the storage systems).
		return nil
	}
	if err := CheckCommand(s, cmd); err != nil {
		return err
	}
	if v, ok := m.hw.(Vetter); ok {
		if err := v.Vet(ctx, s, cmd); err != nil {
			if !errors.Is(err, ErrVetoed) {
				err = fmt.Errorf("%w: %w", ErrVetoed, err)
			}
			return fmt.Errorf("session %q: %s: %w", name, cmd, err)
		}
	}
	switch cmd {
	case CmdStartH1H2:
		return m.twoStep(ctx, s, cmd, m.starting(s, cmd),
			func(cur *Session) error { return m.hw.StartH1H2(ctx, cur) },
			func(cur *Session, err error) Change { return startedChange(cur, cmd, err) })
	case CmdStartH2H1:
		return m.twoStep(ctx, s, cmd, m.starting(s, cmd),
			func(cur *Session) error { return m.hw.StartH2H1(ctx, cur) },
			func(cur *Session, err error) Change { return startedChange(cur, cmd, err) })
	case CmdRecover:
		return m.twoStep(ctx, s, cmd, recoveringChange(s),
			func(cur *Session) error { return m.hw.Recover(ctx, cur) },
			recoveredChange)
	case CmdSuspend:
		return m.suspend(ctx, s, nil)
	case CmdHyperSwap:
		sw, ok := m.hw.(Swapper)
		if !ok {
			return fmt.Errorf("session %q: %s: %w: this manager has no HyperSwap", name, cmd, ErrVetoed)
		}
		return m.suspend(ctx, s, sw)
	case CmdReleaseIO:
		return m.releaseIO(ctx, s)
	case CmdTerminate:
		err := m.hw.Terminate(ctx, s)
		return m.finish(ctx, s, s.Rev, cmd, terminatedChange(s, err), err)
	default: // CmdRefresh
		o, err := m.hw.Refresh(ctx, s)
		c := failedChange(s, cmd, err)
		if err == nil {
			c, _ = observedChange(s, o) // s is not Defined: the table has no refresh there
		}
		return m.finish(ctx, s, s.Rev, cmd, c, err)
	}
}

// starting is the transitional record of a start. A source LSS the
// session shares with a session of its scope that holds I/O holds the
// session's writes too (extended long busy is the LSS's): I/O held, until
// the start ends that hold (a start that fails first leaves it held and
// says so).
func (m *Manager) starting(s *Session, cmd Command) Change {
	c := startingChange(s, cmd)
	mine := map[hal.LSSRef]bool{}
	for _, cs := range s.CopySets {
		mine[cs.Pair(c.Direction).LSSPair().Source] = true
	}
	for _, p := range m.store.DB().Scope(s.Name) {
		if p.Name == s.Name || !p.IOHeld {
			continue
		}
		for _, lp := range p.LSSPairs() {
			if mine[lp.Source] {
				c.IOHeld = true
			}
		}
	}
	return c
}

// set proposes c for the session at revision rev and returns the revision
// the record gives it.
func (m *Manager) set(ctx context.Context, name string, rev uint64, at time.Time, c Change) (uint64, error) {
	r := m.record(KindStateChanged, name, at)
	r.IfRev = rev
	r.Change = &c
	if err := m.store.Propose(ctx, r); err != nil {
		return 0, err
	}
	return rev + 1, nil
}

// twoStep is a command with a transitional state: record it, run the
// hardware on the session as that record left it, record the outcome.
func (m *Manager) twoStep(ctx context.Context, s *Session, cmd Command, transit Change,
	do func(*Session) error, outcome func(*Session, error) Change) error {
	rev, err := m.set(ctx, s.Name, s.Rev, time.Time{}, succeeded(transit))
	if err != nil {
		return fmt.Errorf("session %q: %s: %w", s.Name, cmd, err)
	}
	cur, ok := m.store.DB().Session(s.Name)
	if !ok || cur.Rev != rev {
		// The freeze core recorded news in between (a freeze): acting on
		// the hardware now could undo it.
		return m.conflict(s.Name, cmd, "the hardware was not commanded")
	}
	hwErr := do(cur)
	return m.finish(ctx, cur, rev, cmd, outcome(cur, hwErr), hwErr)
}

// finish records a command's outcome c, conditional on the revision the
// command decided from, and returns the hardware error joined with any
// failure to record. A command that failed is recorded as failed on the
// session as it is now if news landed meanwhile.
func (m *Manager) finish(ctx context.Context, s *Session, rev uint64, cmd Command, c Change, hwErr error) error {
	_, err := m.set(context.WithoutCancel(ctx), s.Name, rev, time.Time{}, c)
	if errors.Is(err, ErrConflict) && hwErr != nil {
		// A failure is recorded whatever the news: the Error flag on the
		// session as it is now overwrites nothing the news said, and a
		// failed command left unrecorded would show a session that the
		// hardware disagrees with as if all were well (a start that
		// failed midway, still Preparing without its error).
		_, _, err = m.update(context.WithoutCancel(ctx), s.Name, time.Time{}, func(cur *Session) (Change, bool) {
			return failedChange(cur, cmd, hwErr), cur.State != Defined
		})
	}
	if errors.Is(err, ErrConflict) {
		err = m.conflict(s.Name, cmd, "its outcome was not recorded")
	} else if err != nil {
		err = fmt.Errorf("session %q: %s: recording the outcome: %w", s.Name, cmd, err)
	}
	if hwErr != nil {
		hwErr = fmt.Errorf("session %q: %s: %w", s.Name, cmd, hwErr)
	}
	return errors.Join(hwErr, err)
}

// conflict is the error of a command whose session another record changed
// while it ran.
func (m *Manager) conflict(name string, cmd Command, what string) error {
	now := "removed"
	if cur, ok := m.store.DB().Session(name); ok {
		now = cur.State.String() + ": " + cur.Reason
	}
	return fmt.Errorf("%w: session %q changed while %s ran (now %s); %s", ErrConflict, name, cmd, now, what)
}

// suspend freezes the session's whole consistency scope: every session of
// the scope that may be mirroring goes Suspending, then Suspended or
// Suspended (Partial) by the Hardware's answer. The Error flag is the
// commanded session's only; the others show the scope's state.
//
// With sw (hyperswap), the z/OS hosts first swap the session's host I/O
// to its target site, then the scope is frozen whatever the swap's
// outcome (Swapper.HyperSwap says why in that order): the session ends Target Available with the target
// site active, Normal if the freeze was certain from Prepared, Severe
// otherwise (swappedChange). A swap that fails leaves the session as the
// suspend did, with the error. The other sessions of the scope are
// frozen with it, as by a suspend, and not swapped: each is its own
// hyperswap.
func (m *Manager) suspend(ctx context.Context, s *Session, sw Swapper) error {
	cmd := CmdSuspend
	if sw != nil {
		cmd = CmdHyperSwap
	}
	c, _ := freezingChange(s, string(cmd)+" issued") // the table allows suspend and hyperswap only where this applies
	rev, err := m.set(ctx, s.Name, s.Rev, time.Time{}, succeeded(c))
	if err != nil {
		return fmt.Errorf("session %q: %s: %w", s.Name, cmd, err)
	}
	peerReason := fmt.Sprintf("%s of session %q (consistency group %s)", cmd, s.Name, s.CGName)
	type peer struct {
		name string
		rev  uint64
	}
	var peers []peer
	var errs []error
	for _, p := range m.store.DB().Scope(s.Name) {
		if p.Name == s.Name {
			continue
		}
		prev, changed, err := m.update(ctx, p.Name, time.Time{}, func(cur *Session) (Change, bool) {
			return freezingChange(cur, peerReason+" issued")
		})
		if err != nil {
			// Freeze anyway: the freeze protects the image, the record
			// only reports it.
			errs = append(errs, fmt.Errorf("session %q: %w", p.Name, err))
		}
		if changed {
			peers = append(peers, peer{p.Name, prev})
		}
	}

	cur, ok := m.store.DB().Session(s.Name)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSession, s.Name)
	}
	var hwErr, swapErr error
	var hosts string
	if sw != nil {
		hosts, swapErr, hwErr = sw.HyperSwap(ctx, cur)
	} else {
		hwErr = m.hw.Suspend(ctx, cur)
	}
	result := "every freeze confirmed"
	if hwErr != nil {
		result = hwErr.Error()
	}
	out := context.WithoutCancel(ctx)
	switch {
	case sw != nil && swapErr == nil:
		err := m.recordFrozen(out, s.Name, rev, func(cur *Session) (Change, bool) {
			return swappedChange(cur, hwErr == nil, Swap{Planned: true, Host: hosts,
				Trigger: "hyperswap command, freeze: " + result})
		})
		switch {
		case errors.Is(err, ErrConflict):
			errs = append(errs, m.conflict(s.Name, cmd, "its outcome was not recorded"))
		case err != nil:
			errs = append(errs, fmt.Errorf("session %q: %s: recording the outcome: %w", s.Name, cmd, err))
		}
	case hwErr != nil || swapErr != nil:
		c, _ = frozenChange(cur, hwErr == nil, string(cmd)+": "+result)
		c.Error = true
		c.Status = statusFor(c.State, c.Error)
		failure := hwErr
		if swapErr != nil {
			c.Reason += "; the z/OS host did not swap: " + swapErr.Error()
			failure = errors.Join(hwErr, fmt.Errorf("the z/OS host did not swap: %w", swapErr))
		}
		errs = append(errs, m.finish(ctx, cur, rev, cmd, c, failure))
	default:
		err := m.recordFrozen(out, s.Name, rev, func(cur *Session) (Change, bool) {
			c, ok := frozenChange(cur, true, "suspend: "+result)
			c.Error = false
			c.Status = statusFor(c.State, c.Error)
			return c, ok
		})
		switch {
		case errors.Is(err, ErrConflict):
			errs = append(errs, m.conflict(s.Name, CmdSuspend, "its outcome was not recorded"))
		case err != nil:
			errs = append(errs, fmt.Errorf("session %q: suspend: recording the outcome: %w", s.Name, err))
		}
	}

	for _, p := range peers {
		err := m.recordFrozen(out, p.name, p.rev, func(ps *Session) (Change, bool) {
			return frozenChange(ps, hwErr == nil, peerReason+": "+result)
		})
		if err != nil && !errors.Is(err, ErrConflict) { // a conflict: someone recorded newer truth
			errs = append(errs, fmt.Errorf("session %q: %w", p.name, err))
		}
	}
	return errors.Join(errs...)
}

// recordFrozen records a suspend's outcome on the named session: on the
// transitional record it left at rev, or on top of news since then that
// only released the session's I/O, keeping the release. That news is the
// release-io policy's thaw of the very freeze the suspend ran: the freeze
// core thaws once the freeze is certain, and its report may be recorded
// before the suspend's own outcome or after it, whichever goroutine runs
// first. Dropped as a conflict, it left the session Suspending for good
// and the suspend answered "changed concurrently". Any other news (a
// settlement the core reported, a freeze that held the session again)
// wins: ErrConflict, nothing recorded.
func (m *Manager) recordFrozen(ctx context.Context, name string, rev uint64, outcome func(*Session) (Change, bool)) error {
	for {
		s, ok := m.store.DB().Session(name)
		if !ok {
			return fmt.Errorf("%w: session %q was removed", ErrConflict, name)
		}
		released := s.Rev != rev && s.State == Suspending && !s.IOHeld
		if s.Rev != rev && !released {
			return fmt.Errorf("%w: session %q is at revision %d, not %d", ErrConflict, name, s.Rev, rev)
		}
		c, ok := outcome(s)
		if !ok {
			return nil
		}
		if released {
			c.IOHeld = false
		}
		_, err := m.set(ctx, name, s.Rev, time.Time{}, c)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
}

// releaseIO thaws the scope: every session of it that holds I/O stops
// holding. The records are conditional on the revisions read before the
// thaw, so a new freeze recorded meanwhile is not hidden.
func (m *Manager) releaseIO(ctx context.Context, s *Session) error {
	scope := m.store.DB().Scope(s.Name)
	hwErr := m.hw.ReleaseIO(ctx, s)
	if hwErr != nil {
		return m.finish(ctx, s, s.Rev, CmdReleaseIO, failedChange(s, CmdReleaseIO, hwErr), hwErr)
	}
	c, _ := releasedChange(s, "release-io: I/O released") // the table allows release-io only while held
	errs := []error{m.finish(ctx, s, s.Rev, CmdReleaseIO, succeeded(c), nil)}
	out := context.WithoutCancel(ctx)
	for _, p := range scope {
		if p.Name == s.Name {
			continue
		}
		if c, ok := releasedChange(p, fmt.Sprintf("release-io of session %q: I/O released", s.Name)); ok {
			if _, err := m.set(out, p.Name, p.Rev, time.Time{}, c); err != nil && !errors.Is(err, ErrConflict) {
				errs = append(errs, fmt.Errorf("session %q: %w", p.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// update proposes f's decision for the current value of the named
// session, deciding again from the new value when another record lands
// first. It returns the revision after the record and whether one was
// written: not when the session is gone or f changes nothing.
func (m *Manager) update(ctx context.Context, name string, at time.Time, f func(*Session) (Change, bool)) (uint64, bool, error) {
	for {
		s, ok := m.store.DB().Session(name)
		if !ok {
			return 0, false, nil
		}
		c, ok := f(s)
		if !ok || unchanged(s, c) {
			return s.Rev, false, nil
		}
		rev, err := m.set(ctx, name, s.Rev, at, c)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return rev, err == nil, err
	}
}

// unchanged reports whether c would leave s exactly as it is, so that a
// poll repeating the same news does not grow the journal.
func unchanged(s *Session, c Change) bool {
	if c.Direction != "" && c.Direction != s.Direction || c.ActiveSite != "" && c.ActiveSite != s.ActiveSite {
		return false
	}
	c.Direction, c.ActiveSite = "", ""
	return c == changeFrom(s)
}

// The freeze core reports freezes it runs on its own (an event, a poll, a
// failed command, a heartbeat doubt) with the Mark methods. Each applies
// to the whole consistency scope of the named session (DB.Scope), leaves
// sessions that cannot be mirroring as they are, and never waits for a
// command in flight. at is when it happened (zero: now on the Manager's
// clock); reason becomes each session's Reason, e.g. "suspend event from
// LAB.2107-75P0001/10->LAB.2107-75S0001/10, reason path".

// MarkFreezing records that a freeze of the scope began: Suspending, I/O
// held, and whether each session was Prepared (which its recoverability
// will need). A session of the scope that was already frozen (Suspended,
// Recovering, Target Available) keeps its state, but the freeze holds
// its source LSSs' writes again: I/O held.
func (m *Manager) MarkFreezing(ctx context.Context, name, reason string, at time.Time) error {
	return m.markScope(ctx, name, at, func(s *Session) (Change, bool) { return freezingChange(s, reason) })
}

// MarkFrozen records the end of the freeze. certain: every LSS pair of
// the scope is known frozen (acknowledged, or its system's heartbeat
// expiry certainly passed) and the freeze rule was kept, so the image of
// a session that was Prepared is consistent: Suspended, Recoverable.
// Otherwise Suspended (Partial), not recoverable, I/O held. Under the
// release-io policy a certain freeze is recorded as thawed: the core
// thaws at once (daemon/freeze/doc.go).
func (m *Manager) MarkFrozen(ctx context.Context, name string, certain bool, reason string, at time.Time) error {
	return m.markScope(ctx, name, at, func(s *Session) (Change, bool) { return frozenChange(s, certain, reason) })
}

// MarkSwapped records that a z/OS host swapped the named session's host
// I/O to its target site (swappedChange): on the session only, not its
// scope (a host swaps session by session). Like the Mark methods, it is
// news that never waits for a command in flight; a command's outcome
// recorded after it is a conflict and dropped. Nothing is recorded for a
// session already swapped (a report repeated, the backstop finding what
// the report said) or Defined. Its reports whether it recorded.
func (m *Manager) MarkSwapped(ctx context.Context, name string, sw Swap, at time.Time) (bool, error) {
	if _, ok := m.store.DB().Session(name); !ok {
		return false, fmt.Errorf("%w: %q", ErrUnknownSession, name)
	}
	return m.swapped(ctx, name, sw, at)
}

// FoundSwapped is MarkSwapped for what a host's status shows (the
// backstop of a lost report: a restart, a takeover, a connection down
// when the host swapped), which is no news of the moment: like Observe,
// it returns ErrBusy, recording nothing, while a command runs on the
// session (a hyperswap whose outcome is not yet recorded: the host
// shows it swapped a moment before the command says so).
func (m *Manager) FoundSwapped(ctx context.Context, name string, sw Swap, at time.Time) (bool, error) {
	if _, ok := m.store.DB().Session(name); !ok {
		return false, fmt.Errorf("%w: %q", ErrUnknownSession, name)
	}
	ch := m.slot(name)
	select {
	case ch <- struct{}{}:
		defer func() { <-ch }()
	default:
		return false, fmt.Errorf("%w: %q", ErrBusy, name)
	}
	return m.swapped(ctx, name, sw, at)
}

func (m *Manager) swapped(ctx context.Context, name string, sw Swap, at time.Time) (bool, error) {
	_, changed, err := m.update(ctx, name, m.stamp(at), func(s *Session) (Change, bool) {
		if !s.Type.HyperSwap() {
			return Change{}, false
		}
		return swappedChange(s, true, sw)
	})
	if err != nil {
		return false, fmt.Errorf("session %q: %w", name, err)
	}
	return changed, nil
}

// MarkThawed records that the scope's source LSSs no longer hold writes:
// the core thawed them, or their CG timeout ran out.
func (m *Manager) MarkThawed(ctx context.Context, name, reason string, at time.Time) error {
	return m.markScope(ctx, name, at, func(s *Session) (Change, bool) { return releasedChange(s, reason) })
}

// MarkReleased records that the named session no longer holds I/O, if
// it is still at revision rev: the hardware ended its hold on its own
// account (a start of another session of its consistency group, which
// mirrors again and holds nothing). A session changed meanwhile (a new
// freeze held it again) is left as it is. Like the Mark methods above, it
// does not wait for a command in flight.
func (m *Manager) MarkReleased(ctx context.Context, name string, rev uint64, reason string, at time.Time) error {
	s, ok := m.store.DB().Session(name)
	if !ok || s.Rev != rev {
		return nil
	}
	c, ok := releasedChange(s, reason)
	if !ok {
		return nil
	}
	if _, err := m.set(ctx, name, rev, m.stamp(at), c); err != nil && !errors.Is(err, ErrConflict) {
		return fmt.Errorf("session %q: %w", name, err)
	}
	return nil
}

// MarkContact records what the freeze core knows of its contact with the
// storage systems of the named session's scope (contactChange), on every
// session of the scope that mirrors. Unlike a freeze, this is news that
// can wait: it waits for the command in flight on each session, so that
// it never turns a command's outcome into a conflict.
func (m *Manager) MarkContact(ctx context.Context, name string, ct Contact, at time.Time) error {
	scope := m.store.DB().Scope(name)
	if scope == nil {
		return fmt.Errorf("%w: %q", ErrUnknownSession, name)
	}
	at = m.stamp(at)
	var errs []error
	for _, s := range scope {
		ch := m.slot(s.Name)
		select {
		case ch <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		_, _, err := m.update(ctx, s.Name, at, func(cur *Session) (Change, bool) { return contactChange(cur, ct) })
		<-ch
		if err != nil {
			errs = append(errs, fmt.Errorf("session %q: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) markScope(ctx context.Context, name string, at time.Time, f func(*Session) (Change, bool)) error {
	scope := m.store.DB().Scope(name)
	if scope == nil {
		return fmt.Errorf("%w: %q", ErrUnknownSession, name)
	}
	at = m.stamp(at)
	var errs []error
	for _, s := range scope {
		if _, _, err := m.update(ctx, s.Name, at, f); err != nil {
			errs = append(errs, fmt.Errorf("session %q: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Observe records what a poll of the core found for one session, as a
// refresh would. It returns ErrBusy, recording nothing, while a command
// runs on the session: the command's own outcome is the newer truth, and
// a poll taken mid-command would make it a conflict. Freezes are reported
// with Mark*, which do not wait.
func (m *Manager) Observe(ctx context.Context, name string, o Observed, at time.Time) error {
	if _, ok := m.store.DB().Session(name); !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSession, name)
	}
	ch := m.slot(name)
	select {
	case ch <- struct{}{}:
		defer func() { <-ch }()
	default:
		return fmt.Errorf("%w: %q", ErrBusy, name)
	}
	_, _, err := m.update(ctx, name, m.stamp(at), func(s *Session) (Change, bool) { return observedChange(s, o) })
	return err
}
