package hapair

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// addHMCs defines the lab's dual HMC on n as connection HMCS and waits
// until it has discovered front.
func addHMCs(t *testing.T, p *Pair, n *Node, front ...hal.Serial) {
	t.Helper()
	ctx := context.Background()
	var addrs []string
	for _, st := range p.Lab.HMCStatus() {
		addrs = append(addrs, st.Endpoint)
	}
	if _, err := n.Client().HMCAdd(ctx, api.HMCSpec{Name: "HMCS", Addresses: addrs, User: HMCUser,
		PasswordFile: HMCPasswordFile(p.opt.Dir)}); err != nil {
		t.Fatalf("hmc add: %v", err)
	}
	if err := Eventually(ctx, 30*time.Second, func() error {
		h, err := n.Client().HMCShow(ctx, "HMCS")
		if err != nil {
			return err
		}
		for _, s := range front {
			if !slices.Contains(h.Attached, s) {
				return fmt.Errorf("hmc show: attached %v, want %v", h.Attached, front)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// hmcStates is an HMC connection's local and partner states, one word
// per HMC: "connected/disconnected connected/connected".
func hmcStates(ctx context.Context, c *client.Client) (string, api.HMCDoc, error) {
	h, err := c.HMCShow(ctx, "HMCS")
	if err != nil {
		return "", h, err
	}
	var words []string
	for i, cs := range h.Consoles {
		partner := "none"
		if i < len(h.Partner) {
			partner = h.Partner[i].State
		}
		words = append(words, cs.State+"/"+partner)
	}
	return strings.Join(words, " "), h, nil
}

// TestHMCShowGivesThePartnersView (issue 15, CSM's remote connection
// status): on an HA pair whose standby cannot reach the second HMC, the
// active's hmc show and hmc list give that HMC as connected here and
// disconnected for the partner, with the standby's reason; the
// standby's give the mirror image. Once the link is cut, each says the
// partner is not connected instead of showing the last view.
func TestHMCShowGivesThePartnersView(t *testing.T) {
	ctx := context.Background()
	front := []hal.Serial{topology.PrimarySerial(0)}
	p := newPair(t, Options{HMCFront: front}, false)
	addHMCs(t, p, p.A, front...)
	if _, h, err := hmcStates(ctx, p.A.Client()); err != nil || h.Partner != nil || !strings.Contains(h.PartnerDetail, "standalone") {
		t.Fatalf("hmc show on a standalone server: %+v, %v; want no partner's view, and why", h, err)
	}
	if err := p.Lab.Inject(lab.Fault{Kind: "hmc", HMC: HMCNames[1], Mode: "down", Manager: p.B.Name}); err != nil {
		t.Fatal(err)
	}
	if err := p.Pair(ctx); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		n    *Node
		want string
	}{{p.A, "connected/connected connected/disconnected"}, {p.B, "connected/connected disconnected/connected"}} {
		var got string
		var h api.HMCDoc
		if err := Eventually(ctx, 30*time.Second, func() error {
			var err error
			got, h, err = hmcStates(ctx, w.n.Client())
			if err == nil && got != w.want {
				err = fmt.Errorf("%s: hmc show HMCS: local/partner %q, want %q: %+v", w.n.Name, got, w.want, h)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if w.n == p.A && !strings.Contains(h.Partner[1].Detail, "down for manager "+p.B.Name) {
			t.Errorf("the partner's reason %q does not say why the standby cannot reach %s", h.Partner[1].Detail, HMCNames[1])
		}
	}
	list, err := p.A.Client().HMCList(ctx)
	if err != nil || len(list) != 1 || len(list[0].Partner) != 2 || list[0].Partner[1].State != "disconnected" {
		t.Fatalf("hmc list on the active: %+v, %v: want the partner's view too", list, err)
	}
	p.A.Relay.Cut()
	p.B.Relay.Cut()
	for _, n := range []*Node{p.A, p.B} {
		if err := Eventually(ctx, 30*time.Second, func() error {
			h, err := n.Client().HMCShow(ctx, "HMCS")
			if err == nil && (h.Partner != nil || !strings.Contains(h.PartnerDetail, "not connected")) {
				err = fmt.Errorf("%s after the link was cut: partner %+v, %q; want none, and not connected", n.Name, h.Partner, h.PartnerDetail)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStorageTrapThroughAnHMC (issue 15): the emulated HMC sends the
// storage traps of the systems it fronts from its own address; lockstepd
// accepts one for a system the HMC connection fronts (the only source of
// the event here: the manager reaches that system by no connection), and
// drops one from the same address for a system it does not front.
func TestStorageTrapThroughAnHMC(t *testing.T) {
	dir := t.TempDir()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	to := pc.LocalAddr().(*net.UDPAddr)
	pc.Close()
	cf := filepath.Join(dir, "trap.community")
	if err := os.WriteFile(cf, []byte(community+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p0 := topology.PrimarySerial(0)
	p, err := New(ctx, Options{Bin: bin, Dir: dir, HMCFront: []hal.Serial{p0},
		Extra: fmt.Sprintf("\n[snmp]\ntrap_listen = \"udp://%s\"\ntrap_community_file = %q\n", to, cf)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- log of a (tail)\n%s", tail(p.A.Log(), 80))
		}
		p.Close()
	})
	if err := p.A.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.DefineSession(ctx, p.A, false); err != nil {
		t.Fatal(err)
	}
	addHMCs(t, p, p.A, p0)
	hmcIP := strings.Split(p.Lab.HMCStatus()[0].Endpoint, ":")[0]

	// A trap from the HMC for a system it does not front is dropped.
	lp := mirrored(p)
	other := p.Lab.Topology().Paths[len(p.Lab.Topology().Paths)-1].LSSPair
	if other.Source.Serial == p0 {
		t.Fatalf("the lab's last path %v is from %s too", other, p0)
	}
	forged := hal.Event{Kind: hal.EventSuspend, Serial: other.Source.Serial, Seq: 1 << 40, At: time.Now(), LSSPair: other,
		Reason: hal.ReasonPath}
	forged.Volumes.Add(0)
	sendTrap(t, hmcIP, to, community, forged)
	waitLog(t, p.A, 10*time.Second, "LS3004W", `reason="serial of another system"`)

	// The manager loses every connection to p0: its cluster endpoints and
	// both HMCs. The HMCs still reach p0 and send its traps.
	for _, f := range []lab.Fault{{Kind: "manager", System: string(p0), Endpoint: -1, Mode: "down", Manager: p.A.Name},
		{Kind: "hmc", HMC: HMCNames[0], Mode: "down", Manager: p.A.Name},
		{Kind: "hmc", HMC: HMCNames[1], Mode: "down", Manager: p.A.Name}} {
		if err := p.Lab.Inject(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Lab.RegisterTrapReceiver(ctx, lab.TrapParam{Addr: to.String(), Community: community, HMC: HMCNames[0]}); err != nil {
		t.Fatal(err)
	}
	if err := Eventually(ctx, 20*time.Second, func() error {
		d, err := p.A.Client().StorageShow(ctx, p0)
		if err == nil && d.Reachable {
			err = fmt.Errorf("%s still reachable: %+v", p0, d)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.Lab.Inject(lab.Fault{Kind: "lss-path", Source: fmt.Sprintf("%s/%02X", lp.Source.Serial, uint8(lp.Source.LSS)),
		Target: fmt.Sprintf("%s/%02X", lp.Target.Serial, uint8(lp.Target.LSS))}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p.A, 20*time.Second, "freezing consistency group", "snmp trap suspend event from "+string(p0))
}
