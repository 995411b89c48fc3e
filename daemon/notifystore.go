package daemon

import (
	"context"
	"fmt"

	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/transitions"
)

// stateEvents is the notification for entering each session state.
var stateEvents = map[session.State]notify.Event{
	session.Defined:          notify.SessionDefined,
	session.Preparing:        notify.SessionPreparing,
	session.Prepared:         notify.SessionPrepared,
	session.Suspending:       notify.SessionSuspending,
	session.Suspended:        notify.SessionSuspended,
	session.SuspendedPartial: notify.SessionSuspendedPartial,
	session.Recovering:       notify.SessionRecovering,
	session.TargetAvailable:  notify.SessionTargetAvailable,
}

// notifyingStore tells the operator and the NMS of every session state
// change and Recoverable change, whoever caused it (a command or the freeze
// core), once its record is durable.
type notifyingStore struct {
	session.Store
	em *emitter
	// replicated waits, while the pair is synchronized, for the
	// standby's fsync of the last record.
	replicated func(ctx context.Context)
}

func (n notifyingStore) Propose(ctx context.Context, r session.Record) error {
	var before *session.Session
	if r.Kind == session.KindStateChanged {
		before, _ = n.Store.DB().Session(r.Session)
	}
	if err := n.Store.Propose(ctx, r); err != nil {
		return err
	}
	// While synchronized, the answer waits for the standby's fsync.
	n.replicated(ctx)
	if before == nil || r.Change == nil {
		return nil
	}
	c := r.Change
	n.em.track.Changed(transitions.Session, r.Session,
		transitions.SessionState(before.State.Kebab(), before.Status.Kebab(), before.Recoverable),
		transitions.SessionState(c.State.Kebab(), c.Status.Kebab(), c.Recoverable))
	if c.State != before.State {
		n.em.emit(stateEvents[c.State], fmt.Sprintf("session %s: %s -> %s (%s)", r.Session, before.State, c.State, c.Reason),
			"session", r.Session, "state", c.State.String(), "status", c.Status.String(), "reason", c.Reason)
	}
	// Severe is what an operator must act on (suspended pairs, a failed
	// command, a system out of contact past the lowest CG timeout): said
	// when the session enters it, not on each change while it stays. The
	// reason is in the text (the journal), not in the fields: a long one
	// would cut the session's name off the NMS's 255 bytes.
	if c.Status == session.Severe && before.Status != session.Severe {
		n.em.emit(notify.SessionSevere, fmt.Sprintf("session %s is Severe: %s (%s)", r.Session, c.State, c.Reason),
			"session", r.Session, "group", before.CGName, "state", c.State.String())
	}
	if c.Recoverable != before.Recoverable {
		n.em.emit(notify.RecoverableChanged, fmt.Sprintf("session %s: Recoverable %v", r.Session, c.Recoverable),
			"session", r.Session, "recoverable", fmt.Sprint(c.Recoverable))
	}
	return nil
}
