package daemon

import (
	"fmt"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/hal"
)

// reporter is the core's observer: it tells the operator (journal, bus
// signal) and hands the report to the engine, which records it.
type reporter Server

var _ freeze.Observer = (*reporter)(nil)

func (r *reporter) Freezing(group, reason string, at time.Time) {
	(*Server)(r).emit(notify.SuspendingEvent, "freezing consistency group "+group+": "+reason, "group", group, "reason", reason)
	r.engine.Freezing(group, reason, at)
}

func (r *reporter) Settled(group string, st freeze.Settlement) {
	s := (*Server)(r)
	switch {
	case st.Recoverable:
		s.emit(notify.GroupFrozen, "consistency group "+group+" frozen on every storage system in time: recoverable", "group", group)
	default:
		s.emit(notify.GroupPartial, "consistency group "+group+" not recoverable: "+st.Why, "group", group, "why", st.Why)
	}
	r.engine.Settled(group, st)
	s.updateStatus()
}

func (r *reporter) Thawed(group string, at time.Time) {
	(*Server)(r).emit(notify.GroupThawed, "I/O released on consistency group "+group, "group", group)
	r.engine.Thawed(group, at)
}

func (r *reporter) Fenced(epoch hal.Epoch) {
	(*Server)(r).emit(notify.Demoted, fmt.Sprintf("a storage system knows epoch %d: this server stops acting", epoch),
		"epoch", fmt.Sprint(epoch))
	r.engine.Fenced(epoch)
}
