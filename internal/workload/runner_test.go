package workload_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/workload"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// attempt is one call of mirrorHost.Write as the chain issued it.
type attempt struct {
	seq uint64
	ok  bool
}

// mirrorHost is a host whose every source volume is mirrored synchronously:
// a write that succeeds lands on the source and its target before Write
// returns. Writes to systems in failing fail and land nowhere; writes to
// systems in hanging block until the caller's context ends (extended long
// busy that is never released).
type mirrorHost struct {
	target    map[hal.VolumeRef]hal.VolumeRef
	primary   *disk
	secondary *disk

	mu       sync.Mutex
	failing  map[hal.Serial]bool
	hanging  map[hal.Serial]bool
	attempts map[uint32][]attempt // by chain
}

func newMirrorHost(l *workload.Layout) *mirrorHost {
	h := &mirrorHost{
		target:    make(map[hal.VolumeRef]hal.VolumeRef),
		primary:   newDisk(),
		secondary: newDisk(),
		failing:   make(map[hal.Serial]bool),
		hanging:   make(map[hal.Serial]bool),
		attempts:  make(map[uint32][]attempt),
	}
	for c := range l.Chains() {
		for _, p := range l.Chain(c) {
			h.target[p.Source] = p.Target
		}
	}
	return h
}

func (h *mirrorHost) Write(ctx context.Context, vol hal.VolumeRef, block uint32, data []byte) error {
	chain, seq, err := workload.DecodePayload(data)
	if err != nil || chain != block {
		return fmt.Errorf("host got a bad record for block %d: chain %d, %v", block, chain, err)
	}
	h.mu.Lock()
	fail, hang := h.failing[vol.Serial], h.hanging[vol.Serial]
	h.attempts[chain] = append(h.attempts[chain], attempt{seq: seq, ok: !fail && !hang})
	h.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail {
		return fmt.Errorf("%w: %s", hal.ErrUnreachable, vol.Serial)
	}
	target, ok := h.target[vol]
	if !ok {
		return fmt.Errorf("write to %v, which is not a source", vol)
	}
	h.primary.write(vol, block, data)
	h.secondary.write(target, block, data)
	return nil
}

func (h *mirrorHost) set(m map[hal.Serial]bool, serial hal.Serial, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m[serial] = on
}

func (h *mirrorHost) attemptsOf(chain int) []attempt {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.attempts[uint32(chain)])
}

// checkNeverSkips asserts that each chain issued its writes in order and
// retried a failed write with the same seq: after a failure the next
// attempt repeats the seq, after a success it is the next seq.
func checkNeverSkips(t *testing.T, h *mirrorHost, chains int) {
	t.Helper()
	for c := range chains {
		want := uint64(1)
		for k, a := range h.attemptsOf(c) {
			if a.seq != want {
				t.Fatalf("chain %d attempt %d wrote seq %d, want %d", c, k, a.seq, want)
			}
			if a.ok {
				want++
			}
		}
	}
}

// checkImage captures the secondary and asserts it is exactly the prefix
// the run acknowledged.
func checkImage(t *testing.T, h *mirrorHost, l *workload.Layout, st workload.Status) {
	t.Helper()
	img, err := workload.Capture(h.secondary, l)
	if err != nil {
		t.Fatal(err)
	}
	r := workload.Check(l, img)
	if !r.Consistent {
		t.Fatalf("secondary of a healthy mirror: %v", r)
	}
	if d := diff(st.Acked, r.Prefix); d != "" {
		t.Fatalf("oracle prefix differs from acknowledged writes (-want +got):\n%s", d)
	}
}

func sum(xs []uint64) uint64 {
	var s uint64
	for _, x := range xs {
		s += x
	}
	return s
}

func TestRunToMaxSeq(t *testing.T) {
	t.Parallel()
	l := mustLayout(t, makePairs(4, 4, 4, 4), 24, 4)
	h := newMirrorHost(l)
	run := workload.Start(t.Context(), h, l, workload.Options{MaxSeq: 150})
	<-run.Done()
	run.Stop()

	st := run.Status()
	want := workload.Status{Acked: slices.Repeat([]uint64{150}, 24), Writes: 24 * 150, MaxWait: st.MaxWait} // real time: not checked
	if d := diff(want, st); d != "" {
		t.Errorf("Status mismatch (-want +got):\n%s", d)
	}
	checkNeverSkips(t, h, 24)
	checkImage(t, h, l, st)
}

// With think time on a fake clock every chain writes once per tick, so
// progress is exact; stopping mid-run leaves the acknowledged prefix.
func TestRunThinkOnFakeClock(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := mustLayout(t, makePairs(3, 3, 3), 9, 3)
		h := newMirrorHost(l)
		fake := clock.NewFake(epoch)
		run := workload.Start(t.Context(), h, l, workload.Options{Clock: fake, Think: time.Second})
		for tick := range 20 {
			synctest.Wait()
			st := run.Status()
			if want := slices.Repeat([]uint64{uint64(tick + 1)}, 9); !st.Running || !slices.Equal(st.Acked, want) {
				t.Fatalf("after %d ticks: %+v, want running with acked %v", tick, st, want)
			}
			fake.Advance(time.Second - time.Nanosecond)
			synctest.Wait()
			if got := run.Status().Writes; got != uint64(9*(tick+1)) {
				t.Fatalf("a write happened before the think time ended: %d writes, want %d", got, 9*(tick+1))
			}
			fake.Advance(time.Nanosecond)
		}
		synctest.Wait()
		run.Stop()
		st := run.Status()
		if st.Running || st.Writes != sum(st.Acked) || st.Acked[0] != 21 {
			t.Fatalf("after Stop: %+v", st)
		}
		checkNeverSkips(t, h, 9)
		checkImage(t, h, l, st)
	})
}

// While one primary refuses writes, every chain stops at its first write
// to that system and retries the same seq after RetryDelay; when the
// system comes back the chains continue and the image is still exact.
func TestRunRetriesSameSeq(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const chains, maxSeq = 12, 40
		l := mustLayout(t, makePairs(4, 4, 4), chains, 3)
		h := newMirrorHost(l)
		down := primary(1)
		h.set(h.failing, down, true)
		fake := clock.NewFake(epoch)
		const delay = 50 * time.Millisecond
		run := workload.Start(t.Context(), h, l, workload.Options{Clock: fake, RetryDelay: delay, MaxSeq: maxSeq})

		synctest.Wait()
		stuck := run.Status()
		for c, acked := range stuck.Acked {
			next := l.Chain(c)[acked%3].Source // the volume of write acked+1
			if next.Serial != down {
				t.Fatalf("chain %d stopped at %d with its next write on %v, not on the failing %s", c, acked, next, down)
			}
		}
		if stuck.Errors != chains {
			t.Fatalf("%d write errors, want one per chain (%d)", stuck.Errors, chains)
		}
		checkImage(t, h, l, stuck) // the secondary holds what was acknowledged

		for round := 2; round <= 5; round++ {
			fake.Advance(delay - time.Nanosecond)
			synctest.Wait()
			if got := run.Status().Errors; got != uint64(chains*(round-1)) {
				t.Fatalf("retried before RetryDelay: %d errors, want %d", got, chains*(round-1))
			}
			fake.Advance(time.Nanosecond)
			synctest.Wait()
			st := run.Status()
			if st.Errors != uint64(chains*round) || !slices.Equal(st.Acked, stuck.Acked) {
				t.Fatalf("retry %d: %+v, want %d errors and acked %v", round, st, chains*round, stuck.Acked)
			}
		}

		h.set(h.failing, down, false)
		fake.Advance(delay)
		synctest.Wait()
		select {
		case <-run.Done():
		default:
			t.Fatalf("run not done after the system came back: %+v", run.Status())
		}
		st := run.Status()
		// The write that failed five times waited five retry delays.
		want := workload.Status{Acked: slices.Repeat([]uint64{maxSeq}, chains), Writes: chains * maxSeq, Errors: chains * 5,
			MaxWait: 5 * delay}
		if d := diff(want, st); d != "" {
			t.Errorf("Status mismatch (-want +got):\n%s", d)
		}
		checkNeverSkips(t, h, chains)
		checkImage(t, h, l, st)
	})
}

// A write held in extended long busy blocks its chain; Stop cancels it,
// and the cancelled write is neither acknowledged nor counted as an error.
func TestRunStopDuringLongBusy(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := mustLayout(t, makePairs(2, 2, 2), 6, 3)
		h := newMirrorHost(l)
		h.set(h.hanging, primary(2), true)
		run := workload.Start(t.Context(), h, l, workload.Options{})
		synctest.Wait()
		before := run.Status()
		if !before.Running || before.Errors != 0 {
			t.Fatalf("with writes held: %+v", before)
		}
		run.Stop()
		after := run.Status()
		if after.Running || after.Errors != 0 || !slices.Equal(after.Acked, before.Acked) {
			t.Fatalf("after Stop: %+v, before %+v", after, before)
		}
		for c := range 6 {
			last := h.attemptsOf(c)
			if got := last[len(last)-1]; got.seq != after.Acked[c]+1 || got.ok {
				t.Errorf("chain %d: last attempt %+v, want the held write %d", c, got, after.Acked[c]+1)
			}
		}
		checkImage(t, h, l, after)
		run.Stop() // a second Stop returns at once
	})
}

// Cancelling the parent context ends the run like Stop.
func TestRunParentCancel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := mustLayout(t, makePairs(2, 2), 4, 2)
		h := newMirrorHost(l)
		ctx, cancel := context.WithCancel(t.Context())
		fake := clock.NewFake(epoch)
		run := workload.Start(ctx, h, l, workload.Options{Clock: fake, Think: time.Hour})
		synctest.Wait()
		cancel()
		synctest.Wait()
		select {
		case <-run.Done():
		default:
			t.Fatal("run still going after its context was cancelled")
		}
		if st := run.Status(); st.Running || st.Writes != 4 {
			t.Fatalf("after cancel: %+v, want stopped after one write per chain", st)
		}
	})
}

// errHost fails every write, so the chains spin on retries: the default
// RetryDelay must apply when none is given.
type errHost struct{ calls atomic.Int64 }

func (h *errHost) Write(context.Context, hal.VolumeRef, uint32, []byte) error {
	h.calls.Add(1)
	return errors.New("no")
}

func TestRunDefaultRetryDelay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := mustLayout(t, makePairs(1, 1), 1, 2)
		h := &errHost{}
		fake := clock.NewFake(epoch)
		run := workload.Start(t.Context(), h, l, workload.Options{Clock: fake})
		defer run.Stop()
		synctest.Wait()
		fake.Advance(workload.DefaultRetryDelay - time.Nanosecond)
		synctest.Wait()
		if got := h.calls.Load(); got != 1 {
			t.Fatalf("%d attempts before the default retry delay, want 1", got)
		}
		fake.Advance(time.Nanosecond)
		synctest.Wait()
		if got := h.calls.Load(); got != 2 {
			t.Fatalf("%d attempts at the default retry delay, want 2", got)
		}
	})
}
