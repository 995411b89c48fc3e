package persist

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// recGen makes random session records, valid and invalid, over a small
// world so that names and volumes collide often.
type recGen struct {
	rng *rand.Rand
	at  time.Time
}

func newGen(seed uint64) *recGen { return &recGen{rng: rand.New(rand.NewPCG(seed, 0x9e55)), at: t0} }

func (g *recGen) pick(n int) int { return g.rng.IntN(n) }

func serial(site string, k int) hal.Serial {
	return hal.Serial(fmt.Sprintf("LAB.2107-75%s%04d", site, k+1))
}

// copySet is volume (lss, n) on primary k mirrored to secondary k.
func copySet(k int, lss hal.LSS, n uint8) session.CopySet {
	v := hal.NewVolume(lss, n)
	return session.CopySet{H1: hal.VolumeRef{Serial: serial("P", k), Volume: v}, H2: hal.VolumeRef{Serial: serial("S", k), Volume: v}}
}

func (g *recGen) record(db *session.DB) session.Record {
	g.at = g.at.Add(time.Duration(g.pick(5000)) * time.Millisecond)
	r := session.Record{Version: session.RecordVersion, Session: []string{"A", "B", "C", "D", "bad name"}[g.pick(5)], At: g.at}
	copySets := func() []session.CopySet {
		out := make([]session.CopySet, 1+g.pick(3))
		for i := range out {
			out[i] = copySet(g.pick(2), hal.LSS(0x10+g.pick(2)), uint8(g.pick(4)))
		}
		return out
	}
	switch g.pick(10) {
	case 0:
		r.Kind = session.KindSessionCreated
		r.Create = &session.Create{
			Type:   []session.Type{session.MetroMirrorSingleDirection, session.MetroMirrorFailoverFailback, "bogus"}[g.pick(3)],
			CGName: []string{"", "g1", "g2"}[g.pick(3)],
			Policy: []session.Policy{session.HoldIO, session.ReleaseIO}[g.pick(2)],
		}
	case 1:
		r.Kind = session.KindSessionRemoved
	case 2, 3:
		r.Kind = session.KindCopySetsAdded
		r.CopySets = copySets()
	case 4:
		r.Kind = session.KindCopySetsRemoved
		r.CopySets = copySets()
		if s, ok := db.Session(r.Session); ok && len(s.CopySets) > 0 && g.pick(2) == 0 {
			r.CopySets = []session.CopySet{s.CopySets[g.pick(len(s.CopySets))]}
		}
	default:
		r.Kind = session.KindStateChanged
		st := []session.State{session.Defined, session.Preparing, session.Prepared, session.Suspended}[g.pick(4)]
		status := map[session.State]session.Status{session.Defined: session.Inactive, session.Preparing: session.Warning,
			session.Prepared: session.Normal, session.Suspended: session.Severe}[st]
		r.Change = &session.Change{State: st, Status: status, Copying: st == session.Prepared || st == session.Preparing,
			IOHeld: st == session.Suspended && g.pick(2) == 0, Reason: fmt.Sprintf("r%d", g.pick(1000))}
	}
	if s, ok := db.Session(r.Session); ok && g.pick(3) == 0 {
		r.IfRev = s.Rev + uint64(g.pick(2)) // right or one ahead
	}
	return r
}

func snapOf(t testing.TB, db *session.DB) string {
	t.Helper()
	b, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustOpenStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := OpenStore(dir, opts)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	return s
}

// TestStoreReplayRandom: random record streams go to the store and to a
// session.MemoryStore; both accept and refuse the same records, and
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
			mem := session.NewMemoryStore()
			s := mustOpenStore(t, dir, opts)
			accepted := 0
			for round := range 5 {
				for i := range 300 {
					r := g.record(mem.DB())
					errMem, errStore := mem.Propose(ctx, r), s.Propose(ctx, r)
					if fmt.Sprint(errMem) != fmt.Sprint(errStore) {
						t.Fatalf("round %d record %d: memory %v, store %v", round, i, errMem, errStore)
					}
					if errMem == nil {
						accepted++
					}
				}
				want := snapOf(t, mem.DB())
				if got := snapOf(t, s.DB()); got != want {
					t.Fatalf("round %d: store state differs (-want +got):\n-%s\n+%s", round, want, got)
				}
				if got := s.LastIndex(); got != uint64(accepted) {
					t.Fatalf("LastIndex %d, %d records accepted", got, accepted)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = mustOpenStore(t, dir, opts)
				if got := snapOf(t, s.DB()); got != want {
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
// DB a reader gets is whole, and the replay gives the final state.
func TestStoreConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpenStore(t, dir, Options{SnapshotEvery: 25})
	names := []string{"A", "B", "C", "D"}
	for _, n := range names {
		r := session.Record{Version: session.RecordVersion, Kind: session.KindSessionCreated, Session: n, At: t0,
			Create: &session.Create{Type: session.MetroMirrorSingleDirection, CGName: "g", Policy: session.HoldIO}}
		if err := s.Propose(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			for k := range 40 {
				r := session.Record{Version: session.RecordVersion, Kind: session.KindCopySetsAdded, Session: n, At: t0,
					CopySets: []session.CopySet{copySet(i, 0x10, uint8(k))}}
				if err := s.Propose(ctx, r); err != nil {
					t.Errorf("Propose: %v", err)
					return
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 100 {
				db := s.DB()
				for _, sess := range db.Sessions() {
					if uint64(len(sess.CopySets))+1 != sess.Rev {
						t.Errorf("%s: %d copy sets at revision %d", sess.Name, len(sess.CopySets), sess.Rev)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	want := snapOf(t, s.DB())
	if s.LastIndex() != 4+4*40 {
		t.Errorf("LastIndex = %d", s.LastIndex())
	}
	s.Close()
	s = mustOpenStore(t, dir, Options{})
	defer s.Close()
	if got := snapOf(t, s.DB()); got != want {
		t.Errorf("replayed state differs")
	}
}

func TestStoreRefusedNotJournaled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mustOpenStore(t, t.TempDir(), Options{})
	defer s.Close()
	bad := session.Record{Version: session.RecordVersion, Kind: session.KindSessionRemoved, Session: "nobody", At: t0}
	if err := s.Propose(ctx, bad); !errors.Is(err, session.ErrUnknownSession) {
		t.Errorf("Propose(refused) = %v", err)
	}
	if n := s.Journal().LastIndex(); n != 0 {
		t.Errorf("a refused record was journaled: last index %d", n)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Propose(cancelled, bad); !errors.Is(err, context.Canceled) {
		t.Errorf("Propose(cancelled) = %v", err)
	}
	// The DB handed out is the caller's own.
	mine := s.DB()
	create := session.Record{Version: session.RecordVersion, Kind: session.KindSessionCreated, Session: "X", At: t0,
		Create: &session.Create{Type: session.MetroMirrorSingleDirection, Policy: session.HoldIO}}
	if err := mine.Apply(create); err != nil {
		t.Fatal(err)
	}
	if s.DB().Len() != 0 {
		t.Errorf("changing a DB copy changed the store")
	}
}

// TestStoreAutoSnapshot: the store snapshots every SnapshotEvery records,
// so a reopen replays fewer than that.
func TestStoreAutoSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	const every = 10
	s := mustOpenStore(t, dir, Options{SnapshotEvery: every, SegmentSize: 512, SnapshotsKept: 1})
	g := newGen(3)
	for s.LastIndex() < 95 {
		r := g.record(s.DB())
		_ = s.Propose(ctx, r)
	}
	last := s.LastIndex()
	want := snapOf(t, s.DB())
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
	if got := snapOf(t, s.DB()); got != want {
		t.Errorf("replayed state differs")
	}
}

// TestStoreUnknownRecord: a payload of a family this build does not know
// refuses the replay.
func TestStoreUnknownRecord(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := mustOpen(t, filepath.Join(dir, journalDirName), Options{})
	for _, p := range []string{
		`{"type":"heartbeat","v":1,"record":{"on":true}}`,
	} {
		if _, err := j.Append(context.Background(), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	if s, err := OpenStore(dir, Options{}); !errors.Is(err, ErrUnknownRecord) {
		if err == nil {
			s.Close()
		}
		t.Errorf("OpenStore = %v, want ErrUnknownRecord", err)
	}
	for _, p := range []string{
		`{"type":"session","v":2,"record":{}}`,
		`{"type":"session","v":1,"record":{},"extra":1}`,
		`not json`,
	} {
		if err := newState().apply([]byte(p)); !errors.Is(err, ErrUnknownRecord) {
			t.Errorf("apply(%s) = %v, want ErrUnknownRecord", p, err)
		}
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
