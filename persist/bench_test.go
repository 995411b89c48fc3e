package persist

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/latency"
)

// Benchmarks print their figures with ReportMetric; timing thresholds are
// never pass/fail. The wall clock is read through clock.Real.

// appendsPerOp is how many appends (or raw syncs) one iteration of
// BenchmarkDurableAppend makes: make bench runs every benchmark once
// (-benchtime 1x), and a p50/p99 of one sample is no figure.
const appendsPerOp = 1000

// BenchmarkDurableAppend: the raw fsync baseline (64 bytes written and
// fdatasync'ed, the journal's own sync call, in the same temp dir) and
// durable appends of 64-byte records with group commit at concurrency 1,
// 8 and 64, in one run.
func BenchmarkDurableAppend(b *testing.B) {
	real := clock.Real()
	payload := make([]byte, 64)
	b.Run("fsync-baseline", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "baseline"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		samples := make([]time.Duration, 0, b.N*appendsPerOp)
		for b.Loop() {
			for range appendsPerOp {
				start := real.Now()
				if _, err := f.Write(payload); err != nil {
					b.Fatal(err)
				}
				if err := syncData(f); err != nil {
					b.Fatal(err)
				}
				samples = append(samples, real.Since(start))
			}
		}
		latency.Report(b, "", samples)
		b.ReportMetric(float64(len(samples))/b.Elapsed().Seconds(), "syncs/s")
	})
	for _, conc := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("group-commit/c=%d", conc), func(b *testing.B) {
			j, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			var (
				mu      sync.Mutex
				samples = make([]time.Duration, 0, b.N*appendsPerOp)
				left    atomic.Int64
				wg      sync.WaitGroup
			)
			left.Store(int64(b.N * appendsPerOp))
			b.ResetTimer()
			for range conc {
				wg.Go(func() {
					var mine []time.Duration
					for left.Add(-1) >= 0 {
						start := real.Now()
						if _, err := j.Append(context.Background(), payload); err != nil {
							b.Error(err)
							return
						}
						mine = append(mine, real.Since(start))
					}
					mu.Lock()
					samples = append(samples, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			b.StopTimer()
			latency.Report(b, "", samples)
			b.ReportMetric(float64(len(samples))/b.Elapsed().Seconds(), "appends/s")
			b.ReportMetric(float64(len(samples))/float64(j.syncs.Load()), "records/fsync")
		})
	}
}
