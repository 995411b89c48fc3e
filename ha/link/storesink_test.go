package link

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/daemon/state/statetest"
	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/persist"
)

func openStore(t testing.TB, dir string, opts persist.Options) *state.Store {
	t.Helper()
	s, err := state.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// proposer proposes valid session and registry records in a fixed
// pattern: sessions created, given copy sets, started; storage systems
// added; the heartbeat switched; the epoch raised.
type proposer struct {
	t testing.TB
	s *state.Store
	n int // records proposed
}

// next proposes one record and returns its index.
func (p *proposer) next() uint64 {
	p.t.Helper()
	ctx := context.Background()
	stamp := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	i := p.n
	p.n++
	sess := fmt.Sprintf("s%03d", i/4)
	var err error
	switch i % 8 {
	case 0, 4:
		err = p.s.Propose(ctx, session.Record{Version: session.RecordVersion, Kind: session.KindSessionCreated, Session: sess, At: stamp,
			Create: &session.Create{Type: session.MetroMirrorFailoverFailback, CGName: "cg", Policy: session.HoldIO}})
	case 1, 5:
		err = p.s.Propose(ctx, session.Record{Version: session.RecordVersion, Kind: session.KindCopySetsAdded, Session: sess, At: stamp,
			CopySets: []session.CopySet{statetest.CopySetAt(2 * i), statetest.CopySetAt(2*i + 1)}})
	case 2:
		err = p.s.Propose(ctx, session.Record{Version: session.RecordVersion, Kind: session.KindStateChanged, Session: sess, At: stamp.Add(time.Duration(i) * time.Second),
			Change: &session.Change{State: session.Preparing, Status: session.Warning, Copying: true, Reason: "start"}})
	case 3:
		err = p.s.ProposeRegistry(ctx, registry.Record{Version: registry.RecordVersion, Kind: registry.KindStorageAdded, At: stamp,
			Serial:     hal.Serial(fmt.Sprintf("LAB.2107-75P%04d", i)),
			Connection: &registry.Connection{Name: "direct", Kind: "direct", Addresses: []string{fmt.Sprintf("10.0.0.%d:1750", i%250)}}})
	case 6:
		err = p.s.ProposeRegistry(ctx, registry.Record{Version: registry.RecordVersion, Kind: registry.KindHeartbeatSet, At: stamp, On: i%16 == 6})
	default:
		err = p.s.ProposeRegistry(ctx, registry.Record{Version: registry.RecordVersion, Kind: registry.KindEpochSet, At: stamp, Epoch: hal.Epoch(i)})
	}
	if err != nil {
		p.t.Fatalf("record %d: %v", i, err)
	}
	return p.s.LastIndex()
}

func (p *proposer) propose(n int) {
	p.t.Helper()
	for range n {
		p.next()
	}
}

// sameState fails unless the standby's published state and last index
// are the active's.
func sameState(t testing.TB, active, standby *state.Store) {
	t.Helper()
	snap := func(s *state.Store) (string, string) {
		sess, err := s.DB().Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		reg, err := s.Registry().Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return string(sess), string(reg)
	}
	as, ar := snap(active)
	ss, sr := snap(standby)
	if as != ss {
		t.Fatalf("sessions differ (-active +standby):\n-%s\n+%s", as, ss)
	}
	if ar != sr {
		t.Fatalf("registries differ (-active +standby):\n-%s\n+%s", ar, sr)
	}
	if a, s := active.LastIndex(), standby.LastIndex(); a != s {
		t.Fatalf("last index: active %d, standby %d", a, s)
	}
}

func count[T ha.Event](evs []ha.Event) int {
	n := 0
	for _, ev := range evs {
		if _, ok := ev.(T); ok {
			n++
		}
	}
	return n
}

// TestStoreSinkSync: a real Sender over an active state.Store's journal
// and a real Receiver into a StoreSink over a standby's store, on
// loopback TLS links: a full sync (snapshot and records) replaces the
// standby's own state with the active's; live records reach it before
// WaitAcked returns; after a new link a catch-up sends only the records
// it lacks; and the standby's state survives its reopen.
func TestStoreSinkSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := openStore(t, t.TempDir(), persist.Options{SnapshotEvery: -1})
	defer a.Close()
	w := &proposer{t: t, s: a}
	w.propose(80)
	if err := a.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	snapAt := a.LastIndex()
	w.propose(40) // after the snapshot: shipped as records

	sdir := t.TempDir()
	b := openStore(t, sdir, persist.Options{SnapshotEvery: 25})
	defer func() { b.Close() }()
	own := &proposer{t: t, s: b, n: 3} // a state of its own, to be replaced
	own.propose(9)

	// Full sync.
	s := startShip(t, a.Journal(), StoreSink{Store: b}, SenderOptions{})
	s.sync(t, true)
	sameState(t, a, b)
	var installed []uint64
	for _, ev := range s.sev.all() {
		if ev, ok := ev.(ha.SnapshotInstalled); ok {
			installed = append(installed, ev.Index)
		}
	}
	if len(installed) != 1 || installed[0] != snapAt {
		t.Errorf("snapshots installed at %v, want one at %d", installed, snapAt)
	}

	// Live records: durable and published on the standby once acked.
	for range 30 {
		index := w.next()
		if err := s.snd.WaitAcked(ctx, index); err != nil {
			t.Fatal(err)
		}
		if got := b.LastIndex(); got < index {
			t.Fatalf("record %d acked, the standby's store is at %d", index, got)
		}
	}
	sameState(t, a, b)

	// The link ends; the active goes on; a new link catches up from the
	// standby's last record, without a snapshot.
	s.stop()
	w.propose(12)
	s2 := startShip(t, a.Journal(), StoreSink{Store: b}, SenderOptions{})
	s2.sync(t, false)
	sameState(t, a, b)
	if n := count[ha.SnapshotSent](s2.aev.all()); n != 0 {
		t.Errorf("catch-up sent %d snapshots, want records only", n)
	}
	index := w.next()
	if err := s2.snd.WaitAcked(ctx, index); err != nil {
		t.Fatal(err)
	}
	sameState(t, a, b)

	// What the standby acknowledged is on its disk.
	s2.stop()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openStore(t, sdir, persist.Options{})
	sameState(t, a, b)
}

// TestStoreSinkPosition: the position is the last record and its
// payload's SHA-256; right after a snapshot install, the snapshot's
// index with a zero Sum.
func TestStoreSinkPosition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := openStore(t, t.TempDir(), persist.Options{SnapshotEvery: -1})
	defer a.Close()
	w := &proposer{t: t, s: a}
	w.propose(10)
	if err := a.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	w.propose(3)
	snap, ok, err := a.Journal().LatestSnapshot()
	if err != nil || !ok {
		t.Fatalf("active snapshot: %t %v", ok, err)
	}
	payloads := readAll(t, a.Journal(), 11)

	b := openStore(t, t.TempDir(), persist.Options{})
	defer b.Close()
	sink := StoreSink{Store: b}
	if p, err := sink.Position(ctx); err != nil || p != (Position{}) {
		t.Fatalf("empty store: %+v, %v", p, err)
	}
	if err := sink.InstallSnapshot(ctx, snap.Index, snap.State); err != nil {
		t.Fatal(err)
	}
	if p, err := sink.Position(ctx); err != nil || p != (Position{Index: 10}) {
		t.Fatalf("after the install: %+v, %v; want index 10, zero sum", p, err)
	}
	if err := sink.Append(ctx, 11, [][]byte{payloads[11], payloads[12], payloads[13]}); err != nil {
		t.Fatal(err)
	}
	p, err := sink.Position(ctx)
	if err != nil || p.Index != 13 || p.Sum != sha256.Sum256(payloads[13]) {
		t.Fatalf("after records: %+v, %v", p, err)
	}
	if !bytes.Equal(readAll(t, b.Journal(), 13)[13], payloads[13]) {
		t.Errorf("the standby's record 13 is not the active's payload")
	}
	sameState(t, a, b)
}

// TestStoreSinkEmptyActive: a full sync from an active that holds
// nothing installs the empty state at index 0 (no bytes) over the
// standby's own, and the records that follow start at 1.
func TestStoreSinkEmptyActive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := openStore(t, t.TempDir(), persist.Options{})
	defer a.Close()
	b := openStore(t, t.TempDir(), persist.Options{})
	defer b.Close()
	(&proposer{t: t, s: b}).propose(5)

	s := startShip(t, a.Journal(), StoreSink{Store: b}, SenderOptions{})
	s.sync(t, true)
	if b.LastIndex() != 0 || b.DB().Len() != 0 || len(b.Registry().Serials()) != 0 {
		t.Fatalf("after the sync: LastIndex %d, %d sessions, %d storage systems; want the empty state",
			b.LastIndex(), b.DB().Len(), len(b.Registry().Serials()))
	}
	w := &proposer{t: t, s: a}
	for range 5 {
		if err := s.snd.WaitAcked(ctx, w.next()); err != nil {
			t.Fatal(err)
		}
	}
	sameState(t, a, b)
}
