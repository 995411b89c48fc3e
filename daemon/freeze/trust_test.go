package freeze_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// The tests of this file hold docs/architecture.md (Trust) for the freeze core: an
// event, whatever its source, can make the core freeze sooner; it can
// never skip or delay a freeze, nor mark a storage system frozen that did
// not acknowledge one. A forged event is an event the core receives
// through Observe (an SNMP trap with the right community, from a
// registered or spoofed address).

// suspendedEverywhere reports whether every source pair of serial is
// suspended, as the storage system itself says.
func suspendedEverywhere(t *testing.T, r *rig, serial hal.Serial) bool {
	t.Helper()
	ps, err := r.fab.System(serial).Connect("check").QueryPairs(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Source.Serial == serial && p.State != hal.Suspended {
			return false
		}
	}
	return true
}

// TestForgedExpiryStillFreezesTheSystemItNames: a forged heartbeat-expiry
// event naming a mirroring system does not make the core believe that
// system froze itself: the freeze is sent to it like to every other, and
// the group is frozen only once it acknowledged.
func TestForgedExpiryStillFreezesTheSystemItNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, nil)
		p2 := topology.PrimarySerial(1)
		r.core.Observe(hal.Event{Kind: hal.EventHeartbeatExpiry, Serial: p2, Seq: 1, Session: "cg"}, "snmp trap")
		time.Sleep(time.Second)
		for _, serial := range r.topo.Sources() {
			if !suspendedEverywhere(t, r, serial) {
				t.Errorf("%s still mirrors a second after the (forged) expiry event: the freeze did not reach it", serial)
			}
		}
		if st := r.phase(t); st.Phase != freeze.Frozen {
			t.Errorf("phase %s (%s), want frozen", st.Phase, st.Reason)
		}
	})
}

// TestForgedExpiryOfAnUnreachableSystemIsNotAFreeze: the system a forged
// expiry names cannot be reached; without the heartbeat it is never
// known frozen, so the group is Suspended (Partial), never certain.
func TestForgedExpiryOfAnUnreachableSystemIsNotAFreeze(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, nil)
		p2 := topology.PrimarySerial(1)
		r.fab.System(p2).SetManagerLink("m", emu.LinkDown)
		r.core.Observe(hal.Event{Kind: hal.EventHeartbeatExpiry, Serial: p2, Seq: 1, Session: "cg"}, "snmp trap")
		time.Sleep(10 * time.Second)
		st := r.phase(t)
		if st.Phase != freeze.Partial {
			t.Fatalf("phase %s (%s), want partial: %s never acknowledged a freeze", st.Phase, st.Reason, p2)
		}
		for _, m := range st.Systems {
			if m.Serial == p2 && m.Acked {
				t.Fatalf("%s marked frozen on an event", p2)
			}
		}
		r.fab.System(p2).SetManagerLink("m", emu.LinkUp)
		time.Sleep(2 * time.Second) // the retries reach it
		if st := r.phase(t); st.Phase != freeze.Frozen || !suspendedEverywhere(t, r, p2) {
			t.Fatalf("phase %s once %s is reachable again, want frozen there too", st.Phase, p2)
		}
	})
}

// TestForgedEventsDoNotSuppressTheRealOne: forged events carrying the
// sequence numbers a system will use next (for a pair of no group, so
// they freeze nothing) do not make its real suspend event a duplicate:
// the pushed event freezes at once, not at the next poll.
func TestForgedEventsDoNotSuppressTheRealOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, nil)
		p1 := topology.PrimarySerial(0)
		lp := r.topo.LSSPairs()[p1][0]
		other := lp
		other.Source.LSS, other.Target.LSS = 0x7e, 0x7e
		for seq := uint64(1); seq <= 64; seq++ {
			r.core.Observe(hal.Event{Kind: hal.EventSuspend, Serial: p1, Seq: seq, LSSPair: other, Reason: hal.ReasonPath}, "snmp trap")
		}
		time.Sleep(100 * time.Millisecond)
		if st := r.phase(t); st.Phase != freeze.Mirroring {
			t.Fatalf("phase %s: events for a pair of no group froze", st.Phase)
		}
		r.fab.SetPath(lp, false)
		time.Sleep(time.Second) // well under the poll interval of 5 s
		if st := r.phase(t); st.Phase != freeze.Frozen || !strings.Contains(st.Reason, "pushed") {
			t.Fatalf("phase %s (%s) a second after the real event, want frozen by the pushed event", st.Phase, st.Reason)
		}
	})
}

// TestForgedFencedEventDoesNotStopTheCore: only a storage system's answer
// to the core's own command fences it; an event saying "fenced" does not
// stop the next freeze.
func TestForgedFencedEventDoesNotStopTheCore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, nil)
		p1 := topology.PrimarySerial(0)
		r.core.Observe(hal.Event{Kind: hal.EventFenced, Serial: p1, Seq: 1, Epoch: 99}, "snmp trap")
		time.Sleep(100 * time.Millisecond)
		r.fab.SetPath(r.topo.LSSPairs()[p1][0], false)
		time.Sleep(time.Second)
		for _, serial := range r.topo.Sources() {
			if !suspendedEverywhere(t, r, serial) {
				t.Errorf("%s still mirrors: a forged fenced event stopped the freeze", serial)
			}
		}
	})
}

// TestFencedEventOfAnotherManagerDoesNotStopTheCore: an HMC connection
// is shared by every manager logged on to the HMC, and forwards the
// fenced event a system raised for another manager's stale command (the
// former active's, epoch 1, after this core took over with epoch 2). The
// event names the system's epoch, which is not above this core's: it is
// not this core that was fenced, and the next freeze still goes out.
func TestFencedEventOfAnotherManagerDoesNotStopTheCore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, nil)
		p1 := topology.PrimarySerial(0)
		r.core.Observe(hal.Event{Kind: hal.EventFenced, Serial: p1, Seq: 1, Epoch: 1}, "pushed")
		time.Sleep(100 * time.Millisecond)
		r.fab.SetPath(r.topo.LSSPairs()[p1][0], false)
		time.Sleep(time.Second)
		for _, serial := range r.topo.Sources() {
			if !suspendedEverywhere(t, r, serial) {
				t.Errorf("%s still mirrors: another manager's fenced event stopped the freeze", serial)
			}
		}
	})
}

// expiredHeartbeat answers every heartbeat "expired" and every freeze
// "unreachable": the heartbeat's answer alone must not count as a freeze.
type expiredHeartbeat struct{ hal.StorageSystem }

func (expiredHeartbeat) Heartbeat(context.Context, hal.Epoch, string) error {
	return fmt.Errorf("%w: test", hal.ErrHeartbeatExpired)
}

func (e expiredHeartbeat) Freeze(context.Context, hal.Epoch, []hal.LSSPair) error {
	return fmt.Errorf("%w: test", hal.ErrUnreachable)
}

// TestExpiredHeartbeatAnswerIsNotAnAcknowledgedFreeze: a system that
// answers a heartbeat "expired" gets the freeze like every other; until
// it acknowledges, it is known frozen only from its SafeAt on.
func TestExpiredHeartbeatAnswerIsNotAnAcknowledgedFreeze(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, _, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		sw := &switchable{StorageSystem: conns[p2]}
		core := freeze.New(freeze.Options{Epoch: 1, Heartbeat: true,
			Systems: map[hal.Serial]hal.StorageSystem{p1: conns[p1], p2: sw}})
		done := make(chan error)
		go func() { done <- core.Run(ctx) }()
		defer func() { cancel(); <-done }()
		if err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: time.Minute}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // armed and refreshed
		sw.set(expiredHeartbeat{conns[p2]})
		time.Sleep(2 * time.Second)
		st, err := core.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Phase != freeze.Partial {
			t.Fatalf("phase %s (%s), want partial: %s never acknowledged the freeze", st[0].Phase, st[0].Reason, p2)
		}
		time.Sleep(60 * time.Second) // past SafeAt
		if st, _ = core.Status(ctx); st[0].Phase != freeze.Frozen {
			t.Fatalf("phase %s after SafeAt, want frozen", st[0].Phase)
		}
	})
}

// switchable is a storage system whose behaviour the test swaps.
type switchable struct {
	hal.StorageSystem
	cur atomic.Pointer[hal.StorageSystem]
}

func (s *switchable) set(sys hal.StorageSystem) { s.cur.Store(&sys) }
func (s *switchable) get() hal.StorageSystem {
	if p := s.cur.Load(); p != nil {
		return *p
	}
	return s.StorageSystem
}
func (s *switchable) Heartbeat(ctx context.Context, e hal.Epoch, n string) error {
	return s.get().Heartbeat(ctx, e, n)
}
func (s *switchable) Freeze(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	return s.get().Freeze(ctx, e, p)
}
