package notify

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lockstep-io/lockstep/internal/smalldisk"
)

// TestBootCounterOnAFullDisk: the SNMPv3 boot counter still rises when
// the disk is full, so that a daemon with a v3 manager starts (and
// reports the full disk) instead of failing at every start.
func TestBootCounterOnAFullDisk(t *testing.T) {
	t.Parallel()
	disk := smalldisk.Mount(t, 256<<10)
	path := filepath.Join(disk, "snmp-engine-id.boots")
	if err := os.WriteFile(path, []byte("9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	smalldisk.Fill(t, disk)
	boots, err := nextBoots(path)
	if err != nil || boots != 10 {
		t.Fatalf("nextBoots on a full disk: %d, %v; want 10", boots, err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "10\n" {
		t.Fatalf("the counter holds %q (%v), want \"10\\n\"", b, err)
	}
}
