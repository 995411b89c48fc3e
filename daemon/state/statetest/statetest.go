// Package statetest builds state stores (state.Store over persist) for
// the tests and benchmarks of the packages that use them (daemon/state;
// ha/link ships them; internal/hapair), so that every figure about "a
// store of 100 000 copy sets" measures the same store.
package statetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/persist"
)

// The shape of the state Fill100k builds.
const (
	Sessions           = 1000
	CopySetsPerSession = 100
	CopySetsPerRecord  = 10
	CopySets           = Sessions * CopySetsPerSession // 100 000
	// Records is the number of records: per session, one to create it
	// and one per CopySetsPerRecord copy sets.
	Records = Sessions * (1 + CopySetsPerSession/CopySetsPerRecord) // 11 000
)

// CopySetAt is the g-th copy set of the state: 50 000 volumes per
// storage system pair (LSS 0x00-0xC3).
func CopySetAt(g int) session.CopySet {
	k, v := g/50_000, g%50_000
	vol := hal.NewVolume(hal.LSS(v/256), uint8(v%256))
	return session.CopySet{
		H1: hal.VolumeRef{Serial: hal.Serial(fmt.Sprintf("LAB.2107-75P%04d", k+1)), Volume: vol},
		H2: hal.VolumeRef{Serial: hal.Serial(fmt.Sprintf("LAB.2107-75S%04d", k+1)), Volume: vol},
	}
}

// Fill100k fills the store in dir (created if needed, closed on return)
// with Sessions sessions of CopySetsPerSession copy sets (CopySets in
// all), added CopySetsPerRecord per record: Records session records,
// proposed by 32 goroutines. If snapAfter > 0, a snapshot is taken once
// that many sessions are complete; no automatic snapshot is taken.
func Fill100k(tb testing.TB, dir string, snapAfter int) {
	tb.Helper()
	// A fixed time keeps the state the same from run to run.
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s, err := state.Open(dir, persist.Options{SnapshotEvery: -1})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	build := func(from, to int) {
		var wg sync.WaitGroup
		next := atomic.Int64{}
		next.Store(int64(from))
		for range 32 {
			wg.Go(func() {
				for {
					n := int(next.Add(1)) - 1
					if n >= to {
						return
					}
					name := fmt.Sprintf("s%04d", n)
					recs := []session.Record{{Version: session.RecordVersion, Kind: session.KindSessionCreated, Session: name, At: at,
						Create: &session.Create{Type: session.MetroMirrorFailoverFailback, CGName: fmt.Sprintf("cg%d", n%10), Policy: session.HoldIO}}}
					for r := range CopySetsPerSession / CopySetsPerRecord {
						var cs []session.CopySet
						for c := range CopySetsPerRecord {
							cs = append(cs, CopySetAt(n*CopySetsPerSession+r*CopySetsPerRecord+c))
						}
						recs = append(recs, session.Record{Version: session.RecordVersion, Kind: session.KindCopySetsAdded, Session: name, At: at, CopySets: cs})
					}
					for _, r := range recs {
						if err := s.Propose(ctx, r); err != nil {
							tb.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
	}
	if snapAfter > 0 {
		build(0, snapAfter)
		if err := s.Snapshot(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	build(max(snapAfter, 0), Sessions)
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	if tb.Failed() {
		tb.FailNow()
	}
}

// CountCopySets is the number of copy sets of a session DB.
func CountCopySets(db *session.DB) int {
	n := 0
	for _, s := range db.Sessions() {
		n += len(s.CopySets)
	}
	return n
}
