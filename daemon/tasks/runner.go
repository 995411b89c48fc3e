package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Store is where the runner reads the tasks and journals occurrences.
type Store interface {
	Tasks() *DB
	ProposeTask(ctx context.Context, r Record) error
}

// Sessions carries out a step: a session command (the acting period's
// session manager, whose storage commands carry the period's epoch) and
// a session's state.
type Sessions interface {
	Command(ctx context.Context, name string, cmd session.Command) error
	State(name string) (session.State, bool)
}

// Options configure a Runner.
type Options struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// Epoch is the acting period's: journaled with every occurrence.
	Epoch    hal.Epoch
	Store    Store
	Sessions Sessions
	// Acting reports whether the period may still issue anything (its
	// fence pass done, no storage system fenced it). An occurrence is
	// never started while it is false.
	Acting func() bool
	// Finished is told of every occurrence that ends (success, failed,
	// interrupted) or is reported missed, once it is journaled: the
	// events and traps.
	Finished func(task string, o Occurrence)
	// WaitPoll is how often a wait step reads the session's state
	// (default 1s).
	WaitPoll time.Duration
	// Since is when the period began acting (its fence pass done): an
	// occurrence due before it is reported missed, never run (see
	// Runner). The zero time: when Run starts, which the period does
	// after its fence pass.
	Since time.Time
}

// Runner runs the tasks of one acting period. Run runs it; it is owned
// and joined by the period, so no occurrence of a stopped period starts
// anything. A server that does not act has no Runner at all.
//
// Missed occurrences. An occurrence that came due before this period
// began acting (the server was down, or a standby, or taking over) is
// journaled missed and reported, never run late. The reason is the
// promise the runner keeps: an occurrence's storage commands come from
// one epoch only. The former active may have started that occurrence
// and journaled it, and the record may not have reached this server (a
// partition, or a kill in the instant between the journal's fsync and
// the standby's): running it here could run it twice, from two epochs.
// An occurrence due during the period runs; should the runner wake late
// (the previous occurrence of the task still running, a loaded host),
// only the latest due runs and the older ones are reported missed: the
// occurrences of a task are the same commands, so running a backlog
// would only repeat them. CSM reports a missed run the same way.
type Runner struct {
	opt  Options
	poke chan struct{}
}

// NewRunner returns a Runner.
func NewRunner(opt Options) *Runner {
	if opt.WaitPoll <= 0 {
		opt.WaitPoll = time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Finished == nil {
		opt.Finished = func(string, Occurrence) {}
	}
	return &Runner{opt: opt, poke: make(chan struct{}, 1)}
}

// Poke makes the runner read the tasks again (a task created, enabled,
// or asked to run).
func (r *Runner) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Due lists what of t is due at now: the latest scheduled occurrence
// after its cursor and not after now, the one before it, and how many
// occurrences are due in all (0: none).
func Due(t *Task, now time.Time) (latest, previous time.Time, count int) {
	if !t.Enabled {
		return time.Time{}, time.Time{}, 0
	}
	loc := t.Location()
	if t.Schedule.Form == FormEvery {
		first, _ := t.Schedule.Next(loc, t.Anchor, t.Cursor)
		if first.After(now) {
			return time.Time{}, time.Time{}, 0
		}
		n := int(now.Sub(first)/t.Schedule.Every) + 1
		latest = first.Add(time.Duration(n-1) * t.Schedule.Every)
		if n > 1 {
			previous = latest.Add(-t.Schedule.Every)
		}
		return latest, previous, n
	}
	for at := t.Cursor; ; {
		n, ok := t.Schedule.Next(loc, t.Anchor, at)
		if !ok || n.After(now) {
			return latest, previous, count
		}
		previous, latest, count, at = latest, n, count+1, n
	}
}

type finished struct {
	task string
}

// Run runs the tasks until ctx ends, then waits for the occurrences it
// started (their steps end with ctx).
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if r.opt.Since.IsZero() {
		r.opt.Since = r.opt.Clock.Now()
	}
	done := make(chan finished)
	busy := map[string]bool{}
	r.interrupted(ctx)
	for {
		now := r.opt.Clock.Now()
		var wake time.Time
		for _, t := range r.opt.Store.Tasks().Tasks() {
			if busy[t.Name] || ctx.Err() != nil {
				continue
			}
			sched, manual, ok := r.due(ctx, t, now)
			if ok && r.start(ctx, t, sched, manual) {
				busy[t.Name] = true
				wg.Go(func() {
					r.run(ctx, t, sched)
					select {
					case done <- finished{task: t.Name}:
					case <-ctx.Done():
					}
				})
				continue
			}
			if t2, ok := r.opt.Store.Tasks().Task(t.Name); ok {
				if n, ok := t2.Next(); ok && (wake.IsZero() || n.Before(wake)) {
					wake = n
				}
			}
		}
		var timer clock.Timer
		var fire <-chan time.Time
		if !wake.IsZero() {
			d := max(wake.Sub(now), 0)
			timer = r.opt.Clock.NewTimer(d)
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case f := <-done:
			delete(busy, f.task)
		case <-r.poke:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// interrupted reports the occurrences journaled started and never
// finished: the server that ran them stopped. They are not retried.
func (r *Runner) interrupted(ctx context.Context) {
	for _, t := range r.opt.Store.Tasks().Tasks() {
		if t.Running == nil || !r.opt.Acting() {
			continue
		}
		msg := fmt.Sprintf("the server acting at epoch %d stopped while it ran (started %s); not retried",
			t.Running.Epoch, t.Running.Started.UTC().Format(time.RFC3339))
		rec := Record{Version: RecordVersion, Kind: KindFinished, At: r.opt.Clock.Now(), Task: t.Name,
			Scheduled: t.Running.Scheduled, Result: ResultInterrupted, Message: msg}
		if err := r.opt.Store.ProposeTask(ctx, rec); err != nil {
			r.opt.Logger.Error("task: recording an interrupted occurrence", "task", t.Name, "err", err)
			continue
		}
		r.opt.Logger.Warn("task occurrence interrupted", "task", t.Name, "scheduled", t.Running.Scheduled, "epoch", uint64(t.Running.Epoch))
		o := *t.Running
		o.Finished, o.Result, o.Message = rec.At, rec.Result, rec.Message
		r.opt.Finished(t.Name, o)
	}
}

// due says which occurrence of t to run now, if any, and journals the
// missed ones before it.
func (r *Runner) due(ctx context.Context, t *Task, now time.Time) (sched time.Time, manual, ok bool) {
	if t.Running != nil {
		return time.Time{}, false, false // another period's, reported by interrupted
	}
	if !t.RunAt.IsZero() && !t.RunAt.After(now) {
		if t.RunAt.After(r.opt.Since) {
			return t.RunAt, true, true
		}
		r.missed(ctx, t, now, t.RunAt, 1, true, fmt.Sprintf("the run asked for %s came due before this server acted (epoch %d); not run late",
			t.RunAt.UTC().Format(time.RFC3339), r.opt.Epoch))
		return time.Time{}, false, false
	}
	latest, previous, n := Due(t, now)
	if n == 0 {
		return time.Time{}, false, false
	}
	if !latest.After(r.opt.Since) {
		r.missed(ctx, t, now, latest, n, false, fmt.Sprintf("%d occurrence(s) up to %s came due before this server acted (epoch %d); not run late",
			n, latest.UTC().Format(time.RFC3339), r.opt.Epoch))
		return time.Time{}, false, false
	}
	if n > 1 && !r.missed(ctx, t, now, previous, n-1, false, fmt.Sprintf("%d occurrence(s) up to %s came due while the task still ran or the server was busy; only the latest (%s) runs",
		n-1, previous.UTC().Format(time.RFC3339), latest.UTC().Format(time.RFC3339))) {
		return time.Time{}, false, false
	}
	return latest, false, true
}

// missed journals count occurrences of t missed, up to sched, and
// reports them.
func (r *Runner) missed(ctx context.Context, t *Task, now, sched time.Time, count int, manual bool, msg string) bool {
	if !r.opt.Acting() {
		return false
	}
	rec := Record{Version: RecordVersion, Kind: KindMissed, At: now, Task: t.Name, Scheduled: sched, Count: count,
		Manual: manual, Result: ResultMissed, Message: msg}
	if err := r.opt.Store.ProposeTask(ctx, rec); err != nil {
		r.opt.Logger.Error("task: recording missed occurrences", "task", t.Name, "err", err)
		return false
	}
	r.opt.Logger.Warn("task occurrences missed", "task", t.Name, "count", count, "last_missed", sched)
	r.opt.Finished(t.Name, Occurrence{Scheduled: sched, Finished: now, Manual: manual, Result: ResultMissed, Message: msg})
	return true
}

// start journals an occurrence started, before anything runs: should the
// server die from here on, the next acting server finds it started and
// does not run it again.
func (r *Runner) start(ctx context.Context, t *Task, sched time.Time, manual bool) bool {
	if !r.opt.Acting() || ctx.Err() != nil {
		return false
	}
	rec := Record{Version: RecordVersion, Kind: KindStarted, At: r.opt.Clock.Now(), Task: t.Name,
		Scheduled: sched, Epoch: r.opt.Epoch, Manual: manual}
	if err := r.opt.Store.ProposeTask(ctx, rec); err != nil {
		r.opt.Logger.Error("task: recording an occurrence started", "task", t.Name, "err", err)
		return false
	}
	r.opt.Logger.Info("task occurrence started", "task", t.Name, "scheduled", sched, "epoch", uint64(r.opt.Epoch), "manual", manual)
	return true
}

// run runs an occurrence's steps in order, stopping at the first that
// fails, and journals the outcome. If ctx ends (the period stops) the
// outcome is not journaled: the occurrence stays started, and the next
// acting period reports it interrupted.
func (r *Runner) run(ctx context.Context, t *Task, sched time.Time) {
	result, msg := ResultSuccess, fmt.Sprintf("%d step(s) done", len(t.Steps))
	for i, st := range t.Steps {
		if err := r.step(ctx, st); err != nil {
			result, msg = ResultFailed, fmt.Sprintf("step %d (%s): %v", i+1, st, err)
			break
		}
	}
	if ctx.Err() != nil {
		r.opt.Logger.Warn("task occurrence stopped with its acting period", "task", t.Name, "scheduled", sched)
		return
	}
	rec := Record{Version: RecordVersion, Kind: KindFinished, At: r.opt.Clock.Now(), Task: t.Name,
		Scheduled: sched, Result: result, Message: msg}
	if err := r.opt.Store.ProposeTask(ctx, rec); err != nil {
		r.opt.Logger.Error("task: recording an occurrence finished", "task", t.Name, "err", err)
		return
	}
	r.opt.Logger.Info("task occurrence finished", "task", t.Name, "scheduled", sched, "result", result, "message", msg)
	cur, _ := r.opt.Store.Tasks().Task(t.Name)
	o := Occurrence{Scheduled: sched, Finished: rec.At, Epoch: r.opt.Epoch, Result: result, Message: msg}
	if cur != nil && cur.Last != nil {
		o = *cur.Last
	}
	r.opt.Finished(t.Name, o)
}

// errWaitTimeout: a wait step's session did not reach its state in time.
var errWaitTimeout = errors.New("tasks: wait timed out")

func (r *Runner) step(ctx context.Context, st Step) error {
	if !st.Wait() {
		if !r.opt.Acting() {
			return fmt.Errorf("this server no longer acts")
		}
		return r.opt.Sessions.Command(ctx, st.Session, st.Command)
	}
	wctx, cancel := clock.WithTimeout(ctx, r.opt.Clock, st.Timeout)
	defer cancel()
	for {
		cur, ok := r.opt.Sessions.State(st.Session)
		if !ok {
			return fmt.Errorf("%w: %q", session.ErrUnknownSession, st.Session)
		}
		if cur == st.State {
			return nil
		}
		if err := clock.Sleep(wctx, r.opt.Clock, r.opt.WaitPoll); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: session %s is %s after %s, not %s", errWaitTimeout, st.Session, cur, st.Timeout, st.State)
		}
	}
}
