package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/engine"
	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/daemon/tasks"
	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// duties are what an acting server (active or standalone) runs for one
// epoch: the freeze core, the engine that records its reports, the
// session manager that carries out the administrator's commands, and
// the runner of scheduled tasks. A standby runs none of them: it issues
// nothing to storage and runs no task. The HA loop
// starts them (ha.StartActiveDuties) and stops them (StopActiveDuties, at
// once on a higher epoch); each period gets fresh ones, so nothing of a
// fenced period (a heartbeat in flight, a freeze retry) survives into the
// next.
type duties struct {
	epoch  hal.Epoch
	core   *freeze.Core
	engine *engine.Engine
	mgr    *session.Manager
	tasks  *tasks.Runner

	cancel context.CancelFunc
	// fenced is closed once every reachable storage system has seen the
	// epoch (the fence pass), before the core issues anything;
	// unreachable lists the others, with why: the takeover readiness.
	fenced      chan struct{}
	unreachable []api.ReadinessDoc
	done        chan struct{} // closed when the core and the engine stopped
	// superseded: a storage system answered fenced; the period's reports
	// are no longer recorded (see reporter).
	superseded atomic.Bool

	// degraded is what the core reported it cannot vouch for, by group:
	// "unprotected" and "contact" sentences (STATUS=, status).
	degradedMu sync.Mutex
	degraded   map[string]map[string]string
}

// setDegraded records (why != "") or clears one kind of degradation of a
// group and reports whether anything changed.
func (d *duties) setDegraded(group, kind, why string) bool {
	d.degradedMu.Lock()
	defer d.degradedMu.Unlock()
	if d.degraded == nil {
		d.degraded = map[string]map[string]string{}
	}
	if d.degraded[group][kind] == why {
		return false
	}
	if why == "" {
		delete(d.degraded[group], kind)
		if len(d.degraded[group]) == 0 {
			delete(d.degraded, group)
		}
		return true
	}
	if d.degraded[group] == nil {
		d.degraded[group] = map[string]string{}
	}
	d.degraded[group][kind] = why
	return true
}

// degradations are the sentences of setDegraded, by group then kind.
func (d *duties) degradations() []string {
	out := []string{}
	if d == nil {
		return out
	}
	d.degradedMu.Lock()
	defer d.degradedMu.Unlock()
	for _, g := range slices.Sorted(maps.Keys(d.degraded)) {
		for _, k := range slices.Sorted(maps.Keys(d.degraded[g])) {
			out = append(out, fmt.Sprintf("group %s %s", g, d.degraded[g][k]))
		}
	}
	return out
}

// isActing reports a period whose fence pass is done and that no storage
// system has fenced: its core may issue commands. Nil (no period) does
// not act.
func (d *duties) isActing() bool {
	if d == nil {
		return false
	}
	select {
	case <-d.fenced:
		return !d.superseded.Load()
	default:
		return false
	}
}

// periods owns the acting periods: it starts one per epoch the HA loop
// acts in, stops it, and waits for it; and it holds the server's view of
// itself (the HA state the loop committed and the period in duty), which
// changes only under viewMu. Its parts are given, not reached for: the
// configuration, clock, logger, store, emitter and drivers, and calls
// back (tell the HA loop of a higher epoch, bring STATUS= up to date,
// wait for the standby).
type periods struct {
	cfg     func() *config.Config
	clock   clock.Clock
	log     *slog.Logger
	store   *state.Store
	em      *emitter
	drivers *storageDrivers
	swaps   *swapHosts
	// higher tells the HA loop that a higher epoch exists.
	higher func(e hal.Epoch, from string)
	// status brings STATUS= and the admin API's properties up to date.
	status func()
	// replicated waits, while the pair is synchronized, for the standby's
	// fsync of the last record.
	replicated func(ctx context.Context)

	// life is the parent of every period: Run's context, set by open.
	// The HA loop starts periods through Effects, which carry no
	// context, so this one is kept; every period it parents is joined
	// (wg) before Run returns.
	life context.Context
	wg   sync.WaitGroup

	// duty is the current acting period (nil: this server does not act);
	// dutyMu orders its starts and stops, and last is the latest
	// period, which the next one waits for.
	duty   atomic.Pointer[duties]
	dutyMu sync.Mutex
	last   *duties
	// viewMu makes the server's view of itself one snapshot: the HA
	// state the loop committed (view), the period in duty, and whether
	// that period acts (its fence pass done, not superseded) change only
	// under it, and selfView reads them, with the time, under it.
	viewMu sync.Mutex
	view   ha.State
}

// open sets the context every period runs in (Run's).
func (p *periods) open(ctx context.Context) {
	p.dutyMu.Lock()
	defer p.dutyMu.Unlock()
	p.life = ctx
}

// current is the period in duty, nil when the server does not act.
func (p *periods) current() *duties { return p.duty.Load() }

// selfView is the server's view of itself at one instant: the HA state
// the loop committed, whether the server acts, and the server's clock,
// read together under viewMu. A server acts when its role acts, a
// period of its epoch is in duty, and that period's fence pass is done
// and no storage system fenced it: ha status never shows a standby as
// acting, nor an epoch that is not the acting period's.
type selfView struct {
	st     ha.State
	acting bool
	at     time.Time
}

func (p *periods) selfView() selfView {
	p.viewMu.Lock()
	defer p.viewMu.Unlock()
	d := p.duty.Load()
	return selfView{st: p.view, at: p.clock.Now(),
		acting: d.isActing() && p.view.Role.Acting() && d.epoch == p.view.Epoch}
}

// setView is the loop's initial state, before it runs.
func (p *periods) setView(st ha.State) {
	p.viewMu.Lock()
	defer p.viewMu.Unlock()
	p.view = st
}

// commitView is the HA loop's OnCommit: the state becomes the view, and
// a period the new state does not act in ends in the same instant, before
// the step's persistence runs (a demotion stops at once, not after an
// fsync). A step undone later starts its period again (ha.Loop).
func (p *periods) commitView(_, n ha.State) {
	p.viewMu.Lock()
	defer p.viewMu.Unlock()
	p.view = n
	if d := p.duty.Load(); d != nil && !(n.Role.Acting() && n.Epoch == d.epoch) {
		p.duty.Store(nil)
		d.cancel()
	}
}

// markFenced ends a period's fence pass; higher: a storage system knows a
// higher epoch, and the period never acts.
func (p *periods) markFenced(d *duties, higher bool) {
	p.viewMu.Lock()
	defer p.viewMu.Unlock()
	if higher {
		d.superseded.Store(true)
	}
	close(d.fenced)
}

// supersede marks a period that a storage system fenced: it no longer
// acts.
func (p *periods) supersede(d *duties) {
	p.viewMu.Lock()
	defer p.viewMu.Unlock()
	d.superseded.Store(true)
}

// start begins an acting period at epoch. The previous period, if
// any, is stopped first and must have finished before the new one issues
// anything.
func (p *periods) start(epoch hal.Epoch) {
	p.dutyMu.Lock()
	defer p.dutyMu.Unlock()
	if d := p.duty.Load(); d != nil {
		if d.epoch == epoch {
			return
		}
		p.stopLocked()
	}
	if p.life == nil {
		p.log.Error("acting period not started: the daemon does not run", "epoch", uint64(epoch))
		return
	}
	prev := p.last
	cfg := p.cfg()
	ctx, cancel := context.WithCancel(p.life)
	d := &duties{epoch: epoch, cancel: cancel,
		fenced: make(chan struct{}), done: make(chan struct{})}
	rep := &reporter{em: p.em, log: p.log, d: d, status: p.status, supersede: p.supersede, higher: p.higher}
	d.core = freeze.New(freeze.Options{Clock: p.clock, Logger: p.log, Timings: cfg.Heartbeat,
		Epoch: epoch, Heartbeat: p.store.Registry().Heartbeat(), Observer: rep})
	d.engine = engine.New(engine.Options{Core: d.core, Epoch: func() hal.Epoch { return epoch }, Logger: p.log,
		Clock: p.clock, RequestTimeout: func() time.Duration { return p.cfg().Heartbeat.RequestTimeout },
		SwapHosts: p.swaps.forSerials})
	d.mgr = session.NewManager(notifyingStore{Store: p.store, em: p.em, replicated: p.replicated}, d.engine, p.clock)
	d.engine.Attach(d.mgr)
	d.tasks = p.taskRunner(d)
	p.viewMu.Lock()
	p.duty.Store(d)
	p.viewMu.Unlock()
	p.last = d
	p.wg.Go(func() { p.run(ctx, d, prev) })
}

// stop ends the acting period at once: the core stops issuing (its
// in-flight freezes are finished by its drain, and a fenced server's
// are refused by storage anyway). It does not wait: join does.
func (p *periods) stop() {
	p.dutyMu.Lock()
	defer p.dutyMu.Unlock()
	p.stopLocked()
}

func (p *periods) stopLocked() {
	p.viewMu.Lock()
	d := p.duty.Swap(nil)
	p.viewMu.Unlock()
	if d != nil {
		d.cancel()
		p.status()
	}
}

// join stops the acting period and waits for every period to end, at
// most bound, and reports whether they did. A stopping core's drain
// finishes the freezes in flight within its own bound (the request
// timeout and a heartbeat interval), which bound exceeds. Run joins the
// periods before it closes the drivers, so that a freeze in flight
// reaches storage; should one still run after bound (wedged on storage),
// Run closes the drivers under it and then waits for it (wait).
func (p *periods) join(bound time.Duration) bool {
	p.stop()
	done := make(chan struct{})
	// Ends when the periods do, which wait (after join) waits for.
	go func() { p.wg.Wait(); close(done) }()
	t := p.clock.NewTimer(bound)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C():
		p.log.Error("acting period still running at shutdown; closing the storage drivers under it", "waited", bound.String())
		return false
	}
}

// wait waits for every period to end.
func (p *periods) wait() { p.wg.Wait() }

func (p *periods) run(ctx context.Context, d *duties, prev *duties) {
	defer close(d.done)
	if prev != nil {
		<-prev.done
	}
	p.drivers.reconcile()
	var higher bool
	d.unreachable, higher = p.fence(ctx, d.epoch)
	// Superseded before the fence pass shows as done: a period refused by
	// storage never shows as acting, even for an instant.
	p.markFenced(d, higher)
	if higher {
		// A storage system knows a higher epoch: another server took
		// over. This period never issues anything; the HA loop demotes
		// the server.
		p.higher(d.epoch+1, "a storage system refusing the fence")
		return
	}
	if ctx.Err() != nil {
		return
	}
	p.log.Info("acting: every reachable storage system now refuses lower epochs",
		"epoch", uint64(d.epoch), "unreachable", fmt.Sprint(serials(d.unreachable)))
	var wg sync.WaitGroup
	// The task runner is the period's, like the core and the engine:
	// started only after the fence pass, joined before the period ends,
	// so no occurrence outlives the epoch it was journaled with.
	wg.Go(func() {
		if err := d.tasks.Run(ctx); err != nil {
			p.log.Error("task runner stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := d.core.Run(ctx); err != nil {
			p.log.Error("freeze core stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := d.engine.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			p.log.Error("session recorder stopped", "err", err)
		}
	})
	systems := p.drivers.systems()
	d.engine.SetSystems(systems)
	if err := d.core.SetSystems(ctx, systems); err != nil && ctx.Err() == nil {
		p.log.Error("freeze core: storage systems", "err", err)
	}
	if err := d.engine.SyncGroups(ctx); err != nil && ctx.Err() == nil {
		p.log.Error("freeze core: consistency groups", "err", err)
	}
	// The z/OS hosts' swap reports and status, on the acting server only
	// (its epoch), once the sessions' groups are in the core: the first
	// status read records a swap the journal missed (restart, takeover).
	wg.Go(func() {
		p.swaps.watch(ctx, d.engine, d.epoch, p.clock,
			func() time.Duration { return p.cfg().Heartbeat.PollInterval },
			func() time.Duration { return p.cfg().Heartbeat.RequestTimeout })
	})
	p.status()
	wg.Wait()
}

// fence sends the epoch to every storage system (QueryPaths, a read that
// carries it and that nothing else of an acting server sends, so that a
// storage system's command log shows the fence) before the core may
// issue anything: from then on each of them
// refuses the commands of a server with a lower epoch, so a former active
// that still believes it acts cannot change anything. The systems that
// did not answer are returned, with why: the takeover readiness of
// docs/architecture.md (Storage connections). higher reports a system that refused the epoch as
// fenced: a higher one exists.
func (p *periods) fence(ctx context.Context, epoch hal.Epoch) (unreachable []api.ReadinessDoc, higher bool) {
	systems := p.drivers.systems()
	timeout := p.cfg().Heartbeat.RequestTimeout
	var mu sync.Mutex
	var wg sync.WaitGroup
	for serial, sys := range systems {
		wg.Go(func() {
			cctx, cancel := clock.WithTimeout(ctx, p.clock, timeout)
			defer cancel()
			if _, err := sys.QueryPaths(cctx, epoch); err != nil {
				mu.Lock()
				defer mu.Unlock()
				if errors.Is(err, hal.ErrFenced) {
					p.log.Error("fence refused: a storage system knows a higher epoch", "serial", serial, "err", err)
					higher = true
					return
				}
				unreachable = append(unreachable, api.ReadinessDoc{Serial: serial,
					Reason: "did not answer the fence (the new epoch): " + err.Error()})
			}
		})
	}
	wg.Wait()
	reg := p.store.Registry()
	for _, serial := range reg.Serials() {
		if _, ok := systems[serial]; !ok {
			unreachable = append(unreachable, api.ReadinessDoc{Serial: serial, Reason: p.drivers.noDriverReason(reg, serial)})
		}
	}
	slices.SortFunc(unreachable, func(a, b api.ReadinessDoc) int { return strings.Compare(string(a.Serial), string(b.Serial)) })
	return slices.CompactFunc(unreachable, func(a, b api.ReadinessDoc) bool { return a.Serial == b.Serial }), higher
}

func serials(r []api.ReadinessDoc) []hal.Serial {
	out := []hal.Serial{}
	for _, x := range r {
		out = append(out, x.Serial)
	}
	return out
}
