package state

import (
	"bytes"
	"context"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/persist"
)

// TestRegistryFamilySurvivesReopen: the registry family is journaled,
// snapshotted and replayed like the sessions.
func TestRegistryFamilySurvivesReopen(t *testing.T) {
	t.Parallel()
	for _, snapshot := range []bool{false, true} {
		dir := t.TempDir()
		s, err := Open(dir, persist.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, r := range []registry.Record{
			{Kind: registry.KindEpochSet, Epoch: 4},
			{Kind: registry.KindStorageAdded, Serial: "S1", Connection: &registry.Connection{Name: "direct",
				Kind: "direct", Addresses: []string{"127.0.0.1:1", "127.0.0.1:2"}, User: "u", PasswordFile: "/pw"}},
			{Kind: registry.KindHeartbeatSet, On: true},
		} {
			r.Version = registry.RecordVersion
			if err := s.ProposeRegistry(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		bad := registry.Record{Version: registry.RecordVersion, Kind: registry.KindEpochSet, Epoch: 2}
		if err := s.ProposeRegistry(ctx, bad); err == nil {
			t.Fatal("a lower epoch was accepted")
		}
		if snapshot {
			if err := s.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
		}
		want, _ := s.Registry().Snapshot()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(dir, persist.Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := s.Registry().Snapshot()
		s.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("snapshot=%v: after reopen %s, want %s", snapshot, got, want)
		}
		if r := s.Registry(); r.Epoch() != 4 || !r.Heartbeat() || len(r.Serials()) != 1 {
			t.Fatalf("registry after reopen: epoch %d heartbeat %v serials %v", r.Epoch(), r.Heartbeat(), r.Serials())
		}
	}
}
