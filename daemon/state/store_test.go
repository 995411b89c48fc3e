package state

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/persist"
)

// The Store's tests on the real families: persist's own tests prove the
// journal, snapshots, backups and the standby's side on a state machine
// of their own; these prove that the daemon's state, its records and
// its envelope, go through them whole.

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
			opts := persist.Options{SegmentSize: 1024, SnapshotEvery: 1 + int(seed)*13}
			g := newGen(seed)
			mem := session.NewMemoryStore()
			s := mustOpen(t, dir, opts)
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
				s = mustOpen(t, dir, opts)
				if got := snapOf(t, s.DB()); got != want {
					t.Fatalf("round %d: reopened state differs (-want +got):\n-%s\n+%s", round, want, got)
				}
			}
			s.Close()
			snaps, _ := filepath.Glob(filepath.Join(dir, "journal", "*.snap"))
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
	s := mustOpen(t, dir, persist.Options{SnapshotEvery: 25})
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
	s = mustOpen(t, dir, persist.Options{})
	defer s.Close()
	if got := snapOf(t, s.DB()); got != want {
		t.Errorf("replayed state differs")
	}
}

func TestStoreRefusedNotJournaled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mustOpen(t, t.TempDir(), persist.Options{})
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

// TestStoreUnknownRecord: a payload of a family this build does not know
// refuses the replay.
func TestStoreUnknownRecord(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := persist.Open(filepath.Join(dir, "journal"), persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		`{"type":"heartbeat","v":1,"record":{"on":true}}`,
	} {
		if _, err := j.Append(context.Background(), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	if s, err := Open(dir, persist.Options{}); !errors.Is(err, ErrUnknownRecord) {
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
		if _, err := decodeRecord([]byte(p)); !errors.Is(err, ErrUnknownRecord) {
			t.Errorf("decodeRecord(%s) = %v, want ErrUnknownRecord", p, err)
		}
	}
}
