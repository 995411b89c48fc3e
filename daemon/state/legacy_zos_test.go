package state

import (
	"os"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/persist"
)

// TestFixtureLegacyZOSReplays: a journal holding storage-added records
// of kind zos (the former storage add --kind zos, which zos add
// replaced) opens and replays to the state that code built; the records
// stay plain z/OS connections of their systems (no z/OS connection of
// zos add), usable as before.
func TestFixtureLegacyZOSReplays(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/state"
	if err := os.CopyFS(dir, os.DirFS("testdata/zos-legacy/state")); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir, persist.Options{})
	defer s.Close()
	want := readFixture(t, "../zos-legacy/want-state.json")
	if got := stateOf(t, s); got != want || s.LastIndex() != 5 {
		t.Fatalf("replayed: LastIndex %d (want 5), state (-want +got):\n-%s\n+%s", s.LastIndex(), want, got)
	}
	reg := s.Registry()
	c := reg.Connections(hal.Serial("LAB.2107-75P0002"))
	if len(c) != 1 || c[0].Kind != hal.ZOS || c[0].Sysplex != "PLEX1" || c[0].ZOS != "" || len(reg.ZOSs()) != 0 {
		t.Fatalf("LAB.2107-75P0002's connections %+v, z/OS connections %+v", c, reg.ZOSs())
	}
}
