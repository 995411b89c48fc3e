package link

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/latency"
	"github.com/lockstep-io/lockstep/persist"
)

// Benchmarks print their figures with ReportMetric; timing thresholds are
// never pass/fail. The wall clock is read through clock.Real.

// BenchmarkStandbyLag: standby lag while synchronized, on loopback with
// mutual TLS — from a record made durable on the active (its Append
// returned) to the standby's Ack for it, which the standby sends after
// its own fsync (a persist journal in a temp dir, one fsync per record).
// 2000 samples per run, with 1 and 8 concurrent writers on the active.
func BenchmarkStandbyLag(b *testing.B) {
	const samples = 2000
	wall := clock.Real()
	payload := make([]byte, 200)
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			aj := openJournal(b, b.TempDir(), persist.Options{})
			defer aj.Close()
			sj := openJournal(b, b.TempDir(), persist.Options{})
			defer sj.Close()
			s := startShip(b, aj, journalSink{sj}, SenderOptions{})
			s.sync(b, true)
			for b.Loop() {
				var (
					mu  sync.Mutex
					all = make([]time.Duration, 0, samples)
					wg  sync.WaitGroup
				)
				for range writers {
					wg.Go(func() {
						ctx := context.Background()
						mine := make([]time.Duration, 0, samples/writers)
						for range samples / writers {
							index, err := aj.Append(ctx, payload)
							if err != nil {
								b.Error(err)
								return
							}
							durable := wall.Now()
							if err := s.snd.WaitAcked(ctx, index); err != nil {
								b.Error(err)
								return
							}
							mine = append(mine, wall.Since(durable))
						}
						mu.Lock()
						all = append(all, mine...)
						mu.Unlock()
					})
				}
				wg.Wait()
				latency.Report(b, "", all)
			}
		})
	}
}
