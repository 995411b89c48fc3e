package link

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/persist"
)

// ship is a Sender and a Receiver running over a loopback TLS link.
type ship struct {
	p        linkPair
	snd      *Sender
	rcv      *Receiver
	aev, sev *events
	cancel   context.CancelFunc
	sndErr   chan error
	rcvErr   chan error
}

func startShip(t testing.TB, src Source, sink Sink, sopts SenderOptions) *ship {
	t.Helper()
	pki := newPKI(t)
	p := dialPair(t, testOptions(pki.creds(t, "db1"), helloActive, nil), testOptions(pki.creds(t, "db2"), helloStandby, nil))
	s := &ship{p: p, aev: newEvents(), sev: newEvents(), sndErr: make(chan error, 1), rcvErr: make(chan error, 1)}
	sopts.Link, sopts.Report = 1, s.aev.report
	s.snd = NewSender(p.active, src, sopts)
	s.rcv = NewReceiver(p.standby, sink, ReceiverOptions{Link: 1, Report: s.sev.report})
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.sndErr <- s.snd.Run(ctx) }()
	go func() { s.rcvErr <- s.rcv.Run(ctx) }()
	t.Cleanup(s.stop)
	return s
}

// stop ends both sides (idempotent).
func (s *ship) stop() {
	s.cancel()
	<-s.p.active.Done()
	<-s.p.standby.Done()
}

// sync drives both sides as the HA state machines would: the standby
// asks (full or catch-up), the active answers, and both report caught up.
func (s *ship) sync(t testing.TB, full bool) {
	t.Helper()
	if err := s.rcv.RequestSync(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	req := waitEvent[ha.SyncRequested](t, s.aev)
	if req.Full != full {
		t.Fatalf("the active got full=%t", req.Full)
	}
	if full {
		s.snd.SendSnapshot()
		waitEvent[ha.SnapshotSent](t, s.aev)
	}
	s.snd.StartStream()
	waitEvent[ha.StreamCaughtUp](t, s.aev)
	waitEvent[ha.StreamCaughtUp](t, s.sev)
}

func openJournal(t testing.TB, dir string, opts persist.Options) *persist.Journal {
	t.Helper()
	j, err := persist.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func appendN(t testing.TB, j *persist.Journal, n int, format string) {
	t.Helper()
	for i := range n {
		if _, err := j.Append(context.Background(), fmt.Appendf(nil, format, i)); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t testing.TB, j *persist.Journal, from uint64) map[uint64][]byte {
	t.Helper()
	out := map[uint64][]byte{}
	last := j.LastIndex()
	if last < from {
		return out
	}
	r, err := j.ReadFrom(from)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := from; i <= last; i++ {
		e, err := r.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out[e.Index] = e.Payload
	}
	return out
}

// TestStreamConcurrentAppends: an active appends from many goroutines
// while it ships its journal to a standby whose journal fsyncs each
// record; every record acknowledged to a client (after WaitAcked) is in
// the standby's journal once reopened from disk, byte for byte, and the
// standby's journal is a prefix of the active's.
func TestStreamConcurrentAppends(t *testing.T) {
	t.Parallel()
	adir, sdir := t.TempDir(), t.TempDir()
	aj := openJournal(t, adir, persist.Options{SegmentSize: 64 << 10})
	defer aj.Close()
	sj := openJournal(t, sdir, persist.Options{})
	appendN(t, aj, 50, "backlog %d")

	s := startShip(t, aj, journalSink{sj}, SenderOptions{})
	s.sync(t, true)

	const writers, each = 8, 150
	type acked struct {
		index   uint64
		payload []byte
	}
	results := make([][]acked, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			ctx := context.Background()
			for i := range each {
				p := fmt.Appendf(nil, "writer %d record %d %s", w, i, bytes.Repeat([]byte{byte('a' + w)}, i%97))
				index, err := aj.Append(ctx, p)
				if err != nil {
					t.Error(err)
					return
				}
				if err := s.snd.WaitAcked(ctx, index); err != nil {
					t.Error(err)
					return
				}
				results[w] = append(results[w], acked{index, p})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	s.stop()
	if err := sj.Close(); err != nil {
		t.Fatal(err)
	}

	// What the standby holds, read back from its disk.
	sj = openJournal(t, sdir, persist.Options{})
	defer sj.Close()
	got := readAll(t, sj, 1)
	want := readAll(t, aj, 1)
	n := 0
	for _, rs := range results {
		for _, a := range rs {
			n++
			if g, ok := got[a.index]; !ok || !bytes.Equal(g, a.payload) {
				t.Errorf("record %d acknowledged to its client but %s on the standby", a.index, describe(g, ok))
			}
		}
	}
	if n != writers*each {
		t.Fatalf("%d records acknowledged, want %d", n, writers*each)
	}
	for i := uint64(1); i <= sj.LastIndex(); i++ {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("standby record %d differs from the active's", i)
		}
	}
	if last := sj.LastIndex(); last < 50+writers*each {
		t.Errorf("standby holds %d records, want at least %d", last, 50+writers*each)
	}
}

func describe(b []byte, ok bool) string {
	if !ok {
		return "missing"
	}
	return fmt.Sprintf("different (%q)", b)
}

// TestFullSyncFromSnapshot: a full sync sends the latest snapshot, then
// the records after it, then every new one.
func TestFullSyncFromSnapshot(t *testing.T) {
	t.Parallel()
	aj := openJournal(t, t.TempDir(), persist.Options{SegmentSize: 4096, SnapshotsKept: 1})
	defer aj.Close()
	appendN(t, aj, 200, "record %03d "+string(bytes.Repeat([]byte("x"), 80)))
	if err := aj.Snapshot(150, []byte("the state at 150")); err != nil {
		t.Fatal(err)
	}
	if aj.FirstIndex() <= 1 {
		t.Fatalf("nothing compacted (first index %d)", aj.FirstIndex())
	}
	sink := newMemSink()
	s := startShip(t, aj, sink, SenderOptions{ChunkBytes: 5}) // several chunks
	s.sync(t, true)
	index, state, installs, last := sink.snapshot()
	if index != 150 || string(state) != "the state at 150" || installs != 1 || last != 200 {
		t.Fatalf("sink: snapshot %d %q (%d installs), last %d", index, state, installs, last)
	}
	appendN(t, aj, 20, "new %d")
	if err := s.snd.WaitAcked(context.Background(), aj.LastIndex()); err != nil {
		t.Fatal(err)
	}
	want := readAll(t, aj, 151)
	for i := uint64(151); i <= aj.LastIndex(); i++ {
		if g, ok := sink.record(i); !ok || !bytes.Equal(g, want[i]) {
			t.Errorf("record %d: %s", i, describe(g, ok))
		}
	}
}

// TestCatchUp: a standby whose last record matches the active's gets
// only the records after it; one whose last record differs, lies beyond
// the journal, or was compacted gets a snapshot instead.
func TestCatchUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		standby   int  // records the standby holds
		diverge   bool // its last one differs
		compact   bool // the active compacted past it
		snapshot  bool // a snapshot is expected
		wantFirst uint64
	}{
		{name: "matching: records only", standby: 60},
		{name: "empty standby, journal from 1", standby: 0},
		{name: "caught up already", standby: 100},
		{name: "last record differs", standby: 60, diverge: true, snapshot: true},
		{name: "standby ahead of the journal", standby: 130, snapshot: true},
		{name: "records compacted", standby: 60, compact: true, snapshot: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			aj := openJournal(t, t.TempDir(), persist.Options{SegmentSize: 2048, SnapshotsKept: 1})
			defer aj.Close()
			appendN(t, aj, 100, "record %03d "+string(bytes.Repeat([]byte("y"), 60)))
			if tt.compact {
				if err := aj.Snapshot(90, []byte("state at 90")); err != nil {
					t.Fatal(err)
				}
			}
			sink := newMemSink()
			for i := 1; i <= tt.standby; i++ {
				p := fmt.Appendf(nil, "record %03d "+string(bytes.Repeat([]byte("y"), 60)), i-1)
				if tt.diverge && i == tt.standby {
					p = []byte("something else")
				}
				sink.Append(context.Background(), uint64(i), [][]byte{p})
			}
			s := startShip(t, aj, sink, SenderOptions{})
			s.sync(t, false)
			_, _, installs, last := sink.snapshot()
			if got := installs > 0; got != tt.snapshot {
				t.Errorf("snapshot installed: %t, want %t", got, tt.snapshot)
			}
			if last != 100 {
				t.Errorf("standby at %d, want 100", last)
			}
			sent := 0
			for _, ev := range s.aev.all() {
				if _, ok := ev.(ha.SnapshotSent); ok {
					sent++
				}
			}
			if (sent > 0) != tt.snapshot {
				t.Errorf("SnapshotSent reported %d times", sent)
			}
			want := readAll(t, aj, aj.FirstIndex())
			for i := aj.FirstIndex(); i <= 100; i++ {
				if g, ok := sink.record(i); ok && !bytes.Equal(g, want[i]) {
					t.Errorf("record %d differs", i)
				}
			}
		})
	}
}

// gatedSink blocks Append while closed.
type gatedSink struct {
	*memSink
	mu     sync.Mutex
	closed bool
	opened chan struct{} // closed when the gate opens
}

func newGatedSink() *gatedSink {
	g := &gatedSink{memSink: newMemSink(), opened: make(chan struct{})}
	close(g.opened)
	return g
}

func (g *gatedSink) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed, g.opened = true, make(chan struct{})
	}
}

func (g *gatedSink) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.closed = false
		close(g.opened)
	}
}

func (g *gatedSink) Append(ctx context.Context, first uint64, payloads [][]byte) error {
	g.mu.Lock()
	opened := g.opened
	g.mu.Unlock()
	select {
	case <-opened:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.memSink.Append(ctx, first, payloads)
}

// TestCompactedDuringStream: a standby so slow that the active compacts
// the records its reader needs next gets a snapshot in the middle of the
// stream, and the stream goes on after it.
func TestCompactedDuringStream(t *testing.T) {
	t.Parallel()
	aj := openJournal(t, t.TempDir(), persist.Options{SegmentSize: 1 << 20, SnapshotsKept: 1})
	defer aj.Close()
	sink := newGatedSink()
	s := startShip(t, aj, sink, SenderOptions{BatchBytes: 64 << 10, AckTimeout: time.Hour})
	s.sync(t, false) // from nothing, through the open gate
	sink.close()

	payload := bytes.Repeat([]byte("z"), 64<<10)
	for range 512 { // 32 MiB: more than the link and the sockets hold
		if _, err := aj.Append(context.Background(), payload); err != nil {
			t.Fatal(err)
		}
	}
	last := aj.LastIndex()
	// The sender is stuck once its queue is full; its reader is behind.
	waitFor(t, func() bool { return len(s.p.active.out) == cap(s.p.active.out) })
	s.snd.mu.Lock()
	sent := s.snd.sent
	s.snd.mu.Unlock()
	if sent+uint64(segmentRecords(1<<20, len(payload))) >= last {
		t.Skipf("the link buffered almost everything (sent %d of %d): cannot make the reader lag", sent, last)
	}
	if err := aj.Snapshot(last, []byte("state at the end")); err != nil {
		t.Fatal(err)
	}
	sink.open()
	if err := s.snd.WaitAcked(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	index, state, installs, got := sink.snapshot()
	if installs != 1 || index != last || string(state) != "state at the end" || got != last {
		t.Errorf("sink: %d installs, snapshot at %d (%q), last %d; want the snapshot at %d", installs, index, state, got, last)
	}
	// And the stream goes on.
	appendN(t, aj, 3, "after %d")
	if err := s.snd.WaitAcked(context.Background(), last+3); err != nil {
		t.Fatal(err)
	}
}

// segmentRecords is how many records of n bytes a segment of size bytes
// holds (at least one).
func segmentRecords(size, n int) int { return max(size/(n+16), 1) }

func TestAckOverdue(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		after   time.Duration
		timeout time.Duration
		want    bool
	}{
		{"just sent", 0, 5 * time.Second, false},
		{"a nanosecond before", 5*time.Second - 1, 5 * time.Second, false},
		{"at the timeout", 5 * time.Second, 5 * time.Second, true},
		{"long after", time.Hour, 5 * time.Second, true},
		{"no timeout", time.Hour, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := AckOverdue(t0, t0.Add(tt.after), tt.timeout); got != tt.want {
				t.Errorf("AckOverdue after %v (timeout %v) = %t", tt.after, tt.timeout, got)
			}
		})
	}
}

// TestAckTimeout: a standby whose disk hangs keeps its link alive with
// keepalives, but the active gives up on it after AckTimeout (on the
// fake clock) instead of hanging its clients.
func TestAckTimeout(t *testing.T) {
	t.Parallel()
	aj := openJournal(t, t.TempDir(), persist.Options{})
	defer aj.Close()
	clk := clock.NewFake(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	sink := newGatedSink()
	s := startShip(t, aj, sink, SenderOptions{AckTimeout: 5 * time.Second, Clock: clk})
	s.sync(t, false)
	sink.close()
	index, err := aj.Append(context.Background(), []byte("stuck on the standby"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s.snd.mu.Lock()
		defer s.snd.mu.Unlock()
		return len(s.snd.inflight) > 0
	})
	waited := make(chan error, 1)
	go func() { waited <- s.snd.WaitAcked(context.Background(), index) }()
	clk.Advance(5 * time.Second)
	if err := <-s.sndErr; !errors.Is(err, ErrAckTimeout) {
		t.Errorf("sender ended with %v, want ErrAckTimeout", err)
	}
	if err := <-waited; !errors.Is(err, ErrLinkDown) || !errors.Is(err, ErrAckTimeout) {
		t.Errorf("WaitAcked = %v", err)
	}
	sink.open()
}

// TestSinkFailure: a standby that cannot persist ends the link and says
// so; the active's waiters learn the link is down.
func TestSinkFailure(t *testing.T) {
	t.Parallel()
	aj := openJournal(t, t.TempDir(), persist.Options{})
	defer aj.Close()
	sink := newMemSink()
	s := startShip(t, aj, sink, SenderOptions{})
	s.sync(t, false)
	sink.mu.Lock()
	sink.fail = errors.New("disk full")
	sink.mu.Unlock()
	index, err := aj.Append(context.Background(), []byte("lost on the standby"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.snd.WaitAcked(context.Background(), index); !errors.Is(err, ErrLinkDown) {
		t.Errorf("WaitAcked = %v, want ErrLinkDown", err)
	}
	failed := waitEvent[ha.SyncFailed](t, s.sev)
	if !errors.Is(failed.Err, ErrSink) || !contains(failed.Err, "disk full") {
		t.Errorf("SyncFailed %v", failed.Err)
	}
	if err := <-s.rcvErr; !errors.Is(err, ErrSink) {
		t.Errorf("receiver ended with %v", err)
	}
	if err := <-s.sndErr; !errors.Is(err, ErrPeerClosed) || !contains(err, "disk full") {
		t.Errorf("sender ended with %v, want the standby's goodbye", err)
	}
}

// TestNothingBeforeRequest: records sent before the standby asked are a
// protocol violation and reach nothing.
func TestNothingBeforeRequest(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	p := dialPair(t, testOptions(pki.creds(t, "db1"), helloActive, nil), testOptions(pki.creds(t, "db2"), helloStandby, nil))
	sink := newMemSink()
	r := NewReceiver(p.standby, sink, ReceiverOptions{Link: 1})
	errc := make(chan error, 1)
	go func() { errc <- r.Run(context.Background()) }()
	if err := p.active.Send(context.Background(), Records{First: 1, Durable: 1, Payloads: [][]byte{[]byte("unasked")}}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrProtocol) {
		t.Errorf("Run = %v, want ErrProtocol", err)
	}
	if _, _, _, last := sink.snapshot(); last != 0 {
		t.Errorf("the sink got records")
	}
}

// TestAckBeyondSent: an ack for records never sent ends the link.
func TestAckBeyondSent(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	aj := openJournal(t, t.TempDir(), persist.Options{})
	defer aj.Close()
	p := dialPair(t, testOptions(pki.creds(t, "db1"), helloActive, nil), testOptions(pki.creds(t, "db2"), helloStandby, nil))
	snd := NewSender(p.active, aj, SenderOptions{Link: 1})
	errc := make(chan error, 1)
	go func() { errc <- snd.Run(context.Background()) }()
	if err := p.standby.Send(context.Background(), Ack{Index: 5}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrProtocol) {
		t.Errorf("Run = %v, want ErrProtocol", err)
	}
	if err := snd.WaitAcked(context.Background(), 1); !errors.Is(err, ErrLinkDown) {
		t.Errorf("WaitAcked = %v", err)
	}
}

// TestEpochNoticeReported: an EpochNotice from either side becomes
// ha.HigherEpochSeen.
func TestEpochNoticeReported(t *testing.T) {
	t.Parallel()
	aj := openJournal(t, t.TempDir(), persist.Options{})
	defer aj.Close()
	s := startShip(t, aj, newMemSink(), SenderOptions{})
	if err := s.p.active.Send(context.Background(), EpochNotice{Epoch: 9}); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent[ha.HigherEpochSeen](t, s.sev); ev.Epoch != 9 || ev.From != "peer db1" {
		t.Errorf("standby reported %+v", ev)
	}
	if err := s.p.standby.Send(context.Background(), EpochNotice{Epoch: 10}); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent[ha.HigherEpochSeen](t, s.aev); ev.Epoch != 10 || ev.From != "peer db2" {
		t.Errorf("active reported %+v", ev)
	}
}

func TestJournalPosition(t *testing.T) {
	t.Parallel()
	j := openJournal(t, t.TempDir(), persist.Options{})
	defer j.Close()
	if p, err := JournalPosition(context.Background(), j); err != nil || p != (Position{}) {
		t.Fatalf("empty journal: %+v, %v", p, err)
	}
	appendN(t, j, 3, "r%d")
	p, err := JournalPosition(context.Background(), j)
	if err != nil || p.Index != 3 || p.Sum != sha256.Sum256([]byte("r2")) {
		t.Errorf("position %+v, %v", p, err)
	}
}
