package link

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/state/statetest"
	"github.com/lockstep-io/lockstep/ha"
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

// BenchmarkFullSync100k: a full synchronization of a standby from an
// active store of 100 000 copy sets (statetest.Fill100k: a snapshot at
// 900 of its 1 000 sessions, then the 1 100 records after it), on
// loopback with mutual TLS, into a StoreSink over an empty store: from
// the standby's SyncRequest(full) to its StreamCaughtUp, that is the
// snapshot read, sent, checked and installed (fsynced), and the records
// shipped, checked and appended (fsynced). The benchmark plays the HA
// state machines' part at once (SendSnapshot on SyncRequested,
// StartStream on SnapshotSent). Reported: sync-s (mean seconds), MB
// shipped (snapshot and payloads) and MB/s.
func BenchmarkFullSync100k(b *testing.B) {
	wall := clock.Real()
	adir := b.TempDir()
	statetest.Fill100k(b, adir, 900)
	a := openStore(b, adir, persist.Options{SnapshotEvery: -1})
	defer a.Close()
	snap, ok, err := a.Journal().LatestSnapshot()
	if err != nil || !ok {
		b.Fatalf("the active's snapshot: %t %v", ok, err)
	}
	last := a.LastIndex()
	shipped := len(snap.State)
	for _, p := range readAll(b, a.Journal(), snap.Index+1) {
		shipped += len(p)
	}
	mb := float64(shipped) / (1 << 20)
	ctx := context.Background()

	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		sb := openStore(b, b.TempDir(), persist.Options{})
		s := startShip(b, a.Journal(), StoreSink{Store: sb}, SenderOptions{})
		b.StartTimer()

		start := wall.Now()
		if err := s.rcv.RequestSync(ctx, true); err != nil {
			b.Fatal(err)
		}
		waitEvent[ha.SyncRequested](b, s.aev)
		s.snd.SendSnapshot()
		waitEvent[ha.SnapshotSent](b, s.aev)
		s.snd.StartStream()
		caught := waitEvent[ha.StreamCaughtUp](b, s.sev)
		took := wall.Since(start)

		b.StopTimer()
		total += took
		if caught.Index != last || sb.LastIndex() != last {
			b.Fatalf("caught up at %d, standby at %d; want %d", caught.Index, sb.LastIndex(), last)
		}
		if n := statetest.CountCopySets(sb.DB()); n != statetest.CopySets {
			b.Fatalf("the standby holds %d copy sets", n)
		}
		s.stop()
		if err := sb.Close(); err != nil {
			b.Fatal(err)
		}
		b.Logf("full sync of %d copy sets: %.3f s, %.1f MB (snapshot at %d: %.1f MB; %d records after it)",
			statetest.CopySets, took.Seconds(), mb, snap.Index, float64(len(snap.State))/(1<<20), last-snap.Index)
		b.StartTimer()
	}
	mean := total.Seconds() / float64(b.N)
	b.ReportMetric(mean, "sync-s")
	b.ReportMetric(mb, "MB")
	b.ReportMetric(mb/mean, "MB/s")
}
