package scenario

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
)

// TestScenariosOverTheWire runs the scenarios with the core driving a lab
// server across real TLS sockets, through the direct driver and through
// a dual HMC (drivers/hmc): the same verdicts as in-process (S1 and S2
// inconsistent without the heartbeat, consistent with it), and the HMC's
// own failures: one HMC dying during a freeze (H1), both dying with the
// heartbeat on (H2: every primary freezes itself at H; Recoverable only
// once that is certain), one HMC's private link dying as the pairs
// suspend (H3). And silent connections, heartbeat off: one HMC's private
// link to another primary black-holed (H4), or the cluster carrying
// another primary's direct connection (S7): that primary's freeze must
// find the way that still works within its deadline, or it mirrors on;
// or the cluster carrying the failing primary's own connection (S8): its
// suspend event is lost, and the core must learn of it through the other
// cluster before the primary's extended long busy ends.
func TestScenariosOverTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a minute of wall time")
	}
	for _, tc := range []struct {
		via         string
		name        string
		heartbeat   bool
		consistent  bool
		recoverable bool // checked when consistent
		after       time.Duration
	}{
		{ViaDirect, "S1", false, false, false, 0},
		{ViaDirect, "S1", true, true, true, 0},
		{ViaDirect, "S6", true, true, true, 0},
		{ViaHMC, "S1", false, false, false, 0},
		{ViaHMC, "S1", true, true, true, 0},
		{ViaHMC, "S2", false, false, false, 0},
		{ViaHMC, "S2", true, true, true, 0},
		{ViaHMC, "S3", true, true, false, 0},
		{ViaHMC, "S6", false, true, true, 0},
		{ViaHMC, "H1", false, true, true, 0},
		{ViaHMC, "H1", true, true, true, 0},
		{ViaHMC, "H2", true, true, true, 150 * time.Second},
		{ViaHMC, "H3", false, true, true, 0},
		{ViaHMC, "H4", false, true, true, 0},
		{ViaHMC, "H4", true, true, true, 0},
		{ViaDirect, "S7", false, true, true, 0},
		{ViaDirect, "S7", true, true, true, 0},
		{ViaDirect, "S8", false, true, true, 0},
		{ViaDirect, "S8", true, true, true, 0},
	} {
		hb := map[bool]string{true: "heartbeat on", false: "heartbeat off"}[tc.heartbeat]
		t.Run(tc.via+" "+tc.name+" "+hb, func(t *testing.T) {
			after := tc.after
			if after == 0 {
				after = 80 * time.Second
			}
			r, err := Run(context.Background(), tc.name, Options{Heartbeat: tc.heartbeat, After: after, Via: tc.via})
			if err != nil {
				t.Fatal(err)
			}
			timeline := strings.Join(r.Timeline, "\n")
			if r.Consistent() != tc.consistent {
				t.Fatalf("consistent = %v, want %v: %s\n%s", r.Consistent(), tc.consistent, r.Report, timeline)
			}
			if r.Recoverable && !r.Consistent() {
				t.Fatalf("Recoverable for an inconsistent image\n%s", timeline)
			}
			if tc.consistent && r.Recoverable != tc.recoverable {
				t.Fatalf("Recoverable = %v, want %v\n%s", r.Recoverable, tc.recoverable, timeline)
			}
			if r.Writes < 100 {
				t.Fatalf("only %d writes\n%s", r.Writes, timeline)
			}
			if tc.name == "H2" {
				h, err := freeze.DeriveH(60*time.Second, freeze.DefaultTimings())
				if err != nil {
					t.Fatal(err)
				}
				if len(r.SelfFrozen) < 4 {
					t.Fatalf("%d primaries froze themselves, want 4\n%s", len(r.SelfFrozen), timeline)
				}
				if r.RecoverableAt-r.FaultAt < h {
					t.Fatalf("Recoverable %v after both HMCs died, sooner than H = %v: not certain then\n%s",
						r.RecoverableAt-r.FaultAt, h, timeline)
				}
			}
			t.Logf("%s %s: %s, recoverable=%v, %d writes", tc.via, tc.name, r.Report, r.Recoverable, r.Writes)
		})
	}
}

// TestHMCScenariosNeedHMC: the HMC scenarios refuse to run without an
// HMC to fail.
func TestHMCScenariosNeedHMC(t *testing.T) {
	t.Parallel()
	for _, name := range HMCNames {
		if _, err := Run(context.Background(), name, Options{}); err == nil || !strings.Contains(err.Error(), "--via hmc") {
			t.Errorf("%s in-process: %v", name, err)
		}
	}
}

// TestDirectScenariosNeedDirect: a scenario that silences one cluster
// refuses to run without the direct driver.
func TestDirectScenariosNeedDirect(t *testing.T) {
	t.Parallel()
	for _, name := range DirectNames {
		for _, via := range []string{ViaInProcess, ViaHMC} {
			if _, err := Run(context.Background(), name, Options{Via: via}); !errors.Is(err, errNeedsDirect) {
				t.Errorf("%s via %q: %v", name, via, err)
			}
		}
	}
}

// TestS5FreezesThroughZOS: S5 over loopback TLS through drivers/direct
// and drivers/zos, heartbeat on: one primary loses its paths and both
// its TCP/IP connections; the suspend is heard through the z/OS host's
// messages and the freeze goes out in-band through it, so the session is
// Suspended and Recoverable well before H, consistent. The control case
// without the z/OS connection is consistent too, but Recoverable only
// once the cut primary froze itself at H.
func TestS5FreezesThroughZOS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for two loopback labs")
	}
	h, err := freeze.DeriveH(60*time.Second, freeze.DefaultTimings())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		noZOS   bool
		beforeH bool // Recoverable sooner than H after the fault
	}{
		{name: "with z/OS", beforeH: true},
		{name: "control, TCP/IP only", noZOS: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Run(context.Background(), "S5", Options{Heartbeat: true, After: 80 * time.Second, Via: ViaDirect,
				NoZOS: tc.noZOS, ReleaseIO: true})
			if err != nil {
				t.Fatal(err)
			}
			timeline := strings.Join(r.Timeline, "\n")
			if !r.Consistent() || !r.Recoverable {
				t.Fatalf("consistent = %v, Recoverable = %v (%s), want both\n%s", r.Consistent(), r.Recoverable, r.Why, timeline)
			}
			took := r.RecoverableAt - r.FaultAt
			if (took < h) != tc.beforeH {
				t.Fatalf("Recoverable %v after the fault; H = %v; want before H: %v\n%s", took, h, tc.beforeH, timeline)
			}
			t.Logf("S5 %s: Recoverable after %v, longest write %v, %d writes", tc.name, took, r.MaxWait, r.Writes)
		})
	}
}

// TestZOSScenariosNeedDirect: S5 refuses to run in-process or through
// HMCs: its TCP/IP connections are the direct driver's.
func TestZOSScenariosNeedDirect(t *testing.T) {
	t.Parallel()
	for _, via := range []string{ViaInProcess, ViaHMC} {
		if _, err := Run(context.Background(), "S5", Options{Via: via}); !errors.Is(err, errNeedsDirect) {
			t.Errorf("S5 via %q: %v, want errNeedsDirect", via, err)
		}
	}
}
