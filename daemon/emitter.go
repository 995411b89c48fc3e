package daemon

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/lockstep-io/lockstep/daemon/control"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/transitions"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// emitter tells the operator and the NMS of a catalogue event in one
// call: the log (journald), an SNMP trap or inform for the events that
// trap, and the admin API's Event signal. The parts that report (the
// HA part, the acting period's reporter, the session store) take it
// rather than the server.
type emitter struct {
	log   *slog.Logger
	clock clock.Clock
	snmp  *notify.SNMP
	// track keeps what the NMS polls: each object's last change and
	// transitions (a poll cannot see a flap between two polls).
	track *transitions.Tracker

	ctl atomic.Pointer[control.Server] // set once the bus name is owned
	// early holds the events emitted before the admin API served (the
	// acting core's first reports race with the bus name), for it to
	// list once it does; earlyMu orders them with serve.
	earlyMu sync.Mutex
	early   []api.EventDoc
}

// maxEarlyEvents bounds the events kept before the admin API serves.
const maxEarlyEvents = 256

// emit logs a catalogue event, traps it if it traps, and signals it on
// the bus.
func (em *emitter) emit(e notify.Event, text string, kv ...string) {
	args := make([]any, 0, len(kv))
	fields := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		args = append(args, kv[i], kv[i+1])
		fields[kv[i]] = kv[i+1]
	}
	notify.Log(em.log, e, text, args...)
	if e.Trap {
		em.snmp.Send(e, fields)
	}
	ev := api.EventDoc{At: em.clock.Now(), ID: e.ID(), Severity: string(e.Severity), Text: text, Fields: fields}
	ctl := em.ctl.Load()
	if ctl == nil {
		em.earlyMu.Lock()
		if ctl = em.ctl.Load(); ctl == nil {
			if len(em.early) < maxEarlyEvents {
				em.early = append(em.early, ev)
			}
			em.earlyMu.Unlock()
			return
		}
		em.earlyMu.Unlock()
	}
	_, _ = ctl.Emit(ev)
}

// serve starts signalling on ctl: first is called once ctl is in place,
// then the events emitted before are signalled.
func (em *emitter) serve(ctl *control.Server, first func()) {
	em.earlyMu.Lock()
	em.ctl.Store(ctl)
	early := em.early
	em.early = nil
	em.earlyMu.Unlock()
	first()
	for _, ev := range early {
		_, _ = ctl.Emit(ev)
	}
}

// control is the admin API once it serves (nil before).
func (em *emitter) control() *control.Server { return em.ctl.Load() }
