package tasks

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// memStore is the journal of a test: every proposal checked and applied,
// in order.
type memStore struct {
	mu   sync.Mutex
	db   *DB
	recs []Record
}

func (s *memStore) Tasks() *DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Clone()
}

func (s *memStore) ProposeTask(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Apply(r); err != nil {
		return err
	}
	s.recs = append(s.recs, r)
	return nil
}

func (s *memStore) kinds(kind string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for _, r := range s.recs {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// fakeSessions records the commands and serves states.
type fakeSessions struct {
	mu     sync.Mutex
	cmds   []string
	states map[string]session.State
	fail   error
}

func (f *fakeSessions) Command(_ context.Context, name string, cmd session.Command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, fmt.Sprintf("%s %s", cmd, name))
	if f.fail != nil {
		return f.fail
	}
	switch cmd {
	case session.CmdSuspend:
		f.states[name] = session.Suspended
	case session.CmdStartH1H2:
		f.states[name] = session.Prepared
	}
	return nil
}

func (f *fakeSessions) State(name string) (session.State, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.states[name]
	return s, ok
}

func (f *fakeSessions) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

type harness struct {
	clk    *clock.Fake
	store  *memStore
	sess   *fakeSessions
	acting bool
	mu     sync.Mutex
	events []Occurrence
}

func newHarness(t *testing.T, start time.Time) *harness {
	return &harness{clk: clock.NewFake(start), store: &memStore{db: NewDB()},
		sess: &fakeSessions{states: map[string]session.State{"prod": session.Prepared}}, acting: true}
}

func (h *harness) create(t *testing.T, name, sched string, steps ...string) {
	t.Helper()
	err := h.store.ProposeTask(t.Context(), Record{Version: RecordVersion, Kind: KindCreated, At: h.clk.Now(), Task: name,
		Steps: steps, Schedule: sched, Zone: "UTC", On: true})
	if err != nil {
		t.Fatal(err)
	}
}

// run starts a Runner in the bubble and returns its stop.
func (h *harness) run(epoch uint64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	r := NewRunner(Options{Clock: h.clk, Epoch: hal.Epoch(epoch), Store: h.store, Sessions: h.sess,
		Acting:   func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.acting },
		Finished: func(_ string, o Occurrence) { h.mu.Lock(); defer h.mu.Unlock(); h.events = append(h.events, o) }})
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	synctest.Wait()
	return func() { cancel(); <-done }
}

// advance moves the fake clock in steps of one second, letting the
// runner act at each.
func (h *harness) advance(d time.Duration) {
	for range int(d / time.Second) {
		h.clk.Advance(time.Second)
		synctest.Wait()
	}
}

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func TestRunnerRunsEveryOccurrenceOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t0)
		h.create(t, "cycle", "every 10s", "suspend prod", "wait prod suspended timeout 5s", "start-h1-h2 prod")
		stop := h.run(3)
		h.advance(35 * time.Second)
		stop()
		want := []string{"suspend prod", "start-h1-h2 prod", "suspend prod", "start-h1-h2 prod", "suspend prod", "start-h1-h2 prod"}
		if got := h.sess.commands(); !slices.Equal(got, want) {
			t.Fatalf("commands %q, want %q", got, want)
		}
		started := h.store.kinds(KindStarted)
		for i, r := range started {
			if want := t0.Add(time.Duration(i+1) * 10 * time.Second); !r.Scheduled.Equal(want) || r.Epoch != 3 {
				t.Errorf("start %d: scheduled %s epoch %d, want %s epoch 3", i, r.Scheduled, r.Epoch, want)
			}
		}
		fin := h.store.kinds(KindFinished)
		if len(started) != 3 || len(fin) != 3 || fin[2].Result != ResultSuccess {
			t.Fatalf("started %d finished %d (%v)", len(started), len(fin), fin)
		}
	})
}

func TestRunnerNeverRunsWhenNotActing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t0)
		h.acting = false
		h.create(t, "cycle", "every 5s", "suspend prod")
		stop := h.run(1)
		h.advance(30 * time.Second)
		stop()
		if got := h.sess.commands(); len(got) != 0 {
			t.Fatalf("a runner that does not act issued %q", got)
		}
		if n := len(h.store.recs); n != 1 {
			t.Fatalf("a runner that does not act journaled %d records", n-1)
		}
	})
}

// TestRunnerReportsInterrupted: an occurrence journaled started by a
// server that died is reported interrupted, not run again; the ones that
// came due before the new active acted are reported missed, not run late
// (the old active may have run them unjournaled here); the schedule goes
// on from there.
func TestRunnerReportsInterrupted(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t0)
		h.create(t, "cycle", "every 10s", "suspend prod")
		// The old active started the occurrence of +10s and died.
		if err := h.store.ProposeTask(t.Context(), Record{Version: RecordVersion, Kind: KindStarted, At: t0.Add(10 * time.Second),
			Task: "cycle", Scheduled: t0.Add(10 * time.Second), Epoch: 1}); err != nil {
			t.Fatal(err)
		}
		// The new active acts at +45s: +20s, +30s and +40s were missed;
		// +50s runs.
		h.clk.Advance(45 * time.Second)
		stop := h.run(2)
		if got := h.sess.commands(); len(got) != 0 {
			t.Fatalf("commands at the takeover %q, want none", got)
		}
		h.advance(10 * time.Second)
		stop()
		fin := h.store.kinds(KindFinished)
		if len(fin) != 2 || fin[0].Result != ResultInterrupted || !fin[0].Scheduled.Equal(t0.Add(10*time.Second)) {
			t.Fatalf("finished %+v, want the +10s occurrence interrupted, then +50s", fin)
		}
		missed := h.store.kinds(KindMissed)
		if len(missed) != 1 || missed[0].Count != 3 || !missed[0].Scheduled.Equal(t0.Add(40*time.Second)) {
			t.Fatalf("missed %+v, want 3 up to +40s", missed)
		}
		started := h.store.kinds(KindStarted)
		if len(started) != 2 || !started[1].Scheduled.Equal(t0.Add(50*time.Second)) || started[1].Epoch != 2 {
			t.Fatalf("started %+v, want +50s at epoch 2", started)
		}
		if got := h.sess.commands(); len(got) != 1 {
			t.Fatalf("commands %q, want the +50s occurrence's only", got)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.events) != 3 || h.events[0].Result != ResultInterrupted || h.events[1].Result != ResultMissed || h.events[2].Result != ResultSuccess {
			t.Fatalf("events %+v", h.events)
		}
	})
}

// TestRunnerCatchesUpOnce: occurrences that came due while the task's
// previous occurrence still ran: the latest runs once, the older are
// reported missed.
func TestRunnerCatchesUpOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t0)
		h.create(t, "slow", "every 10s", "wait prod target-available timeout 25s")
		stop := h.run(1)
		h.advance(40 * time.Second)
		stop()
		// +10s waits until +35s and fails; +20s and +30s came due
		// meanwhile: +20s missed, +30s runs at once.
		started := h.store.kinds(KindStarted)
		missed := h.store.kinds(KindMissed)
		if len(started) != 2 || !started[1].Scheduled.Equal(t0.Add(30*time.Second)) || !started[1].At.Equal(t0.Add(35*time.Second)) {
			t.Fatalf("started %+v", started)
		}
		if len(missed) != 1 || missed[0].Count != 1 || !missed[0].Scheduled.Equal(t0.Add(20*time.Second)) {
			t.Fatalf("missed %+v", missed)
		}
	})
}

// TestRunnerRunAtBeforeActing: a one-off run that came due before the
// period acted is reported missed and cleared, not run.
func TestRunnerRunAtBeforeActing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t0)
		h.create(t, "once", "at 2027-01-01T00:00", "suspend prod")
		if err := h.store.ProposeTask(t.Context(), Record{Version: RecordVersion, Kind: KindRunAt, At: t0, Task: "once", RunAt: t0.Add(5 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		h.clk.Advance(10 * time.Second)
		stop := h.run(2)
		h.advance(5 * time.Second)
		stop()
		task, _ := h.store.Tasks().Task("once")
		if got := h.sess.commands(); len(got) != 0 || !task.RunAt.IsZero() || task.Last == nil || task.Last.Result != ResultMissed {
			t.Fatalf("commands %q; task %+v", got, task)
		}
	})
}

func TestRunnerStepFailureAndWaitTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t0)
		h.create(t, "w", "every 1m", "wait prod target-available timeout 10s", "suspend prod")
		stop := h.run(1)
		h.advance(75 * time.Second)
		stop()
		fin := h.store.kinds(KindFinished)
		if len(fin) != 1 || fin[0].Result != ResultFailed {
			t.Fatalf("finished %+v", fin)
		}
		if want := "step 1 (wait prod target-available timeout 10s): tasks: wait timed out: session prod is Prepared after 10s, not Target Available"; fin[0].Message != want {
			t.Fatalf("message %q, want %q", fin[0].Message, want)
		}
		if got := h.sess.commands(); len(got) != 0 {
			t.Fatalf("commands after a failed step: %q", got)
		}
	})
}

func TestRunnerRunAtAndDisabled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, t0)
		h.create(t, "once", "at 2026-12-02T10:00", "suspend prod") // already past: never runs on its own
		if err := h.store.ProposeTask(t.Context(), Record{Version: RecordVersion, Kind: KindEnabled, At: t0, Task: "once"}); err != nil {
			t.Fatal(err)
		}
		if err := h.store.ProposeTask(t.Context(), Record{Version: RecordVersion, Kind: KindRunAt, At: t0, Task: "once", RunAt: t0.Add(20 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		stop := h.run(1)
		h.advance(19 * time.Second)
		if got := h.sess.commands(); len(got) != 0 {
			t.Fatalf("ran before its time: %q", got)
		}
		h.advance(10 * time.Second)
		stop()
		started := h.store.kinds(KindStarted)
		if len(started) != 1 || !started[0].Manual || !started[0].Scheduled.Equal(t0.Add(20*time.Second)) {
			t.Fatalf("started %+v", started)
		}
		task, _ := h.store.Tasks().Task("once")
		if !task.RunAt.IsZero() || task.Last == nil || task.Last.Result != ResultSuccess {
			t.Fatalf("task after the run: %+v", task)
		}
	})
}
