package emu

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	prim hal.Serial = "LAB.2107-75P0001"
	sec  hal.Serial = "LAB.2107-75S0001"
	fbL  hal.LSS    = 0x10 // FB: CG timeout 60 s
	ckdL hal.LSS    = 0x20 // CKD: CG timeout 120 s
	mgr             = "mgr-a"
)

// rig is one primary and one secondary, LSS 10 (FB) and 20 (CKD) with 4
// volumes each, paths with the CG option and every pair full-duplex.
type rig struct {
	t      *testing.T
	clk    *clock.Fake
	fab    *Fabric
	p, s   *System
	pc, sc hal.StorageSystem
	events <-chan hal.Event
	epoch  hal.Epoch
}

func lssPair(l hal.LSS) hal.LSSPair {
	return hal.LSSPair{Source: hal.LSSRef{Serial: prim, LSS: l}, Target: hal.LSSRef{Serial: sec, LSS: l}}
}

func vpair(l hal.LSS, n uint8) hal.VolumePair {
	return hal.VolumePair{
		Source: hal.VolumeRef{Serial: prim, Volume: hal.NewVolume(l, n)},
		Target: hal.VolumeRef{Serial: sec, Volume: hal.NewVolume(l, n)},
	}
}

func newRig(t *testing.T, cg bool) *rig {
	t.Helper()
	clk := clock.NewFake(t0)
	fab := NewFabric(Options{Clock: clk, CopyPerBlock: time.Millisecond})
	lsss := []LSSConfig{{LSS: fbL, Type: hal.FB, Volumes: 4}, {LSS: ckdL, Type: hal.CKD, Volumes: 4}}
	p, err := fab.AddSystem(SystemConfig{Serial: prim, LSSs: lsss})
	if err != nil {
		t.Fatal(err)
	}
	s, err := fab.AddSystem(SystemConfig{Serial: sec, LSSs: lsss})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, clk: clk, fab: fab, p: p, s: s, pc: p.Connect(mgr), sc: s.Connect(mgr), epoch: 1}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if r.events, err = r.pc.Events(ctx); err != nil {
		t.Fatal(err)
	}
	r.must(r.pc.EstablishPaths(ctx, 1, []hal.PathSpec{
		{LSSPair: lssPair(fbL), ConsistencyGroup: cg}, {LSSPair: lssPair(ckdL), ConsistencyGroup: cg}}))
	var specs []hal.PairSpec
	for _, l := range []hal.LSS{fbL, ckdL} {
		for n := range uint8(4) {
			specs = append(specs, hal.PairSpec{VolumePair: vpair(l, n)})
		}
	}
	r.must(r.pc.EstablishPairs(ctx, 1, specs))
	clk.Advance(0) // empty volumes: the copy ends at once
	r.wantPair(vpair(fbL, 0), hal.FullDuplex, hal.ReasonNone)
	return r
}

func (r *rig) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) write(v hal.VolumeRef, block uint32, data string) {
	r.t.Helper()
	r.must(r.fab.Write(context.Background(), v, block, []byte(data)))
}

func (r *rig) read(v hal.VolumeRef, block uint32) string {
	r.t.Helper()
	b, err := r.fab.Read(v, block)
	r.must(err)
	return string(b)
}

func (r *rig) pairState(vp hal.VolumePair) hal.PairStatus {
	r.t.Helper()
	ps, err := r.pc.QueryPairs(context.Background(), r.epoch)
	r.must(err)
	for _, p := range ps {
		if p.VolumePair == vp {
			return p
		}
	}
	r.t.Fatalf("no pair %s", vp)
	return hal.PairStatus{}
}

func (r *rig) wantPair(vp hal.VolumePair, state hal.PairState, reason hal.SuspendReason) {
	r.t.Helper()
	got := r.pairState(vp)
	if got.State != state || got.Reason != reason {
		r.t.Fatalf("pair %s: %s (%s), want %s (%s)", vp, got.State, got.Reason, state, reason)
	}
}

// elbUntil is when ELB ends on a primary LSS (zero: not in ELB).
func (r *rig) elbUntil(l hal.LSS) time.Time {
	r.t.Helper()
	ls, err := r.pc.QueryLSSs(context.Background(), r.epoch)
	r.must(err)
	for _, s := range ls {
		if s.LSS == l {
			return s.ELBUntil
		}
	}
	r.t.Fatalf("no LSS %s", l)
	return time.Time{}
}

func (r *rig) nextEvent() hal.Event {
	r.t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case <-time.After(5 * time.Second):
		r.t.Fatal("no event")
	}
	return hal.Event{}
}

func (r *rig) noEvent() {
	r.t.Helper()
	synctest.Wait()
	select {
	case ev := <-r.events:
		r.t.Fatalf("unexpected event %+v", ev)
	default:
	}
}

// hostWrite is a write running in its own goroutine.
type hostWrite struct {
	done chan struct{} // closed when the write completed
	err  error
}

// heldWrite starts a host write; it returns once the writer is blocked in
// ELB or done.
func (r *rig) heldWrite(v hal.VolumeRef, block uint32, data string) *hostWrite {
	w := &hostWrite{done: make(chan struct{})}
	go func() {
		w.err = r.fab.Write(context.Background(), v, block, []byte(data))
		close(w.done)
	}()
	synctest.Wait()
	return w
}

// pending reports whether the write is still held, once every goroutine
// of the test has done what it can.
func pending(w *hostWrite) bool {
	synctest.Wait()
	select {
	case <-w.done:
		return false
	default:
		return true
	}
}

func TestMirroredWriteReachesTarget(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	vp := vpair(fbL, 1)
	r.write(vp.Source, 7, "w1")
	if got := r.read(vp.Target, 7); got != "w1" {
		t.Fatalf("target block = %q, want w1", got)
	}
	if st := r.p.Stats(); st.MirroredWrites != 1 || st.HostWrites != 1 {
		t.Fatalf("stats %+v", st)
	}
	err := r.fab.Write(context.Background(), vp.Target, 7, []byte("x"))
	if !errors.Is(err, ErrWriteProtected) {
		t.Fatalf("write to target: %v, want ErrWriteProtected", err)
	}
}

func TestPathFailureSuspendsHoldsAndRaisesEvent(t *testing.T) {
	for _, tc := range []struct {
		name string
		lss  hal.LSS
		cg   bool
		hold time.Duration // 0: no ELB
	}{
		{"FB with CG: ELB 60s", fbL, true, 60 * time.Second},
		{"CKD with CG: ELB 120s", ckdL, true, 120 * time.Second},
		{"FB without CG: no ELB", fbL, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, tc.cg)
				vp := vpair(tc.lss, 2)
				r.clk.Advance(5 * time.Second)
				cut := r.clk.Now()
				r.fab.SetPath(lssPair(tc.lss), false)
				r.wantPair(vp, hal.Suspended, hal.ReasonPath)
				ev := r.nextEvent()
				if ev.Kind != hal.EventSuspend || ev.LSSPair != lssPair(tc.lss) || ev.Reason != hal.ReasonPath ||
					ev.Volumes.Len() != 4 || !ev.Volumes.Has(2) || !ev.At.Equal(cut) {
					t.Fatalf("event %+v", ev)
				}
				// The target cannot know: its side still says full-duplex.
				ps, _ := r.sc.QueryPairs(context.Background(), 1)
				if ps[0].State != hal.TargetFullDuplex && tc.lss == fbL {
					t.Fatalf("target side %s, want stale target-full-duplex", ps[0].State)
				}
				done := r.heldWrite(vp.Source, 1, "held")
				if tc.hold == 0 {
					if pending(done) {
						t.Fatal("write held without the CG option")
					}
				} else {
					if got := r.elbUntil(tc.lss); !got.Equal(cut.Add(tc.hold)) {
						t.Fatalf("ELB until %v, want %v", got, cut.Add(tc.hold))
					}
					r.clk.Advance(tc.hold - time.Nanosecond)
					if !pending(done) {
						t.Fatal("write completed before the CG timeout")
					}
					r.clk.Advance(time.Nanosecond)
					if pending(done) {
						t.Fatal("write still held at the CG timeout")
					}
				}
				if done.err != nil {
					t.Fatal(done.err)
				}
				if got := r.read(vp.Target, 1); got != "" {
					t.Fatalf("suspended write reached the target: %q", got)
				}
				if got := r.pairState(vp).OutOfSync; got != 1 {
					t.Fatalf("out-of-sync = %d, want 1", got)
				}
				// Other LSS untouched.
				other := vpair(fbL+ckdL-tc.lss, 0)
				r.wantPair(other, hal.FullDuplex, hal.ReasonNone)
			})
		})
	}
}

func TestFreezeSuspendsRemovesPathsAndIsIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false) // freeze holds ELB whatever the path option
		ctx := context.Background()
		r.must(r.pc.Freeze(ctx, 1, []hal.LSSPair{lssPair(fbL)}))
		r.wantPair(vpair(fbL, 0), hal.Suspended, hal.ReasonFreeze)
		r.wantPair(vpair(ckdL, 0), hal.FullDuplex, hal.ReasonNone)
		ev := r.nextEvent()
		if ev.Reason != hal.ReasonFreeze || ev.Volumes.Len() != 4 {
			t.Fatalf("event %+v", ev)
		}
		paths, _ := r.pc.QueryPaths(ctx, 1)
		if len(paths) != 1 || paths[0].LSSPair != lssPair(ckdL) {
			t.Fatalf("paths after freeze: %+v", paths)
		}
		until := r.elbUntil(fbL)
		if !until.Equal(t0.Add(60 * time.Second)) {
			t.Fatalf("ELB until %v", until)
		}
		// The target learned of the freeze: the link is up.
		tp, _ := r.sc.QueryPairs(ctx, 1)
		if tp[0].State != hal.TargetSuspended {
			t.Fatalf("target side %s, want target-suspended", tp[0].State)
		}

		r.clk.Advance(10 * time.Second)
		r.must(r.pc.Freeze(ctx, 1, []hal.LSSPair{lssPair(fbL)}))
		if got := r.elbUntil(fbL); !got.Equal(until) {
			t.Fatalf("second freeze moved ELB to %v, want %v", got, until)
		}
		r.wantPair(vpair(fbL, 0), hal.Suspended, hal.ReasonFreeze)
		r.noEvent()

		err := r.pc.Freeze(ctx, 1, []hal.LSSPair{{Source: hal.LSSRef{Serial: sec, LSS: fbL}}})
		if !errors.Is(err, hal.ErrRefused) {
			t.Fatalf("freeze of a foreign LSS pair: %v, want refused", err)
		}
	})
}

func TestThawEndsELBAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true)
		ctx := context.Background()
		r.must(r.pc.Freeze(ctx, 1, []hal.LSSPair{lssPair(fbL)}))
		done := r.heldWrite(vpair(fbL, 0).Source, 3, "x")
		if !pending(done) {
			t.Fatal("write not held by the freeze")
		}
		r.must(r.pc.Thaw(ctx, 1, []hal.LSS{fbL}))
		if pending(done) {
			t.Fatal("thaw did not release the write")
		}
		if !r.elbUntil(fbL).IsZero() {
			t.Fatal("LSS still in ELB after thaw")
		}
		r.must(r.pc.Thaw(ctx, 1, []hal.LSS{fbL})) // idempotent
		if got := r.read(vpair(fbL, 0).Target, 3); got != "" {
			t.Fatal("thawed write was mirrored")
		}
		if r.clk.Pending() != 0 {
			t.Fatalf("%d timers left armed after thaw", r.clk.Pending())
		}
	})
}

func TestHeartbeatExpiresExactlyAtH(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true)
		ctx := context.Background()
		const h = 50 * time.Second
		r.must(r.pc.EnableHeartbeat(ctx, 1, hal.HeartbeatSpec{Session: "s1", Timeout: h,
			Pairs: []hal.LSSPair{lssPair(fbL), lssPair(ckdL)}}))
		r.clk.Advance(h - time.Second)
		r.must(r.pc.Heartbeat(ctx, 1, "s1")) // refreshed at t0+49s
		refreshed := r.clk.Now()
		r.clk.Advance(h - time.Nanosecond)
		r.wantPair(vpair(fbL, 0), hal.FullDuplex, hal.ReasonNone)
		r.noEvent()
		r.clk.Advance(time.Nanosecond)
		expiry := refreshed.Add(h)
		ev := r.nextEvent()
		if ev.Kind != hal.EventHeartbeatExpiry || ev.Session != "s1" || !ev.At.Equal(expiry) {
			t.Fatalf("event %+v, want heartbeat expiry at %v", ev, expiry)
		}
		r.wantPair(vpair(fbL, 0), hal.Suspended, hal.ReasonHeartbeatExpiry)
		r.wantPair(vpair(ckdL, 3), hal.Suspended, hal.ReasonHeartbeatExpiry)
		if got := r.elbUntil(fbL); !got.Equal(expiry.Add(60 * time.Second)) {
			t.Fatalf("FB ELB until %v", got)
		}
		if got := r.elbUntil(ckdL); !got.Equal(expiry.Add(120 * time.Second)) {
			t.Fatalf("CKD ELB until %v", got)
		}
		if err := r.pc.Heartbeat(ctx, 1, "s1"); !errors.Is(err, hal.ErrHeartbeatExpired) {
			t.Fatalf("heartbeat after expiry: %v", err)
		}
	})
}

// TestHeartbeatsShowArmedAndExpired: the operator's view of the
// heartbeats follows arming, expiry and disarming.
func TestHeartbeatsShowArmedAndExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true)
		ctx := context.Background()
		if got := r.p.Heartbeats(); len(got) != 0 {
			t.Fatalf("heartbeats before arming: %+v", got)
		}
		spec := hal.HeartbeatSpec{Session: "s1", Timeout: 10 * time.Second, Pairs: []hal.LSSPair{lssPair(fbL)}}
		r.must(r.pc.EnableHeartbeat(ctx, 1, spec))
		got := r.p.Heartbeats()
		if len(got) != 1 || got[0].Expired || got[0].Spec.Session != "s1" || got[0].Spec.Timeout != spec.Timeout ||
			len(got[0].Spec.Pairs) != 1 || got[0].Spec.Pairs[0] != lssPair(fbL) {
			t.Fatalf("armed: %+v", got)
		}
		r.clk.Advance(spec.Timeout)
		synctest.Wait()
		if got := r.p.Heartbeats(); len(got) != 1 || !got[0].Expired {
			t.Fatalf("after H: %+v", got)
		}
		r.must(r.pc.DisableHeartbeat(ctx, 1, "s1"))
		if got := r.p.Heartbeats(); len(got) != 0 {
			t.Fatalf("after disarming: %+v", got)
		}
	})
}

func TestHeartbeatExpiryHoldsELBForFullCGTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true)
		ctx := context.Background()
		r.must(r.pc.EnableHeartbeat(ctx, 1, hal.HeartbeatSpec{Session: "s1", Timeout: 30 * time.Second,
			Pairs: []hal.LSSPair{lssPair(fbL)}}))
		r.fab.SetPath(lssPair(fbL), false) // ELB until t0+60s
		if got := r.elbUntil(fbL); !got.Equal(t0.Add(60 * time.Second)) {
			t.Fatalf("ELB until %v", got)
		}
		r.clk.Advance(30 * time.Second) // expiry at t0+30s: hold until t0+90s
		if got := r.elbUntil(fbL); !got.Equal(t0.Add(90 * time.Second)) {
			t.Fatalf("after expiry ELB until %v, want t0+90s", got)
		}
		done := r.heldWrite(vpair(fbL, 0).Source, 0, "x")
		r.clk.Advance(60*time.Second - time.Nanosecond)
		if !pending(done) {
			t.Fatal("write released before the full CG timeout after expiry")
		}
		r.clk.Advance(time.Nanosecond)
		if pending(done) {
			t.Fatal("write still held")
		}
	})
}

func TestEpochFencing(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	ctx := context.Background()
	steps := []struct {
		epoch  hal.Epoch
		fenced bool
	}{{1, false}, {5, false}, {4, true}, {5, false}, {6, false}, {1, true}}
	for _, st := range steps {
		err := r.pc.Heartbeat(ctx, st.epoch, "none") // refused, but after the epoch check
		if got := errors.Is(err, hal.ErrFenced); got != st.fenced {
			t.Fatalf("epoch %d: err %v, fenced=%v want %v", st.epoch, err, got, st.fenced)
		}
		if !st.fenced && !errors.Is(err, hal.ErrRefused) {
			t.Fatalf("epoch %d: err %v, want refused", st.epoch, err)
		}
	}
	if r.p.Epoch() != 6 {
		t.Fatalf("highest epoch %d, want 6", r.p.Epoch())
	}
	ev := r.nextEvent()
	if ev.Kind != hal.EventFenced || ev.Epoch != 5 {
		t.Fatalf("event %+v, want fenced at epoch 5", ev)
	}
	// A fenced freeze changes nothing.
	if err := r.pc.Freeze(ctx, 2, []hal.LSSPair{lssPair(fbL)}); !errors.Is(err, hal.ErrFenced) {
		t.Fatal(err)
	}
	r.epoch = 6
	r.wantPair(vpair(fbL, 0), hal.FullDuplex, hal.ReasonNone)
}

func TestResyncCopiesExactlyOutOfSyncBlocks(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	ctx := context.Background()
	vp := vpair(ckdL, 1)
	for b := range uint32(10) {
		r.write(vp.Source, b, "old")
	}
	r.must(r.pc.Suspend(ctx, 1, []hal.VolumePair{vp}))
	r.wantPair(vp, hal.Suspended, hal.ReasonCommand)
	r.write(vp.Source, 2, "new2")
	r.write(vp.Source, 5, "new5")
	r.write(vp.Source, 5, "new5b")
	r.write(vp.Source, 11, "new11")
	if got := r.pairState(vp).OutOfSync; got != 3 {
		t.Fatalf("out-of-sync = %d, want 3", got)
	}
	before := r.p.Stats().CopiedBlocks
	r.must(r.pc.EstablishPairs(ctx, 1, []hal.PairSpec{{VolumePair: vp, Mode: hal.Resync}}))
	r.wantPair(vp, hal.CopyPending, hal.ReasonNone)
	r.clk.Advance(3*time.Millisecond - time.Nanosecond)
	r.wantPair(vp, hal.CopyPending, hal.ReasonNone)
	r.clk.Advance(time.Nanosecond)
	r.wantPair(vp, hal.FullDuplex, hal.ReasonNone)
	if got := r.p.Stats().CopiedBlocks - before; got != 3 {
		t.Fatalf("resync copied %d blocks, want exactly the 3 out-of-sync ones", got)
	}
	for b, want := range map[uint32]string{0: "old", 2: "new2", 5: "new5b", 11: "new11"} {
		if got := r.read(vp.Target, b); got != want {
			t.Fatalf("target block %d = %q, want %q", b, got, want)
		}
	}
}

func TestRecoverAndFailback(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	ctx := context.Background()
	vp := vpair(fbL, 0)
	r.write(vp.Source, 0, "a")
	r.must(r.pc.Freeze(ctx, 1, []hal.LSSPair{lssPair(fbL)}))
	r.must(r.pc.Thaw(ctx, 1, []hal.LSS{fbL}))
	r.write(vp.Source, 1, "h1-only") // changed at site 1 after the freeze

	r.must(r.sc.Recover(ctx, 1, []hal.VolumePair{vp}))
	r.must(r.sc.Recover(ctx, 1, []hal.VolumePair{vp})) // idempotent
	r.write(vp.Target, 2, "h2")                        // H2 is writable now
	if err := r.pc.Freeze(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	r.must(r.sc.EstablishPaths(ctx, 1, []hal.PathSpec{{LSSPair: hal.LSSPair{
		Source: lssPair(fbL).Target, Target: lssPair(fbL).Source}, ConsistencyGroup: true}}))
	r.must(r.sc.Failback(ctx, 1, []hal.VolumePair{vp}))
	r.clk.Advance(time.Second)
	back := hal.VolumePair{Source: vp.Target, Target: vp.Source}
	ps, _ := r.sc.QueryPairs(ctx, 1)
	found := false
	for _, p := range ps {
		if p.VolumePair == back {
			found = p.State == hal.FullDuplex
		}
	}
	if !found {
		t.Fatalf("failback pair not full-duplex: %+v", ps)
	}
	for b, want := range map[uint32]string{0: "a", 1: "", 2: "h2"} {
		if got := r.read(vp.Source, b); got != want {
			t.Fatalf("H1 block %d = %q after failback, want %q", b, got, want)
		}
	}
	r.write(vp.Target, 3, "mirrored back")
	if got := r.read(vp.Source, 3); got != "mirrored back" {
		t.Fatal("H2->H1 not mirroring after failback")
	}
}

func TestManagerLinkFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true)
		ctx := context.Background()
		r.p.SetManagerLink(mgr, LinkDown)
		if err := r.pc.Heartbeat(ctx, 1, "x"); !errors.Is(err, hal.ErrUnreachable) {
			t.Fatalf("down link: %v", err)
		}
		r.fab.SetPath(lssPair(fbL), false)
		r.noEvent() // the event is lost for this manager

		r.p.SetManagerLink(mgr, LinkBlackhole)
		tctx, cancel := clock.WithTimeout(ctx, r.clk, 2*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() { _, err := r.pc.QueryPairs(tctx, 1); errc <- err }()
		synctest.Wait()
		r.clk.Advance(2 * time.Second)
		if err := <-errc; !errors.Is(err, hal.ErrTimeout) {
			t.Fatalf("black hole: %v, want timeout", err)
		}

		r.p.SetManagerLink(mgr, LinkUp)
		r.p.SetLatency(mgr, 300*time.Millisecond)
		go func() { _, err := r.pc.QueryPairs(ctx, 1); errc <- err }()
		synctest.Wait()
		r.clk.Advance(299 * time.Millisecond)
		synctest.Wait()
		select {
		case <-errc:
			t.Fatal("slow link answered early")
		default:
		}
		r.clk.Advance(time.Millisecond)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
}

func TestCrashAndRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true)
		ctx := context.Background()
		// A crashed secondary fails the primary's paths.
		r.s.Crash()
		r.wantPair(vpair(fbL, 0), hal.Suspended, hal.ReasonPath)
		if r.elbUntil(fbL).IsZero() {
			t.Fatal("no ELB after the secondary crashed")
		}
		r.nextEvent()
		r.nextEvent()
		r.s.Restart()
		r.must(r.pc.Thaw(ctx, 1, []hal.LSS{fbL, ckdL}))
		r.must(r.pc.EstablishPairs(ctx, 1, []hal.PairSpec{{VolumePair: vpair(fbL, 0), Mode: hal.Resync}}))
		r.clk.Advance(time.Second)
		r.wantPair(vpair(fbL, 0), hal.FullDuplex, hal.ReasonNone)

		// A crashed primary answers nothing and refuses host I/O.
		r.p.Crash()
		if _, err := r.pc.QueryPairs(ctx, 1); !errors.Is(err, hal.ErrUnreachable) {
			t.Fatalf("query of a crashed system: %v", err)
		}
		if err := r.fab.Write(ctx, vpair(fbL, 0).Source, 0, nil); !errors.Is(err, ErrStorageDown) {
			t.Fatalf("write to a crashed system: %v", err)
		}
		r.clk.Advance(time.Hour)
		restart := r.clk.Now()
		r.p.Restart()
		r.wantPair(vpair(fbL, 0), hal.Suspended, hal.ReasonRestart)
		if got := r.elbUntil(fbL); !got.Equal(restart.Add(60 * time.Second)) {
			t.Fatalf("ELB after restart until %v", got)
		}
		ev := r.nextEvent()
		if ev.Reason != hal.ReasonRestart {
			t.Fatalf("event %+v, want suspend (restart)", ev)
		}
	})
}
