package daemon

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/transitions"
	"github.com/lockstep-io/lockstep/hal"
)

// reporter is the observer of one acting period's core: it tells the
// operator (journal, bus signal) and hands the report to that period's
// engine, which records it.
type reporter struct {
	em  *emitter
	log *slog.Logger
	d   *duties
	// status brings STATUS= up to date; supersede marks the period as
	// fenced in the server's view; higher tells the HA loop.
	status    func()
	supersede func(*duties)
	higher    func(e hal.Epoch, from string)
}

var (
	_ freeze.Observer          = (*reporter)(nil)
	_ freeze.HealthObserver    = (*reporter)(nil)
	_ freeze.HeartbeatObserver = (*reporter)(nil)
)

// superseded: once a storage system answered fenced, this period's core
// reports only on commands that storage refused; the server that fenced
// it owns the truth. Its reports are logged, not recorded or signalled:
// an NMS must not page on "not recoverable" from a server that no longer
// acts.
func (r *reporter) superseded(what, group string) bool {
	if !r.d.superseded.Load() {
		return false
	}
	r.log.Info("report of a fenced acting period ignored", "report", what, "group", group, "epoch", uint64(r.d.epoch))
	return true
}

func (r *reporter) Freezing(group, reason string, at time.Time) {
	if r.superseded("freezing", group) {
		return
	}
	r.em.track.Froze(group, at)
	r.em.track.Changed(transitions.Group, group, freeze.Mirroring.String(), freeze.Freezing.String())
	r.em.emit(notify.SuspendingEvent, "freezing consistency group "+group+": "+reason, "group", group, "reason", reason)
	if r.d.setDegraded(group, "contact", "") { // the freeze's reports tell from now on
		r.status()
	}
	r.d.engine.Freezing(group, reason, at)
}

func (r *reporter) Settled(group string, st freeze.Settlement) {
	if r.superseded("settled", group) {
		return
	}
	phase := freeze.Partial
	if st.Recoverable {
		phase = freeze.Frozen
	}
	r.em.track.Changed(transitions.Group, group, freeze.Freezing.String(), phase.String())
	switch {
	case st.Recoverable:
		r.em.emit(notify.GroupFrozen, "consistency group "+group+" frozen on every storage system in time: recoverable", "group", group)
	default:
		r.em.emit(notify.GroupPartial, "consistency group "+group+" not recoverable: "+st.Why, "group", group, "why", st.Why)
	}
	r.d.engine.Settled(group, st)
	r.status()
}

func (r *reporter) Thawed(group string, at time.Time) {
	if r.superseded("thawed", group) {
		return
	}
	r.em.track.Changed(transitions.Group, group, freeze.Frozen.String(), freeze.Thawed.String())
	r.em.emit(notify.GroupThawed, "I/O released on consistency group "+group, "group", group)
	r.d.engine.Thawed(group, at)
}

// Fenced: a storage system refused a command because it has seen a
// higher epoch. The HA loop demotes this server at once (no commands, no
// heartbeat); a storage system that did not say which epoch it saw
// counts as one above ours.
func (r *reporter) Fenced(epoch hal.Epoch) {
	r.supersede(r.d)
	r.d.engine.Fenced(epoch)
	seen := max(epoch, r.d.epoch+1)
	r.higher(seen, fmt.Sprintf("a storage system (epoch %d)", seen))
}

// Unprotected: the heartbeat is on but cannot protect the group. The
// group is still in the core's scope and frozen on every other sign; the
// operator is told (a trap, STATUS=, lockstepctl status) so that the
// timings or the CG timeouts can be fixed.
func (r *reporter) Unprotected(group, why string) {
	if r.superseded("unprotected", group) {
		return
	}
	text := ""
	if why != "" {
		text = "is not protected by the heartbeat: " + why
	}
	if !r.d.setDegraded(group, "unprotected", text) {
		return
	}
	if why != "" {
		r.em.emit(notify.GroupUnprotected, "consistency group "+group+" "+text, "group", group, "why", why)
	} else {
		r.log.Info("consistency group protected by the heartbeat again, or no longer needs it", "group", group)
	}
	r.d.engine.Unprotected(group, why)
	r.status()
}

// Contact: the storage systems of a mirroring group that the core cannot
// reach. The sessions show it (Warning, Severe past the lowest CG
// timeout); past the CG timeout the NMS is told.
func (r *reporter) Contact(group string, c freeze.Contact) {
	if r.superseded("contact", group) {
		return
	}
	text := ""
	if c.Severe() {
		text = "is out of contact: " + c.String()
	}
	if r.d.setDegraded(group, "contact", text) {
		if text != "" {
			r.em.emit(notify.GroupOutOfContact, "consistency group "+group+" "+text, "group", group, "contact", c.String())
		}
		r.status()
	}
	r.d.engine.Contact(group, c)
}

// HeartbeatExpired: a storage system froze itself because its heartbeat
// expired (the manager was silent for H, or said nothing it heard): it
// holds host writes for its CG timeout, whatever the manager does. The
// NMS is told which system, which LSS pairs and for how long.
func (r *reporter) HeartbeatExpired(group string, serial hal.Serial, pairs []hal.LSSPair, hold time.Duration, source string) {
	if r.superseded("heartbeat expired", group) {
		return
	}
	holds := "unknown (its CG timeout is not known)"
	if hold > 0 {
		holds = hold.String()
	}
	// The source LSSs frozen there (the serial is its own field): the
	// fields travel in 255 bytes.
	lss := make([]string, len(pairs))
	for i, p := range pairs {
		lss[i] = p.Source.LSS.String()
	}
	r.em.emit(notify.HeartbeatExpired, fmt.Sprintf("%s's heartbeat for consistency group %s expired: it froze itself and holds I/O for %s", serial, group, holds),
		"group", group, "serial", string(serial), "lss", strings.Join(lss, ","), "hold", holds, "source", source)
}

// SystemUnprotected: the heartbeat cannot be armed on a storage system
// (said once per change): if this manager went silent, that system would
// not freeze itself.
func (r *reporter) SystemUnprotected(group string, serial hal.Serial, why string) {
	if r.superseded("system unprotected", group) {
		return
	}
	if why == "" {
		r.log.Info("heartbeat armed: the storage system is protected by it again", "group", group, "serial", serial)
		return
	}
	r.em.emit(notify.HeartbeatUnprotected, fmt.Sprintf("the heartbeat cannot be armed on %s for consistency group %s: %s", serial, group, why),
		"group", group, "serial", string(serial), "why", why)
}
