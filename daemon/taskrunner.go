package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/daemon/tasks"
)

// taskRunner is the scheduled tasks' runner of an acting period: its
// steps go through the period's session manager (so their storage
// commands carry the period's epoch), it starts nothing unless the
// period acts, and an occurrence's start is journaled, and replicated
// to a synchronized standby, before its first step.
func (p *periods) taskRunner(d *duties) *tasks.Runner {
	return tasks.NewRunner(tasks.Options{
		Clock: p.clock, Logger: p.log.With("component", "tasks"), Epoch: d.epoch,
		Store:    replicatedTasks{store: p.store, replicated: p.replicated},
		Sessions: periodSessions{p: p, d: d},
		Acting:   d.isActing,
		Finished: func(task string, o tasks.Occurrence) { p.taskFinished(task, o) },
	})
}

// taskFinished sends the event (and trap) of an occurrence's end.
func (p *periods) taskFinished(task string, o tasks.Occurrence) {
	e := notify.TaskFailed
	if o.Result == tasks.ResultSuccess {
		e = notify.TaskSucceeded
	}
	p.em.emit(e, fmt.Sprintf("task %s: %s: %s", task, o.Result, o.Message),
		"task", task, "scheduled", o.Scheduled.UTC().Format(time.RFC3339), "epoch", fmt.Sprint(uint64(o.Epoch)),
		"result", o.Result, "message", o.Message)
}

// replicatedTasks journals task records and, while the pair is
// synchronized, waits for the standby's fsync: the standby that takes
// over knows every occurrence started, and reports it interrupted
// rather than run it again.
type replicatedTasks struct {
	store      *state.Store
	replicated func(ctx context.Context)
}

func (r replicatedTasks) Tasks() *tasks.DB { return r.store.Tasks() }

func (r replicatedTasks) ProposeTask(ctx context.Context, rec tasks.Record) error {
	if err := r.store.ProposeTask(ctx, rec); err != nil {
		return err
	}
	r.replicated(ctx)
	return nil
}

// periodSessions carries out steps with the period's session manager.
type periodSessions struct {
	p *periods
	d *duties
}

func (s periodSessions) Command(ctx context.Context, name string, cmd session.Command) error {
	defer s.p.status()
	return s.d.mgr.Command(ctx, name, cmd)
}

func (s periodSessions) State(name string) (session.State, bool) {
	se, ok := s.p.store.DB().Session(name)
	if !ok {
		return 0, false
	}
	return se.State, true
}
