package state

import (
	"context"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/persist"
)

// TestReplayHyperSwapSession: a journal holding a HyperSwap session,
// started, swapped by its z/OS host (Target Available, H2 active) and
// started back H2->H1, replays to the same state after a reopen, with
// and without a snapshot in between.
func TestReplayHyperSwapSession(t *testing.T) {
	t.Parallel()
	for _, every := range []int{0, 3} {
		dir := t.TempDir()
		opts := persist.Options{SnapshotEvery: every}
		ctx := context.Background()
		s := mustOpen(t, dir, opts)
		rec := func(kind session.Kind) session.Record {
			return session.Record{Version: session.RecordVersion, Kind: kind, Session: "hs", At: t0}
		}
		create := rec(session.KindSessionCreated)
		create.Create = &session.Create{Type: session.MetroMirrorHyperSwap, CGName: "zplex", Policy: session.HoldIO}
		add := rec(session.KindCopySetsAdded)
		add.CopySets = []session.CopySet{copySet(0, 0x10, 1), copySet(1, 0x11, 2)}
		change := func(c session.Change) session.Record {
			r := rec(session.KindStateChanged)
			r.Change = &c
			return r
		}
		records := []session.Record{create, add,
			change(session.Change{State: session.Preparing, Status: session.Warning, Copying: true,
				Direction: session.H1ToH2, ActiveSite: session.H1, Reason: "start-h1-h2 issued"}),
			change(session.Change{State: session.Prepared, Status: session.Normal, Copying: true, Reason: "every pair full-duplex"}),
			change(session.Change{State: session.TargetAvailable, Status: session.Severe, Recoverable: true,
				ActiveSite: session.H2, Reason: "HyperSwap (unplanned) by z/OS host SYSA: storage system crashed; H2 is active"}),
			change(session.Change{State: session.Preparing, Status: session.Warning, Direction: session.H2ToH1,
				ActiveSite: session.H2, Reason: "start-h2-h1 issued"}),
		}
		for i, r := range records {
			if err := s.Propose(ctx, r); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if i == 4 {
				got, _ := s.DB().Session("hs")
				if got.State != session.TargetAvailable || got.ActiveSite != session.H2 || got.Type != session.MetroMirrorHyperSwap {
					t.Fatalf("after the swap record: %s %s %s", got.Type, got.State, got.ActiveSite)
				}
			}
		}
		want := snapOf(t, s.DB())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = mustOpen(t, dir, opts)
		if got := snapOf(t, s.DB()); got != want {
			t.Fatalf("snapshot every %d: reopened state differs:\n-%s\n+%s", every, want, got)
		}
		got, _ := s.DB().Session("hs")
		if got.Type != session.MetroMirrorHyperSwap || got.Direction != session.H2ToH1 || got.ActiveSite != session.H2 ||
			len(got.CopySets) != 2 {
			t.Errorf("replayed session: %+v", got)
		}
		s.Close()
	}
}
