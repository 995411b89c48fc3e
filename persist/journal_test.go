package persist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestAppendReopenRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{SegmentSize: 300})
	if got := j.LastIndex(); got != 0 {
		t.Fatalf("new journal LastIndex = %d", got)
	}
	appendN(t, j, 1, 100)
	if _, err := j.Append(context.Background(), nil); err != nil { // empty payloads are records too
		t.Fatal(err)
	}
	checkRecords(t, j, 1, 100, []byte{})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n < 10 {
		t.Errorf("%d segments with SegmentSize 300, want rollovers", n)
	}

	j = mustOpen(t, dir, Options{SegmentSize: 300})
	defer j.Close()
	checkRecords(t, j, 1, 100, []byte{})
	appendN(t, j, 102, 120)
	if got := j.LastIndex(); got != 120 {
		t.Errorf("LastIndex = %d", got)
	}
	if got := brokenFiles(t, dir); len(got) != 0 {
		t.Errorf("a clean journal was repaired: %v", got)
	}
}

func TestAppendErrors(t *testing.T) {
	t.Parallel()
	j := mustOpen(t, t.TempDir(), Options{})
	if _, err := j.Append(context.Background(), make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Append(too large) = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := j.Append(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Append(cancelled) = %v", err)
	}
	if j.LastIndex() != 0 {
		t.Errorf("a refused append was written")
	}
	j.Close()
	if _, err := j.Append(context.Background(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v", err)
	}
	if err := j.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestGroupCommit holds the writer on its first batch until nine more
// appends are queued: they must share one write and one fsync, and every
// caller must get its own record's index.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	j := mustOpen(t, t.TempDir(), Options{})
	defer j.Close()
	held, release := make(chan struct{}), make(chan struct{})
	var sizes []int
	j.beforeWrite = func(n int) {
		sizes = append(sizes, n)
		if len(sizes) == 1 {
			close(held)
			<-release
		}
	}
	got := make([]uint64, 10)
	var wg sync.WaitGroup
	for k := range 10 {
		wg.Go(func() {
			i, err := j.Append(context.Background(), []byte(fmt.Sprint(k)))
			if err != nil {
				t.Error(err)
			}
			got[k] = i
		})
		if k == 0 {
			<-held // the writer holds the first record
		}
	}
	// Wait for the nine others to be queued (no sleep: they are running).
	for func() bool { j.mu.Lock(); defer j.mu.Unlock(); return j.next != 11 }() {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if sizes[0] != 1 || len(sizes) != 2 || sizes[1] != 9 {
		t.Errorf("batches %v, want [1 9]", sizes)
	}
	if n := j.syncs.Load(); n != 2 {
		t.Errorf("%d fsyncs for 10 appends, want 2", n)
	}
	for _, e := range readAll(t, j) {
		if k := got[e.Payload[0]-'0']; k != e.Index {
			t.Errorf("append %s got index %d, but its payload is at %d", e.Payload, k, e.Index)
		}
	}
}

// TestConcurrentAppendsAndReader: 32 writers and a reader following them
// across rollovers; every acknowledged record is read back in order with
// its payload.
func TestConcurrentAppendsAndReader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{SegmentSize: 2048})
	const writers, each = 32, 40
	r, err := j.ReadFrom(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	read := make(chan Entry, writers*each)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for range writers * each {
			e, err := r.Next(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			read <- e
		}
	}()
	var mu sync.Mutex
	acked := map[uint64]string{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := range each {
				p := fmt.Sprintf("w%d-%d%s", w, k, strings.Repeat("x", (w*k)%13))
				i, err := j.Append(context.Background(), []byte(p))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[i] = p
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if int(j.syncs.Load()) >= writers*each {
		t.Logf("no grouping happened (%d fsyncs)", j.syncs.Load())
	}
	for i := uint64(1); i <= writers*each; i++ {
		e := <-read
		if e.Index != i || string(e.Payload) != acked[i] {
			t.Fatalf("reader got %d %q, want %d %q", e.Index, e.Payload, i, acked[i])
		}
	}
	j.Close()
	j = mustOpen(t, dir, Options{SegmentSize: 2048})
	defer j.Close()
	for _, e := range readAll(t, j) {
		if string(e.Payload) != acked[e.Index] {
			t.Fatalf("after reopen %d = %q, want %q", e.Index, e.Payload, acked[e.Index])
		}
	}
}

func TestReaderWaitsAndEnds(t *testing.T) {
	t.Parallel()
	j := mustOpen(t, t.TempDir(), Options{})
	appendN(t, j, 1, 3)
	r, err := j.ReadFrom(3)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if e, err := r.Next(context.Background()); err != nil || e.Index != 3 {
		t.Fatalf("Next = %d, %v", e.Index, err)
	}
	got := make(chan Entry)
	go func() {
		e, err := r.Next(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- e
	}()
	appendN(t, j, 4, 4)
	if e := <-got; e.Index != 4 || !bytes.Equal(e.Payload, payloadFor(4)) {
		t.Errorf("waiting reader got %d %q", e.Index, e.Payload)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next(cancelled) at the end = %v", err)
	}
	if _, err := j.ReadFrom(6); !errors.Is(err, ErrBeyondEnd) {
		t.Errorf("ReadFrom(6) with 4 records = %v", err)
	}
	if _, err := j.ReadFrom(5); err != nil {
		t.Errorf("ReadFrom(last+1) = %v", err)
	}
	j.Close()
	if _, err := r.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close = %v", err)
	}
}

func TestReadFromCompacted(t *testing.T) {
	t.Parallel()
	j := mustOpen(t, t.TempDir(), Options{SegmentSize: 200, SnapshotsKept: 1})
	defer j.Close()
	appendN(t, j, 1, 50)
	// A reader in an old segment keeps reading it after compaction (its
	// file stays open) but cannot move on to a deleted one.
	slow, err := j.ReadFrom(1)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := j.Snapshot(40, []byte("state at 40")); err != nil {
		t.Fatal(err)
	}
	first := j.FirstIndex()
	if first <= 2 || first > 41 {
		t.Fatalf("FirstIndex after snapshot at 40 = %d", first)
	}
	if _, err := j.ReadFrom(first - 1); !errors.Is(err, ErrCompacted) {
		t.Errorf("ReadFrom(%d) = %v, want ErrCompacted", first-1, err)
	}
	checkRecords(t, j, first, 50)
	var last uint64
	for {
		e, err := slow.Next(context.Background())
		if errors.Is(err, ErrCompacted) {
			break
		}
		if err != nil {
			t.Fatalf("slow reader: %v", err)
		}
		last = e.Index
	}
	if last == 0 || last >= first {
		t.Errorf("slow reader read up to %d, compaction kept from %d", last, first)
	}
	s, ok, err := j.LatestSnapshot()
	if err != nil || !ok || s.Index != 40 || string(s.State) != "state at 40" {
		t.Errorf("LatestSnapshot = %d %q %t %v", s.Index, s.State, ok, err)
	}
	if err := j.Snapshot(39, nil); !errors.Is(err, ErrSnapshotIndex) {
		t.Errorf("Snapshot older than the latest = %v", err)
	}
	if err := j.Snapshot(51, nil); !errors.Is(err, ErrSnapshotIndex) {
		t.Errorf("Snapshot beyond the end = %v", err)
	}
}

// TestCompactionKeepsFallback: with SnapshotsKept 2, the segments after
// the older snapshot stay.
func TestCompactionKeepsFallback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{SegmentSize: 200})
	appendN(t, j, 1, 30)
	if err := j.Snapshot(10, []byte("10")); err != nil {
		t.Fatal(err)
	}
	if j.FirstIndex() != 1 {
		t.Errorf("one snapshot of two kept compacted to %d", j.FirstIndex())
	}
	appendN(t, j, 31, 60)
	for _, i := range []uint64{20, 50} {
		if err := j.Snapshot(i, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if f := j.FirstIndex(); f > 21 || f < 2 {
		t.Errorf("FirstIndex = %d after snapshots 20 and 50 kept", f)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "*"+snapSuffix))
	if len(snaps) != 2 {
		t.Errorf("snapshot files %v, want 2", snaps)
	}
	j.Close()
}

func TestLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{})
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	for _, want := range []string{dir, fmt.Sprintf("pid %d", os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	j.Close()
	j = mustOpen(t, dir, Options{})
	j.Close()

	sdir := t.TempDir()
	s, err := OpenStore(sdir, tallyCodec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(sdir, tallyCodec, Options{}); !errors.Is(err, ErrLocked) {
		t.Errorf("second OpenStore = %v", err)
	}
	if _, err := RestoreBackup(sdir, filepath.Join(t.TempDir(), "none.zip"), tallyCodec, Options{}); err == nil {
		t.Errorf("RestoreBackup of a missing file succeeded")
	}
	s.Close()
}

// TestWriteFailure: after a failed write the journal refuses every later
// append (the disk's state is unknown) until it is reopened, which keeps
// what was acknowledged. A store on it stops too, its state unchanged.
func TestWriteFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpenStore(t, dir, Options{})
	g := newGen(1)
	fill(t, s, g, 5)
	want := stateOf(t, s)
	j := s.Journal()
	j.beforeWrite = func(int) { j.f.Close() } // the next write fails
	create := func(name string) tallyRec { return add(name) }
	if err := s.Propose(context.Background(), create("z1")); !errors.Is(err, ErrWriteFailed) {
		t.Fatalf("Propose with a failing disk = %v", err)
	}
	if _, err := j.Append(context.Background(), []byte("x")); !errors.Is(err, ErrWriteFailed) {
		t.Errorf("Append after a failed write = %v", err)
	}
	if err := s.Propose(context.Background(), create("z2")); !errors.Is(err, ErrWriteFailed) {
		t.Errorf("Propose after a failed write = %v", err)
	}
	if got := stateOf(t, s); got != want {
		t.Errorf("a failed record changed the state")
	}
	s.Close() // reports the file closed twice: ignored
	s = mustOpenStore(t, dir, Options{})
	defer s.Close()
	if got := stateOf(t, s); got != want || s.LastIndex() != 5 {
		t.Errorf("after reopen: last index %d, state equal %t", s.LastIndex(), got == want)
	}
	if err := s.Propose(context.Background(), create("z3")); err != nil {
		t.Errorf("Propose after reopen: %v", err)
	}
}
