package scenario

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/workload"
)

// TestHyperSwapScenarios: a planned swap, an unplanned one on a crash and
// on a channel loss leave H2 consistent with no acknowledged write lost,
// and the workload keeps writing on H2; a path loss alone does not swap.
func TestHyperSwapScenarios(t *testing.T) {
	for _, name := range HyperSwapNames {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, err := Run(context.Background(), name, Options{})
				if err != nil {
					t.Fatal(err)
				}
				timeline := strings.Join(r.Timeline, "\n")
				if err := HyperSwapOK(name, r, 1000); err != nil {
					t.Fatalf("%v\n%s", err, timeline)
				}
				if r.Swapped != (name != "hyperswap-pathloss") || r.Report.AckedChecked != r.Swapped {
					t.Fatalf("swapped %v, lost-write rule checked %v", r.Swapped, r.Report.AckedChecked)
				}
				if name == "hyperswap-pathloss" && r.Mirroring != 0 {
					t.Fatalf("%d pairs still mirroring after the freeze", r.Mirroring)
				}
			})
		})
	}
}

// lateH1Host is a broken HyperSwap host: once its device map points at
// H2, it sends chain 0's writes to the H1 volume anyway and acknowledges
// them when H1 completes them (after ELB, locally, unmirrored), as a host
// that acknowledged ELB-held H1 writes after a swap would.
type lateH1Host struct{ l *lab }

func (h lateH1Host) Write(ctx context.Context, vol hal.VolumeRef, block uint32, data []byte) error {
	if block == 0 && h.l.host.Device(vol) != vol {
		return h.l.fab.Write(ctx, vol, block, data)
	}
	return h.l.host.Write(ctx, vol, block, data)
}

// TestHyperSwapOracleCatchesLostWrite: the check can fail. With a host
// that acknowledges H1 writes after the swap, the H2 image is still a
// prefix (the prefix rule alone is satisfied), but the lost-write rule
// names chain 0's first acknowledged write missing from H2.
func TestHyperSwapOracleCatchesLostWrite(t *testing.T) {
	// (A crashed H1 takes no write at all, so the broken host is shown on
	// the channel loss: its H1 system lives on.)
	for _, name := range []string{"hyperswap-planned", "hyperswap-unplanned-channel"} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, err := Run(context.Background(), name, Options{io: func(l *lab) workload.Host { return lateH1Host{l} }})
				if err != nil {
					t.Fatal(err)
				}
				if !r.Swapped {
					t.Fatal("no swap")
				}
				if !r.Report.Consistent || r.Report.Lost != 1 || r.Report.FirstLost == nil || r.Report.FirstLost.Chain != 0 {
					t.Fatalf("report %s", r.Report)
				}
				if err := HyperSwapOK(name, r, 0); err == nil || !strings.Contains(err.Error(), "ACKNOWLEDGED WRITES LOST") {
					t.Fatalf("verdict %v", err)
				}
			})
		})
	}
}

// TestHyperSwapNeedsInProcess: refused combinations say why.
func TestHyperSwapNeedsInProcess(t *testing.T) {
	t.Parallel()
	for _, opt := range []Options{{Via: ViaDirect}, {Heartbeat: true}} {
		if _, err := Run(context.Background(), "hyperswap-planned", opt); err == nil {
			t.Fatalf("%+v accepted", opt)
		}
	}
}

// TestPlannedSwapOfAReleaseIOGroupLosesNothing: the hyperswap command of
// a session whose policy is release I/O, on a manager that takes a while
// between its two steps. It used to freeze through the core first: the
// core thawed the group as soon as the freeze was certain, the
// application wrote on to H1 alone until the host's swap began, and
// those acknowledged writes were not on H2. The image at the end hid it
// (later writes overwrote their slots); the oracle at the swap did not.
func TestPlannedSwapOfAReleaseIOGroupLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := Run(context.Background(), "hyperswap-planned", Options{ReleaseIO: true, swapLatency: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := HyperSwapOK("hyperswap-planned", r, 1000); err != nil {
			t.Fatalf("%v\n%s", err, strings.Join(r.Timeline, "\n"))
		}
	})
}
