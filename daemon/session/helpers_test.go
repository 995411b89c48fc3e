package session_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// diff returns "" when want and got are deeply equal, else both as JSON
// (or %+v when they do not encode), for a "(-want +got)" message.
func diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	show := func(v any) string {
		if b, err := json.MarshalIndent(v, "", "  "); err == nil {
			return string(b)
		}
		return fmt.Sprintf("%+v", v)
	}
	return "-" + show(want) + "\n+" + show(got)
}

func prim(k int) hal.Serial { return hal.Serial(fmt.Sprintf("LAB.2107-75P%04d", k+1)) }
func sec(k int) hal.Serial  { return hal.Serial(fmt.Sprintf("LAB.2107-75S%04d", k+1)) }

// cs is the copy set of volume (lss, n) on primary k, mirrored to the same
// volume id on secondary k.
func cs(k int, lss hal.LSS, n uint8) session.CopySet {
	v := hal.NewVolume(lss, n)
	return session.CopySet{H1: hal.VolumeRef{Serial: prim(k), Volume: v}, H2: hal.VolumeRef{Serial: sec(k), Volume: v}}
}

func rec(kind session.Kind, name string) session.Record {
	return session.Record{Version: session.RecordVersion, Kind: kind, Session: name, At: t0}
}

func created(name string, t session.Type, cg string, p session.Policy) session.Record {
	r := rec(session.KindSessionCreated, name)
	r.Create = &session.Create{Type: t, CGName: cg, Policy: p}
	return r
}

func added(name string, c ...session.CopySet) session.Record {
	r := rec(session.KindCopySetsAdded, name)
	r.CopySets = c
	return r
}

func removedCS(name string, c ...session.CopySet) session.Record {
	r := rec(session.KindCopySetsRemoved, name)
	r.CopySets = c
	return r
}

func removed(name string) session.Record { return rec(session.KindSessionRemoved, name) }

func changed(name string, ifRev uint64, c session.Change) session.Record {
	r := rec(session.KindStateChanged, name)
	r.IfRev = ifRev
	r.Change = &c
	return r
}

func mustApply(t testing.TB, db *session.DB, rs ...session.Record) {
	t.Helper()
	for _, r := range rs {
		if err := db.Apply(r); err != nil {
			t.Fatalf("Apply(%s %s): %v", r.Kind, r.Session, err)
		}
	}
}

func snap(t testing.TB, db *session.DB) string {
	t.Helper()
	b, err := db.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return string(b)
}

func mustSession(t testing.TB, db *session.DB, name string) *session.Session {
	t.Helper()
	s, ok := db.Session(name)
	if !ok {
		t.Fatalf("no session %q", name)
	}
	return s
}

// view is the part of a session most tests assert on.
type view struct {
	State                               session.State
	Status                              session.Status
	Recoverable, Copying, Error, IOHeld bool
	Direction                           session.Direction
	ActiveSite                          session.Site
}

func viewOf(s *session.Session) view {
	return view{s.State, s.Status, s.Recoverable, s.Copying, s.Error, s.IOHeld, s.Direction, s.ActiveSite}
}

// fakeHW is a Hardware that records its calls. A call can fail (errs, by
// "cmd session" or by "cmd"), block until a gate closes (gates, by
// "cmd session"), and run a hook first (to act concurrently, as the
// freeze core would).
type fakeHW struct {
	mu      sync.Mutex
	calls   []string
	dirs    []session.Direction // the direction of the session passed, per call
	errs    map[string]error
	gates   map[string]chan struct{}
	obs     map[string]session.Observed
	hook    func(key string, s *session.Session)
	entered chan string // if set, every call sends its key on entry
}

func newFakeHW() *fakeHW {
	return &fakeHW{errs: map[string]error{}, gates: map[string]chan struct{}{}, obs: map[string]session.Observed{}}
}

func (f *fakeHW) setErr(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[key] = err
}

func (f *fakeHW) gate(key string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	f.gates[key] = ch
	return ch
}

func (f *fakeHW) setObserved(name string, o session.Observed) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.obs[name] = o
}

func (f *fakeHW) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeHW) do(ctx context.Context, cmd session.Command, s *session.Session) error {
	key := string(cmd) + " " + s.Name
	f.mu.Lock()
	f.calls = append(f.calls, key)
	f.dirs = append(f.dirs, s.Direction)
	gate, hook, entered := f.gates[key], f.hook, f.entered
	err, ok := f.errs[key]
	if !ok {
		err = f.errs[string(cmd)]
	}
	f.mu.Unlock()
	if entered != nil {
		entered <- key
	}
	if hook != nil {
		hook(key, s)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fakeHW) StartH1H2(ctx context.Context, s *session.Session) error {
	return f.do(ctx, session.CmdStartH1H2, s)
}
func (f *fakeHW) StartH2H1(ctx context.Context, s *session.Session) error {
	return f.do(ctx, session.CmdStartH2H1, s)
}
func (f *fakeHW) Suspend(ctx context.Context, s *session.Session) error {
	return f.do(ctx, session.CmdSuspend, s)
}
func (f *fakeHW) ReleaseIO(ctx context.Context, s *session.Session) error {
	return f.do(ctx, session.CmdReleaseIO, s)
}
func (f *fakeHW) Recover(ctx context.Context, s *session.Session) error {
	return f.do(ctx, session.CmdRecover, s)
}
func (f *fakeHW) Terminate(ctx context.Context, s *session.Session) error {
	return f.do(ctx, session.CmdTerminate, s)
}
func (f *fakeHW) Refresh(ctx context.Context, s *session.Session) (session.Observed, error) {
	err := f.do(ctx, session.CmdRefresh, s)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.obs[s.Name], err
}

var _ session.Hardware = (*fakeHW)(nil)

// pairs is an observation of n copy sets all in state st.
func pairs(st hal.PairState, n int) session.Observed {
	return session.Observed{Pairs: map[hal.PairState]int{st: n}}
}

// HyperSwap makes fakeHW a Swapper: the call is "hyperswap NAME", done
// by the host "SYS1".
func (f *fakeHW) HyperSwap(ctx context.Context, s *session.Session) (string, error, error) {
	swapErr := f.do(ctx, session.CmdHyperSwap, s)
	return "SYS1", swapErr, f.Suspend(ctx, s)
}

var _ session.Swapper = (*fakeHW)(nil)
