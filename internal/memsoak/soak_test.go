package memsoak_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/synctest"

	"github.com/lockstep-io/lockstep/internal/memsoak"
	"github.com/lockstep-io/lockstep/persist"
)

// maxGrowth is how much the live heap at hour 24 may exceed hour 1's:
// what a day of events may add to the manager's memory is nothing; 5 %
// is the measurement's own noise (the GC's accounting, a timer or a
// buffer more or less at the instant of the sample).
const maxGrowth = 1.05

// resultEnv names the file where TestMemorySoak24h writes its samples
// for BenchmarkMemorySoak24h, which runs it in a process of its own.
const resultEnv = "LOCKSTEP_MEMSOAK_RESULT"

// configs are the soak's two journals: lockstepd's defaults (a snapshot
// every 10 000 records, 16 MiB segments: a day at a cycle a minute, about
// 7 000 records, takes no snapshot, so the journal only grows, within
// the 16 MiB segment that compaction drops once two snapshots cover it),
// and one that compacts within the day (a snapshot every 500 records,
// 64 KiB segments), which shows that compaction bounds it.
var configs = []struct {
	name string
	opts persist.Options
}{
	{"defaults", persist.Options{}},
	{"compacting", persist.Options{SnapshotEvery: 500, SegmentSize: 64 << 10}},
}

// TestMemorySoak24h: 24 simulated hours, a suspend/resync cycle every
// minute (1 440), through the core, engine and session manager with the
// journal on disk: the live heap at hour 24 within 5 % of hour 1's, the
// goroutines as many, and the journal of the compacting configuration
// never bigger than what compaction keeps (two snapshot intervals of
// records, three segments; a journal never compacted reaches 2.3 MB by
// hour 24). It asserts boundedness,
// never time. LOCKSTEP_MEMSOAK_PROFILES=DIR keeps heap profiles of hours
// 1 and 24 there (DIR/<config>/heap-h1.pprof).
func TestMemorySoak24h(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated day")
	}
	if raceEnabled && os.Getenv(resultEnv) == "" && os.Getenv("LOCKSTEP_SOAK") == "" {
		t.Skip("the race detector's own memory grows with what it has seen: the soak runs without it (make test's soak stage)")
	}
	results := map[string]memsoak.Result{}
	for _, tc := range configs {
		t.Run(tc.name, func(t *testing.T) {
			profiles := ""
			if dir := os.Getenv("LOCKSTEP_MEMSOAK_PROFILES"); dir != "" {
				profiles = filepath.Join(dir, tc.name)
				if err := os.MkdirAll(profiles, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var res memsoak.Result
			synctest.Test(t, func(t *testing.T) {
				var err error
				res, err = memsoak.Run(context.Background(), memsoak.Options{Dir: t.TempDir(), Persist: tc.opts,
					ProfileDir: profiles})
				if err != nil {
					t.Fatal(err)
				}
			})
			results[tc.name] = res
			var bounded persist.Options
			if tc.name == "compacting" {
				bounded = tc.opts
			}
			check(t, res, bounded)
		})
	}
	if out := os.Getenv(resultEnv); out != "" {
		b, _ := json.Marshal(results)
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// check judges a soak; compacting is its journal's options when the
// journal must stay bounded within the day (zero for the defaults).
func check(t *testing.T, res memsoak.Result, compacting persist.Options) {
	t.Helper()
	for _, s := range res.Samples {
		t.Logf("hour %2d: live heap %8d B, %3d goroutines, journal %8d B (%d records), %d cycles",
			s.Hour, s.LiveHeap, s.Goroutines, s.JournalBytes, s.Records, s.Cycles)
	}
	first, last := res.First(), res.Last()
	if last.Cycles != 24*60 {
		t.Fatalf("%d cycles, want 1440", last.Cycles)
	}
	if float64(last.LiveHeap) > maxGrowth*float64(first.LiveHeap) {
		t.Errorf("live heap grew from %d B at hour 1 to %d B at hour 24 (x%.3f, bound x%.2f)",
			first.LiveHeap, last.LiveHeap, float64(last.LiveHeap)/float64(first.LiveHeap), maxGrowth)
	}
	if last.Goroutines > first.Goroutines {
		t.Errorf("goroutines grew from %d at hour 1 to %d at hour 24", first.Goroutines, last.Goroutines)
	}
	if compacting.SnapshotEvery > 0 {
		// Compaction keeps the records of two snapshot intervals, in
		// whole segments (the two kept and the one being written), and
		// the snapshots: record size from hour 1, when no snapshot has
		// been taken yet. Sampling the sawtooth at 24 points, the most of
		// one half of the day against the other was no bound: where the
		// samples fall in the cycle moved it by more than a quarter.
		recordSize := first.JournalBytes / int64(max(first.Records, 1))
		bound := 2*int64(compacting.SnapshotEvery)*recordSize + 3*int64(compacting.SegmentSize)
		for _, s := range res.Samples {
			if s.JournalBytes > bound {
				t.Errorf("journal at hour %d: %d B, more than compaction keeps (%d B: two snapshot intervals of %d-byte records and three %d-byte segments)",
					s.Hour, s.JournalBytes, bound, recordSize, compacting.SegmentSize)
			}
		}
	}
}

// BenchmarkMemorySoak24h runs TestMemorySoak24h in a process of its own
// (a synctest bubble needs a test, and the heap it measures must not
// hold other benchmarks' leftovers) and reports, per journal
// configuration, the live heap at hours 1 and 24 and their ratio, and
// the journal's bytes on disk at both.
func BenchmarkMemorySoak24h(b *testing.B) {
	var results map[string]memsoak.Result
	for b.Loop() {
		out := filepath.Join(b.TempDir(), "result.json")
		cmd := exec.Command(os.Args[0], "-test.run", "^TestMemorySoak24h$", "-test.count", "1", "-test.v")
		cmd.Env = append(os.Environ(), resultEnv+"="+out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("soak: %v\n%s", err, msg)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(data, &results); err != nil {
			b.Fatal(err)
		}
	}
	for _, tc := range configs {
		b.Run(tc.name, func(b *testing.B) {
			res := results[tc.name]
			for b.Loop() {
			}
			first, last := res.First(), res.Last()
			b.ReportMetric(float64(first.LiveHeap)/(1<<20), "live-heap-h1-MB")
			b.ReportMetric(float64(last.LiveHeap)/(1<<20), "live-heap-h24-MB")
			b.ReportMetric(float64(last.LiveHeap)/float64(first.LiveHeap), "live-heap-h24/h1")
			b.ReportMetric(float64(first.JournalBytes)/(1<<20), "journal-h1-MB")
			b.ReportMetric(float64(last.JournalBytes)/(1<<20), "journal-h24-MB")
			b.ReportMetric(float64(last.Records), "records-h24")
			b.ReportMetric(float64(last.Cycles), "cycles")
		})
	}
}
