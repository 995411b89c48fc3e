package persist

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// proposeMixed proposes random records to s until it holds n records
// (the refused ones are not counted).
func proposeMixed(t testing.TB, s *testStore, seed uint64, n uint64) {
	t.Helper()
	fill(t, s, newGen(seed), n)
}

// journalPayloads reads records from..to of s's journal.
func journalPayloads(t testing.TB, s *testStore, from, to uint64) [][]byte {
	t.Helper()
	var out [][]byte
	for _, e := range readRange(t, s.Journal(), from, to) {
		out = append(out, e.Payload)
	}
	return out
}

// batchLog records the size of every write batch of a journal (its
// beforeWrite hook), and can hold the writer before a batch.
type batchLog struct {
	mu    sync.Mutex
	sizes []int
	hold  chan struct{} // if not nil, the writer waits for it to close
	held  chan struct{} // closed when the writer waits on hold
}

// watch installs the log on s's journal; call it before s appends
// anything. With lockstep, each enqueue waits for the writer to take its
// batch (afterEnqueue): records queued by separate enqueues then never
// share a batch, so a batch holds exactly what one enqueue put in it.
// Every enqueue must then begin a batch: for sequential appends only.
func (l *batchLog) watch(s *testStore, lockstep bool) {
	j := s.Journal()
	taken := make(chan struct{}, 1)
	j.beforeWrite = func(n int) {
		l.mu.Lock()
		l.sizes = append(l.sizes, n)
		hold, held := l.hold, l.held
		l.mu.Unlock()
		if lockstep {
			taken <- struct{}{}
		}
		if hold != nil {
			close(held)
			<-hold
		}
	}
	if lockstep {
		j.afterEnqueue = func() { <-taken }
	}
}

func (l *batchLog) get() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sizes)
}

// primary is a store with random mixed records: the active side of the
// tests below.
func primary(t testing.TB, seed uint64, n uint64) *testStore {
	t.Helper()
	a := mustOpenStore(t, t.TempDir(), Options{SegmentSize: 4096, SnapshotEvery: -1})
	t.Cleanup(func() { a.Close() })
	proposeMixed(t, a, seed, n)
	return a
}

// TestReplicateStore: a standby fed the active's journal in batches of
// random sizes builds the same state, journal and all, also after a
// reopen; each call's records share one write and one fsync.
func TestReplicateStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := primary(t, 21, 400)
	if st := tallyOf(a); len(st.keys) == 0 || st.epoch <= 1 {
		t.Fatalf("the active's state is still empty: %d keys, epoch %d", len(st.keys), st.epoch)
	}
	all := journalPayloads(t, a, 1, a.LastIndex())

	bdir := t.TempDir()
	// The standby snapshots and compacts on its own, as it would.
	bopts := Options{SegmentSize: 2048, SnapshotEvery: 60, SnapshotsKept: 1}
	b := mustOpenStore(t, bdir, bopts)
	var log batchLog
	log.watch(b, true)
	rng := rand.New(rand.NewPCG(5, 5))
	var calls []int
	for next := 0; next < len(all); {
		n := min(1+rng.IntN(40), len(all)-next)
		syncs := b.Journal().syncs.Load()
		if err := b.AppendReplicated(ctx, uint64(next+1), all[next:next+n]); err != nil {
			t.Fatalf("AppendReplicated(%d, %d records): %v", next+1, n, err)
		}
		if got := b.Journal().syncs.Load() - syncs; got != 1 {
			t.Fatalf("AppendReplicated of %d records took %d fsyncs, want 1", n, got)
		}
		calls = append(calls, n)
		next += n
		if got := b.LastIndex(); got != uint64(next) {
			t.Fatalf("LastIndex = %d after records up to %d", got, next)
		}
	}
	if got := log.get(); !slices.Equal(got, calls) {
		t.Errorf("write batches %v, want one per call %v", got, calls)
	}
	want := stateOf(t, a)
	if got := stateOf(t, b); got != want {
		t.Fatalf("standby state differs (-want +got):\n-%s\n+%s", want, got)
	}
	// The journals hold the same records (what the standby still keeps).
	bj := b.Journal()
	if bj.FirstIndex() == 1 {
		t.Errorf("the standby never compacted: its own snapshots were not exercised")
	}
	for i, p := range journalPayloads(t, b, bj.FirstIndex(), bj.LastIndex()) {
		if index := bj.FirstIndex() + uint64(i); string(p) != string(all[index-1]) {
			t.Fatalf("standby record %d differs from the active's", index)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = mustOpenStore(t, bdir, bopts)
	defer b.Close()
	if got := stateOf(t, b); got != want || b.LastIndex() != a.LastIndex() {
		t.Fatalf("after reopen: LastIndex %d (want %d), state equal: %t", b.LastIndex(), a.LastIndex(), got == want)
	}
}

// replica returns a standby store holding the active's records 1..n.
func replica(t testing.TB, a *testStore, n uint64, opts Options) (*testStore, string) {
	t.Helper()
	dir := t.TempDir()
	b := mustOpenStore(t, dir, opts)
	t.Cleanup(func() { b.Close() })
	if n > 0 {
		if err := b.AppendReplicated(context.Background(), 1, journalPayloads(t, a, 1, n)); err != nil {
			t.Fatal(err)
		}
	}
	return b, dir
}

// TestAppendReplicatedNotNext: records that leave a gap, overlap the
// store's, or arrive while the store has its own queued are refused with
// ErrNotNext, and nothing changes.
func TestAppendReplicatedNotNext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := primary(t, 3, 40)
	all := journalPayloads(t, a, 1, 40)
	b, dir := replica(t, a, 20, Options{SnapshotEvery: -1})
	want, files := stateOf(t, b), dirState(t, dir)
	for _, tc := range []struct {
		name  string
		first uint64
	}{
		{"gap", 22},
		{"far gap", 1000},
		{"overlap by one", 20},
		{"from the start", 1},
		{"index zero", 0},
	} {
		syncs := b.Journal().syncs.Load()
		err := b.AppendReplicated(ctx, tc.first, all[20:25])
		if !errors.Is(err, ErrNotNext) {
			t.Errorf("%s: AppendReplicated(%d) = %v, want ErrNotNext", tc.name, tc.first, err)
		}
		if b.LastIndex() != 20 || b.Journal().LastIndex() != 20 || b.Journal().syncs.Load() != syncs || stateOf(t, b) != want {
			t.Fatalf("%s: the refused call changed the store (last %d)", tc.name, b.LastIndex())
		}
	}
	if d := diffKeys(files, dirState(t, dir)); d != "" {
		t.Errorf("refused calls changed files: %s", d)
	}

	// A record of the store's own in flight: the next index is taken.
	var log batchLog
	log.watch(b, false)
	log.mu.Lock()
	log.hold, log.held = make(chan struct{}), make(chan struct{})
	hold, held := log.hold, log.held
	log.mu.Unlock()
	proposed := make(chan error, 1)
	go func() {
		proposed <- b.Propose(ctx, epochRec(1<<40))
	}()
	select {
	case <-held:
	case err := <-proposed:
		t.Fatalf("the proposal returned (%v) before it was written", err)
	}
	if err := b.AppendReplicated(ctx, 21, all[20:25]); !errors.Is(err, ErrNotNext) {
		t.Errorf("AppendReplicated with a proposal queued = %v, want ErrNotNext", err)
	}
	log.mu.Lock()
	log.hold = nil
	log.mu.Unlock()
	close(hold)
	if err := <-proposed; err != nil {
		t.Fatal(err)
	}
	if err := b.AppendReplicated(ctx, 21, all[20:25]); !errors.Is(err, ErrNotNext) {
		t.Errorf("AppendReplicated over the store's own record 21 = %v, want ErrNotNext", err)
	}
	if b.LastIndex() != 21 {
		t.Errorf("LastIndex %d, want 21 (the proposal)", b.LastIndex())
	}
	// Refusals left the store working: the next records are taken.
	if err := b.AppendReplicated(ctx, 22, all[21:25]); err != nil || b.LastIndex() != 25 {
		t.Errorf("AppendReplicated(22) after the refusals = %v, LastIndex %d", err, b.LastIndex())
	}
}

// TestAppendReplicatedBadPayload: a payload that does not decode or that
// the state refuses, in the middle of a batch, keeps the records before
// it (durable), journals nothing from it on, names its index, and leaves
// the store ready for the next batch from that index.
func TestAppendReplicatedBadPayload(t *testing.T) {
	t.Parallel()
	a := primary(t, 8, 30)
	all := journalPayloads(t, a, 1, 30)
	epochDown, epochUp := payloadOf(t, epochRec(0)), payloadOf(t, epochRec(1<<40))
	removeNobody := payloadOf(t, del("nobody"))
	tests := []struct {
		name    string
		payload []byte
		at      int // its place in the batch of records 11-20
		want    error
	}{
		{"garbage", []byte("\x00garbage"), 4, errTallyUnknown},
		{"unknown record", []byte("heartbeat on"), 4, errTallyUnknown},
		{"malformed record", []byte("add Not-A-Key"), 4, errTallyUnknown},
		{"state refuses", removeNobody, 4, errTallyAbsent},
		{"first of the batch", []byte("{}"), 0, errTallyUnknown},
		{"last of the batch", removeNobody, 9, errTallyAbsent},
		{"too large", make([]byte, MaxPayload+1), 4, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opts := Options{SnapshotEvery: -1}
			b, dir := replica(t, a, 10, opts)
			var log batchLog
			log.watch(b, true)
			batch := slices.Clone(all[10:20])
			batch[tc.at] = tc.payload
			bad := uint64(11 + tc.at)
			err := b.AppendReplicated(ctx, 11, batch)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("record %d:", bad)) {
				t.Fatalf("AppendReplicated = %v, want %v naming record %d", err, tc.want, bad)
			}
			if b.LastIndex() != bad-1 || b.Journal().LastIndex() != bad-1 {
				t.Fatalf("LastIndex %d, journal %d; want %d", b.LastIndex(), b.Journal().LastIndex(), bad-1)
			}
			wantBatches := []int{tc.at}
			if tc.at == 0 {
				wantBatches = nil // nothing to write
			}
			if got := log.get(); !slices.Equal(got, wantBatches) {
				t.Errorf("write batches %v, want %v", got, wantBatches)
			}
			if got, want := stateOf(t, b), string(modelAt(t, all[:bad-1])); got != want {
				t.Fatalf("state after the refusal is not the state at %d", bad-1)
			}
			// The store goes on from the bad record's index.
			if err := b.AppendReplicated(ctx, bad+1, all[bad:20]); !errors.Is(err, ErrNotNext) {
				t.Errorf("records after a gap = %v, want ErrNotNext", err)
			}
			if err := b.AppendReplicated(ctx, bad, all[bad-1:20]); err != nil {
				t.Fatalf("the correct batch after the refusal: %v", err)
			}
			want := string(modelAt(t, all[:20]))
			if got := stateOf(t, b); got != want {
				t.Fatalf("state at 20 differs from the active's")
			}
			b.Close()
			b = mustOpenStore(t, dir, opts)
			defer b.Close()
			if got := stateOf(t, b); got != want || b.LastIndex() != 20 {
				t.Fatalf("after reopen: LastIndex %d, state equal %t", b.LastIndex(), got == want)
			}
		})
	}
	// A record a state accepts but another refuses: the refusal is the
	// standby's state speaking (it differs from the active's).
	t.Run("accepted only from a lower epoch", func(t *testing.T) {
		t.Parallel()
		b, _ := replica(t, a, 0, Options{SnapshotEvery: -1})
		err := b.AppendReplicated(context.Background(), 1, [][]byte{epochUp, epochDown})
		if !errors.Is(err, errTallyEpoch) || !strings.Contains(err.Error(), "record 2:") || b.LastIndex() != 1 {
			t.Fatalf("AppendReplicated = %v, last %d", err, b.LastIndex())
		}
		if e := tallyOf(b).epoch; e != 1<<40 {
			t.Errorf("epoch %d, want the first record's", e)
		}
	})
}

// TestInstallSnapshot: a standby with state of its own installs the
// active's snapshot: the same state and LastIndex, the snapshot in its
// journal, also after a reopen; records after it then follow.
func TestInstallSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := primary(t, 13, 150)
	if err := a.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	snap, ok, err := a.Journal().LatestSnapshot()
	if err != nil || !ok || snap.Index != 150 {
		t.Fatalf("the active's snapshot: %d %t %v", snap.Index, ok, err)
	}
	opts := Options{SnapshotEvery: -1}
	dir := t.TempDir()
	b := mustOpenStore(t, dir, opts)
	proposeMixed(t, b, 99, 40) // to be replaced
	oldJournal := b.Journal()
	if err := b.InstallSnapshot(ctx, snap.Index, snap.State); err != nil {
		t.Fatal(err)
	}
	want := stateOf(t, a)
	check := func(when string) {
		t.Helper()
		if got := stateOf(t, b); got != want {
			t.Fatalf("%s: state differs from the active's", when)
		}
		j := b.Journal()
		if b.LastIndex() != 150 || j.LastIndex() != 150 || j.FirstIndex() != 151 {
			t.Fatalf("%s: LastIndex %d, journal %d-%d; want 150, 151-150", when, b.LastIndex(), j.FirstIndex(), j.LastIndex())
		}
		got, ok, err := j.LatestSnapshot()
		if err != nil || !ok || got.Index != 150 || string(got.State) != string(snap.State) {
			t.Fatalf("%s: the standby's snapshot %d %t %v", when, got.Index, ok, err)
		}
	}
	check("installed")
	if _, err := oldJournal.ReadFrom(1); !errors.Is(err, ErrClosed) {
		t.Errorf("the replaced journal answers %v, want ErrClosed", err)
	}
	for _, name := range []string{restoreName, restoreTmpName, oldJournalName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s left behind", name)
		}
	}
	b.Close()
	b = mustOpenStore(t, dir, opts)
	defer b.Close()
	check("reopened")

	proposeMixed(t, a, 14, 200)
	if err := b.AppendReplicated(ctx, 151, journalPayloads(t, a, 151, 200)); err != nil {
		t.Fatal(err)
	}
	if stateOf(t, b) != stateOf(t, a) || b.LastIndex() != 200 {
		t.Errorf("records after the snapshot: LastIndex %d, states equal %t", b.LastIndex(), stateOf(t, b) == stateOf(t, a))
	}
}

// TestInstallSnapshotRefused: bytes that do not load as a state are
// refused with ErrBadState before anything changes; the store goes on.
func TestInstallSnapshotRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := primary(t, 4, 30)
	valid := []byte(stateOf(t, a))
	opts := Options{SnapshotEvery: -1}
	b, dir := replica(t, a, 20, opts)
	want, files := stateOf(t, b), dirState(t, dir)
	for _, tc := range []struct {
		name  string
		index uint64
		state []byte
	}{
		{"garbage", 30, []byte("\x89PNG garbage")},
		{"truncated", 30, valid[:len(valid)/2]},
		{"trailing data", 30, append(slices.Clone(valid), " {}"...)},
		{"newer state version", 30, []byte("tally 2\nepoch 0\nkeys 0\n")},
		{"no keys", 30, []byte("tally 1\nepoch 0\n")},
		{"keys do not load", 30, []byte("tally 1\nepoch 0\nkeys 2\nb\na\n")},
		{"empty state after records", 30, nil},
	} {
		err := b.InstallSnapshot(ctx, tc.index, tc.state)
		if !errors.Is(err, ErrBadState) {
			t.Errorf("%s: InstallSnapshot = %v, want ErrBadState", tc.name, err)
		}
		if b.LastIndex() != 20 || stateOf(t, b) != want {
			t.Fatalf("%s: a refused install changed the store (last %d)", tc.name, b.LastIndex())
		}
	}
	if d := diffKeys(files, dirState(t, dir)); d != "" {
		t.Errorf("refused installs changed files: %s", d)
	}
	if err := b.AppendReplicated(ctx, 21, journalPayloads(t, a, 21, 30)); err != nil {
		t.Fatalf("the store after refused installs: %v", err)
	}
	if stateOf(t, b) != stateOf(t, a) {
		t.Errorf("state differs from the active's")
	}
}

// TestInstallSnapshotResets: an install replaces whatever the store had,
// at a lower index too, and the records continue after it; index 0 with
// no bytes is the empty state of a new journal.
func TestInstallSnapshotResets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := primary(t, 6, 50)
	all := journalPayloads(t, a, 1, 50)
	opts := Options{SnapshotEvery: -1}
	b, dir := replica(t, a, 50, opts)

	if err := b.InstallSnapshot(ctx, 20, modelAt(t, all[:20])); err != nil {
		t.Fatal(err)
	}
	if b.LastIndex() != 20 || stateOf(t, b) != string(modelAt(t, all[:20])) {
		t.Fatalf("after installing the state at 20: LastIndex %d", b.LastIndex())
	}
	if err := b.AppendReplicated(ctx, 51, all[50:]); !errors.Is(err, ErrNotNext) {
		t.Errorf("records after the old end = %v, want ErrNotNext", err)
	}
	if err := b.AppendReplicated(ctx, 21, all[20:]); err != nil {
		t.Fatal(err)
	}
	if b.LastIndex() != 50 || stateOf(t, b) != stateOf(t, a) {
		t.Fatalf("records after the install: LastIndex %d", b.LastIndex())
	}

	if err := b.InstallSnapshot(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	empty := string(modelAt(t, nil))
	checkEmpty := func(when string) {
		t.Helper()
		j := b.Journal()
		_, ok, err := j.LatestSnapshot()
		if b.LastIndex() != 0 || j.LastIndex() != 0 || j.FirstIndex() != 1 || ok || err != nil || stateOf(t, b) != empty {
			t.Fatalf("%s: the empty state: LastIndex %d, journal %d-%d, snapshot %t %v",
				when, b.LastIndex(), j.FirstIndex(), j.LastIndex(), ok, err)
		}
	}
	checkEmpty("installed")
	b.Close()
	b = mustOpenStore(t, dir, opts)
	defer b.Close()
	checkEmpty("reopened")
	if err := b.AppendReplicated(ctx, 1, all); err != nil {
		t.Fatal(err)
	}
	if stateOf(t, b) != stateOf(t, a) {
		t.Errorf("replicated again from 1: state differs")
	}
}

// TestInstallSnapshotConcurrentReaders: readers of View, LastIndex and
// Journal while states are installed and records appended
// see one whole state or another, never a mix or a half-installed one
// (and the race detector sees no race).
func TestInstallSnapshotConcurrentReaders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := primary(t, 9, 60)
	all := journalPayloads(t, a, 1, 60)
	b, _ := replica(t, a, 0, Options{SnapshotEvery: 7})
	// The states readers may see: at 30 and at every index from 30 on.
	states := map[string]bool{}
	for i := 30; i <= len(all); i++ {
		states[string(modelAt(t, all[:i]))] = true
	}
	at30 := modelAt(t, all[:30])
	if err := b.InstallSnapshot(ctx, 30, at30); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if s := stateOf(t, b); !states[s] {
					t.Errorf("a reader saw no state: %s", s)
					return
				}
				if i := b.LastIndex(); i < 30 || i > 60 {
					t.Errorf("a reader saw LastIndex %d", i)
					return
				}
				_ = b.Journal().LastIndex()
			}
		})
	}
	for round := range 10 {
		if err := b.AppendReplicated(ctx, 31, all[30:]); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := b.InstallSnapshot(ctx, 30, at30); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	stop.Store(true)
	wg.Wait()
}

// checkAppendReplicated is FuzzAppendReplicated's property: a store at
// record 4 is given records 5.. with payload inserted at place at among
// valid ones. Nothing panics; the call accepts exactly the records a
// state accepts in order, from the first, and names the first it
// refuses; the store's state is the model's, also after a reopen; and
// the store accepts the next record.
// It returns whether the call refused a record.
func checkAppendReplicated(t *testing.T, payload []byte, at int) (refused bool) {
	base := replicaBase(t)
	batch := slices.Insert(slices.Clone(base[4:]), at%(len(base)-3), payload)

	dir := t.TempDir()
	opts := Options{SnapshotEvery: -1}
	s := mustOpenStore(t, dir, opts)
	defer func() { s.Close() }()
	ctx := context.Background()
	if err := s.AppendReplicated(ctx, 1, base[:4]); err != nil {
		t.Fatal(err)
	}
	model, err := loadTally(modelAt(t, base[:4]))
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for _, p := range batch {
		if len(p) > MaxPayload {
			break
		}
		r, err := decodeTally(p)
		if err == nil {
			err = model.Check(r)
		}
		if err != nil {
			break
		}
		if err := model.Apply(r); err != nil {
			t.Fatalf("model: checked, then refused: %v", err)
		}
		accepted++
	}
	want, err := model.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	err = s.AppendReplicated(ctx, 5, batch)
	last := uint64(4 + accepted)
	switch {
	case accepted == len(batch) && err != nil:
		t.Fatalf("AppendReplicated refused a batch the model accepts: %v", err)
	case accepted < len(batch) && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("record %d:", last+1))):
		t.Fatalf("AppendReplicated = %v, want an error naming record %d", err, last+1)
	}
	if s.LastIndex() != last || stateOf(t, s) != string(want) {
		t.Fatalf("after the call: LastIndex %d (want %d), state is the model's: %t", s.LastIndex(), last, stateOf(t, s) == string(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir, opts)
	if s.LastIndex() != last || stateOf(t, s) != string(want) {
		t.Fatalf("after reopen: LastIndex %d (want %d), state is the model's: %t", s.LastIndex(), last, stateOf(t, s) == string(want))
	}
	next := payloadOf(t, epochRec(1<<50))
	if err := s.AppendReplicated(ctx, last+1, [][]byte{next}); err != nil || s.LastIndex() != last+1 {
		t.Fatalf("the next record: %v (LastIndex %d)", err, s.LastIndex())
	}
	return accepted < len(batch)
}

// replicaBase is a valid journal of eight records: the fuzz target's
// records around the fuzzed one.
func replicaBase(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, r := range []tallyRec{
		add("a"), epochRec(3), add("b"), add("c"),
		// Records 5-8, the batch.
		add("d"), del("a"), epochRec(4), del("b"),
	} {
		out = append(out, payloadOf(t, r))
	}
	return out
}

func FuzzAppendReplicated(f *testing.F) {
	for _, p := range replicaBase(f) {
		f.Add(p, uint8(0))
		f.Add(p, uint8(2))
	}
	for _, tc := range replicaRegressions {
		f.Add(tc.payload, tc.at)
	}
	f.Fuzz(func(t *testing.T, payload []byte, at uint8) {
		// Each run costs a store and a reopen: long inputs only slow the
		// fuzzer (its minimization above all) without reaching new code.
		if len(payload) > 4096 {
			return
		}
		checkAppendReplicated(t, payload, int(at))
	})
}

// replicaRegressions are FuzzAppendReplicated inputs worth keeping, as
// named cases (found by hand or by the fuzzer).
var replicaRegressions = []struct {
	name    string
	payload []byte
	at      uint8
	refused bool
}{
	{"empty", nil, 1, true},
	{"json null", []byte("null"), 0, true},
	{"duplicate key", []byte("add a"), 0, true},
	{"another key, accepted", []byte("add e"), 0, false},
	{"same epoch, accepted", []byte("epoch 4"), 4, false},
	{"epoch down", []byte("epoch 2"), 2, true},
	{"two records", []byte("add e add f"), 3, true},
	{"trailing newline", []byte("add e\n"), 1, true},
	{"deep nesting", []byte(strings.Repeat("[", 512)), 2, true},
}

func TestAppendReplicatedRegressions(t *testing.T) {
	t.Parallel()
	for _, tc := range replicaRegressions {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if refused := checkAppendReplicated(t, tc.payload, int(tc.at)); refused != tc.refused {
				t.Errorf("refused: %t, want %t", refused, tc.refused)
			}
		})
	}
}
