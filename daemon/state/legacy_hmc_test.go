package state

import (
	"os"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/persist"
)

// TestFixtureLegacyHMCReplays: a journal holding storage-added records
// of kind hmc (the former storage add --kind hmc, which hmc add
// replaced) opens and replays to the state that code built; the records
// stay as legacy connections, which the daemon shows as not usable.
func TestFixtureLegacyHMCReplays(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/state"
	if err := os.CopyFS(dir, os.DirFS("testdata/hmc-legacy/state")); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir, persist.Options{})
	defer s.Close()
	want := readFixture(t, "../hmc-legacy/want-state.json")
	if got := stateOf(t, s); got != want || s.LastIndex() != 5 {
		t.Fatalf("replayed: LastIndex %d (want 5), state (-want +got):\n-%s\n+%s", s.LastIndex(), want, got)
	}
	reg := s.Registry()
	var legacy []string
	for _, serial := range reg.Serials() {
		for _, c := range reg.Connections(serial) {
			if c.Legacy() {
				legacy = append(legacy, string(serial)+"/"+c.Name)
			}
		}
	}
	if len(legacy) != 2 || legacy[0] != "LAB.2107-75P0001/hmc-a" || legacy[1] != "LAB.2107-75P0002/hmc" {
		t.Fatalf("legacy HMC connections %q", legacy)
	}
	if reg.Connections(hal.Serial("LAB.2107-75P0001"))[0].Kind != hal.Direct || len(reg.HMCs()) != 0 {
		t.Fatalf("registry %+v", reg.Connections("LAB.2107-75P0001"))
	}
}
