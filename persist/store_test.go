package persist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestStoreReplayRandom: random record streams go to the store and to a
// tally of the test's own; both accept and refuse the same records, and
// after each close and reopen (with snapshots and compaction along the
// way) the store rebuilds exactly the same state, byte for byte.
func TestStoreReplayRandom(t *testing.T) {
	t.Parallel()
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			opts := Options{SegmentSize: 1024, SnapshotEvery: 1 + int(seed)*13}
			g := newGen(seed)
			mem := emptyTally()
			s := mustOpenStore(t, dir, opts)
			accepted := 0
			for round := range 5 {
				for i := range 300 {
					r := g.record(mem)
					errMem := mem.Apply(r)
					errStore := s.Propose(ctx, r)
					if fmt.Sprint(errMem) != fmt.Sprint(errStore) {
						t.Fatalf("round %d record %d: memory %v, store %v", round, i, errMem, errStore)
					}
					if errMem == nil {
						accepted++
					}
				}
				b, _ := mem.Snapshot()
				want := string(b)
				if got := stateOf(t, s); got != want {
					t.Fatalf("round %d: store state differs (-want +got):\n-%s\n+%s", round, want, got)
				}
				if got := s.LastIndex(); got != uint64(accepted) {
					t.Fatalf("LastIndex %d, %d records accepted", got, accepted)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = mustOpenStore(t, dir, opts)
				if got := stateOf(t, s); got != want {
					t.Fatalf("round %d: reopened state differs (-want +got):\n-%s\n+%s", round, want, got)
				}
			}
			s.Close()
			snaps, _ := filepath.Glob(filepath.Join(dir, journalDirName, "*"+snapSuffix))
			if len(snaps) == 0 {
				t.Errorf("no snapshot after %d records with SnapshotEvery %d", accepted, opts.SnapshotEvery)
			}
			t.Logf("%d records accepted, %d snapshot files", accepted, len(snaps))
		})
	}
}

// TestStoreConcurrent: writers and readers at once, then a reopen: every
// state a reader views is whole (each writer's keys are a prefix of the
// ones it adds, in order), and the replay gives the final state.
func TestStoreConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpenStore(t, dir, Options{SnapshotEvery: 25})
	const writers, each = 4, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := range each {
				if err := s.Propose(ctx, add(fmt.Sprintf("w%dk%02d", w, k))); err != nil {
					t.Errorf("Propose: %v", err)
					return
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 100 {
				st := tallyOf(s)
				for w := range writers {
					n := 0
					for k := range each {
						if st.keys[fmt.Sprintf("w%dk%02d", w, k)] {
							n++
						}
					}
					for k := range n {
						if !st.keys[fmt.Sprintf("w%dk%02d", w, k)] {
							t.Errorf("writer %d: %d keys but not key %d", w, n, k)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	want := stateOf(t, s)
	if s.LastIndex() != writers*each {
		t.Errorf("LastIndex = %d", s.LastIndex())
	}
	s.Close()
	s = mustOpenStore(t, dir, Options{})
	defer s.Close()
	if got := stateOf(t, s); got != want {
		t.Errorf("replayed state differs")
	}
}

// TestStoreRefusedNotJournaled: a record the state refuses gets Check's
// error as it is, and never reaches the journal; neither does one whose
// context is done, nor one that does not encode.
func TestStoreRefusedNotJournaled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mustOpenStore(t, t.TempDir(), Options{})
	defer s.Close()
	if err := s.Propose(ctx, del("nobody")); !errors.Is(err, errTallyAbsent) || strings.HasPrefix(err.Error(), "persist") {
		t.Errorf("Propose(refused) = %v, want the state's own error", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Propose(cancelled, add("a")); !errors.Is(err, context.Canceled) {
		t.Errorf("Propose(cancelled) = %v", err)
	}
	if err := s.Propose(ctx, add("Not A Key")); err == nil {
		t.Errorf("Propose of a record that does not encode succeeded")
	}
	if n := s.Journal().LastIndex(); n != 0 {
		t.Errorf("a refused record was journaled: last index %d", n)
	}
	if err := s.Propose(ctx, add("a")); err != nil || s.Journal().LastIndex() != 1 {
		t.Errorf("Propose after the refusals = %v, last index %d", err, s.Journal().LastIndex())
	}
}

// TestStoreAutoSnapshot: the store snapshots every SnapshotEvery records,
// so a reopen replays fewer than that.
func TestStoreAutoSnapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const every = 10
	s := mustOpenStore(t, dir, Options{SnapshotEvery: every, SegmentSize: 512, SnapshotsKept: 1})
	fill(t, s, newGen(3), 95)
	last := s.LastIndex()
	want := stateOf(t, s)
	s.Close()
	j := mustOpen(t, filepath.Join(dir, journalDirName), Options{})
	snap, ok, err := j.LatestSnapshot()
	if err != nil || !ok {
		t.Fatalf("no snapshot: %v", err)
	}
	if snap.Index+every <= last {
		t.Errorf("latest snapshot at %d, last record %d: more than %d records to replay", snap.Index, last, every)
	}
	if first := j.FirstIndex(); first > snap.Index+1 || first < 2 {
		t.Errorf("FirstIndex %d with a snapshot at %d and SnapshotsKept 1: not compacted", first, snap.Index)
	}
	j.Close()
	s = mustOpenStore(t, dir, Options{})
	defer s.Close()
	if got := stateOf(t, s); got != want {
		t.Errorf("replayed state differs")
	}
}

// TestStoreReplayRefused: a record the codec does not decode, or one
// the state refuses, stops the replay with an error naming its index
// and wrapping the application's error; a snapshot that does not load
// is ErrCorrupt, naming the file.
func TestStoreReplayRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		payloads []string
		want     error
	}{
		{"unknown record", []string{"add a", "heartbeat on"}, errTallyUnknown},
		{"refused by the state", []string{"add a", "add a"}, errTallyExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			j := mustOpen(t, filepath.Join(dir, journalDirName), Options{})
			for _, p := range tc.payloads {
				if _, err := j.Append(context.Background(), []byte(p)); err != nil {
					t.Fatal(err)
				}
			}
			j.Close()
			s, err := OpenStore(dir, tallyCodec, Options{})
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "replaying record 2 ") {
				t.Errorf("OpenStore = %v, want %v naming record 2", err, tc.want)
			}
		})
	}
	t.Run("snapshot does not load", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		j := mustOpen(t, filepath.Join(dir, journalDirName), Options{})
		if _, err := j.Append(context.Background(), []byte("add a")); err != nil {
			t.Fatal(err)
		}
		if err := j.Snapshot(1, []byte("not a tally")); err != nil {
			t.Fatal(err)
		}
		j.Close()
		s, err := OpenStore(dir, tallyCodec, Options{})
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, errTallyState) || !strings.Contains(err.Error(), snapName(1)) {
			t.Errorf("OpenStore = %v, want ErrCorrupt naming %s", err, snapName(1))
		}
	})
}

// TestOpenStoreNeedsACodec: a Codec with a function missing is refused
// at once, not at the first record.
func TestOpenStoreNeedsACodec(t *testing.T) {
	t.Parallel()
	c := tallyCodec
	c.Decode = nil
	if s, err := OpenStore(t.TempDir(), c, Options{}); err == nil {
		s.Close()
		t.Errorf("OpenStore with no Decode succeeded")
	}
}

// TestStoreEmptyDirFiles: a new store lays out its directory as doc.go
// says.
func TestStoreLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpenStore(t, dir, Options{})
	if _, err := s.CreateBackup(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, name := range []string{lockName, journalDirName + "/" + segName(1), backupsDirName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
