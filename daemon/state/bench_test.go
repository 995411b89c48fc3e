package state_test

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/daemon/state/statetest"
	"github.com/lockstep-io/lockstep/persist"
)

// The store benchmarks at 100 000 copy sets, outside package state so
// that they share statetest's builder with ha/link's (statetest imports
// state: state's own tests cannot import it).

// BenchmarkReplay100k: time from Open to a ready DB for a state of
// 100 000 copy sets (target: <= 1 s), in three shapes: a snapshot at
// record 9 900 and the 1 100 records after it (about what the default
// SnapshotEvery of 10 000 leaves at worst: fewer records, but each
// carrying 10 copy sets); the journal alone (11 000 records); a snapshot
// alone.
func BenchmarkReplay100k(b *testing.B) {
	withSnap := b.TempDir()
	statetest.Fill100k(b, withSnap, 900)
	noSnap := b.TempDir()
	statetest.Fill100k(b, noSnap, 0)
	snapOnly := b.TempDir()
	if err := os.CopyFS(snapOnly, os.DirFS(withSnap)); err != nil {
		b.Fatal(err)
	}
	s, err := state.Open(snapOnly, persist.Options{SnapshotEvery: -1})
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
		opts persist.Options
	}{
		{"snapshot+tail", withSnap, persist.Options{SnapshotEvery: -1}},
		{"journal-only", noSnap, persist.Options{SnapshotEvery: -1}},
		{"snapshot-only", snapOnly, persist.Options{SnapshotEvery: -1}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var copySets, replayed int
			for b.Loop() {
				s, err := state.Open(tc.dir, tc.opts)
				if err != nil {
					b.Fatal(err)
				}
				db := s.DB() // ready: what the daemon reads first
				b.StopTimer()
				copySets = statetest.CountCopySets(db)
				j := s.Journal()
				snap, _, _ := j.LatestSnapshot()
				replayed = int(j.LastIndex() - snap.Index)
				s.Close()
				b.StartTimer()
			}
			if copySets != statetest.CopySets {
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
	statetest.Fill100k(b, dir, 0)
	s, err := state.Open(dir, persist.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		_ = s.DB()
	}
}

// BenchmarkMemory100k: the memory the state store takes for 100 000 copy
// sets, opened from a snapshot and its tail as the daemon opens it: the
// live heap it adds (after a GC, the store held) and the process's
// resident set before and after (RSS, from /proc/self/status; it also
// holds the test binary and the Go runtime).
func BenchmarkMemory100k(b *testing.B) {
	dir := b.TempDir()
	statetest.Fill100k(b, dir, 900)
	var heap, rssBefore, rssAfter float64
	for b.Loop() {
		debug.FreeOSMemory() // what Fill100k used is not counted
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rssBefore = rssMB(b)
		s, err := state.Open(dir, persist.Options{SnapshotEvery: -1})
		if err != nil {
			b.Fatal(err)
		}
		if n := statetest.CountCopySets(s.DB()); n != statetest.CopySets {
			b.Fatalf("%d copy sets", n)
		}
		debug.FreeOSMemory()
		runtime.ReadMemStats(&after)
		rssAfter = rssMB(b)
		heap = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		runtime.KeepAlive(s)
		s.Close()
	}
	b.ReportMetric(heap, "heap-MB/100k-copysets")
	b.ReportMetric(rssBefore, "rss-MB-before")
	b.ReportMetric(rssAfter, "rss-MB-with-100k")
}

// rssMB is the process's resident set (VmRSS) in MiB.
func rssMB(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
