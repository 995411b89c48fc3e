package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
)

// viewProbe carries out the HA loop's actions with the server's own
// Effects, and reads ha status in the middle of each step: before each
// action, the moment a view read at two different instants (the loop's
// committed state, the acting period) would disagree. It can fail the
// relationship's persistence on demand.
type viewProbe struct {
	*haNode
	s       *Server
	failRel atomic.Bool

	mu  sync.Mutex
	bad []string
	// stoppedBeforePersist counts persistences of a step that ends acting
	// which found the acting period already stopped.
	stoppedBeforePersist int
}

func (p *viewProbe) check(where string) api.HADoc {
	doc, err := p.s.HAStatus(context.Background())
	if err != nil {
		p.report("%s: ha status: %v", where, err)
		return doc
	}
	if msg := viewContradiction(doc); msg != "" {
		p.report("%s: %s", where, msg)
	}
	return doc
}

func (p *viewProbe) report(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bad = append(p.bad, fmt.Sprintf(format, args...))
}

// viewContradiction says what is wrong with a view that shows a server
// acting in a role that does not act.
func viewContradiction(doc api.HADoc) string {
	if doc.Acting && doc.Role != ha.Active.String() && doc.Role != ha.Standalone.String() {
		return fmt.Sprintf("ha status shows a %s acting (epoch %d, state %s)", doc.Role, doc.Epoch, doc.State)
	}
	return ""
}

func (p *viewProbe) PersistEpoch(ctx context.Context, e hal.Epoch) error {
	p.check("persist-epoch")
	return p.haNode.PersistEpoch(ctx, e)
}

func (p *viewProbe) PersistRelationship(ctx context.Context, r ha.Relationship) error {
	doc := p.check("persist-relationship " + r.Role.String())
	if !r.Role.Acting() {
		// The step ends acting: the period must be over already, before
		// this (fsynced) write.
		if p.s.acting.current() != nil || doc.Acting {
			p.report("persisting the relationship of a %s while the acting period still runs (acting %v)", r.Role, doc.Acting)
		} else {
			p.mu.Lock()
			p.stoppedBeforePersist++
			p.mu.Unlock()
		}
	}
	if p.failRel.Load() {
		return errors.New("test: the disk refuses the relationship file")
	}
	return p.haNode.PersistRelationship(ctx, r)
}

func (p *viewProbe) StartActiveDuties(e hal.Epoch, tko bool) {
	p.check("start-active-duties")
	p.haNode.StartActiveDuties(e, tko)
}

func (p *viewProbe) StopActiveDuties() {
	p.check("stop-active-duties")
	p.haNode.StopActiveDuties()
}

func (p *viewProbe) Emit(n ha.Notice) {
	p.check("emit")
	p.haNode.Emit(n)
}

// TestStatusNeverShowsAStandbyActing: a standalone server is demoted by a
// higher epoch and takes over again, round after round, and a
// set-as-standby whose relationship cannot be written is undone; ha
// status is read in the middle of every step (viewProbe) and, all along,
// by a client on the bus: it never shows a standby as acting; the period
// ends before the demotion is persisted; the view's epoch is the acting
// period's; its time is the server's, within the call; and the undone
// step acts again.
func TestStatusNeverShowsAStandbyActing(t *testing.T) {
	var probe *viewProbe
	s, c := newServer(t, "", func(s *Server) {
		probe = &viewProbe{haNode: s.ha, s: s}
		s.ha.loop = s.ha.newLoop(s.ha.loop.State(), probe)
	})
	ctx := context.Background()

	// A client polls ha status on the bus all along.
	stop := make(chan struct{})
	var polled atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			before := time.Now()
			doc, err := c.HAStatus(ctx)
			after := time.Now()
			if err != nil {
				probe.report("ha status on the bus: %v", err)
				return
			}
			polled.Add(1)
			if msg := viewContradiction(doc); msg != "" {
				probe.report("on the bus: %s", msg)
			}
			// The server stamps its view while it answers; one host, one
			// CLOCK_REALTIME.
			if doc.At.Before(before.Round(0)) || doc.At.After(after.Round(0)) {
				probe.report("view stamped %s, outside the call (%s to %s)", doc.At, before, after)
			}
		}
	})
	stopPolling := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopPolling()

	actingAt := func(e hal.Epoch) {
		t.Helper()
		if err := within(30*time.Second, func() bool {
			d, err := c.HAStatus(ctx)
			return err == nil && d.Acting && d.Epoch == e
		}); err != nil {
			d, _ := c.HAStatus(ctx)
			t.Fatalf("not acting at epoch %d: %+v", e, d)
		}
		if d := s.acting.current(); d == nil || d.epoch != e {
			t.Fatalf("acting at epoch %d without a period of that epoch", e)
		}
	}
	epoch := s.ha.state().Epoch
	actingAt(epoch)
	const rounds = 10
	for range rounds {
		s.ha.loop.Post(ha.HigherEpochSeen{Epoch: epoch + 1, From: "test"})
		if err := within(30*time.Second, func() bool { return s.ha.state().Role == ha.DisconnectedStandby }); err != nil {
			t.Fatal("not demoted")
		}
		if d, _ := c.HAStatus(ctx); d.Acting {
			t.Fatalf("demoted, and acting: %+v", d)
		}
		if err := s.ha.loop.Do(ctx, ha.Takeover{}); err != nil {
			t.Fatalf("takeover: %v", err)
		}
		epoch += 2
		actingAt(epoch)
	}

	// ha set-as-standby ends acting at its commit; the relationship file
	// cannot be written, so the step is undone and the server acts again,
	// at its epoch.
	probe.failRel.Store(true)
	err := s.ha.loop.Do(ctx, ha.SetAsStandby{Addr: "tcp://127.0.0.1:9", Name: "b"})
	if err == nil {
		t.Fatal("set-as-standby succeeded without its relationship file")
	}
	probe.failRel.Store(false)
	if st := s.ha.state(); st.Role != ha.Standalone || st.Epoch != epoch {
		t.Fatalf("after the undone set-as-standby: %s epoch %d", st.Role, st.Epoch)
	}
	actingAt(epoch)

	stopPolling()
	probe.mu.Lock()
	defer probe.mu.Unlock()
	for _, b := range probe.bad {
		t.Error(b)
	}
	if probe.stoppedBeforePersist != rounds+1 {
		t.Errorf("%d steps that end acting found their period stopped before persisting, want %d", probe.stoppedBeforePersist, rounds+1)
	}
	if polled.Load() == 0 {
		t.Error("the bus client read no view")
	}
}

// within polls cond every 10 ms until it holds, for d at most (a bound
// for a loaded machine, not a timing the test relies on).
func within(d time.Duration, cond func() bool) error {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return nil
		}
	}
	return errors.New("condition not met")
}
