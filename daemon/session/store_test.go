package session_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/session"
)

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := session.NewMemoryStore()
	for _, r := range []session.Record{
		created("A", sd, "", session.HoldIO), added("A", cs(0, 0x10, 1)),
		created("B", sd, "", session.HoldIO),
	} {
		if err := store.Propose(ctx, r); err != nil {
			t.Fatalf("Propose(%s): %v", r.Kind, err)
		}
	}

	// A refused record is neither applied nor stored.
	if err := store.Propose(ctx, added("B", cs(0, 0x10, 1))); !errors.Is(err, session.ErrVolumeInUse) {
		t.Errorf("Propose(used volume) = %v", err)
	}
	if n := len(store.Records()); n != 3 {
		t.Errorf("%d records stored, want 3", n)
	}

	// A DB handed out is the caller's: changing it changes neither the
	// store nor the next DB handed out, including the volume index.
	mine := store.DB()
	mustApply(t, mine, added("B", cs(1, 0x10, 1)), removedCS("A", cs(0, 0x10, 1)), removed("A"))
	if owner, ok := store.DB().Owner(cs(1, 0x10, 1).H1); ok {
		t.Errorf("the store's index holds a volume added to a copy: %q", owner)
	}
	if owner, _ := store.DB().Owner(cs(0, 0x10, 1).H1); owner != "A" {
		t.Errorf("the store's index lost a volume removed from a copy: %q", owner)
	}
	if err := store.Propose(ctx, added("B", cs(1, 0x10, 1))); err != nil {
		t.Errorf("Propose after a copy changed: %v", err)
	}
	if owner, _ := mine.Owner(cs(1, 0x10, 1).H1); owner != "B" {
		t.Errorf("the copy's own change got lost: %q", owner)
	}
	if _, ok := mine.Session("A"); ok {
		t.Error("the copy's removal got lost")
	}

	// A record changed by its proposer afterwards does not change the store.
	r := added("B", cs(2, 0x10, 1))
	if err := store.Propose(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.CopySets[0] = cs(3, 0x10, 1)
	if got := store.Records()[4].CopySets[0]; got != cs(2, 0x10, 1) {
		t.Errorf("stored record changed with the proposer's: %v", got)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := store.Propose(cancelled, created("C", sd, "", session.HoldIO)); !errors.Is(err, context.Canceled) {
		t.Errorf("Propose(cancelled) = %v", err)
	}
}

// TestMemoryStoreConcurrent: readers and writers at once (run with -race).
// Every DB a reader gets is whole: each session has as many copy sets as
// its revision says were added.
func TestMemoryStoreConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := session.NewMemoryStore()
	names := []string{"A", "B", "C", "D"}
	for _, n := range names {
		if err := store.Propose(ctx, created(n, sd, "g", session.HoldIO)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			for j := range 50 {
				if err := store.Propose(ctx, added(n, cs(i, 0x10, uint8(j)))); err != nil {
					t.Errorf("Propose: %v", err)
					return
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 200 {
				db := store.DB()
				for _, s := range db.Sessions() {
					if uint64(len(s.CopySets))+1 != s.Rev {
						t.Errorf("%s: %d copy sets at revision %d", s.Name, len(s.CopySets), s.Rev)
						return
					}
					for _, c := range s.CopySets {
						if owner, _ := db.Owner(c.H1); owner != s.Name {
							t.Errorf("%s's volume %s indexed to %q", s.Name, c.H1, owner)
							return
						}
					}
				}
				// A reader may change its copy freely.
				_ = db.Apply(added("A", cs(9, 0x20, 1)))
			}
		})
	}
	wg.Wait()
	if n := len(store.Records()); n != 4+4*50 {
		t.Errorf("%d records", n)
	}
}
