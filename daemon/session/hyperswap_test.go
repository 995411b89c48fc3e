package session_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

const hs = session.MetroMirrorHyperSwap

// TestHyperSwapAllowedTable: a HyperSwap session takes the commands of a
// failover/failback session, and hyperswap in Prepared only; the other
// types never take it.
func TestHyperSwapAllowedTable(t *testing.T) {
	t.Parallel()
	const (
		s12 = session.CmdStartH1H2
		s21 = session.CmdStartH2H1
		sus = session.CmdSuspend
		hsw = session.CmdHyperSwap
		rel = session.CmdReleaseIO
		rec = session.CmdRecover
		ter = session.CmdTerminate
		ref = session.CmdRefresh
	)
	held := func(s *session.Session) { s.IOHeld = true }
	recov := func(s *session.Session) { s.Recoverable = true }
	heldRecov := func(s *session.Session) { s.IOHeld, s.Recoverable = true, true }
	tests := []struct {
		name string
		s    *session.Session
		want []session.Command
	}{
		{"defined at H1", sess(hs, session.Defined, session.H1ToH2), []session.Command{s12}},
		{"defined at H2", sess(hs, session.Defined, session.H2ToH1), []session.Command{s21}},
		{"preparing", sess(hs, session.Preparing, session.H1ToH2), []session.Command{s12, sus, ter, ref}},
		{"prepared H1->H2", sess(hs, session.Prepared, session.H1ToH2), []session.Command{s12, sus, hsw, ter, ref}},
		{"prepared H2->H1", sess(hs, session.Prepared, session.H2ToH1), []session.Command{s21, sus, hsw, ter, ref}},
		{"prepared without copy sets", with(sess(hs, session.Prepared, session.H1ToH2), func(s *session.Session) { s.CopySets = nil }),
			[]session.Command{sus, ter, ref}},
		{"suspending", sess(hs, session.Suspending, session.H1ToH2), []session.Command{ref}},
		{"suspended held recoverable", with(sess(hs, session.Suspended, session.H1ToH2), heldRecov), []session.Command{s12, rel, rec, ref}},
		{"partial held", with(sess(hs, session.SuspendedPartial, session.H1ToH2), held), []session.Command{s12, sus, rel, ref}},
		{"recovering", with(sess(hs, session.Recovering, session.H1ToH2), recov), []session.Command{ref}},
		{"target available at H2", with(sess(hs, session.TargetAvailable, session.H1ToH2), recov), []session.Command{s21, ter, ref}},
		{"target available held", with(sess(hs, session.TargetAvailable, session.H1ToH2), heldRecov), []session.Command{s21, rel, ref}},
		{"fofb prepared: no hyperswap", sess(fofb, session.Prepared, session.H1ToH2), []session.Command{s12, sus, ter, ref}},
		{"sd prepared: no hyperswap", sess(sd, session.Prepared, session.H1ToH2), []session.Command{s12, sus, ter, ref}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if d := diff(tt.want, session.Allowed(tt.s)); d != "" {
				t.Errorf("Allowed (-want +got):\n%s", d)
			}
			for _, c := range session.Commands() {
				err := session.CheckCommand(tt.s, c)
				if slices.Contains(tt.want, c) != (err == nil) {
					t.Errorf("CheckCommand(%s) = %v, allowed %v", c, err, slices.Contains(tt.want, c))
				}
				if err != nil && !errors.Is(err, session.ErrNotAllowed) {
					t.Errorf("CheckCommand(%s) = %v, want ErrNotAllowed", c, err)
				}
			}
		})
	}
}

func TestHyperSwapNotAllowedMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    *session.Session
		want string
	}{
		{"another type", sess(fofb, session.Prepared, session.H1ToH2),
			`session: command "hyperswap" is not allowed in state Prepared (only a Metro Mirror Failover/Failback with HyperSwap session swaps; use suspend and recover; allowed: start-h1-h2, suspend, terminate, refresh)`},
		{"not prepared", sess(hs, session.Preparing, session.H1ToH2),
			`session: command "hyperswap" is not allowed in state Preparing (allowed: start-h1-h2, suspend, terminate, refresh)`},
		{"swapped", with(sess(hs, session.TargetAvailable, session.H1ToH2), func(s *session.Session) { s.Recoverable = true }),
			`session: command "hyperswap" is not allowed in state Target Available (allowed: start-h2-h1, terminate, refresh)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := session.CheckCommand(tt.s, session.CmdHyperSwap)
			if err == nil || err.Error() != tt.want {
				t.Errorf("CheckCommand = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestHyperSwapType(t *testing.T) {
	t.Parallel()
	got, err := session.ParseType("MM-HyperSwap")
	if err != nil || got != hs {
		t.Fatalf("ParseType = %q, %v", got, err)
	}
	if hs.Label() != "Metro Mirror Failover/Failback with HyperSwap" {
		t.Errorf("Label = %q", hs.Label())
	}
	if hs.Heartbeat() || !fofb.Heartbeat() || !sd.Heartbeat() {
		t.Error("only the HyperSwap type is outside the heartbeat")
	}
	if _, err := session.ParseType("mm-flash"); err == nil || !strings.Contains(err.Error(), "mm-hyperswap") {
		t.Errorf("ParseType(mm-flash) = %v, want the list with mm-hyperswap", err)
	}
}

// TestHyperSwapSharesGroupsOnlyWithItsType: a consistency group is one
// scope of the heartbeat, which never covers a HyperSwap session.
func TestHyperSwapSharesGroupsOnlyWithItsType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		first session.Type
		then  session.Type
		cg    string
		ok    bool
	}{
		{"hyperswap after fofb", fofb, hs, "G", false},
		{"fofb after hyperswap", hs, fofb, "G", false},
		{"sd after hyperswap", hs, sd, "G", false},
		{"two hyperswap", hs, hs, "G", true},
		{"no group name", hs, fofb, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := session.NewDB()
			mustApply(t, db, created("A", tt.first, tt.cg, session.HoldIO))
			err := db.Apply(created("B", tt.then, tt.cg, session.HoldIO))
			if tt.ok != (err == nil) {
				t.Fatalf("Apply = %v, want ok %v", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, session.ErrInvalid) || !strings.Contains(err.Error(), `session "A"`)) {
				t.Errorf("Apply = %v, want ErrInvalid naming session A", err)
			}
		})
	}
}

// TestPlannedHyperSwap: swap, then freeze: Target Available with H2
// active, Normal when the freeze was certain from Prepared; Severe when
// it was partial; a swap that fails leaves the suspend's outcome with
// the error.
func TestPlannedHyperSwap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		policy    session.Policy
		freezeErr error
		swapErr   error
		want      view
		wantErr   bool
	}{
		{"certain, hold-io", session.HoldIO, nil, nil,
			view{session.TargetAvailable, session.Normal, true, false, false, true, session.H1ToH2, session.H2}, false},
		{"partial freeze", session.HoldIO, fmt.Errorf("%w: P2 silent", session.ErrPartialFreeze), nil,
			view{session.TargetAvailable, session.Severe, false, false, false, true, session.H1ToH2, session.H2}, false},
		{"swap refused", session.HoldIO, nil, errors.New("host: pairs not full-duplex"),
			view{session.Suspended, session.Severe, true, false, true, true, session.H1ToH2, session.H1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig()
			r.define(t, "A", hs, "", tt.policy, 0x10, 2)
			r.prepared(t, "A")
			r.hw.setErr("suspend A", tt.freezeErr)
			r.hw.setErr("hyperswap A", tt.swapErr)
			err := r.m.Command(context.Background(), "A", session.CmdHyperSwap)
			if (err != nil) != tt.wantErr {
				t.Fatalf("hyperswap = %v, want error %v", err, tt.wantErr)
			}
			s := r.session(t, "A")
			if d := diff(tt.want, viewOf(s)); d != "" {
				t.Errorf("after hyperswap (-want +got):\n%s\nreason %s", d, s.Reason)
			}
			calls := r.hw.Calls()
			if d := diff([]string{"start-h1-h2 A", "hyperswap A", "suspend A"}, calls); d != "" { // the host holds its I/O first
				t.Errorf("hardware calls (-want +got):\n%s", d)
			}
			if !tt.wantErr && !strings.Contains(s.Reason, "HyperSwap (planned) by z/OS host SYS1") {
				t.Errorf("reason %q does not tell the swap", s.Reason)
			}
			r.checkReplay(t)
		})
	}
}

// TestHyperSwapRefusedWithoutSwapper: a Hardware that cannot swap
// refuses before anything is recorded.
func TestHyperSwapRefusedWithoutSwapper(t *testing.T) {
	t.Parallel()
	store := session.NewMemoryStore()
	hw := newFakeHW()
	m := session.NewManager(store, plainHW{hw}, nil)
	ctx := context.Background()
	if err := m.Create(ctx, "A", hs, "", session.HoldIO); err != nil {
		t.Fatal(err)
	}
	if err := m.AddCopySet(ctx, "A", cs(0, 0x10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := m.Command(ctx, "A", session.CmdStartH1H2); err != nil {
		t.Fatal(err)
	}
	if err := m.Observe(ctx, "A", pairs(hal.FullDuplex, 1), time.Time{}); err != nil {
		t.Fatal(err)
	}
	before := mustSession(t, store.DB(), "A").Rev
	err := m.Command(ctx, "A", session.CmdHyperSwap)
	if !errors.Is(err, session.ErrVetoed) {
		t.Fatalf("hyperswap = %v, want ErrVetoed", err)
	}
	if got := mustSession(t, store.DB(), "A").Rev; got != before {
		t.Errorf("rev %d -> %d: a refused hyperswap recorded something", before, got)
	}
}

// plainHW hides fakeHW's HyperSwap.
type plainHW struct{ session.Hardware }

// TestMarkSwapped: a host's swap report makes the session Target
// Available with H2 active, whatever the freeze did before or after it,
// and a repeated report records nothing.
func TestMarkSwapped(t *testing.T) {
	t.Parallel()
	unplanned := session.Swap{Host: "SYS1", Trigger: "storage system LAB.2107-75P0001 crashed"}
	type step func(r *rig) error
	freezing := func(r *rig) error { return r.m.MarkFreezing(context.Background(), "A", "suspend event", time.Time{}) }
	frozen := func(certain bool) step {
		return func(r *rig) error { return r.m.MarkFrozen(context.Background(), "A", certain, "settled", time.Time{}) }
	}
	swapped := func(r *rig) error {
		_, err := r.m.MarkSwapped(context.Background(), "A", unplanned, time.Time{})
		return err
	}
	tests := []struct {
		name  string
		steps []step
		want  view
	}{
		{"report before the freeze", []step{swapped, freezing, frozen(true)},
			view{session.TargetAvailable, session.Severe, true, false, false, true, session.H1ToH2, session.H2}},
		{"report after a certain freeze", []step{freezing, frozen(true), swapped},
			view{session.TargetAvailable, session.Severe, true, false, false, true, session.H1ToH2, session.H2}},
		{"report during the freeze", []step{freezing, swapped, frozen(false)},
			view{session.TargetAvailable, session.Severe, true, false, false, true, session.H1ToH2, session.H2}},
		{"report alone", []step{swapped},
			view{session.TargetAvailable, session.Severe, true, false, false, false, session.H1ToH2, session.H2}},
		{"report twice", []step{swapped, swapped},
			view{session.TargetAvailable, session.Severe, true, false, false, false, session.H1ToH2, session.H2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig()
			r.define(t, "A", hs, "", session.HoldIO, 0x10, 2)
			r.prepared(t, "A")
			for i, st := range tt.steps {
				if err := st(r); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			s := r.session(t, "A")
			if d := diff(tt.want, viewOf(s)); d != "" {
				t.Errorf("(-want +got):\n%s\nreason %s", d, s.Reason)
			}
			if !strings.Contains(s.Reason, "HyperSwap (unplanned) by z/OS host SYS1: storage system LAB.2107-75P0001 crashed") &&
				!strings.Contains(s.Reason, "I/O held again") {
				t.Errorf("reason %q does not tell the swap", s.Reason)
			}
			changed, err := r.m.MarkSwapped(context.Background(), "A", unplanned, time.Time{})
			if err != nil || changed {
				t.Errorf("a repeated report: changed %v, %v; want nothing recorded", changed, err)
			}
			r.checkReplay(t)
		})
	}
}

// TestMarkSwappedIgnoresOtherTypes: a report naming a session that is not
// HyperSwap (a host misconfigured, a name reused) changes nothing.
func TestMarkSwappedIgnoresOtherTypes(t *testing.T) {
	t.Parallel()
	r := newRig()
	r.define(t, "A", fofb, "", session.HoldIO, 0x10, 1)
	r.prepared(t, "A")
	changed, err := r.m.MarkSwapped(context.Background(), "A", session.Swap{Host: "SYS1", Trigger: "x"}, time.Time{})
	if err != nil || changed {
		t.Fatalf("MarkSwapped = %v, %v; want nothing recorded", changed, err)
	}
	if st := r.session(t, "A").State; st != session.Prepared {
		t.Errorf("state %s, want Prepared", st)
	}
}
