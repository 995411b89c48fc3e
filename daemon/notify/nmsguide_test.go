package notify

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/snmpstate"
)

// nmsGuide is the operator's guide to the NMS surface.
const nmsGuide = "../../docs/nms.md"

// TestNMSGuideListsEveryNotification keeps docs/nms.md's trap list
// complete: every notification of the MIB, with its id, and the
// snmpd line for the state's subtree under the default prefix.
func TestNMSGuideListsEveryNotification(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(nmsGuide)
	if err != nil {
		t.Fatal(err)
	}
	guide := string(b)
	for _, e := range Notifications() {
		row := fmt.Sprintf("| %s | %s |", NotificationName(e), e.ID())
		if !strings.Contains(guide, row) {
			t.Errorf("%s lacks the row %q", nmsGuide, row)
		}
	}
	line := fmt.Sprintf("pass_persist .%s.1.%d /usr/bin/lockstepctl snmp pass-persist", config.DefaultEnterpriseOID, snmpstate.ArcState)
	if !strings.Contains(guide, line) {
		t.Errorf("%s lacks the snmpd line %q", nmsGuide, line)
	}
}
