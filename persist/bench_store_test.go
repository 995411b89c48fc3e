package persist_test

import (
	"context"
	"os"
	"testing"

	"github.com/lockstep-io/lockstep/persist"
	"github.com/lockstep-io/lockstep/persist/persisttest"
)

// The store benchmarks at 100 000 copy sets, outside package persist so
// that they share persisttest's builder with ha/link's (persisttest
// imports persist: persist's own tests cannot import it).

// BenchmarkReplay100k: time from OpenStore to a ready DB for a state of
// 100 000 copy sets (target: <= 1 s), in three shapes: a snapshot at
// record 9 900 and the 1 100 records after it (about what the default
// SnapshotEvery of 10 000 leaves at worst: fewer records, but each
// carrying 10 copy sets); the journal alone (11 000 records); a snapshot
// alone.
func BenchmarkReplay100k(b *testing.B) {
	withSnap := b.TempDir()
	persisttest.Fill100k(b, withSnap, 900)
	noSnap := b.TempDir()
	persisttest.Fill100k(b, noSnap, 0)
	snapOnly := b.TempDir()
	if err := os.CopyFS(snapOnly, os.DirFS(withSnap)); err != nil {
		b.Fatal(err)
	}
	s, err := persist.OpenStore(snapOnly, persist.Options{SnapshotEvery: -1})
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
				s, err := persist.OpenStore(tc.dir, tc.opts)
				if err != nil {
					b.Fatal(err)
				}
				db := s.DB() // ready: what the daemon reads first
				b.StopTimer()
				copySets = persisttest.CountCopySets(db)
				j := s.Journal()
				snap, _, _ := j.LatestSnapshot()
				replayed = int(j.LastIndex() - snap.Index)
				s.Close()
				b.StartTimer()
			}
			if copySets != persisttest.CopySets {
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
	persisttest.Fill100k(b, dir, 0)
	s, err := persist.OpenStore(dir, persist.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		_ = s.DB()
	}
}
