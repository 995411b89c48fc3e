package emu

import (
	"context"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// nextChange reads one state change, failing after a wall-clock second:
// the pump goroutine delivers it as soon as it is scheduled.
func nextChange(t *testing.T, ch <-chan StateChange) StateChange {
	t.Helper()
	select {
	case sc := <-ch:
		return sc
	case <-time.After(5 * time.Second):
		t.Fatal("no state change")
	}
	return StateChange{}
}

// TestStateChangesFollowEveryPairChange: an attached host hears pending,
// full duplex, suspending then suspended (with the suspend event's number)
// and the ELB of a path failure, in order.
func TestStateChangesFollowEveryPairChange(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := r.p.StateChanges(ctx, nil)

	vp := vpair(fbL, 1)
	r.must(r.pc.Suspend(ctx, 1, []hal.VolumePair{vp}))
	sing, sed := nextChange(t, ch), nextChange(t, ch)
	if sing.Kind != PairSuspending || sed.Kind != PairSuspended || sed.Reason != hal.ReasonCommand ||
		sed.LSSPair != lssPair(fbL) || !sed.Volumes.Has(1) || sed.Volumes.Len() != 1 || sed.Serial != prim {
		t.Fatalf("suspend: %+v then %+v", sing, sed)
	}
	ev := <-r.events
	if sed.EventSeq != ev.Seq || ev.Kind != hal.EventSuspend {
		t.Fatalf("state change names event %d, the event is %+v", sed.EventSeq, ev)
	}
	r.must(r.pc.EstablishPairs(ctx, 1, []hal.PairSpec{{VolumePair: vp, Mode: hal.Resync}}))
	if sc := nextChange(t, ch); sc.Kind != PairPending || !sc.Volumes.Has(1) {
		t.Fatalf("resync: %+v", sc)
	}
	r.clk.Advance(time.Second)
	if sc := nextChange(t, ch); sc.Kind != PairFullDuplex || !sc.Volumes.Has(1) {
		t.Fatalf("copy done: %+v", sc)
	}

	r.fab.SetPath(lssPair(ckdL), false)
	want := []StateChangeKind{PairSuspending, ExtendedLongBusy, PairSuspended}
	for _, k := range want {
		sc := nextChange(t, ch)
		if sc.Kind != k {
			t.Fatalf("path failure: %s, want %s (%+v)", sc.Kind, k, sc)
		}
		if k == ExtendedLongBusy && (sc.LSSPair.Source.LSS != ckdL || sc.Volumes.Len() != 0) {
			t.Fatalf("ELB change %+v", sc)
		}
		if k == PairSuspended && (sc.Reason != hal.ReasonPath || sc.Volumes.Len() != 4) {
			t.Fatalf("suspended %+v", sc)
		}
	}
	cancel()
	for range ch { // closed once ctx is done
	}
}

// TestStateChangesNeverBlockTheFabric: a host that never reads does not
// hold up commands.
func TestStateChangesNeverBlockTheFabric(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_ = r.p.StateChanges(ctx, nil)
	for range 200 {
		r.must(r.pc.Suspend(ctx, 1, []hal.VolumePair{vpair(fbL, 0)}))
		r.must(r.pc.EstablishPairs(ctx, 1, []hal.PairSpec{{VolumePair: vpair(fbL, 0), Mode: hal.Resync}}))
		r.clk.Advance(time.Second)
	}
}
