package daemon

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// TestForcedRemovalOfTheLastTCPIPConnectionSuspendsAtOnce (DESIGN's
// rule, docs/operations.md): with the heartbeat on, a storage system
// reached by TCP/IP (direct, or an HMC) and z/OS, in a mirroring
// session. Removing its TCP/IP connection is refused, naming the
// heartbeat and the session; with --force the session's consistency
// group is frozen before the removal answers, not after the detection
// window once no heartbeat can be sent: the lab's command log holds the
// acknowledged freeze of the primary the moment the command returns,
// the freeze names the removal as its reason, and the session goes
// Suspended and Recoverable.
func TestForcedRemovalOfTheLastTCPIPConnectionSuspendsAtOnce(t *testing.T) {
	t.Parallel()
	p0 := topology.PrimarySerial(0)
	tests := []struct {
		name string
		// via: "direct" (storage remove of p0's direct connection) or
		// "hmc" (every system reached through HMC connection HMC1 only;
		// hmc remove).
		via    string
		remove func(ctx context.Context, c removeClient, force bool) ([]string, error)
	}{
		{name: "storage remove", via: "direct", remove: func(ctx context.Context, c removeClient, force bool) ([]string, error) {
			return c.StorageRemove(ctx, p0, "direct", force)
		}},
		{name: "hmc remove", via: "hmc", remove: func(ctx context.Context, c removeClient, force bool) ([]string, error) {
			return c.HMCRemove(ctx, "HMC1", force)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newZOSRig(t, 5*time.Second, tc.via == "hmc")
			ctx := context.Background()
			c, stop := r.start(safeFor5s, &countingNotifier{})
			defer stop()
			var serials []hal.Serial
			for _, st := range r.lab.Status() {
				serials = append(serials, hal.Serial(st.Serial))
			}
			if tc.via == "hmc" {
				if _, err := c.HMCAdd(ctx, api.HMCSpec{Name: "HMC1", Addresses: r.hmcAddrs("HMC1"), User: "hmcuser",
					PasswordFile: r.secret("hmc.pw", "hmc-pw")}); err != nil {
					t.Fatal(err)
				}
				if err := eventuallyWithin(20*time.Second, func() bool {
					return !slices.ContainsFunc(serials, func(s hal.Serial) bool { return !strings.Contains(viaOf(ctx, c, s), "HMC1") })
				}); err != nil {
					list, _ := c.StorageList(ctx)
					h, _ := c.HMCShow(ctx, "HMC1")
					t.Fatalf("systems not discovered and reached through HMC1: %+v; %+v; %+v", list, h, r.lab.HMCStatus())
				}
			}
			r.defineSession(c, "prod", "cgp", 0)
			r.addZOS(c, serials...)
			if err := eventuallyWithin(20*time.Second, func() bool { return strings.HasPrefix(zosState(ctx, c, p0), "connected") }); err != nil {
				t.Fatalf("%s: z/OS connection %q", p0, zosState(ctx, c, p0))
			}
			if _, err := c.HeartbeatSet(ctx, true); err != nil {
				t.Fatal(err)
			}

			_, err := tc.remove(ctx, c, false)
			if err == nil || !strings.Contains(err.Error(), "heartbeat off") || !strings.Contains(err.Error(), string(p0)) ||
				!strings.Contains(err.Error(), "prod") || !strings.Contains(err.Error(), "extended long busy") {
				t.Fatalf("without --force: %v, want refused naming %s, session prod, ELB and heartbeat off", err, p0)
			}
			if d, _ := c.SessionShow(ctx, "prod"); d.State != api.StatePrepared {
				t.Fatalf("prod after the refused removal: %s, want Prepared", d.State)
			}

			var seq uint64
			if recs := commandsSince(r.lab, 0); len(recs) > 0 {
				seq = recs[len(recs)-1].Seq
			}
			ws, err := tc.remove(ctx, c, true)
			// What cannot lie: the storage command log, read the moment
			// the command answered. The detection window (500 ms) has
			// not been waited for.
			froze := slices.ContainsFunc(commandsSince(r.lab, seq), func(rec emu.CommandRecord) bool {
				return rec.Serial == p0 && rec.Op == emu.OpFreeze && rec.Outcome == emu.OutcomeOK
			})
			if err != nil {
				t.Fatalf("with --force: %v", err)
			}
			if !froze {
				t.Fatalf("with --force: no acknowledged freeze of %s in the lab's log when the command answered", p0)
			}
			if !slices.ContainsFunc(ws, func(w string) bool {
				return strings.Contains(w, string(p0)) && strings.Contains(w, "prod") &&
					strings.Contains(w, "extended long busy until the storage timer expires")
			}) {
				t.Fatalf("with --force: warnings %q, want %s, session prod and ELB until the storage timer expires", ws, p0)
			}
			// The freeze is the removal's, not freeze-on-doubt's.
			evs, _ := c.Events(ctx, 0)
			if !slices.ContainsFunc(evs, func(e api.EventDoc) bool {
				return e.ID == notify.SuspendingEvent.ID() && strings.Contains(e.Text, "cg:cgp: last TCP/IP connection of "+string(p0)) &&
					strings.HasSuffix(e.Text, "removed (--force)")
			}) {
				t.Fatalf("no suspendingEvent of cg:cgp naming the removal of %s's last TCP/IP connection: %+v", p0, evs)
			}
			var doc api.SessionDoc
			if err := eventuallyWithin(10*time.Second, func() bool {
				doc, _ = c.SessionShow(ctx, "prod")
				return doc.State == api.StateSuspended && doc.Recoverable
			}); err != nil {
				t.Fatalf("prod after the forced removal: %+v, want Suspended and Recoverable", doc)
			}
		})
	}
}

// removeClient is what the removal cases call.
type removeClient interface {
	StorageRemove(ctx context.Context, serial hal.Serial, connection string, force bool) ([]string, error)
	HMCRemove(ctx context.Context, name string, force bool) ([]string, error)
}

// withHMC is the HMC newZOSRig adds when asked: HMC1 fronting every
// system of the lab.
func withHMC(cfg *lab.Config) {
	h := lab.HMC{HMCConfig: emu.HMCConfig{Name: "HMC1"}, User: "hmcuser", Password: "hmc-pw", Endpoint: "127.0.0.1:0"}
	for _, s := range cfg.Systems {
		h.Systems = append(h.Systems, s.Serial)
	}
	cfg.HMCs = []lab.HMC{h}
}
