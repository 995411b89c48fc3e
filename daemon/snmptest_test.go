package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestSNMPTestReportsEachManager: lockstepctl snmp test, through the
// admin API of a real lockstepd, sends the test notification to each
// manager and reports each one's outcome: a trap written is sent, an
// inform nobody answers failed once its retries are used up.
func TestSNMPTestReportsEachManager(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	community := filepath.Join(dir, "community")
	if err := os.WriteFile(community, []byte("public\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Two ports nobody answers: a trap is sent all the same.
	var ports [2]int
	for i := range ports {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
	}
	managers := fmt.Sprintf("[[snmp.manager]]\naddress = \"udp://127.0.0.1:%d\"\nversion = \"v2c\"\nnotification = \"trap\"\n"+
		"community_file = %q\n[[snmp.manager]]\naddress = \"udp://127.0.0.1:%d\"\nversion = \"v2c\"\nnotification = \"inform\"\n"+
		"community_file = %q\nretries = 0\ntimeout = \"200ms\"\n", ports[0], community, ports[1], community)
	c := startServerWith(t, managers)
	doc, err := c.SNMPTest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sent", "failed"}
	if len(doc.Managers) != len(want) {
		t.Fatalf("%d managers: %+v", len(doc.Managers), doc)
	}
	for i, m := range doc.Managers {
		if m.Outcome != want[i] || m.Seq == 0 || (m.Error != "") != (want[i] == "failed") {
			t.Errorf("manager %s %s: %+v, want %s", m.Address, m.Notification, m, want[i])
		}
	}
}
