package freeze_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/latency"
)

// instantSystem is a storage system that answers every command at once
// and does nothing: the core's own share of a freeze, without storage.
type instantSystem struct {
	hal.StorageSystem // nil: the core calls only what is below
	serial            hal.Serial
	called            *atomic.Int64 // freezes entered in the current sample
	last              *atomic.Int64 // when the last of them was entered (UnixNano)
	want              int64
}

func (s instantSystem) Serial() hal.Serial             { return s.serial }
func (s instantSystem) Capabilities() hal.Capabilities { return hal.Capabilities{Heartbeat: true} }
func (s instantSystem) Events(ctx context.Context) (<-chan hal.Event, error) {
	return make(chan hal.Event), nil
}
func (s instantSystem) Freeze(context.Context, hal.Epoch, []hal.LSSPair) error {
	if s.called.Add(1) == s.want {
		s.last.Store(time.Now().UnixNano())
	}
	return nil
}
func (s instantSystem) Heartbeat(context.Context, hal.Epoch, string) error { return hal.ErrRefused }
func (s instantSystem) DisableHeartbeat(context.Context, hal.Epoch, string) error {
	return nil
}

// settledObserver signals every settlement.
type settledObserver struct{ settled chan struct{} }

func (o settledObserver) Freezing(string, string, time.Time) {}
func (o settledObserver) Settled(string, freeze.Settlement)  { o.settled <- struct{}{} }
func (o settledObserver) Thawed(string, time.Time)           {}
func (o settledObserver) Fenced(hal.Epoch)                   {}

// BenchmarkCoreFanOut is the freeze core alone: a suspend event handed
// to it (Observe) -> every system's Freeze entered (dispatch) -> the
// group settled frozen (settle), with storage that answers at once, and
// the heap objects allocated per freeze. What the end-to-end benchmarks
// measure beyond these is the storage side and the transport.
func BenchmarkCoreFanOut(b *testing.B) {
	for _, n := range []int{32, 128} {
		b.Run(fmt.Sprintf("%dsystems-x16LSS", n), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var called, last atomic.Int64
			systems := map[hal.Serial]hal.StorageSystem{}
			pairs := map[hal.Serial][]hal.LSSPair{}
			for i := range n {
				p, s := hal.Serial(fmt.Sprintf("P%03d", i)), hal.Serial(fmt.Sprintf("S%03d", i))
				systems[p] = instantSystem{serial: p, called: &called, last: &last, want: int64(n)}
				for l := range 16 {
					pairs[p] = append(pairs[p], hal.LSSPair{Source: hal.LSSRef{Serial: p, LSS: hal.LSS(0x10 + l)},
						Target: hal.LSSRef{Serial: s, LSS: hal.LSS(0x10 + l)}})
				}
			}
			obs := settledObserver{settled: make(chan struct{}, 1)}
			t := freeze.DefaultTimings()
			t.PollInterval = time.Hour
			core := freeze.New(freeze.Options{Timings: t, Systems: systems, Epoch: 1, Observer: obs})
			var wg sync.WaitGroup
			wg.Go(func() { core.Run(ctx) })
			defer wg.Wait()
			defer cancel()
			if err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: pairs, LowestCG: time.Minute}}); err != nil {
				b.Fatal(err)
			}
			var ms runtime.MemStats
			var dispatch, settle []time.Duration
			var objects uint64
			samples := 200
			seq := uint64(0)
			trigger := pairs[hal.Serial("P000")][0]
			for b.Loop() {
				for range samples {
					b.StopTimer()
					for {
						err := core.Restart(ctx, "cg")
						if err == nil {
							break
						}
						if !errors.Is(err, freeze.ErrBusy) {
							b.Fatal(err)
						}
						time.Sleep(time.Millisecond)
					}
					// Settled is the freeze's last step in the loop, and a
					// restart sends nothing: the loop is idle.
					if _, err := core.Status(ctx); err != nil {
						b.Fatal(err)
					}
					called.Store(0)
					seq++
					ev := hal.Event{Kind: hal.EventSuspend, Serial: "P000", Seq: seq, At: time.Now(),
						LSSPair: trigger, Reason: hal.ReasonPath}
					b.StartTimer()
					runtime.ReadMemStats(&ms) // exact (it flushes every P's counts), and before start
					before := ms.Mallocs
					start := time.Now()
					core.Observe(ev, "bench")
					<-obs.settled
					done := time.Now()
					runtime.ReadMemStats(&ms)
					objects += ms.Mallocs - before
					dispatch = append(dispatch, time.Unix(0, last.Load()).Sub(start))
					settle = append(settle, done.Sub(start))
				}
			}
			latency.Report(b, "dispatch", dispatch)
			latency.Report(b, "settle", settle)
			b.ReportMetric(float64(objects)/float64(len(settle)), "allocs/freeze")
		})
	}
}
