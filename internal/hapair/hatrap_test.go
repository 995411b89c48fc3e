package hapair

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/internal/snmpagent"
)

// TestBothServersSendHAStateTraps (issue 18 §3): an NMS hears the HA
// state from both servers of the pair, each naming itself
// (lockstepServerName) and its role: Synchronized when the pair forms,
// and the loss of the link, from the active and from the standby.
func TestBothServersSendHAStateTraps(t *testing.T) {
	d := snmpagent.StartTrapd(t)
	dir := t.TempDir()
	community := filepath.Join(dir, "nms.community")
	if err := os.WriteFile(community, []byte("public\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("[[snmp.manager]]\naddress = \"udp://127.0.0.1:%d\"\nversion = \"v2c\"\nnotification = \"inform\"\n"+
		"community_file = %q\n", d.Port, community)
	p := newPair(t, Options{Extra: extra}, false)
	ctx := context.Background()
	if err := p.Pair(ctx); err != nil {
		t.Fatal(err)
	}
	// haStateChanged is .0.5001; lockstepServerName .1.2, lockstepRole .1.3.
	from := func(server, role, text string) func(string) bool {
		return func(l string) bool {
			return strings.Contains(l, ".1.3.6.1.4.1.61942.1.0.5001") &&
				strings.Contains(l, `.1.3.6.1.4.1.61942.1.1.2.0 = STRING: "`+server+`"`) &&
				strings.Contains(l, `.1.3.6.1.4.1.61942.1.1.3.0 = STRING: "`+role+`"`) && strings.Contains(l, text)
		}
	}
	for _, w := range []struct{ server, role string }{{p.A.Name, "active"}, {p.B.Name, "standby"}} {
		if err := d.Wait(ctx, 30*time.Second, from(w.server, w.role, "ha_state=Synchronized")); err != nil {
			t.Fatalf("no haStateChanged to Synchronized from %s (%s): %v", w.server, w.role, err)
		}
	}
	p.A.Relay.Cut()
	p.B.Relay.Cut()
	for _, w := range []struct{ server, role string }{{p.A.Name, "active"}, {p.B.Name, "standby"}} {
		if err := d.Wait(ctx, 30*time.Second, from(w.server, w.role, `ha_state=\"Disconnected`)); err != nil {
			t.Fatalf("no haStateChanged after the link loss from %s: %v", w.server, err)
		}
	}
}

// TestTakeoverAndDemotionAreTrapped (issue 18 §1, the catalogue walk's
// HA part): the standby that takes over after the active died sends
// takeover; the old active, started again, learns of the higher epoch and
// sends demoted, each naming itself.
func TestTakeoverAndDemotionAreTrapped(t *testing.T) {
	d := snmpagent.StartTrapd(t)
	dir := t.TempDir()
	community := filepath.Join(dir, "nms.community")
	if err := os.WriteFile(community, []byte("public\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("[[snmp.manager]]\naddress = \"udp://127.0.0.1:%d\"\nversion = \"v2c\"\nnotification = \"inform\"\n"+
		"community_file = %q\n", d.Port, community)
	p := newPair(t, Options{Extra: extra}, true)
	ctx := context.Background()
	if err := p.Pair(ctx); err != nil {
		t.Fatal(err)
	}
	// takeover is .0.5002, demoted .0.5003; lockstepServerName .1.2.
	from := func(code int, server string) func(string) bool {
		return func(l string) bool {
			return strings.Contains(l, fmt.Sprintf("OID: .1.3.6.1.4.1.61942.1.0.%d\t", code)) &&
				strings.Contains(l, `.1.3.6.1.4.1.61942.1.1.2.0 = STRING: "`+server+`"`)
		}
	}
	p.A.Kill()
	if _, err := p.B.Client().HATakeover(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(ctx, 30*time.Second, from(5002, p.B.Name)); err != nil {
		t.Fatalf("no takeover from %s: %v", p.B.Name, err)
	}
	if err := p.A.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(ctx, 30*time.Second, from(5003, p.A.Name)); err != nil {
		t.Fatalf("no demoted from %s, the old active: %v", p.A.Name, err)
	}
}
