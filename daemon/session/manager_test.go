package session_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

type rig struct {
	m     *session.Manager
	store *session.MemoryStore
	hw    *fakeHW
	clk   *clock.Fake
}

func newRig() *rig {
	store := session.NewMemoryStore()
	hw := newFakeHW()
	clk := clock.NewFake(t0)
	return &rig{m: session.NewManager(store, hw, clk), store: store, hw: hw, clk: clk}
}

func (r *rig) session(t testing.TB, name string) *session.Session {
	t.Helper()
	return mustSession(t, r.store.DB(), name)
}

// define creates a session with n copy sets on primaries/secondaries
// base..base+n-1, LSS lss.
func (r *rig) define(t testing.TB, name string, typ session.Type, cg string, p session.Policy, lss hal.LSS, n int) {
	t.Helper()
	ctx := context.Background()
	if err := r.m.Create(ctx, name, typ, cg, p); err != nil {
		t.Fatalf("Create(%s): %v", name, err)
	}
	var sets []session.CopySet
	for k := range n {
		sets = append(sets, cs(k, lss, 1))
	}
	if err := r.m.AddCopySet(ctx, name, sets...); err != nil {
		t.Fatalf("AddCopySet(%s): %v", name, err)
	}
}

func (r *rig) cmd(t testing.TB, name string, c session.Command) {
	t.Helper()
	if err := r.m.Command(context.Background(), name, c); err != nil {
		t.Fatalf("Command(%s, %s): %v", name, c, err)
	}
}

// prepared brings a defined session to Prepared: start, then a poll that
// sees every pair full-duplex.
func (r *rig) prepared(t testing.TB, name string) {
	t.Helper()
	r.cmd(t, name, session.CmdStartH1H2)
	n := len(r.session(t, name).CopySets)
	if err := r.m.Observe(context.Background(), name, pairs(hal.FullDuplex, n), time.Time{}); err != nil {
		t.Fatalf("Observe(%s): %v", name, err)
	}
	if st := r.session(t, name).State; st != session.Prepared {
		t.Fatalf("%s is %s, want Prepared", name, st)
	}
}

func (r *rig) checkReplay(t testing.TB) {
	t.Helper()
	db := session.NewDB()
	mustApply(t, db, r.store.Records()...)
	if d := diff(snap(t, r.store.DB()), snap(t, db)); d != "" {
		t.Errorf("replaying the records does not rebuild the state (-want +got):\n%s", d)
	}
}

// TestFailoverFailback walks a failover/failback session through a full
// site switch and back, checking the state, the available commands and
// the hardware calls at each step.
func TestFailoverFailback(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", fofb, "", session.HoldIO, 0x10, 2)
	ctx := context.Background()
	const (
		s12 = session.CmdStartH1H2
		s21 = session.CmdStartH2H1
	)
	steps := []struct {
		name    string
		do      func() error
		want    view
		allowed []session.Command
	}{
		{"defined", func() error { return nil },
			view{session.Defined, session.Inactive, false, false, false, false, session.H1ToH2, session.H1},
			[]session.Command{s12}},
		{"start-h1-h2", func() error { return r.m.Command(ctx, "A", s12) },
			view{session.Preparing, session.Warning, false, true, false, false, session.H1ToH2, session.H1},
			[]session.Command{s12, session.CmdSuspend, session.CmdTerminate, session.CmdRefresh}},
		{"refresh: full-duplex", func() error {
			r.hw.setObserved("A", pairs(hal.FullDuplex, 2))
			return r.m.Command(ctx, "A", session.CmdRefresh)
		}, view{session.Prepared, session.Normal, false, true, false, false, session.H1ToH2, session.H1},
			[]session.Command{s12, session.CmdSuspend, session.CmdTerminate, session.CmdRefresh}},
		{"suspend", func() error { return r.m.Command(ctx, "A", session.CmdSuspend) },
			view{session.Suspended, session.Severe, true, false, false, true, session.H1ToH2, session.H1},
			[]session.Command{s12, session.CmdReleaseIO, session.CmdRecover, session.CmdRefresh}},
		{"release-io", func() error { return r.m.Command(ctx, "A", session.CmdReleaseIO) },
			view{session.Suspended, session.Severe, true, false, false, false, session.H1ToH2, session.H1},
			[]session.Command{s12, session.CmdRecover, session.CmdTerminate, session.CmdRefresh}},
		{"recover", func() error { return r.m.Command(ctx, "A", session.CmdRecover) },
			view{session.TargetAvailable, session.Normal, true, false, false, false, session.H1ToH2, session.H2},
			[]session.Command{s21, session.CmdTerminate, session.CmdRefresh}},
		{"start-h2-h1", func() error { return r.m.Command(ctx, "A", s21) },
			view{session.Preparing, session.Warning, false, true, false, false, session.H2ToH1, session.H2},
			[]session.Command{s21, session.CmdSuspend, session.CmdTerminate, session.CmdRefresh}},
		{"poll: full-duplex", func() error { return r.m.Observe(ctx, "A", pairs(hal.FullDuplex, 2), time.Time{}) },
			view{session.Prepared, session.Normal, false, true, false, false, session.H2ToH1, session.H2},
			[]session.Command{s21, session.CmdSuspend, session.CmdTerminate, session.CmdRefresh}},
		{"suspend back", func() error { return r.m.Command(ctx, "A", session.CmdSuspend) },
			view{session.Suspended, session.Severe, true, false, false, true, session.H2ToH1, session.H2},
			[]session.Command{s21, session.CmdReleaseIO, session.CmdRecover, session.CmdRefresh}},
		{"recover to H1", func() error { return r.m.Command(ctx, "A", session.CmdRecover) },
			view{session.TargetAvailable, session.Normal, true, false, false, true, session.H2ToH1, session.H1},
			[]session.Command{s12, session.CmdReleaseIO, session.CmdRefresh}},
		{"start-h1-h2 again", func() error { return r.m.Command(ctx, "A", s12) },
			view{session.Preparing, session.Warning, false, true, false, false, session.H1ToH2, session.H1},
			[]session.Command{s12, session.CmdSuspend, session.CmdTerminate, session.CmdRefresh}},
		{"terminate", func() error { return r.m.Command(ctx, "A", session.CmdTerminate) },
			view{session.Defined, session.Inactive, false, false, false, false, session.H1ToH2, session.H1},
			[]session.Command{s12}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		s := r.session(t, "A")
		if d := diff(st.want, viewOf(s)); d != "" {
			t.Errorf("%s: state (-want +got):\n%s", st.name, d)
		}
		if d := diff(st.allowed, session.Allowed(s)); d != "" {
			t.Errorf("%s: allowed (-want +got):\n%s", st.name, d)
		}
		if !s.LastChange.Equal(r.clk.Now()) {
			t.Errorf("%s: LastChange %v, want the clock's %v", st.name, s.LastChange, r.clk.Now())
		}
		r.clk.Advance(time.Second)
	}
	wantCalls := []string{"start-h1-h2 A", "refresh A", "suspend A", "release-io A", "recover A",
		"start-h2-h1 A", "suspend A", "recover A", "start-h1-h2 A", "terminate A"}
	if d := diff(wantCalls, r.hw.Calls()); d != "" {
		t.Errorf("hardware calls (-want +got):\n%s", d)
	}
	// The hardware sees the direction each command works in.
	wantDirs := []session.Direction{session.H1ToH2, session.H1ToH2, session.H1ToH2, session.H1ToH2, session.H1ToH2,
		session.H2ToH1, session.H2ToH1, session.H2ToH1, session.H1ToH2, session.H1ToH2}
	if d := diff(wantDirs, r.hw.dirs); d != "" {
		t.Errorf("directions passed to the hardware (-want +got):\n%s", d)
	}
	r.checkReplay(t)
}

func TestSingleDirectionRecoverAndRestart(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", sd, "", session.ReleaseIO, 0x10, 3)
	r.prepared(t, "A")
	r.cmd(t, "A", session.CmdSuspend)
	if got, want := viewOf(r.session(t, "A")), (view{session.Suspended, session.Severe, true, false, false, false, session.H1ToH2, session.H1}); got != want {
		t.Errorf("after suspend under release-io (-want +got):\n-%+v\n+%+v", want, got)
	}
	r.cmd(t, "A", session.CmdRecover)
	s := r.session(t, "A")
	if s.State != session.TargetAvailable || s.ActiveSite != session.H2 {
		t.Fatalf("after recover: %s at %s", s.State, s.ActiveSite)
	}
	if d := diff([]session.Command{session.CmdTerminate, session.CmdRefresh}, session.Allowed(s)); d != "" {
		t.Errorf("allowed in Target Available (-want +got):\n%s", d)
	}
	r.cmd(t, "A", session.CmdTerminate)
	if s := r.session(t, "A"); s.State != session.Defined || s.ActiveSite != session.H1 || s.Direction != session.H1ToH2 {
		t.Errorf("after terminate: %s at %s, %s", s.State, s.ActiveSite, s.Direction)
	}
	r.cmd(t, "A", session.CmdStartH1H2)
	r.checkReplay(t)
}

func TestHardwareErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	partial := fmt.Errorf("%w: LAB.2107-75P0002 did not answer", session.ErrPartialFreeze)
	tests := []struct {
		name  string
		setup func(t *testing.T, r *rig) // from a Defined single-direction hold-io session A
		cmd   session.Command
		err   error
		want  view
		// then is a command that must be allowed afterwards (a retry).
		then session.Command
	}{
		{"start fails", func(*testing.T, *rig) {}, session.CmdStartH1H2, hal.ErrUnreachable,
			view{session.Preparing, session.Severe, false, false, true, false, session.H1ToH2, session.H1}, session.CmdStartH1H2},
		{"suspend partial", func(t *testing.T, r *rig) { r.prepared(t, "A") }, session.CmdSuspend, partial,
			view{session.SuspendedPartial, session.Severe, false, true, true, true, session.H1ToH2, session.H1}, session.CmdSuspend},
		{"suspend fails", func(t *testing.T, r *rig) { r.prepared(t, "A") }, session.CmdSuspend, boom,
			view{session.SuspendedPartial, session.Severe, false, true, true, true, session.H1ToH2, session.H1}, session.CmdReleaseIO},
		{"release-io refused", func(t *testing.T, r *rig) { r.prepared(t, "A"); r.cmd(t, "A", session.CmdSuspend) }, session.CmdReleaseIO, boom,
			view{session.Suspended, session.Severe, true, false, true, true, session.H1ToH2, session.H1}, session.CmdReleaseIO},
		{"recover fails", func(t *testing.T, r *rig) { r.prepared(t, "A"); r.cmd(t, "A", session.CmdSuspend) }, session.CmdRecover, hal.ErrTimeout,
			view{session.Suspended, session.Severe, true, false, true, true, session.H1ToH2, session.H1}, session.CmdRecover},
		{"terminate fails", func(t *testing.T, r *rig) { r.prepared(t, "A") }, session.CmdTerminate, hal.ErrFenced,
			view{session.Prepared, session.Severe, false, true, true, false, session.H1ToH2, session.H1}, session.CmdTerminate},
		{"refresh fails", func(t *testing.T, r *rig) { r.prepared(t, "A") }, session.CmdRefresh, hal.ErrUnreachable,
			view{session.Prepared, session.Severe, false, true, true, false, session.H1ToH2, session.H1}, session.CmdRefresh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig()
			r.define(t, "A", sd, "", session.HoldIO, 0x10, 2)
			tt.setup(t, r)
			r.hw.setErr(string(tt.cmd), tt.err)
			err := r.m.Command(context.Background(), "A", tt.cmd)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Command = %v, want %v", err, tt.err)
			}
			if !strings.Contains(err.Error(), `session "A": `+string(tt.cmd)) {
				t.Errorf("error %q does not name the session and command", err)
			}
			s := r.session(t, "A")
			if d := diff(tt.want, viewOf(s)); d != "" {
				t.Errorf("state (-want +got):\n%s", d)
			}
			if !strings.Contains(s.Reason, tt.err.Error()) {
				t.Errorf("Reason %q does not say why", s.Reason)
			}
			if err := session.CheckCommand(s, tt.then); err != nil {
				t.Errorf("no retry: %v", err)
			}
			// A retry that works clears the error flag.
			r.hw.setErr(string(tt.cmd), nil)
			r.hw.setErr(string(tt.then), nil)
			r.hw.setObserved("A", pairs(hal.FullDuplex, 2))
			r.cmd(t, "A", tt.then)
			if s := r.session(t, "A"); s.Error {
				t.Errorf("Error still set after a successful %s: %s", tt.then, s.Reason)
			}
			r.checkReplay(t)
		})
	}
}

// TestSuspendFreezesTheGroup: a suspend of one session of a consistency
// group suspends the whole group, and release-io releases all of it.
func TestSuspendFreezesTheGroup(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", fofb, "g", session.HoldIO, 0x10, 2)
	r.define(t, "B", sd, "g", session.HoldIO, 0x11, 2)
	r.define(t, "C", sd, "", session.HoldIO, 0x12, 2)
	r.define(t, "D", sd, "g", session.HoldIO, 0x13, 1) // Defined: nothing to freeze
	r.define(t, "E", sd, "g", session.HoldIO, 0x14, 1) // Preparing: frozen, not recoverable
	for _, n := range []string{"A", "B", "C"} {
		r.prepared(t, n)
	}
	r.cmd(t, "E", session.CmdStartH1H2)

	r.cmd(t, "A", session.CmdSuspend)
	if d := diff([]string{"start-h1-h2 A", "start-h1-h2 B", "start-h1-h2 C", "start-h1-h2 E", "suspend A"}, r.hw.Calls()); d != "" {
		t.Errorf("hardware calls (-want +got):\n%s", d)
	}
	want := map[string]view{
		"A": {session.Suspended, session.Severe, true, false, false, true, session.H1ToH2, session.H1},
		"B": {session.Suspended, session.Severe, true, false, false, true, session.H1ToH2, session.H1},
		"C": {session.Prepared, session.Normal, false, true, false, false, session.H1ToH2, session.H1},
		"D": {session.Defined, session.Inactive, false, false, false, false, session.H1ToH2, session.H1},
		"E": {session.Suspended, session.Severe, false, false, false, true, session.H1ToH2, session.H1},
	}
	for name, w := range want {
		if d := diff(w, viewOf(r.session(t, name))); d != "" {
			t.Errorf("%s after suspend (-want +got):\n%s", name, d)
		}
	}
	if got := r.session(t, "B").Reason; !strings.Contains(got, `suspend of session "A" (consistency group g)`) {
		t.Errorf("B's Reason %q does not say why", got)
	}

	r.cmd(t, "B", session.CmdReleaseIO)
	for _, name := range []string{"A", "B", "E"} {
		if s := r.session(t, name); s.IOHeld {
			t.Errorf("%s still holds I/O after release-io of B", name)
		}
	}
	r.checkReplay(t)
}

func TestCommandRefusals(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", sd, "", session.HoldIO, 0x10, 1)
	r.prepared(t, "A")
	ctx := context.Background()
	tests := []struct {
		name string
		sess string
		cmd  session.Command
		want error
		msg  string
	}{
		{"recover while prepared", "A", session.CmdRecover, session.ErrNotAllowed,
			`session: command "recover" is not allowed in state Prepared (allowed: start-h1-h2, suspend, terminate, refresh)`},
		{"failback on single direction", "A", session.CmdStartH2H1, session.ErrNotAllowed, ""},
		{"release-io while mirroring", "A", session.CmdReleaseIO, session.ErrNotAllowed, ""},
		{"unknown command", "A", "flash", session.ErrNotAllowed, ""},
		{"unknown session", "Z", session.CmdRefresh, session.ErrUnknownSession, ""},
	}
	for _, tt := range tests {
		calls := len(r.hw.Calls())
		before := snap(t, r.store.DB())
		err := r.m.Command(ctx, tt.sess, tt.cmd)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if tt.msg != "" && (err == nil || err.Error() != tt.msg) {
			t.Errorf("%s: message %v\nwant %s", tt.name, err, tt.msg)
		}
		if len(r.hw.Calls()) != calls || snap(t, r.store.DB()) != before {
			t.Errorf("%s: a refused command reached the hardware or the store", tt.name)
		}
	}
}

func TestRemoveAndVolumes(t *testing.T) {
	t.Parallel()
	r := newRig()
	ctx := context.Background()
	r.define(t, "A", sd, "", session.HoldIO, 0x10, 2)
	r.define(t, "B", sd, "", session.HoldIO, 0x11, 1)
	if err := r.m.AddCopySet(ctx, "B", cs(1, 0x10, 1)); !errors.Is(err, session.ErrVolumeInUse) {
		t.Errorf("a volume in two copy sets: %v", err)
	}
	if err := r.m.AddCopySet(ctx, "B"); !errors.Is(err, session.ErrInvalid) {
		t.Errorf("adding nothing: %v", err)
	}
	if err := r.m.Create(ctx, "A", fofb, "", session.HoldIO); !errors.Is(err, session.ErrExists) {
		t.Errorf("a second A: %v", err)
	}
	r.prepared(t, "A")
	if err := r.m.Remove(ctx, "A"); !errors.Is(err, session.ErrNotDefined) {
		t.Errorf("removing a Prepared session: %v", err)
	}
	if err := r.m.RemoveCopySet(ctx, "A", cs(0, 0x10, 1)); !errors.Is(err, session.ErrNotDefined) {
		t.Errorf("removing a copy set of a Prepared session: %v", err)
	}
	r.cmd(t, "A", session.CmdTerminate)
	if err := r.m.RemoveCopySet(ctx, "A", cs(0, 0x10, 1)); err != nil {
		t.Errorf("RemoveCopySet: %v", err)
	}
	if err := r.m.AddCopySet(ctx, "B", cs(0, 0x10, 1)); err != nil {
		t.Errorf("reusing a removed copy set's volumes: %v", err)
	}
	if err := r.m.Remove(ctx, "A"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if err := r.m.AddCopySet(ctx, "B", cs(1, 0x10, 1)); err != nil {
		t.Errorf("reusing a removed session's volumes: %v", err)
	}
	r.checkReplay(t)
}

// TestMarks: freezes the core runs on its own.
func TestMarks(t *testing.T) {
	t.Parallel()
	r := newRig()
	ctx := context.Background()
	r.define(t, "A", sd, "g", session.ReleaseIO, 0x10, 1)
	r.define(t, "B", sd, "g", session.HoldIO, 0x11, 1)
	r.define(t, "C", sd, "", session.HoldIO, 0x12, 1)
	r.define(t, "D", sd, "g", session.HoldIO, 0x13, 1)
	r.prepared(t, "A")
	r.prepared(t, "B")
	r.prepared(t, "C")
	event := t0.Add(time.Minute)
	reason := "suspend event from LAB.2107-75P0001/11->LAB.2107-75S0001/11, reason path"

	if err := r.m.MarkFreezing(ctx, "B", reason, event); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"A", "B"} {
		s := r.session(t, n)
		if s.State != session.Suspending || !s.FromPrepared || !s.IOHeld || s.Reason != reason || !s.LastChange.Equal(event) {
			t.Errorf("%s after MarkFreezing: %+v", n, s)
		}
	}
	if s := r.session(t, "C"); s.State != session.Prepared {
		t.Errorf("C, outside the group, is %s", s.State)
	}
	if s := r.session(t, "D"); s.State != session.Defined {
		t.Errorf("D, Defined, is %s", s.State)
	}

	if err := r.m.MarkFrozen(ctx, "A", true, reason, time.Time{}); err != nil {
		t.Fatal(err)
	}
	a, b := r.session(t, "A"), r.session(t, "B")
	if a.State != session.Suspended || !a.Recoverable || a.IOHeld {
		t.Errorf("A (release-io) after a certain freeze: %+v", viewOf(a))
	}
	if b.State != session.Suspended || !b.Recoverable || !b.IOHeld {
		t.Errorf("B (hold-io) after a certain freeze: %+v", viewOf(b))
	}
	if !a.LastChange.Equal(t0) {
		t.Errorf("a zero time should stamp the manager's clock: %v", a.LastChange)
	}
	records := len(r.store.Records())
	if err := r.m.MarkFrozen(ctx, "A", false, reason, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if len(r.store.Records()) != records {
		t.Error("a second freeze of a suspended group wrote records")
	}

	// Without the heartbeat an unreachable system is never known safe.
	if err := r.m.MarkFrozen(ctx, "C", false, "no answer from LAB.2107-75P0001", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if c := r.session(t, "C"); c.State != session.SuspendedPartial || c.Recoverable || !c.IOHeld || c.Status != session.Severe {
		t.Errorf("C after an uncertain freeze: %+v", viewOf(c))
	}

	if err := r.m.MarkThawed(ctx, "B", "CG timeout", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if b := r.session(t, "B"); b.IOHeld || !b.Recoverable {
		t.Errorf("B after the CG timeout: %+v", viewOf(b))
	}
	if err := r.m.MarkFrozen(ctx, "Z", true, "", time.Time{}); !errors.Is(err, session.ErrUnknownSession) {
		t.Errorf("MarkFrozen(Z) = %v", err)
	}
	r.checkReplay(t)
}

// vetoingHW refuses every start before it does anything.
type vetoingHW struct{ *fakeHW }

func (v vetoingHW) Vet(_ context.Context, s *session.Session, cmd session.Command) error {
	if cmd == session.CmdStartH1H2 {
		return errors.New("unsafe heartbeat timing")
	}
	return nil
}

// TestVetoedCommandChangesNothing: a command the hardware vetoes is
// neither recorded nor sent.
func TestVetoedCommandChangesNothing(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	hw := newFakeHW()
	m := session.NewManager(store, vetoingHW{hw}, clock.NewFake(t0))
	r := &rig{m: m, store: store, hw: hw}
	r.define(t, "A", sd, "g", session.HoldIO, 0x10, 1)
	before := len(store.Records())
	err := m.Command(context.Background(), "A", session.CmdStartH1H2)
	if !errors.Is(err, session.ErrVetoed) || !strings.Contains(err.Error(), "unsafe heartbeat timing") {
		t.Fatalf("start = %v, want ErrVetoed with the reason", err)
	}
	if len(store.Records()) != before || len(hw.Calls()) != 0 {
		t.Fatalf("a vetoed start wrote %d records and made calls %v", len(store.Records())-before, hw.Calls())
	}
	if s := r.session(t, "A"); s.State != session.Defined {
		t.Fatalf("A is %s", s.State)
	}
}

// TestMarkContactWaitsForTheCommand: a contact report never turns the
// outcome of a command in flight into a conflict: it is recorded after.
func TestMarkContactWaitsForTheCommand(t *testing.T) {
	t.Parallel()
	r := newRig()
	ctx := context.Background()
	r.define(t, "A", sd, "g", session.HoldIO, 0x10, 1)
	r.define(t, "B", sd, "g", session.HoldIO, 0x11, 1)
	r.prepared(t, "A")
	r.prepared(t, "B")
	gate := r.hw.gate("refresh A")
	r.hw.setObserved("A", pairs(hal.FullDuplex, 1))
	cmdDone := make(chan error, 1)
	go func() { cmdDone <- r.m.Command(ctx, "A", session.CmdRefresh) }()
	for len(r.hw.Calls()) == 0 || r.hw.Calls()[len(r.hw.Calls())-1] != "refresh A" {
		time.Sleep(time.Millisecond)
	}
	markDone := make(chan error, 1)
	ct := session.Contact{Lost: true, Reason: "LAB.2107-75P0001 unreachable"}
	go func() { markDone <- r.m.MarkContact(ctx, "B", ct, time.Time{}) }()
	select {
	case err := <-markDone:
		t.Fatalf("MarkContact returned (%v) while a command ran on A", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	if err := <-cmdDone; err != nil {
		t.Fatalf("the refresh conflicted: %v", err)
	}
	if err := <-markDone; err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"A", "B"} {
		if s := r.session(t, n); s.State != session.Prepared || s.Status != session.Warning || !strings.Contains(s.Reason, "unreachable") {
			t.Errorf("%s after the report: %s %s (%s)", n, s.State, s.Status, s.Reason)
		}
	}
	if err := r.m.MarkContact(ctx, "A", session.Contact{Lost: true, Severe: true, Reason: "x"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if s := r.session(t, "A"); s.Status != session.Severe || s.Recoverable {
		t.Errorf("A after a severe report: %s recoverable %v", s.Status, s.Recoverable)
	}
	if err := r.m.MarkContact(ctx, "A", session.Contact{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if s := r.session(t, "B"); s.Status != session.Normal || !strings.Contains(s.Reason, "restored") {
		t.Errorf("B once contact is restored: %s (%s)", s.Status, s.Reason)
	}
	r.checkReplay(t)
}

func TestObserveWritesOnlyNews(t *testing.T) {
	t.Parallel()
	r := newRig()
	ctx := context.Background()
	r.define(t, "A", sd, "", session.HoldIO, 0x10, 2)
	r.cmd(t, "A", session.CmdStartH1H2)
	o := session.Observed{Pairs: map[hal.PairState]int{hal.CopyPending: 1, hal.FullDuplex: 1}}
	for range 3 {
		if err := r.m.Observe(ctx, "A", o, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	n := len(r.store.Records())
	for range 3 {
		r.clk.Advance(time.Second)
		if err := r.m.Observe(ctx, "A", o, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(r.store.Records()); got != n {
		t.Errorf("repeated polls wrote %d records", got-n)
	}
	if err := r.m.Observe(ctx, "Z", o, time.Time{}); !errors.Is(err, session.ErrUnknownSession) {
		t.Errorf("Observe(Z) = %v", err)
	}
}

// TestOneCommandAtATime: a second command to a session waits for the
// first; a command to another session does not.
func TestOneCommandAtATime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig()
		r.define(t, "A", sd, "", session.HoldIO, 0x10, 1)
		r.define(t, "B", sd, "", session.HoldIO, 0x11, 1)
		ctx := context.Background()
		gateA := r.hw.gate("start-h1-h2 A")

		errs := make(chan error, 3)
		go func() { errs <- r.m.Command(ctx, "A", session.CmdStartH1H2) }()
		synctest.Wait() // A's start is in the hardware
		go func() { errs <- r.m.Command(ctx, "A", session.CmdSuspend) }()
		synctest.Wait() // the suspend waits for the start
		if d := diff([]string{"start-h1-h2 A"}, r.hw.Calls()); d != "" {
			t.Fatalf("the second command did not wait (-want +got):\n%s", d)
		}
		if st := r.session(t, "A").State; st != session.Preparing {
			t.Fatalf("A is %s while its start runs", st)
		}
		// Another session runs meanwhile.
		go func() { errs <- r.m.Command(ctx, "B", session.CmdStartH1H2) }()
		synctest.Wait()
		if d := diff([]string{"start-h1-h2 A", "start-h1-h2 B"}, r.hw.Calls()); d != "" {
			t.Fatalf("B waited for A (-want +got):\n%s", d)
		}
		if err := <-errs; err != nil {
			t.Fatalf("B: %v", err)
		}

		close(gateA)
		synctest.Wait()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("A: %v", err)
			}
		}
		if d := diff([]string{"start-h1-h2 A", "start-h1-h2 B", "suspend A"}, r.hw.Calls()); d != "" {
			t.Errorf("hardware calls (-want +got):\n%s", d)
		}
		// The suspend saw the state the start left: Preparing, so the
		// freeze is not recoverable.
		if s := r.session(t, "A"); s.State != session.Suspended || s.Recoverable {
			t.Errorf("A after start then suspend: %+v", viewOf(s))
		}
	})
}

func TestWaitingCommandHonoursContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig()
		r.define(t, "A", sd, "", session.HoldIO, 0x10, 1)
		gate := r.hw.gate("start-h1-h2 A")
		first := make(chan error, 1)
		go func() { first <- r.m.Command(context.Background(), "A", session.CmdStartH1H2) }()
		synctest.Wait()

		ctx, cancel := context.WithCancel(context.Background())
		second := make(chan error, 1)
		go func() { second <- r.m.Command(ctx, "A", session.CmdTerminate) }()
		synctest.Wait()
		cancel()
		if err := <-second; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled waiting command = %v", err)
		}
		if err := r.m.Observe(context.Background(), "A", pairs(hal.FullDuplex, 1), time.Time{}); !errors.Is(err, session.ErrBusy) {
			t.Errorf("Observe during a command = %v, want ErrBusy", err)
		}
		close(gate)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if d := diff([]string{"start-h1-h2 A"}, r.hw.Calls()); d != "" {
			t.Errorf("hardware calls (-want +got):\n%s", d)
		}
		if err := r.m.Observe(context.Background(), "A", pairs(hal.FullDuplex, 1), time.Time{}); err != nil {
			t.Errorf("Observe after the command = %v", err)
		}
	})
}

// TestOutcomeRecordedAfterCancel: the caller gives up while the hardware
// works; what happened is recorded all the same.
func TestOutcomeRecordedAfterCancel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig()
		r.define(t, "A", sd, "", session.HoldIO, 0x10, 1)
		r.hw.gate("start-h1-h2 A")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.m.Command(ctx, "A", session.CmdStartH1H2) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Command = %v", err)
		}
		if s := r.session(t, "A"); s.State != session.Preparing || !s.Error {
			t.Errorf("the cancelled start was not recorded: %+v", viewOf(s))
		}
	})
}

// TestFreezeDuringSuspendWins: while a suspend command is in the
// hardware, the core reports that the freeze is uncertain. The command's
// own answer (success) must not overwrite that: Recoverable stays false.
func TestFreezeDuringSuspendWins(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", sd, "", session.HoldIO, 0x10, 1)
	r.prepared(t, "A")
	ctx := context.Background()
	r.hw.hook = func(key string, s *session.Session) {
		if key == "suspend A" {
			if err := r.m.MarkFrozen(ctx, "A", false, "LAB.2107-75P0001 unreachable", time.Time{}); err != nil {
				t.Errorf("MarkFrozen: %v", err)
			}
		}
	}
	err := r.m.Command(ctx, "A", session.CmdSuspend)
	if !errors.Is(err, session.ErrConflict) {
		t.Errorf("Command = %v, want ErrConflict", err)
	}
	s := r.session(t, "A")
	if s.State != session.SuspendedPartial || s.Recoverable {
		t.Errorf("the command overwrote the core's report: %+v", viewOf(s))
	}
	if !strings.Contains(err.Error(), "Suspended (Partial)") {
		t.Errorf("error %q does not say the state now", err)
	}
}

// hookStore calls after for every record it accepts, as if another
// proposer raced the Manager.
type hookStore struct {
	*session.MemoryStore
	after func(r session.Record)
}

func (h hookStore) Propose(ctx context.Context, r session.Record) error {
	err := h.MemoryStore.Propose(ctx, r)
	if err == nil && h.after != nil {
		h.after(r)
	}
	return err
}

// TestFreezeBeforeStartStopsIt: the core freezes the scope just after a
// start recorded Preparing; the start must not reach the hardware, since
// establishing pairs then would undo the freeze.
func TestFreezeBeforeStartStopsIt(t *testing.T) {
	t.Parallel()
	inner := session.NewMemoryStore()
	hw := newFakeHW()
	var m *session.Manager
	fired := false
	store := hookStore{MemoryStore: inner, after: func(r session.Record) {
		if r.Change != nil && r.Change.State == session.Preparing && !fired {
			fired = true
			if err := m.MarkFrozen(context.Background(), r.Session, false, "event", time.Time{}); err != nil {
				t.Errorf("MarkFrozen: %v", err)
			}
		}
	}}
	m = session.NewManager(store, hw, clock.NewFake(t0))
	ctx := context.Background()
	if err := m.Create(ctx, "A", sd, "", session.HoldIO); err != nil {
		t.Fatal(err)
	}
	if err := m.AddCopySet(ctx, "A", cs(0, 0x10, 1)); err != nil {
		t.Fatal(err)
	}
	err := m.Command(ctx, "A", session.CmdStartH1H2)
	if !errors.Is(err, session.ErrConflict) || !strings.Contains(err.Error(), "not commanded") {
		t.Errorf("Command = %v, want a conflict before the hardware", err)
	}
	if calls := hw.Calls(); len(calls) != 0 {
		t.Errorf("the hardware was called: %v", calls)
	}
	if s := mustSession(t, m.DB(), "A"); s.State != session.SuspendedPartial {
		t.Errorf("A is %s, want the core's Suspended (Partial)", s.State)
	}
}

// TestFailedCommandRecordedDespiteNews: the core records news on the
// session while a start runs (here the thaw of its group, the release-io
// policy's), and the start then fails midway. The failure is recorded on
// the session as the news left it: Error, Severe. Dropped as a conflict,
// it left a session Preparing without its error while storage showed its
// pairs suspended (admin schedules, seed 117).
func TestFailedCommandRecordedDespiteNews(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", sd, "", session.HoldIO, 0x10, 1)
	r.prepared(t, "A")
	r.cmd(t, "A", session.CmdSuspend)
	ctx := context.Background()
	if err := r.m.MarkFrozen(ctx, "A", true, "every system frozen", time.Time{}); err != nil {
		t.Fatal(err)
	}
	r.hw.setErr("start-h1-h2 A", errors.New("paths on LAB.2107-75P0001: no link"))
	r.hw.hook = func(key string, s *session.Session) {
		if key == "start-h1-h2 A" {
			if err := r.m.MarkThawed(ctx, "A", "I/O released", time.Time{}); err != nil {
				t.Errorf("MarkThawed: %v", err)
			}
		}
	}
	err := r.m.Command(ctx, "A", session.CmdStartH1H2)
	if err == nil || errors.Is(err, session.ErrConflict) {
		t.Fatalf("Command = %v, want the hardware's error alone", err)
	}
	s := r.session(t, "A")
	if s.State != session.Preparing || !s.Error || s.Status != session.Severe || s.IOHeld {
		t.Fatalf("after the failed start: %+v, want Preparing, Error, Severe, the news (I/O released) kept", viewOf(s))
	}
	if !strings.Contains(s.Reason, "no link") {
		t.Errorf("reason %q does not say why the start failed", s.Reason)
	}
	r.checkReplay(t)
}

// TestMarkReleasedIsConditional: a hold the hardware ended for another
// command (a start of a session of the group) is recorded only on the
// revision it was decided from: a freeze that held the session again
// meanwhile stays recorded.
func TestMarkReleasedIsConditional(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", sd, "", session.HoldIO, 0x10, 1)
	r.prepared(t, "A")
	r.cmd(t, "A", session.CmdSuspend)
	ctx := context.Background()
	s := r.session(t, "A")
	if !s.IOHeld {
		t.Fatal("suspend under hold-io left I/O not held")
	}
	if err := r.m.MarkReleased(ctx, "A", s.Rev-1, "stale", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if !r.session(t, "A").IOHeld {
		t.Fatal("a release decided from an older revision was recorded")
	}
	if err := r.m.MarkReleased(ctx, "A", s.Rev, "released by a start of its group", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if s := r.session(t, "A"); s.IOHeld || s.State != session.Suspended {
		t.Fatalf("after MarkReleased: %+v", viewOf(s))
	}
}

// TestSuspendRecordedDespiteTheThawOfItsFreeze: under the release-io
// policy the freeze core thaws a suspend's freeze once it is certain, and
// reports the thaw; that report may be recorded before the suspend's own
// outcome (here, from within the hardware). The outcome is recorded on
// top of it, keeping the release: it used to be dropped as a conflict,
// the sessions left Suspending for good and the suspend answered
// "changed concurrently" (engine's TestFailedStartInAFrozenGroupIsCovered
// under load). A hold-io session of the group keeps the release too: the
// core thawed its LSSs with the group's.
func TestSuspendRecordedDespiteTheThawOfItsFreeze(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", sd, "cg", session.ReleaseIO, 0x10, 1)
	r.define(t, "B", sd, "cg", session.ReleaseIO, 0x11, 1)
	r.define(t, "C", sd, "cg", session.HoldIO, 0x12, 1)
	for _, n := range []string{"A", "B", "C"} {
		r.prepared(t, n)
	}
	ctx := context.Background()
	r.hw.hook = func(key string, s *session.Session) {
		if key == "suspend A" {
			if err := r.m.MarkThawed(ctx, "A", "I/O released", time.Time{}); err != nil {
				t.Errorf("MarkThawed: %v", err)
			}
		}
	}
	if err := r.m.Command(ctx, "A", session.CmdSuspend); err != nil {
		t.Fatalf("suspend with its thaw reported first = %v", err)
	}
	for _, n := range []string{"A", "B", "C"} {
		if s := r.session(t, n); s.State != session.Suspended || !s.Recoverable || s.IOHeld || s.Error {
			t.Errorf("%s after the suspend: %+v; want Suspended, recoverable, I/O released", n, viewOf(s))
		}
	}
	r.checkReplay(t)
}

// TestSuspendOutcomeYieldsToAFreezeAfterItsThaw: news that held the
// session again after the thaw is not overwritten by the suspend's
// outcome: the suspend answers ErrConflict and the session says I/O held.
func TestSuspendOutcomeYieldsToAFreezeAfterItsThaw(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", sd, "", session.ReleaseIO, 0x10, 1)
	r.prepared(t, "A")
	ctx := context.Background()
	r.hw.hook = func(key string, s *session.Session) {
		if key == "suspend A" {
			if err := r.m.MarkThawed(ctx, "A", "I/O released", time.Time{}); err != nil {
				t.Errorf("MarkThawed: %v", err)
			}
			if err := r.m.MarkFreezing(ctx, "A", "path event", time.Time{}); err != nil {
				t.Errorf("MarkFreezing: %v", err)
			}
		}
	}
	if err := r.m.Command(ctx, "A", session.CmdSuspend); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("Command = %v, want ErrConflict", err)
	}
	if s := r.session(t, "A"); s.State != session.Suspending || !s.IOHeld || s.Reason != "path event" {
		t.Errorf("the suspend's outcome overwrote the freeze after its thaw: %+v", viewOf(s))
	}
	r.checkReplay(t)
}

// TestTerminateRefusedWhileIOHeld: a terminate never ends a hold; while
// the session holds I/O it is refused, saying what to do, and the
// hardware is not called. Once released it runs.
func TestTerminateRefusedWhileIOHeld(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", sd, "", session.HoldIO, 0x10, 2)
	r.prepared(t, "A")
	r.cmd(t, "A", session.CmdSuspend)
	before := r.session(t, "A")
	err := r.m.Command(context.Background(), "A", session.CmdTerminate)
	if !errors.Is(err, session.ErrNotAllowed) || !strings.Contains(err.Error(), "I/O is held: release it first (release-io)") {
		t.Fatalf("terminate while I/O held: %v, want not allowed, saying to release-io first", err)
	}
	if after := r.session(t, "A"); after.Rev != before.Rev {
		t.Fatalf("a refused terminate changed the session: rev %d -> %d", before.Rev, after.Rev)
	}
	if calls := r.hw.Calls(); slices.Contains(calls, "terminate A") {
		t.Fatalf("a refused terminate reached the hardware: %v", calls)
	}
	r.cmd(t, "A", session.CmdReleaseIO)
	r.cmd(t, "A", session.CmdTerminate)
	if s := r.session(t, "A"); s.State != session.Defined {
		t.Fatalf("after release-io and terminate: %s", s.State)
	}
}

// TestTerminateRepeated: a terminate repeated after a lost answer (the
// session is Defined already) succeeds without calling the hardware or
// recording anything; one that failed midway is finished by the next.
func TestTerminateRepeated(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", sd, "", session.ReleaseIO, 0x10, 2)
	r.prepared(t, "A")
	r.hw.setErr("terminate A", hal.ErrUnreachable)
	if err := r.m.Command(context.Background(), "A", session.CmdTerminate); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("terminate with the hardware failing: %v", err)
	}
	if s := r.session(t, "A"); s.State != session.Prepared || !s.Error || !slices.Contains(session.Allowed(s), session.CmdTerminate) {
		t.Fatalf("after a failed terminate: %s error=%v allowed %v", s.State, s.Error, session.Allowed(s))
	}
	r.hw.setErr("terminate A", nil)
	r.cmd(t, "A", session.CmdTerminate)
	done := r.session(t, "A")
	if done.State != session.Defined {
		t.Fatalf("after the second terminate: %s", done.State)
	}
	calls := len(r.hw.Calls())
	r.cmd(t, "A", session.CmdTerminate)
	if s := r.session(t, "A"); s.Rev != done.Rev || len(r.hw.Calls()) != calls {
		t.Fatalf("a terminate of a Defined session recorded (rev %d -> %d) or reached the hardware (%v)", done.Rev, s.Rev, r.hw.Calls())
	}
	r.checkReplay(t)
}
