package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/engine"
	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// duties are what an acting server (active or standalone) runs for one
// epoch: the freeze core, the engine that records its reports, and the
// session manager that carries out the administrator's commands. A
// standby runs none of them: it issues nothing to storage. The HA loop
// starts them (ha.StartActiveDuties) and stops them (StopActiveDuties, at
// once on a higher epoch); each period gets fresh ones, so nothing of a
// fenced period (a heartbeat in flight, a freeze retry) survives into the
// next.
type duties struct {
	epoch  hal.Epoch
	core   *freeze.Core
	engine *engine.Engine
	mgr    *session.Manager

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

func (s *Server) selfView() selfView {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	d := s.duty.Load()
	return selfView{st: s.view, at: s.clock.Now(),
		acting: d.isActing() && s.view.Role.Acting() && d.epoch == s.view.Epoch}
}

// commitView is the HA loop's OnCommit: the state becomes the view, and
// a period the new state does not act in ends in the same instant, before
// the step's persistence runs (a demotion stops at once, not after an
// fsync). A step undone later starts its period again (ha.Loop).
func (s *Server) commitView(_, n ha.State) {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	s.view = n
	if d := s.duty.Load(); d != nil && !(n.Role.Acting() && n.Epoch == d.epoch) {
		s.duty.Store(nil)
		d.cancel()
	}
}

// markFenced ends a period's fence pass; higher: a storage system knows a
// higher epoch, and the period never acts.
func (s *Server) markFenced(d *duties, higher bool) {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	if higher {
		d.superseded.Store(true)
	}
	close(d.fenced)
}

// supersede marks a period that a storage system fenced: it no longer
// acts.
func (s *Server) supersede(d *duties) {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	d.superseded.Store(true)
}

// errNotActing refuses a change on a server that does not act.
func (s *Server) errNotActing() error {
	st := s.ha.state()
	return fmt.Errorf("%w: this server is %s (HA state %s, epoch %d) and issues nothing: run the command on the active server",
		api.ErrRefused, st.Role, st.HAState(), st.Epoch)
}

// acting returns the duties of the current period, or the refusal for a
// change when the server does not act or cannot record the change (its
// journal cannot write: journalWritable).
func (s *Server) acting() (*duties, error) {
	if d := s.duty.Load(); d != nil {
		if err := s.journalWritable(); err != nil {
			return nil, err
		}
		return d, nil
	}
	return nil, s.errNotActing()
}

// startDuties begins an acting period at epoch. The previous period, if
// any, is stopped first and must have finished before the new one issues
// anything.
func (s *Server) startDuties(epoch hal.Epoch) {
	s.dutyMu.Lock()
	defer s.dutyMu.Unlock()
	if d := s.duty.Load(); d != nil {
		if d.epoch == epoch {
			return
		}
		s.stopDutiesLocked()
	}
	prev := s.lastDuties
	cfg := s.cfg.Load()
	ctx, cancel := context.WithCancel(s.runCtx)
	d := &duties{epoch: epoch, cancel: cancel,
		fenced: make(chan struct{}), done: make(chan struct{})}
	rep := &reporter{s: s, d: d}
	d.core = freeze.New(freeze.Options{Clock: s.clock, Logger: s.log, Timings: cfg.Heartbeat,
		Epoch: epoch, Heartbeat: s.registry().Heartbeat(), Observer: rep})
	d.engine = engine.New(engine.Options{Core: d.core, Epoch: func() hal.Epoch { return epoch }, Logger: s.log,
		Clock: s.clock, RequestTimeout: func() time.Duration { return s.cfg.Load().Heartbeat.RequestTimeout }})
	d.mgr = session.NewManager(notifyingStore{Store: s.store, s: s}, d.engine, s.clock)
	d.engine.Attach(d.mgr)
	s.viewMu.Lock()
	s.duty.Store(d)
	s.viewMu.Unlock()
	s.lastDuties = d
	go s.runDuties(ctx, d, prev)
}

// stopDuties ends the acting period at once: the core stops issuing
// (its in-flight freezes are finished by its drain, and a fenced server's
// are refused by storage anyway).
func (s *Server) stopDuties() {
	s.dutyMu.Lock()
	defer s.dutyMu.Unlock()
	s.stopDutiesLocked()
}

func (s *Server) stopDutiesLocked() {
	s.viewMu.Lock()
	d := s.duty.Swap(nil)
	s.viewMu.Unlock()
	if d != nil {
		d.cancel()
		s.updateStatus()
	}
}

func (s *Server) runDuties(ctx context.Context, d *duties, prev *duties) {
	defer close(d.done)
	if prev != nil {
		<-prev.done
	}
	s.reconcileDrivers()
	var higher bool
	d.unreachable, higher = s.fence(ctx, d.epoch)
	// Superseded before the fence pass shows as done: a period refused by
	// storage never shows as acting, even for an instant.
	s.markFenced(d, higher)
	if higher {
		// A storage system knows a higher epoch: another server took
		// over. This period never issues anything; the HA loop demotes
		// the server.
		s.ha.higherEpoch(d.epoch+1, "a storage system refusing the fence")
		return
	}
	if ctx.Err() != nil {
		return
	}
	s.log.Info("acting: every reachable storage system now refuses lower epochs",
		"epoch", uint64(d.epoch), "unreachable", fmt.Sprint(serials(d.unreachable)))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := d.core.Run(ctx); err != nil {
			s.log.Error("freeze core stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := d.engine.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("session recorder stopped", "err", err)
		}
	})
	systems := s.systems()
	d.engine.SetSystems(systems)
	if err := d.core.SetSystems(ctx, systems); err != nil && ctx.Err() == nil {
		s.log.Error("freeze core: storage systems", "err", err)
	}
	if err := d.engine.SyncGroups(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("freeze core: consistency groups", "err", err)
	}
	s.updateStatus()
	wg.Wait()
}

// fence sends the epoch to every storage system (QueryPaths, a read that
// carries it and that nothing else of an acting server sends, so that a
// storage system's command log shows the fence) before the core may
// issue anything: from then on each of them
// refuses the commands of a server with a lower epoch, so a former active
// that still believes it acts cannot change anything. The systems that
// did not answer are returned, with why: the takeover readiness of
// DESIGN.md §4. higher reports a system that refused the epoch as
// fenced: a higher one exists.
func (s *Server) fence(ctx context.Context, epoch hal.Epoch) (unreachable []api.ReadinessDoc, higher bool) {
	systems := s.systems()
	timeout := s.cfg.Load().Heartbeat.RequestTimeout
	var mu sync.Mutex
	var wg sync.WaitGroup
	for serial, sys := range systems {
		wg.Go(func() {
			cctx, cancel := clock.WithTimeout(ctx, s.clock, timeout)
			defer cancel()
			if _, err := sys.QueryPaths(cctx, epoch); err != nil {
				mu.Lock()
				defer mu.Unlock()
				if errors.Is(err, hal.ErrFenced) {
					s.log.Error("fence refused: a storage system knows a higher epoch", "serial", serial, "err", err)
					higher = true
					return
				}
				unreachable = append(unreachable, api.ReadinessDoc{Serial: serial,
					Reason: "did not answer the fence (the new epoch): " + err.Error()})
			}
		})
	}
	wg.Wait()
	for _, serial := range s.registry().Serials() {
		if _, ok := systems[serial]; !ok {
			unreachable = append(unreachable, api.ReadinessDoc{Serial: serial, Reason: s.drivers.noDriverReason(s.registry(), serial)})
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
