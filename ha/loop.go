package ha

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Effects carries out Step's actions; the daemon implements it (package
// link for the peer, persist for the journal and backups, the freeze
// core for the active duties). The Loop calls it from its own goroutine,
// one action at a time, in order.
//
// The persisting methods and RestoreFrom are synchronous and their error
// undoes the step (see ActionFailed). Every other method must return at once: work that
// takes time (dialing, a backup, a snapshot) runs elsewhere and reports
// its outcome with Loop.Post (LinkUp or ConnectFailed, BackupTaken or
// BackupFailed, ...). No method may call Loop.Do.
type Effects interface {
	PersistEpoch(ctx context.Context, e hal.Epoch) error
	// PersistRelationship also carries out PersistHAState, whose
	// failure is only logged.
	PersistRelationship(ctx context.Context, r Relationship) error
	// RestoreFrom replaces the server's state with a backup; it returns
	// once done (the Loop waits: a restore is a command's action).
	RestoreFrom(ctx context.Context, backup string) error

	Connect(addr string)
	Disconnect(link LinkID, why error)
	NotifyEpoch(link LinkID, e hal.Epoch)
	Serve(link LinkID, role Role)

	TakeBackup(link LinkID)
	TakeAutobackup(link LinkID)
	RequestSync(link LinkID, full bool)
	SendSnapshot(link LinkID)
	StartStream(link LinkID)
	RestoreBackup()

	StartActiveDuties(e hal.Epoch, takeover bool)
	StopActiveDuties()

	Emit(n Notice)
}

// Message ids of what the Loop logs (msg_id), stable for operators.
const (
	MsgActionFailed = "ha-action-failed-E"
	MsgStep         = "ha-step-I"
)

// LoopOptions configure a Loop. The zero value is usable.
type LoopOptions struct {
	Clock  clock.Clock  // nil: real time
	Logger *slog.Logger // nil: discard
	// OnCommit, if set, is called with each state the Loop commits, from
	// the Loop's goroutine and with its lock held: before State returns
	// the new state and before any action of the step runs. It must be
	// quick and must not call the Loop. The daemon keeps its one view of
	// role, epoch and acting there, and ends an acting period in the same
	// instant as the state that ends it: a server that has decided to
	// stop acting (a higher epoch, a standby's role) must neither act nor
	// say it acts while the step's persistence runs.
	OnCommit func(old, new State)
}

// Loop applies Step to the events of one server, on its clock, and
// carries out the actions through Effects. It is a daemon Task (Run,
// Ready, String).
type Loop struct {
	cfg Config
	fx  Effects
	clk clock.Clock
	log *slog.Logger

	ready    chan struct{}
	wake     chan struct{} // one pending wake-up of Run
	onCommit func(old, new State)

	mu      sync.Mutex
	state   State
	queue   []queued
	timer   clock.Timer // the next Tick, nil if none is due
	stopped bool        // Run has returned
}

type queued struct {
	ev   Event
	done chan error // nil for Post
}

// ErrLoopStopped: the Loop's Run has ended; Do cannot be answered.
var ErrLoopStopped = errors.New("ha: the HA loop is not running")

// NewLoop returns a Loop starting from initial (what the daemon
// persisted: Role, Peer, Epoch, Seen).
func NewLoop(initial State, cfg Config, fx Effects, opts LoopOptions) *Loop {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Loop{
		cfg:   cfg,
		fx:    fx,
		clk:   clock.OrReal(opts.Clock),
		log:   log.With("component", "ha"),
		ready: make(chan struct{}),
		wake:  make(chan struct{}, 1),
		state: initial,

		onCommit: opts.OnCommit,
	}
}

func (l *Loop) String() string { return "ha" }

// Ready is closed once Start has been stepped.
func (l *Loop) Ready() <-chan struct{} { return l.ready }

// State is the current state.
func (l *Loop) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Post queues ev for the Loop and returns at once. Effects report their
// outcomes with it; it never blocks. After Run returned, ev is dropped.
func (l *Loop) Post(ev Event) { l.enqueue(queued{ev: ev}) }

// Do steps ev (an administrator's command) and returns the refusal, if
// any, once its actions ran: nil means accepted. ErrLoopStopped once Run
// has returned.
func (l *Loop) Do(ctx context.Context, ev Event) error {
	done := make(chan error, 1)
	if !l.enqueue(queued{ev: ev, done: done}) {
		return ErrLoopStopped
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue queues q for Run; false once Run has returned.
func (l *Loop) enqueue(q queued) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.queue = append(l.queue, q)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// Run steps Start, then every event posted, and a Tick whenever the
// reconnection schedule falls due, until ctx ends. Commands still queued
// then are answered with ErrLoopStopped.
func (l *Loop) Run(ctx context.Context) error {
	l.apply(ctx, Start{})
	close(l.ready)
	for {
		select {
		case <-ctx.Done():
			l.mu.Lock()
			if l.timer != nil {
				l.timer.Stop()
				l.timer = nil
			}
			left := l.queue
			l.queue, l.stopped = nil, true
			l.mu.Unlock()
			for _, q := range left {
				if q.done != nil {
					q.done <- ErrLoopStopped
				}
			}
			return nil
		case <-l.wake:
		}
		for {
			l.mu.Lock()
			if len(l.queue) == 0 {
				l.mu.Unlock()
				break
			}
			q := l.queue[0]
			l.queue = l.queue[1:]
			l.mu.Unlock()
			err := l.apply(ctx, q.ev)
			if q.done != nil {
				q.done <- err
			}
		}
	}
}

// apply steps ev and runs its actions; it returns the refusal, if any.
func (l *Loop) apply(ctx context.Context, ev Event) error {
	now := l.clk.Now()
	l.mu.Lock()
	pre := l.state
	l.mu.Unlock()

	s, acts := Step(pre, ev, now, l.cfg)
	l.commit(s)
	failed, refusal := l.run(ctx, acts, true)
	if failed != nil {
		l.log.Error("ha action failed; its step is undone", "msg_id", MsgActionFailed,
			"event", ev.String(), "action", failed.Action.String(), "err", failed.Err)
		failed.Cause = ev
		tentative := s
		s, acts = Step(pre, *failed, now, l.cfg)
		if s.Role.Acting() && !(tentative.Role.Acting() && tentative.Epoch == s.Epoch) {
			// The undone step had ended the acting period at its commit
			// (OnCommit); the state it returns to acts again.
			acts = append([]Action{StartActiveDuties{Epoch: s.Epoch}}, acts...)
		}
		l.commit(s)
		_, refusal = l.run(ctx, acts, false)
	}
	if pre.Status() != s.Status() {
		l.log.Info("ha state changed", "msg_id", MsgStep, "event", ev.String(),
			"role", s.Role.String(), "ha_state", s.HAState(), "epoch", uint64(s.Epoch))
	}
	l.arm(s)
	return refusal
}

func (l *Loop) commit(s State) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.onCommit != nil {
		l.onCommit(l.state, s)
	}
	l.state = s
}

// run executes acts in order. A fallible action that fails stops it (when
// stopOnFailure) and is returned; the refusal of a Refuse is returned.
func (l *Loop) run(ctx context.Context, acts []Action, stopOnFailure bool) (failed *ActionFailed, refusal error) {
	for _, a := range acts {
		var err error
		switch a := a.(type) {
		case PersistEpoch:
			err = l.fx.PersistEpoch(ctx, a.Epoch)
		case PersistRelationship:
			err = l.fx.PersistRelationship(ctx, a.Relationship)
		case PersistHAState:
			if perr := l.fx.PersistRelationship(ctx, a.Relationship); perr != nil {
				l.log.Error("ha state not persisted: a restart would resume from the state before", "msg_id", MsgActionFailed,
					"action", a.String(), "err", perr)
			}
		case RestoreFrom:
			err = l.fx.RestoreFrom(ctx, a.Backup)
		case Connect:
			l.fx.Connect(a.Addr)
		case Disconnect:
			l.fx.Disconnect(a.Link, a.Err)
		case NotifyEpoch:
			l.fx.NotifyEpoch(a.Link, a.Epoch)
		case Serve:
			l.fx.Serve(a.Link, a.Role)
		case TakeBackup:
			l.fx.TakeBackup(a.Link)
		case TakeAutobackup:
			l.fx.TakeAutobackup(a.Link)
		case RequestSync:
			l.fx.RequestSync(a.Link, a.Full)
		case SendSnapshot:
			l.fx.SendSnapshot(a.Link)
		case StartStream:
			l.fx.StartStream(a.Link)
		case RestoreBackup:
			l.fx.RestoreBackup()
		case StartActiveDuties:
			l.fx.StartActiveDuties(a.Epoch, a.Takeover)
		case StopActiveDuties:
			l.fx.StopActiveDuties()
		case Emit:
			l.fx.Emit(a.Notice)
		case Refuse:
			refusal = a.Err
		}
		if err != nil {
			if stopOnFailure {
				return &ActionFailed{Action: a, Err: err}, refusal
			}
			l.log.Error("ha action failed", "msg_id", MsgActionFailed, "action", a.String(), "err", err)
		}
	}
	return nil, refusal
}

// arm sets the timer for the next Tick of s, if one is due; one already
// due is posted at once.
func (l *Loop) arm(s State) {
	due, ok := Wakeup(s)
	l.mu.Lock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if ok {
		if d := due.Sub(l.clk.Now()); d > 0 {
			l.timer = l.clk.AfterFunc(d, func() { l.Post(Tick{}) })
			ok = false
		}
	}
	l.mu.Unlock()
	if ok {
		l.Post(Tick{})
	}
}
