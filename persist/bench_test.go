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

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/latency"
)

// Benchmarks print their figures with ReportMetric; timing thresholds are
// never pass/fail. The wall clock is read through clock.Real.

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
		samples := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := real.Now()
			if _, err := f.Write(payload); err != nil {
				b.Fatal(err)
			}
			if err := syncData(f); err != nil {
				b.Fatal(err)
			}
			samples = append(samples, real.Since(start))
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
				samples = make([]time.Duration, 0, b.N)
				left    atomic.Int64
				wg      sync.WaitGroup
			)
			left.Store(int64(b.N))
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
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			b.ReportMetric(float64(b.N)/float64(j.syncs.Load()), "records/fsync")
		})
	}
}

// copySetAt is the g-th copy set of the benchmark state: 50 000 volumes
// per storage system pair (LSS 0x00-0xC3).
func copySetAt(g int) session.CopySet {
	k, v := g/50_000, g%50_000
	vol := hal.NewVolume(hal.LSS(v/256), uint8(v%256))
	return session.CopySet{
		H1: hal.VolumeRef{Serial: serial("P", k), Volume: vol},
		H2: hal.VolumeRef{Serial: serial("S", k), Volume: vol},
	}
}

// buildState fills a store in dir with 1 000 sessions of 100 copy sets
// (100 000 copy sets), added 10 per record: 11 000 session records,
// proposed by 32 goroutines. If snapAfter > 0, a snapshot is taken once
// that many sessions are complete; no automatic snapshot is taken.
func buildState(b *testing.B, dir string, snapAfter int) {
	const sessions, perSession, perRecord = 1000, 100, 10
	s, err := OpenStore(dir, Options{SnapshotEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	build := func(from, to int) {
		var wg sync.WaitGroup
		next := atomic.Int64{}
		next.Store(int64(from))
		for range 32 {
			wg.Go(func() {
				for {
					n := int(next.Add(1)) - 1
					if n >= to {
						return
					}
					name := fmt.Sprintf("s%04d", n)
					recs := []session.Record{{Version: session.RecordVersion, Kind: session.KindSessionCreated, Session: name, At: t0,
						Create: &session.Create{Type: session.MetroMirrorFailoverFailback, CGName: fmt.Sprintf("cg%d", n%10), Policy: session.HoldIO}}}
					for r := range perSession / perRecord {
						var cs []session.CopySet
						for c := range perRecord {
							cs = append(cs, copySetAt(n*perSession+r*perRecord+c))
						}
						recs = append(recs, session.Record{Version: session.RecordVersion, Kind: session.KindCopySetsAdded, Session: name, At: t0, CopySets: cs})
					}
					for _, r := range recs {
						if err := s.Propose(ctx, r); err != nil {
							b.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
	}
	if snapAfter > 0 {
		build(0, snapAfter)
		if err := s.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
	}
	build(max(snapAfter, 0), sessions)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReplay100k: time from OpenStore to a ready DB for a state of
// 100 000 copy sets (target: <= 1 s), in three shapes: a snapshot at
// record 9 900 and the 1 100 records after it (about what the default
// SnapshotEvery of 10 000 leaves at worst: fewer records, but each
// carrying 10 copy sets); the journal alone (11 000 records); a snapshot
// alone.
func BenchmarkReplay100k(b *testing.B) {
	withSnap := b.TempDir()
	buildState(b, withSnap, 900)
	noSnap := b.TempDir()
	buildState(b, noSnap, 0)
	snapOnly := b.TempDir()
	if err := os.CopyFS(snapOnly, os.DirFS(withSnap)); err != nil {
		b.Fatal(err)
	}
	s, err := OpenStore(snapOnly, Options{SnapshotEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Snapshot(context.Background()); err != nil {
		b.Fatal(err)
	}
	s.Close()

	for _, tc := range []struct {
		name string
		dir  string
		opts Options
	}{
		{"snapshot+tail", withSnap, Options{SnapshotEvery: -1}},
		{"journal-only", noSnap, Options{SnapshotEvery: -1}},
		{"snapshot-only", snapOnly, Options{SnapshotEvery: -1}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var copySets, replayed int
			for b.Loop() {
				s, err := OpenStore(tc.dir, tc.opts)
				if err != nil {
					b.Fatal(err)
				}
				db := s.DB() // ready: what the daemon reads first
				b.StopTimer()
				copySets = 0
				for _, sess := range db.Sessions() {
					copySets += len(sess.CopySets)
				}
				j := s.Journal()
				snap, _, _ := j.LatestSnapshot()
				replayed = int(j.LastIndex() - snap.Index)
				s.Close()
				b.StartTimer()
			}
			if copySets != 100_000 {
				b.Fatalf("%d copy sets", copySets)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "open-ms")
			b.ReportMetric(float64(replayed), "records-replayed")
		})
	}
}

// BenchmarkStoreDB: the cost of Store.DB at 100 000 copy sets (a full
// copy of the volume index, see Store.DB).
func BenchmarkStoreDB(b *testing.B) {
	dir := b.TempDir()
	buildState(b, dir, 0)
	s, err := OpenStore(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		_ = s.DB()
	}
}
