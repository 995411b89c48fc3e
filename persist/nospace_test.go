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

	"github.com/lockstep-io/lockstep/internal/smalldisk"
)

// The full-disk tests (issue 13 §3; docs/architecture.md, Trust) run the store
// on a small tmpfs of its own, filled up: no acknowledged record may be
// lost, a failed write leaves nothing of its batch in the segment, the
// store says it cannot write, refuses changes clearly, and takes them
// again once space returns, without being reopened.

// diskSize is the tmpfs of each test: room for the journal and a filler.
const diskSize = 1 << 20

// segSize is the size of the store's single segment file.
func segSize(t *testing.T, s *testStore) int64 {
	t.Helper()
	segs := segFiles(t, s.Journal().Dir())
	if len(segs) != 1 {
		t.Fatalf("segments %q: want one", segs)
	}
	st, err := os.Stat(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// proposeUntilFull proposes new keys until one is refused (the first
// ones may still fit in the segment's last page) and returns the names
// acknowledged and the refusal.
func proposeUntilFull(t *testing.T, s *testStore, prefix string) (acked []string, refused error) {
	t.Helper()
	for i := range 1000 {
		name := fmt.Sprintf("%s%d", prefix, i)
		before, size := s.LastIndex(), segSize(t, s)
		err := s.Propose(context.Background(), add(name))
		if err == nil {
			acked = append(acked, name)
			continue
		}
		if got := segSize(t, s); got != size {
			t.Fatalf("the failed write left %d bytes in the segment (%d before, %d after)", got-size, size, got)
		}
		if s.LastIndex() != before {
			t.Fatalf("last index %d after a failed proposal, was %d", s.LastIndex(), before)
		}
		return acked, err
	}
	t.Fatal("1000 proposals fit on a full disk")
	return nil, nil
}

func TestFullDiskUndoesTheBatchAndRecovers(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(smalldisk.Mount(t, diskSize), "state")
	s := mustOpenStore(t, dir, Options{})
	defer func() { s.Close() }()
	ctx := context.Background()
	var acked []string
	for i := range 10 {
		name := fmt.Sprintf("a%d", i)
		if err := s.Propose(ctx, add(name)); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, name)
	}
	h := s.WriteHealth()
	if h.Err != nil {
		t.Fatalf("healthy store: WriteHealth %v", h.Err)
	}
	free := smalldisk.Fill(t, filepath.Dir(dir))
	more, err := proposeUntilFull(t, s, "b")
	acked = append(acked, more...)
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("proposal on a full disk: %v, want ErrNoSpace saying so", err)
	}
	select {
	case <-h.Changed:
	default:
		t.Fatal("WriteHealth did not signal the failure")
	}
	if h := s.WriteHealth(); !errors.Is(h.Err, ErrNoSpace) {
		t.Fatalf("WriteHealth on a full disk: %v", h.Err)
	}

	// Many proposals at once: one batch or several, all refused, none
	// half written, and the store is still consistent.
	size, last, db := segSize(t, s), s.LastIndex(), stateOf(t, s)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Propose(ctx, add(fmt.Sprintf("c%d", i))) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrNoSpace) {
			t.Errorf("concurrent proposal %d on a full disk: %v", i, err)
		}
	}
	if segSize(t, s) != size || s.LastIndex() != last || stateOf(t, s) != db {
		t.Fatalf("refused proposals changed the segment (%d -> %d bytes), the index (%d -> %d) or the state",
			size, segSize(t, s), last, s.LastIndex())
	}
	if err := s.Probe(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Probe on a full disk: %v", err)
	}
	h = s.WriteHealth()

	free()
	if err := s.Probe(); err != nil {
		t.Fatalf("Probe once space returned: %v", err)
	}
	select {
	case <-h.Changed:
	default:
		t.Fatal("WriteHealth did not signal the recovery")
	}
	if h := s.WriteHealth(); h.Err != nil {
		t.Fatalf("WriteHealth once space returned: %v", h.Err)
	}
	// The same names as refused before: they were never applied.
	for _, name := range []string{"c0", "c1", "d"} {
		if err := s.Propose(ctx, add(name)); err != nil {
			t.Fatalf("proposal once space returned: %v", err)
		}
		acked = append(acked, name)
	}
	if s.LastIndex() != last+3 {
		t.Fatalf("last index %d, want %d: the refused records left a gap or a trace", s.LastIndex(), last+3)
	}
	want := stateOf(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir, Options{})
	if got := stateOf(t, s); got != want {
		t.Fatal("the state after reopening differs from the state acknowledged")
	}
	st := tallyOf(s)
	for _, name := range acked {
		if !st.keys[name] {
			t.Errorf("acknowledged key %s lost", name)
		}
	}
	if n := len(st.keys); n != len(acked) {
		t.Errorf("%d keys after reopening, %d acknowledged", n, len(acked))
	}
}

// TestFullDiskRetriedByTheNextProposal: without Probe, the next proposal
// after space returns simply works.
func TestFullDiskRetriedByTheNextProposal(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(smalldisk.Mount(t, diskSize), "state")
	s := mustOpenStore(t, dir, Options{})
	defer s.Close()
	free := smalldisk.Fill(t, filepath.Dir(dir))
	if _, err := proposeUntilFull(t, s, "a"); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("proposal on a full disk: %v", err)
	}
	last := s.LastIndex()
	free()
	if err := s.Propose(context.Background(), add("b")); err != nil {
		t.Fatalf("proposal once space returned: %v", err)
	}
	if s.LastIndex() != last+1 || s.WriteHealth().Err != nil {
		t.Fatalf("last index %d (want %d), health %v", s.LastIndex(), last+1, s.WriteHealth().Err)
	}
}

// TestJournalAppendOnAFullDisk: the journal alone, without the store,
// resumes at the right index too.
func TestJournalAppendOnAFullDisk(t *testing.T) {
	t.Parallel()
	disk := smalldisk.Mount(t, diskSize)
	j := mustOpen(t, filepath.Join(disk, "journal"), Options{})
	defer j.Close()
	appendN(t, j, 1, 3)
	free := smalldisk.Fill(t, disk)
	var err error
	for i := uint64(4); err == nil; i++ {
		if i > 2000 {
			t.Fatal("2000 appends fit on a full disk")
		}
		_, err = j.Append(context.Background(), payloadFor(i))
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("append on a full disk: %v", err)
	}
	last := j.LastIndex()
	free()
	got, err := j.Append(context.Background(), payloadFor(last+1))
	if err != nil || got != last+1 {
		t.Fatalf("append once space returned: index %d, %v; want %d", got, err, last+1)
	}
	checkRecords(t, j, 1, last+1)
}

// TestRestartOnAFullDisk: a store closed and opened again while the disk
// is full opens (the daemon must not fail at every start), refuses
// changes, and recovers when space returns.
func TestRestartOnAFullDisk(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(smalldisk.Mount(t, diskSize), "state")
	s := mustOpenStore(t, dir, Options{})
	for i := range 5 {
		if err := s.Propose(context.Background(), add(fmt.Sprintf("a%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	free := smalldisk.Fill(t, filepath.Dir(dir))
	if _, err := proposeUntilFull(t, s, "b"); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("proposal on a full disk: %v", err)
	}
	want, last := stateOf(t, s), s.LastIndex()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir, Options{})
	defer s.Close()
	if got := stateOf(t, s); got != want || s.LastIndex() != last {
		t.Fatalf("reopened on a full disk: last index %d (want %d), same state %v", s.LastIndex(), last, got == want)
	}
	if _, err := proposeUntilFull(t, s, "c"); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("proposal after reopening on a full disk: %v", err)
	}
	free()
	if err := s.Propose(context.Background(), add("d")); err != nil {
		t.Fatalf("proposal once space returned: %v", err)
	}
}

// TestTornTailOnAFullDisk: recovery that cannot save the .broken copy
// truncates the torn tail anyway and logs the offset and the bytes
// dropped; every acknowledged record stays.
func TestTornTailOnAFullDisk(t *testing.T) {
	t.Parallel()
	disk := smalldisk.Mount(t, diskSize)
	dir := filepath.Join(disk, "state")
	s := mustOpenStore(t, dir, Options{})
	for i := range 5 {
		if err := s.Propose(context.Background(), add(fmt.Sprintf("a%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	want, last := stateOf(t, s), s.LastIndex()
	jdir := s.Journal().Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := segFiles(t, jdir)[0]
	good := readFile(t, seg)
	// A torn batch: a record header with no payload after it, as a crash
	// in the middle of a write leaves it.
	torn := append(append([]byte{}, good...), 0x11, 0x22, 0x33, 0x44, 0x40, 0, 0, 0x80, byte(last+1), 0, 0, 0, 0, 0, 0, 0, 'x', 'y')
	writeFile(t, seg, torn)
	smalldisk.Fill(t, disk)
	logger, logs := newLog()
	s, err := OpenStore(dir, tallyCodec, Options{Logger: logger})
	if err != nil {
		t.Fatalf("open with a torn tail on a full disk: %v", err)
	}
	defer s.Close()
	if got := stateOf(t, s); got != want || s.LastIndex() != last {
		t.Fatalf("after recovery: last index %d (want %d), same state %v", s.LastIndex(), last, got == want)
	}
	if got := readFile(t, seg); string(got) != string(good) {
		t.Fatalf("segment is %d bytes after recovery, want the %d good ones", len(got), len(good))
	}
	if b := brokenFiles(t, jdir); len(b) != 0 {
		t.Fatalf(".broken files %q on a full disk", b)
	}
	out := logs.String()
	for _, w := range []string{MsgTornTailNoCopy, fmt.Sprintf("offset=%d", len(good)), fmt.Sprintf("bytes_dropped=%d", len(torn)-len(good)), seg} {
		if !strings.Contains(out, w) {
			t.Errorf("the log does not say %q:\n%s", w, out)
		}
	}
	entries, err := os.ReadDir(jdir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}
}

// TestStandbyAndReaderOnAFullDisk: a standby's AppendReplicated is
// refused the same way and taken again once space returns, at the same
// index; a reader waiting for the next record (the sender to a standby)
// is not ended by the failure and gets the record written after it.
func TestStandbyAndReaderOnAFullDisk(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(smalldisk.Mount(t, diskSize), "state")
	s := mustOpenStore(t, dir, Options{})
	defer s.Close()
	ctx := context.Background()
	rec := func(name string) []byte { return payloadOf(t, add(name)) }
	if err := s.AppendReplicated(ctx, 1, [][]byte{rec("a")}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Journal().ReadFrom(2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan error, 1)
	go func() {
		e, err := r.Next(ctx)
		if err == nil && e.Index != 2 {
			err = fmt.Errorf("read index %d, want 2", e.Index)
		}
		got <- err
	}()
	free := smalldisk.Fill(t, filepath.Dir(dir))
	// Many at once, so that they need a page the disk no longer has.
	var batch [][]byte
	for i := range 200 {
		batch = append(batch, rec(fmt.Sprintf("b%d", i)))
	}
	if err := s.AppendReplicated(ctx, 2, batch); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("AppendReplicated on a full disk: %v", err)
	}
	if s.LastIndex() != 1 {
		t.Fatalf("last index %d after a refused AppendReplicated", s.LastIndex())
	}
	free()
	if err := s.AppendReplicated(ctx, 2, batch); err != nil {
		t.Fatalf("AppendReplicated once space returned: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the reader waiting through the failure: %v", err)
	}
}

// TestRolloverOnAFullDisk: a new segment that cannot be created fails
// the batch like a write would, and is created once space returns.
func TestRolloverOnAFullDisk(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(smalldisk.Mount(t, diskSize), "state")
	s := mustOpenStore(t, dir, Options{SegmentSize: 1}) // a new segment before every batch
	defer func() { s.Close() }()
	ctx := context.Background()
	for i := range 3 {
		if err := s.Propose(ctx, add(fmt.Sprintf("a%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	jdir := s.Journal().Dir()
	segs := len(segFiles(t, jdir))
	free := smalldisk.Fill(t, filepath.Dir(dir))
	if err := s.Propose(ctx, add("b")); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "creating segment") {
		t.Fatalf("proposal needing a new segment on a full disk: %v", err)
	}
	if n := len(segFiles(t, jdir)); n != segs {
		t.Fatalf("%d segments after the failed rollover, %d before", n, segs)
	}
	free()
	if err := s.Propose(ctx, add("b")); err != nil {
		t.Fatalf("proposal once space returned: %v", err)
	}
	want := stateOf(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir, Options{SegmentSize: 1})
	if got := stateOf(t, s); got != want || s.LastIndex() != 4 {
		t.Fatalf("after reopening: last index %d, same state %v", s.LastIndex(), got == want)
	}
}
