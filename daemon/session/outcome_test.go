package session

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// These tests are inside the package: they pin the pure decision
// functions the Manager sequences.

type flags struct {
	State                                             State
	Status                                            Status
	Recoverable, Copying, Error, IOHeld, FromPrepared bool
}

func flagsOf(c Change) flags {
	return flags{c.State, c.Status, c.Recoverable, c.Copying, c.Error, c.IOHeld, c.FromPrepared}
}

func testSession(t Type, st State, p Policy) *Session {
	s := &Session{Name: "S", Type: t, Policy: p, State: st, Status: statusFor(st, false),
		Direction: H1ToH2, ActiveSite: H1, Rev: 5,
		CopySets: []CopySet{
			{H1: hal.VolumeRef{Serial: "P1", Volume: 0x1001}, H2: hal.VolumeRef{Serial: "S1", Volume: 0x1001}},
			{H1: hal.VolumeRef{Serial: "P2", Volume: 0x1001}, H2: hal.VolumeRef{Serial: "S2", Volume: 0x1001}},
		}}
	if st == TargetAvailable {
		s.ActiveSite = H2
	}
	s.Copying = st == Preparing || st == Prepared || st == Suspending
	return s
}

func TestFreezeOutcomes(t *testing.T) {
	t.Parallel()
	mod := func(s *Session, f func(*Session)) *Session { f(s); return s }
	tests := []struct {
		name    string
		s       *Session
		certain bool
		want    flags
		noop    bool
	}{
		{"prepared certain hold", testSession(MetroMirrorFailoverFailback, Prepared, HoldIO), true,
			flags{State: Suspended, Status: Severe, Recoverable: true, IOHeld: true}, false},
		{"prepared certain release", testSession(MetroMirrorFailoverFailback, Prepared, ReleaseIO), true,
			flags{State: Suspended, Status: Severe, Recoverable: true}, false},
		{"preparing certain: copy incomplete", testSession(MetroMirrorSingleDirection, Preparing, HoldIO), true,
			flags{State: Suspended, Status: Severe, IOHeld: true}, false},
		{"suspending from prepared", mod(testSession(MetroMirrorSingleDirection, Suspending, HoldIO), func(s *Session) { s.FromPrepared = true }), true,
			flags{State: Suspended, Status: Severe, Recoverable: true, IOHeld: true}, false},
		{"suspending from preparing", testSession(MetroMirrorSingleDirection, Suspending, ReleaseIO), true,
			flags{State: Suspended, Status: Severe}, false},
		{"partial then certain", testSession(MetroMirrorSingleDirection, SuspendedPartial, ReleaseIO), true,
			flags{State: Suspended, Status: Severe}, false},
		// The S2 case with the heartbeat: a freeze from Prepared that was
		// partial becomes certain when the silent system's heartbeat has
		// expired: the image is consistent, and recoverable.
		{"partial from prepared then certain", mod(testSession(MetroMirrorSingleDirection, SuspendedPartial, HoldIO),
			func(s *Session) { s.FromPrepared, s.IOHeld = true, true }), true,
			flags{State: Suspended, Status: Severe, Recoverable: true, IOHeld: true}, false},
		{"prepared uncertain", testSession(MetroMirrorSingleDirection, Prepared, ReleaseIO), false,
			flags{State: SuspendedPartial, Status: Severe, Copying: true, IOHeld: true, FromPrepared: true}, false},
		{"suspending from prepared uncertain", mod(testSession(MetroMirrorSingleDirection, Suspending, HoldIO), func(s *Session) { s.FromPrepared = true }), false,
			flags{State: SuspendedPartial, Status: Severe, Copying: true, IOHeld: true, FromPrepared: true}, false},
		{"error flag kept", mod(testSession(MetroMirrorSingleDirection, Prepared, HoldIO), func(s *Session) { s.Error, s.Status = true, Severe }), true,
			flags{State: Suspended, Status: Severe, Recoverable: true, Error: true, IOHeld: true}, false},
		{"defined untouched", testSession(MetroMirrorSingleDirection, Defined, HoldIO), true, flags{}, true},
		{"suspended untouched", testSession(MetroMirrorSingleDirection, Suspended, HoldIO), false, flags{}, true},
		{"recovering untouched", testSession(MetroMirrorSingleDirection, Recovering, HoldIO), false, flags{}, true},
		{"target available untouched", testSession(MetroMirrorSingleDirection, TargetAvailable, HoldIO), false, flags{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, ok := frozenChange(tt.s, tt.certain, "why")
			if ok == tt.noop {
				t.Fatalf("frozenChange ok = %t", ok)
			}
			if !ok {
				return
			}
			if got := flagsOf(c); got != tt.want {
				t.Errorf("frozenChange (-want +got):\n-%+v\n+%+v", tt.want, got)
			}
			if c.Reason != "why" {
				t.Errorf("Reason %q", c.Reason)
			}
		})
	}
}

func TestFreezingOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    *Session
		want flags
		noop bool
	}{
		{"prepared", testSession(MetroMirrorSingleDirection, Prepared, HoldIO),
			flags{State: Suspending, Status: Warning, Copying: true, IOHeld: true, FromPrepared: true}, false},
		{"preparing", testSession(MetroMirrorSingleDirection, Preparing, ReleaseIO),
			flags{State: Suspending, Status: Warning, Copying: true, IOHeld: true}, false},
		{"suspending keeps from_prepared", func() *Session {
			s := testSession(MetroMirrorSingleDirection, Suspending, HoldIO)
			s.FromPrepared = true
			return s
		}(), flags{State: Suspending, Status: Warning, Copying: true, IOHeld: true, FromPrepared: true}, false},
		{"partial", testSession(MetroMirrorSingleDirection, SuspendedPartial, HoldIO),
			flags{State: Suspending, Status: Warning, IOHeld: true}, false},
		// A session already frozen keeps its state and recoverability, but
		// the group's freeze holds its LSSs again: I/O held (found by the
		// admin schedules, seeds 142 and 223).
		{"suspended released is held again", func() *Session {
			s := testSession(MetroMirrorSingleDirection, Suspended, HoldIO)
			s.Recoverable = true
			return s
		}(), flags{State: Suspended, Status: Severe, Recoverable: true, IOHeld: true}, false},
		{"target available released is held again", testSession(MetroMirrorFailoverFailback, TargetAvailable, ReleaseIO),
			flags{State: TargetAvailable, Status: Normal, IOHeld: true}, false},
		{"suspended holding", func() *Session {
			s := testSession(MetroMirrorSingleDirection, Suspended, HoldIO)
			s.IOHeld = true
			return s
		}(), flags{}, true},
		{"defined", testSession(MetroMirrorSingleDirection, Defined, HoldIO), flags{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, ok := freezingChange(tt.s, "why")
			if ok == tt.noop {
				t.Fatalf("freezingChange ok = %t", ok)
			}
			if got := flagsOf(c); ok && got != tt.want {
				t.Errorf("freezingChange (-want +got):\n-%+v\n+%+v", tt.want, got)
			}
		})
	}
}

func TestObservedOutcomes(t *testing.T) {
	t.Parallel()
	obs := func(counts map[hal.PairState]int) Observed { return Observed{Pairs: counts} }
	susp := func(n int, r hal.SuspendReason) []hal.PairStatus {
		out := make([]hal.PairStatus, n)
		for i := range out {
			out[i].State, out[i].Reason = hal.Suspended, r
		}
		return out
	}
	recoverable := func(s *Session) *Session { s.Recoverable = true; return s }
	tests := []struct {
		name       string
		s          *Session
		o          Observed
		want       flags
		wantSite   Site
		wantReason string
	}{
		{"all full-duplex", testSession(MetroMirrorSingleDirection, Preparing, HoldIO), obs(map[hal.PairState]int{hal.FullDuplex: 2}),
			flags{State: Prepared, Status: Normal, Copying: true}, "", "refresh: every pair full-duplex: 2 full-duplex"},
		{"still copying", testSession(MetroMirrorSingleDirection, Preparing, HoldIO), obs(map[hal.PairState]int{hal.FullDuplex: 1, hal.CopyPending: 1}),
			flags{State: Preparing, Status: Warning, Copying: true}, "", "refresh: copying: 1 copy-pending, 1 full-duplex"},
		{"resync after a crash in Suspending", testSession(MetroMirrorSingleDirection, Suspending, HoldIO), obs(map[hal.PairState]int{hal.FullDuplex: 2}),
			flags{State: Prepared, Status: Normal, Copying: true}, "", ""},
		{"suspended stays recoverable", recoverable(testSession(MetroMirrorSingleDirection, Suspended, HoldIO)),
			Observed{Pairs: map[hal.PairState]int{hal.Suspended: 2}, Suspended: susp(2, hal.ReasonFreeze), IOHeld: true},
			flags{State: Suspended, Status: Severe, Recoverable: true, IOHeld: true}, "", "refresh: every pair suspended: 2 suspended (freeze 2)"},
		{"hold ended by the CG timeout", recoverable(testSession(MetroMirrorSingleDirection, Suspended, HoldIO)),
			Observed{Pairs: map[hal.PairState]int{hal.Suspended: 2}},
			flags{State: Suspended, Status: Severe, Recoverable: true}, "", ""},
		{"suspended behind our back: not recoverable", testSession(MetroMirrorSingleDirection, Prepared, HoldIO),
			Observed{Pairs: map[hal.PairState]int{hal.Suspended: 2}, Suspended: susp(2, hal.ReasonPath)},
			flags{State: Suspended, Status: Severe}, "", ""},
		{"freeze outcome lost: not recoverable", func() *Session {
			s := testSession(MetroMirrorSingleDirection, Suspending, HoldIO)
			s.FromPrepared = true
			return s
		}(), obs(map[hal.PairState]int{hal.Suspended: 2}), flags{State: Suspended, Status: Severe}, "", ""},
		{"mixed", testSession(MetroMirrorSingleDirection, Prepared, HoldIO),
			Observed{Pairs: map[hal.PairState]int{hal.FullDuplex: 1, hal.Suspended: 1}, Suspended: susp(1, hal.ReasonPath)},
			flags{State: SuspendedPartial, Status: Severe, Copying: true}, "", "refresh: pairs suspended while others mirror, not recoverable: 1 full-duplex, 1 suspended (path 1)"},
		{"mirroring again after a freeze", recoverable(testSession(MetroMirrorSingleDirection, Suspended, HoldIO)),
			obs(map[hal.PairState]int{hal.CopyPending: 1, hal.Suspended: 1}),
			flags{State: SuspendedPartial, Status: Severe, Copying: true}, "", ""},
		{"unreachable keeps the state", testSession(MetroMirrorSingleDirection, Prepared, HoldIO),
			Observed{Pairs: map[hal.PairState]int{hal.FullDuplex: 1}, Unreachable: []hal.Serial{"P2", "S2"}},
			flags{State: Prepared, Status: Warning, Copying: true}, "", "refresh: could not query P2, S2: 1 full-duplex"},
		{"pairs missing", testSession(MetroMirrorSingleDirection, Prepared, HoldIO), obs(map[hal.PairState]int{hal.FullDuplex: 1, hal.Simplex: 1}),
			flags{State: Prepared, Status: Severe, Copying: true, Error: true}, "", "refresh: 2 copy sets but 1 pairs found as sources: 1 simplex, 1 full-duplex"},
		{"targets where sources should be", testSession(MetroMirrorSingleDirection, Prepared, HoldIO), obs(map[hal.PairState]int{hal.TargetFullDuplex: 2}),
			flags{State: Prepared, Status: Severe, Copying: true, Error: true}, "", ""},
		{"recover done", recoverable(testSession(MetroMirrorFailoverFailback, Recovering, HoldIO)),
			Observed{Pairs: map[hal.PairState]int{hal.Suspended: 2}, Recovered: 2},
			flags{State: TargetAvailable, Status: Normal, Recoverable: true}, H2, ""},
		{"recover not done", recoverable(testSession(MetroMirrorFailoverFailback, Recovering, HoldIO)),
			obs(map[hal.PairState]int{hal.Suspended: 2}),
			flags{State: Suspended, Status: Severe, Recoverable: true}, H1, ""},
		{"recover half done", recoverable(testSession(MetroMirrorFailoverFailback, Recovering, HoldIO)),
			Observed{Pairs: map[hal.PairState]int{hal.Suspended: 2}, Recovered: 1},
			flags{State: Recovering, Status: Severe, Recoverable: true, Error: true}, H1, ""},
		{"target available confirmed", recoverable(testSession(MetroMirrorFailoverFailback, TargetAvailable, HoldIO)),
			Observed{Pairs: map[hal.PairState]int{hal.Suspended: 2}, Recovered: 2},
			flags{State: TargetAvailable, Status: Normal, Recoverable: true}, H2, ""},
		{"recovered without a recover", testSession(MetroMirrorFailoverFailback, Suspended, HoldIO),
			Observed{Pairs: map[hal.PairState]int{hal.Suspended: 2}, Recovered: 2},
			flags{State: Suspended, Status: Severe, Error: true}, H1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, ok := observedChange(tt.s, tt.o)
			if !ok {
				t.Fatal("observedChange made no change")
			}
			if got := flagsOf(c); got != tt.want {
				t.Errorf("observedChange (-want +got):\n-%+v\n+%+v", tt.want, got)
			}
			if tt.wantSite != "" && (c.ActiveSite != "" && c.ActiveSite != tt.wantSite || c.ActiveSite == "" && tt.s.ActiveSite != tt.wantSite) {
				t.Errorf("active site %q (was %s), want %s", c.ActiveSite, tt.s.ActiveSite, tt.wantSite)
			}
			if tt.wantReason != "" && c.Reason != tt.wantReason {
				t.Errorf("Reason = %q\nwant     %q", c.Reason, tt.wantReason)
			}
			if err := applyTo(tt.s, c); err != nil {
				t.Errorf("the change breaks an invariant: %v", err)
			}
		})
	}
	if _, ok := observedChange(testSession(MetroMirrorSingleDirection, Defined, HoldIO), Observed{}); ok {
		t.Error("observedChange changes a Defined session")
	}
}

// applyTo runs c through the real Apply on a DB holding s.
func applyTo(s *Session, c Change) error {
	db := &DB{sessions: map[string]*Session{s.Name: s.Clone()}}
	return db.Apply(Record{Version: RecordVersion, Kind: KindStateChanged, Session: s.Name,
		At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), IfRev: s.Rev, Change: &c})
}

// TestOutcomesKeepInvariants runs every decision function on every valid
// session (all states, types, directions and flags that pass check) and
// every kind of result: none may produce a record that Apply refuses.
func TestOutcomesKeepInvariants(t *testing.T) {
	t.Parallel()
	hwErr := errors.New("boom")
	observations := []Observed{
		{Pairs: map[hal.PairState]int{hal.FullDuplex: 2}},
		{Pairs: map[hal.PairState]int{hal.CopyPending: 2}, IOHeld: true},
		{Pairs: map[hal.PairState]int{hal.Suspended: 2}},
		{Pairs: map[hal.PairState]int{hal.Suspended: 2}, Recovered: 2},
		{Pairs: map[hal.PairState]int{hal.Suspended: 2}, Recovered: 1},
		{Pairs: map[hal.PairState]int{hal.FullDuplex: 1, hal.Suspended: 1}},
		{Pairs: map[hal.PairState]int{hal.Simplex: 2}},
		{Unreachable: []hal.Serial{"P1"}},
	}
	valid := 0
	for _, typ := range []Type{MetroMirrorSingleDirection, MetroMirrorFailoverFailback} {
		for _, pol := range []Policy{HoldIO, ReleaseIO} {
			for st := Defined; st <= TargetAvailable; st++ {
				for status := Inactive; status <= Severe; status++ {
					for _, dir := range []Direction{H1ToH2, H2ToH1} {
						for _, site := range []Site{H1, H2} {
							for f := range 32 {
								s := &Session{Name: "S", Type: typ, Policy: pol, State: st, Status: status,
									Direction: dir, ActiveSite: site, Rev: 3,
									Recoverable: f&1 != 0, Copying: f&2 != 0, Error: f&4 != 0, IOHeld: f&8 != 0, FromPrepared: f&16 != 0,
									CopySets: testSession(typ, st, pol).CopySets}
								if s.check() != nil {
									continue
								}
								valid++
								checkOutcomes(t, s, hwErr, observations)
							}
						}
					}
				}
			}
		}
	}
	if valid < 100 {
		t.Errorf("only %d valid sessions enumerated", valid)
	}
}

func checkOutcomes(t *testing.T, s *Session, hwErr error, observations []Observed) {
	t.Helper()
	try := func(what string, c Change, ok bool) {
		t.Helper()
		if !ok {
			return
		}
		if err := applyTo(s, c); err != nil {
			t.Errorf("%s on %s %s %s %+v: %v", what, s.Type, s.State, s.Direction, flagsOf(changeFrom(s)), err)
		}
	}
	for _, certain := range []bool{true, false} {
		c, ok := frozenChange(s, certain, "r")
		try(fmt.Sprintf("frozenChange(certain %t)", certain), c, ok)
	}
	c, ok := freezingChange(s, "r")
	try("freezingChange", c, ok)
	c, ok = releasedChange(s, "r")
	try("releasedChange", c, ok)
	for _, ct := range []Contact{{}, {Lost: true, Reason: "P1"}, {Lost: true, Severe: true, Reason: "P1"}} {
		c, ok := contactChange(s, ct)
		try(fmt.Sprintf("contactChange(%+v)", ct), c, ok)
	}
	for i, o := range observations {
		c, ok := observedChange(s, o)
		try(fmt.Sprintf("observedChange #%d", i), c, ok)
	}
	// Command outcomes, where the table lets the command run.
	for _, cmd := range Commands() {
		if CheckCommand(s, cmd) != nil {
			continue
		}
		for _, err := range []error{nil, hwErr} {
			var c Change
			next := s
			switch cmd {
			case CmdStartH1H2, CmdStartH2H1:
				t1 := startingChange(s, cmd)
				try("startingChange", succeeded(t1), true)
				next = after(s, succeeded(t1))
				c = startedChange(next, cmd, err)
			case CmdRecover:
				try("recoveringChange", recoveringChange(s), true)
				next = after(s, recoveringChange(s))
				c = recoveredChange(next, err)
			case CmdSuspend:
				t1, _ := freezingChange(s, "r")
				try("suspend transit", succeeded(t1), true)
				next = after(s, succeeded(t1))
				c, _ = frozenChange(next, err == nil, "r")
				c.Error = err != nil
				c.Status = statusFor(c.State, c.Error)
			case CmdReleaseIO:
				c, _ = releasedChange(s, "r")
				if err != nil {
					c = failedChange(s, cmd, err)
				}
			case CmdTerminate:
				c = terminatedChange(s, err)
			case CmdRefresh:
				c = failedChange(s, cmd, hwErr)
			}
			if err := applyTo(next, c); err != nil {
				t.Errorf("%s (hardware error %v) on %s %s %s %+v: %v", cmd, err != nil, s.Type, s.State, s.Direction, flagsOf(changeFrom(s)), err)
			}
		}
	}
}

// after is s with c applied, as the DB would hold it.
func after(s *Session, c Change) *Session {
	db := &DB{sessions: map[string]*Session{s.Name: s.Clone()}}
	r := Record{Version: RecordVersion, Kind: KindStateChanged, Session: s.Name,
		At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Change: &c}
	if err := db.Apply(r); err != nil {
		return s // reported by the caller's try
	}
	n, _ := db.Session(s.Name)
	return n
}

func TestStatusFor(t *testing.T) {
	t.Parallel()
	want := map[State][2]Status{ // without, with an error
		Defined:          {Inactive, Inactive},
		Preparing:        {Warning, Severe},
		Prepared:         {Normal, Severe},
		Suspending:       {Warning, Severe},
		Suspended:        {Severe, Severe},
		SuspendedPartial: {Severe, Severe},
		Recovering:       {Warning, Severe},
		TargetAvailable:  {Normal, Severe},
	}
	for st, w := range want {
		got := [2]Status{statusFor(st, false), statusFor(st, true)}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("statusFor(%s) = %v, want %v", st, got, w)
		}
	}
}

func TestObservedSummary(t *testing.T) {
	t.Parallel()
	o := Observed{
		Pairs:     map[hal.PairState]int{hal.Suspended: 3, hal.FullDuplex: 1},
		Suspended: []hal.PairStatus{{Reason: hal.ReasonPath}, {Reason: hal.ReasonFreeze}, {Reason: hal.ReasonPath}},
		Recovered: 1,
	}
	if got, want := o.summary(), "1 full-duplex, 3 suspended (path 2, freeze 1), 1 recovered"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	if got := (Observed{}).summary(); !strings.Contains(got, "no pairs") {
		t.Errorf("empty summary = %q", got)
	}
}

func TestContactOutcomes(t *testing.T) {
	t.Parallel()
	lost := Contact{Lost: true, Reason: "P1 unreachable since 12:00"}
	severe := Contact{Lost: true, Severe: true, Reason: "P1 unreachable since 12:00, longer than the lowest CG timeout"}
	prepared := testSession(MetroMirrorSingleDirection, Prepared, HoldIO)
	preparing := testSession(MetroMirrorSingleDirection, Preparing, HoldIO)
	failed := testSession(MetroMirrorSingleDirection, Prepared, HoldIO)
	failed.Error, failed.Status = true, Severe
	warned := testSession(MetroMirrorSingleDirection, Prepared, HoldIO)
	warned.Status, warned.Reason = Warning, "out of contact: P1"
	for _, tc := range []struct {
		name       string
		s          *Session
		ct         Contact
		wantOK     bool
		wantStatus Status
		wantReason string
	}{
		{"prepared, lost: Warning, state stays", prepared, lost, true, Warning, "out of contact: " + lost.Reason},
		{"prepared, lost past the CG timeout: Severe", prepared, severe, true, Severe, "out of contact: " + severe.Reason},
		{"preparing, lost: Warning", preparing, lost, true, Warning, "out of contact: " + lost.Reason},
		{"failed stays Severe", failed, lost, true, Severe, "out of contact: " + lost.Reason},
		{"contact restored: Normal again", warned, Contact{}, true, Normal, "contact restored: every storage system answers"},
		{"restored, nothing to say", prepared, Contact{}, true, Normal, prepared.Reason},
		{"suspended: the freeze's records tell", testSession(MetroMirrorSingleDirection, Suspended, HoldIO), severe, false, 0, ""},
		{"suspending: the freeze's records tell", testSession(MetroMirrorSingleDirection, Suspending, HoldIO), lost, false, 0, ""},
		{"defined: nothing mirrors", testSession(MetroMirrorSingleDirection, Defined, HoldIO), lost, false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, ok := contactChange(tc.s, tc.ct)
			if ok != tc.wantOK {
				t.Fatalf("ok %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			if c.State != tc.s.State || c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.Recoverable {
				t.Fatalf("change %+v (%q), want state %s status %s reason %q, not recoverable",
					flagsOf(c), c.Reason, tc.s.State, tc.wantStatus, tc.wantReason)
			}
		})
	}
}
