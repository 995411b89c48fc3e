package emu

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

const (
	swP1 hal.Serial = "LAB.2107-75P0001"
	swP2 hal.Serial = "LAB.2107-75P0002"
	swS1 hal.Serial = "LAB.2107-75S0001"
	swS2 hal.Serial = "LAB.2107-75S0002"
	swL  hal.LSS    = 0x10
)

// swapRig is two primaries mirroring to two secondaries (LSS 10, two
// volumes each, CG paths, full-duplex) and a z/OS host with all four
// online, the session "hs" loaded with the four pairs.
type swapRig struct {
	t     *testing.T
	clk   *clock.Fake
	fab   *Fabric
	host  *Host
	mgr   map[hal.Serial]hal.StorageSystem
	pairs []hal.VolumePair
	epoch hal.Epoch // of SwapStatus
}

func swRef(s hal.Serial, n uint8) hal.VolumeRef {
	return hal.VolumeRef{Serial: s, Volume: hal.NewVolume(swL, n)}
}

func newSwapRig(t *testing.T) *swapRig {
	t.Helper()
	clk := clock.NewFake(t0)
	r := &swapRig{t: t, clk: clk, fab: NewFabric(Options{Clock: clk, CopyPerBlock: 1}), mgr: map[hal.Serial]hal.StorageSystem{}, epoch: 1}
	for _, serial := range []hal.Serial{swP1, swP2, swS1, swS2} {
		s, err := r.fab.AddSystem(SystemConfig{Serial: serial, LSSs: []LSSConfig{{LSS: swL, Type: hal.FB, Volumes: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		r.mgr[serial] = s.Connect(mgr)
	}
	ctx := context.Background()
	for _, ps := range [][2]hal.Serial{{swP1, swS1}, {swP2, swS2}} {
		lp := hal.LSSPair{Source: hal.LSSRef{Serial: ps[0], LSS: swL}, Target: hal.LSSRef{Serial: ps[1], LSS: swL}}
		r.must(r.mgr[ps[0]].EstablishPaths(ctx, 1, []hal.PathSpec{{LSSPair: lp, ConsistencyGroup: true}}))
		var specs []hal.PairSpec
		for n := range uint8(2) {
			vp := hal.VolumePair{Source: swRef(ps[0], n), Target: swRef(ps[1], n)}
			specs = append(specs, hal.PairSpec{VolumePair: vp})
			r.pairs = append(r.pairs, vp)
		}
		r.must(r.mgr[ps[0]].EstablishPairs(ctx, 1, specs))
	}
	clk.Advance(0)
	var err error
	r.host, err = r.fab.NewHost(HostConfig{Name: "SYSA", Online: []hal.Serial{swP1, swP2, swS1, swS2}})
	r.must(err)
	t.Cleanup(r.host.Close)
	r.must(r.host.LoadSwap(ctx, 1, "hs", r.pairs))
	r.wantReady(true, "")
	return r
}

func (r *swapRig) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *swapRig) read(ref hal.VolumeRef, block uint32) string {
	r.t.Helper()
	b, err := r.fab.Read(ref, block)
	r.must(err)
	return string(b)
}

func (r *swapRig) status() hal.SwapState {
	r.t.Helper()
	st, err := r.host.SwapStatus(context.Background(), r.epoch)
	r.must(err)
	if len(st) != 1 {
		r.t.Fatalf("status: %+v", st)
	}
	return st[0]
}

func (r *swapRig) wantReady(ready bool, why string) {
	r.t.Helper()
	st := r.status()
	if st.Ready != ready || !strings.Contains(st.Why, why) {
		r.t.Fatalf("ready %v (%q), want %v (%q)", st.Ready, st.Why, ready, why)
	}
}

func (r *swapRig) events() <-chan hal.SwapEvent {
	ctx, cancel := context.WithCancel(context.Background())
	r.t.Cleanup(cancel)
	ch, err := r.host.SwapEvents(ctx)
	r.must(err)
	return ch
}

func nextSwap(t *testing.T, ch <-chan hal.SwapEvent) hal.SwapEvent {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	default:
		t.Fatal("no swap event")
	}
	return hal.SwapEvent{}
}

// TestPlannedSwapMovesWritesToH2: before the swap the host writes H1 (and
// the pair mirrors it); Swap freezes H1, recovers H2 and from then on the
// same device's writes land on H2 only.
func TestPlannedSwapMovesWritesToH2(t *testing.T) {
	t.Parallel()
	r := newSwapRig(t)
	ev := r.events()
	ctx := context.Background()
	dev := swRef(swP1, 0)
	r.must(r.host.Write(ctx, dev, 7, []byte("before")))
	if r.read(swS1Ref(0), 7) != "before" {
		t.Fatal("write before the swap not mirrored")
	}
	r.must(r.host.Swap(ctx, 1, "hs"))
	if e := nextSwap(t, ev); !e.Planned || e.Session != "hs" || e.Host != "SYSA" || e.Trigger != "hyperswap command" {
		t.Fatalf("event %+v", e)
	}
	if st := r.status(); !st.Swapped || st.Ready {
		t.Fatalf("status after swap %+v", st)
	}
	if got := r.host.Device(dev); got != swS1Ref(0) {
		t.Fatalf("device on %v", got)
	}
	r.must(r.host.Write(ctx, dev, 7, []byte("after")))
	if r.read(swS1Ref(0), 7) != "after" || r.read(dev, 7) != "before" {
		t.Fatalf("after the swap: H2 %q, H1 %q", r.read(swS1Ref(0), 7), r.read(dev, 7))
	}
	// Swapped again: no error, no second event.
	r.must(r.host.Swap(ctx, 1, "hs"))
	select {
	case e := <-ev:
		t.Fatalf("second event %+v", e)
	default:
	}
	// H1 was frozen by the host, in the command log under its name.
	recs, _ := r.fab.Commands(0)
	var froze, recovered int
	for _, rec := range recs {
		if rec.Manager == "z/OS host SYSA" && rec.Op == OpSwapFreeze {
			froze++
		}
		if rec.Manager == "z/OS host SYSA" && rec.Op == OpSwapRecover {
			recovered++
		}
	}
	if froze != 2 || recovered != 2 {
		t.Fatalf("host commands: %d freezes, %d recovers, want 2 and 2", froze, recovered)
	}
}

func swS1Ref(n uint8) hal.VolumeRef { return swRef(swS1, n) }

// TestUnplannedSwapOnPrimaryFailure: a write to a crashed H1 system, or
// over a channel that is down, swaps the session; the failing write is
// re-driven on H2 and the application never sees an error.
func TestUnplannedSwapOnPrimaryFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fail    func(r *swapRig)
		trigger string
	}{
		{"crash", func(r *swapRig) { r.fab.System(swP1).Crash() }, "storage system " + string(swP1) + " crashed"},
		{"channel down", func(r *swapRig) { r.host.SetChannel(swP1, false) }, "I/O to " + string(swP1) + " failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newSwapRig(t)
			ev := r.events()
			ctx := context.Background()
			r.must(r.host.Write(ctx, swRef(swP2, 1), 3, []byte("p2-before")))
			tc.fail(r)
			r.must(r.host.Write(ctx, swRef(swP1, 0), 3, []byte("redriven")))
			e := nextSwap(t, ev)
			if e.Planned || e.Trigger != tc.trigger {
				t.Fatalf("event %+v, want unplanned %q", e, tc.trigger)
			}
			if r.read(swS1Ref(0), 3) != "redriven" {
				t.Fatal("the failed write is not on H2")
			}
			// The whole session moved: P2's devices too, and what was
			// mirrored before is there.
			if r.read(swRef(swS2, 1), 3) != "p2-before" {
				t.Fatal("a mirrored write is missing on H2")
			}
			r.must(r.host.Write(ctx, swRef(swP2, 1), 3, []byte("p2-after")))
			if r.read(swRef(swS2, 1), 3) != "p2-after" || r.read(swRef(swP2, 1), 3) != "p2-before" {
				t.Fatal("P2's device did not move to H2")
			}
		})
	}
}

// TestPathLossIsNoSwapTrigger: a replication path loss holds the write in
// ELB and then completes it locally; nothing swaps, the session is no
// longer swap-ready, and a later crash of the primary is reported to the
// application as an I/O error, not swapped to a stale H2.
func TestPathLossIsNoSwapTrigger(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newSwapRig(t)
		ev := r.events()
		ctx := context.Background()
		r.fab.SetSystemPaths(swP1, false)
		r.wantReady(false, "suspended (path)")
		done := make(chan error, 1)
		go func() { done <- r.host.Write(ctx, swRef(swP1, 0), 1, []byte("local")) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("write not held in ELB: %v", err)
		default:
		}
		r.clk.Advance(hal.DefaultCGTimeout(hal.FB))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if r.read(swRef(swP1, 0), 1) != "local" || r.read(swS1Ref(0), 1) != "" {
			t.Fatal("the write did not complete locally")
		}
		r.fab.System(swP1).Crash()
		err := r.host.Write(ctx, swRef(swP1, 0), 1, []byte("lost"))
		if !errors.Is(err, ErrStorageDown) {
			t.Fatalf("write to the crashed primary: %v, want ErrStorageDown", err)
		}
		select {
		case e := <-ev:
			t.Fatalf("swapped: %+v", e)
		default:
		}
		if st := r.status(); st.Swapped {
			t.Fatal("swapped")
		}
	})
}

// TestSwapAbandonsWriteHeldInELB: a write held in ELB on a frozen H1 LSS
// when the planned swap begins is not acknowledged on H1: the host
// abandons it, and re-drives it on H2, where it is acknowledged once.
func TestSwapAbandonsWriteHeldInELB(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newSwapRig(t)
		ctx := context.Background()
		// The manager's freeze (the hyperswap command's first step).
		for _, ps := range [][2]hal.Serial{{swP1, swS1}, {swP2, swS2}} {
			lp := hal.LSSPair{Source: hal.LSSRef{Serial: ps[0], LSS: swL}, Target: hal.LSSRef{Serial: ps[1], LSS: swL}}
			r.must(r.mgr[ps[0]].Freeze(ctx, 1, []hal.LSSPair{lp}))
		}
		done := make(chan error, 1)
		go func() { done <- r.host.Write(ctx, swRef(swP1, 1), 9, []byte("held")) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("write not held: %v", err)
		default:
		}
		r.must(r.host.Swap(ctx, 1, "hs"))
		if err := <-done; err != nil {
			t.Fatalf("the held write: %v", err)
		}
		if r.read(swS1Ref(1), 9) != "held" {
			t.Fatal("the held write is not on H2")
		}
		// Even when ELB ends later, H1 never gets it: it was abandoned.
		r.clk.Advance(hal.DefaultCGTimeout(hal.FB))
		synctest.Wait()
		if got := r.read(swRef(swP1, 1), 9); got != "" {
			t.Fatalf("H1 holds %q", got)
		}
	})
}

// TestSwapRedrivesWriteAnsweredByH1: a write that H1 answered after the
// swap began (here: completed, mirrored) is not acknowledged on that
// answer; it is written again on H2 and acknowledged once.
func TestSwapRedrivesWriteAnsweredByH1(t *testing.T) {
	t.Parallel()
	r := newSwapRig(t)
	ctx := context.Background()
	var writes atomic.Int32
	swapped := make(chan error, 1)
	r.host.afterWrite = func(phys hal.VolumeRef) {
		if writes.Add(1) == 1 {
			// Between H1's answer and the host taking it: the swap begins.
			go func() { swapped <- r.host.Swap(ctx, 1, "hs") }()
			for {
				r.host.mu.Lock()
				s := r.host.sessions["hs"]
				begun := s.gen > 0
				r.host.mu.Unlock()
				if begun {
					return
				}
			}
		}
	}
	r.must(r.host.Write(ctx, swRef(swP2, 0), 4, []byte("w")))
	r.must(<-swapped)
	if n := writes.Load(); n != 2 {
		t.Fatalf("%d writes to storage, want 2 (H1, then re-driven on H2)", n)
	}
	if r.read(swRef(swS2, 0), 4) != "w" {
		t.Fatal("not on H2")
	}
}

// TestFabricWriteCancelledInELB: a write whose context ends while ELB
// holds it fails; it never reports success for a write it did not do.
func TestFabricWriteCancelledInELB(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newSwapRig(t)
		r.fab.SetSystemPaths(swP1, false)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.fab.Write(ctx, swRef(swP1, 0), 2, []byte("x")) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled write: %v", err)
		}
		r.clk.Advance(hal.DefaultCGTimeout(hal.FB))
		if r.read(swRef(swP1, 0), 2) != "" {
			t.Fatal("the cancelled write landed")
		}
	})
}

// TestSwapHostCommands: fencing, refusals and unload.
func TestSwapHostCommands(t *testing.T) {
	t.Parallel()
	r := newSwapRig(t)
	ctx := context.Background()
	r.must(r.host.LoadSwap(ctx, 5, "hs", r.pairs))
	r.epoch = 5
	if err := r.host.Swap(ctx, 4, "hs"); !errors.Is(err, hal.ErrFenced) {
		t.Fatalf("stale swap: %v", err)
	}
	if err := r.host.Swap(ctx, 5, "nope"); !errors.Is(err, hal.ErrRefused) {
		t.Fatalf("unknown session: %v", err)
	}
	if err := r.host.LoadSwap(ctx, 5, "other", r.pairs[:1]); !errors.Is(err, hal.ErrRefused) {
		t.Fatalf("a volume in two sessions: %v", err)
	}
	if err := r.host.LoadSwap(ctx, 5, "empty", nil); !errors.Is(err, hal.ErrRefused) {
		t.Fatalf("no pairs: %v", err)
	}
	r.host.SetChannel(swS2, false)
	if err := r.host.Swap(ctx, 5, "hs"); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("swap without a channel to H2: %v", err)
	}
	r.wantReady(false, "no channel to "+string(swS2))
	r.host.SetChannel(swS2, true)
	r.wantReady(true, "")
	r.must(r.host.UnloadSwap(ctx, 5, "hs"))
	r.must(r.host.UnloadSwap(ctx, 5, "hs"))
	st, err := r.host.SwapStatus(ctx, 5)
	if err != nil || len(st) != 0 {
		t.Fatalf("after unload: %+v, %v", st, err)
	}
	// Unloaded: a crash of a primary is an I/O error, no swap.
	r.fab.System(swP1).Crash()
	if err := r.host.Write(ctx, swRef(swP1, 0), 0, []byte("x")); !errors.Is(err, ErrStorageDown) {
		t.Fatalf("write after unload: %v", err)
	}
}
