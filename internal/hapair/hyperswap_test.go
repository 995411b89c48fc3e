package hapair

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// The LSSs of the HyperSwap rig: the lab mirrors hsLSSs (the HyperSwap
// session's, the workload's), and the plain session, which the heartbeat
// covers, has the other LSSs of the same storage systems.
var (
	hsLSSs    = []hal.LSS{0x10, 0x11}
	plainLSSs = []hal.LSS{0x20, 0x21}
)

// hsRig is one lockstepd of sysplex PLEX1 over a lab of 2+2 storage
// systems with z/OS host SYSA in front of all of them: session hs
// (mm-hyperswap) over the LSSs hsLSSs, session plain (failover/failback)
// over plainLSSs of the same systems, both Prepared, the heartbeat on,
// and the lab's workload writing through SYSA.
type hsRig struct {
	p    *Pair
	c    *client.Client
	host *emu.Host
}

func newHSRig(t *testing.T) *hsRig {
	t.Helper()
	ctx := t.Context()
	p, err := New(ctx, Options{Bin: bin, Dir: t.TempDir(), ZOS: true, MirrorLSSs: hsLSSs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- log of a (tail)\n%s", tail(p.A.Log(), 150))
		}
		p.Close()
	})
	if err := p.A.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r := &hsRig{p: p, c: p.A.Client(), host: p.Lab.ZOSHost(ZOSHost)}
	var serials []hal.Serial
	for _, st := range p.Lab.Status() {
		serial := hal.Serial(st.Serial)
		serials = append(serials, serial)
		if _, err := r.c.StorageAdd(ctx, api.StorageSpec{Serial: serial, Connections: []api.ConnectionSpec{{
			Name: "direct", Kind: api.Direct, Addresses: []string{st.Endpoints[0], st.Endpoints[1]},
			User: "lockstep", PasswordFile: p.pwFile(serial)}}}); err != nil {
			t.Fatalf("storage add %s: %v", serial, err)
		}
	}
	if _, err := r.c.ZOSAdd(ctx, api.ZOSSpec{Name: ZOSHost, Addresses: []string{p.Lab.ZOSEndpoint(ZOSHost)},
		Sysplex: ZOSSysplex, User: ZOSUser, PasswordFile: ZOSPasswordFile(p.opt.Dir), Systems: serials}); err != nil {
		t.Fatalf("zos add: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.c.SessionCreate(ctx, "hs", api.MetroMirrorHyperSwap, "hs-cg", api.HoldIO))
	for _, pr := range p.Lab.Topology().Pairs {
		must(r.c.SessionAddCopySet(ctx, "hs", api.CopySet{H1: pr.Source, H2: pr.Target}))
	}
	must(r.c.SessionCreate(ctx, "plain", api.MetroMirrorFailoverFailback, "plain-cg", api.HoldIO))
	for i := range 2 {
		for _, l := range plainLSSs {
			for v := range uint8(4) {
				id := hal.NewVolume(l, v)
				must(r.c.SessionAddCopySet(ctx, "plain", api.CopySet{H1: hal.VolumeRef{Serial: topology.PrimarySerial(i), Volume: id},
					H2: hal.VolumeRef{Serial: topology.SecondarySerial(i), Volume: id}}))
			}
		}
	}
	ws, err := r.c.HeartbeatSet(ctx, true)
	if err != nil || !slices.ContainsFunc(ws, func(w string) bool { return strings.Contains(w, "hs") }) {
		t.Fatalf("heartbeat on beside a HyperSwap session: %v, warnings %q: want one naming hs", err, ws)
	}
	for _, name := range []string{"hs", "plain"} {
		r.start(t, name, api.CmdStartH1H2, api.H1)
	}
	if _, err := p.Lab.Workload(ctx, lab.WorkloadParam{Action: "start", Chains: 8, VolumesPerChain: 4, Think: "2ms",
		ViaHost: ZOSHost}); err != nil {
		t.Fatal(err)
	}
	r.wroteMore(t, 50)
	return r
}

// start runs a start command on a session (the z/OS host may refuse for
// a moment: every retry is harmless) and waits until it is Prepared,
// Normal, production at site.
func (r *hsRig) start(t *testing.T, name string, cmd api.SessionCommand, site api.Site) {
	t.Helper()
	ctx := t.Context()
	if err := Eventually(ctx, 20*time.Second, func() error {
		_, err := r.c.SessionCommand(ctx, name, cmd)
		return err
	}); err != nil {
		t.Fatalf("%s %s: %v", cmd, name, err)
	}
	r.waitSession(t, name, 30*time.Second, true, func(d api.SessionDoc) bool {
		return d.State == api.StatePrepared && d.Status == api.StatusNormal && d.ActiveSite == site
	}, "Prepared, Normal, "+string(site)+" active")
}

// waitSession waits until the session's document (refreshed from the
// hardware first if refresh) satisfies ok. A swap is waited for without
// refresh: what lockstepd recorded on its own is what is judged.
func (r *hsRig) waitSession(t *testing.T, name string, within time.Duration, refresh bool, ok func(api.SessionDoc) bool, want string) api.SessionDoc {
	t.Helper()
	ctx := t.Context()
	var d api.SessionDoc
	if err := Eventually(ctx, within, func() error {
		var err error
		if refresh {
			d, err = r.c.SessionCommand(ctx, name, api.CmdRefresh)
		} else {
			d, err = r.c.SessionShow(ctx, name)
		}
		if err != nil {
			return err
		}
		if !ok(d) {
			return fmt.Errorf("session %s is %s/%s, %s active (%s), want %s", name, d.State, d.Status, d.ActiveSite, d.Reason, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// wroteMore waits until the workload has acknowledged n more writes: it
// still writes.
func (r *hsRig) wroteMore(t *testing.T, n uint64) {
	t.Helper()
	ctx := t.Context()
	st, err := r.p.Lab.Workload(ctx, lab.WorkloadParam{Action: "status"})
	if err != nil {
		t.Fatal(err)
	}
	from := st.Writes
	if err := Eventually(ctx, 30*time.Second, func() error {
		st, err := r.p.Lab.Workload(ctx, lab.WorkloadParam{Action: "status"})
		if err == nil && st.Writes < from+n {
			err = fmt.Errorf("the workload wrote %d writes since %d, want %d (errors %d)", st.Writes-from, from, n, st.Errors)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// swappedTo says whether the host's I/O to every source volume of the
// lab's pairs goes to its target (h2) or to itself (!h2).
func (r *hsRig) swappedTo(h2 bool) error {
	for _, vp := range r.p.Lab.Topology().Pairs {
		want := vp.Source
		if h2 {
			want = vp.Target
		}
		if got := r.host.Device(vp.Source); got != want {
			return fmt.Errorf("z/OS host: I/O to %s goes to %s, want %s", vp.Source, got, want)
		}
	}
	return nil
}

// check is lockstep-lab check: the oracle over H2, the lost-write rule
// applied to the chains the host swapped; it must pass, and have applied
// the lost-write rule when acked.
func (r *hsRig) check(t *testing.T, acked bool) {
	t.Helper()
	rep, st, err := r.p.Lab.Check()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Consistent || rep.Lost != 0 || rep.AckedChecked != acked {
		t.Fatalf("lockstep-lab check after %d writes: %s (acked checked %v, want %v)", st.Writes, rep, rep.AckedChecked, acked)
	}
	t.Logf("lockstep-lab check after %d writes: %s", st.Writes, rep)
}

// heartbeatsSince reads the lab's command log after seq: it fails on a
// heartbeat command naming the HyperSwap session's group or arming one
// of its LSS pairs, and returns how many heartbeat commands the plain
// session's group got on each primary, and the last seq read.
func (r *hsRig) heartbeatsSince(t *testing.T, seq uint64) (map[hal.Serial]int, uint64) {
	t.Helper()
	recs, dropped, err := lab.FetchCommands(t.Context(), r.p.Lab.ControlAddr(), seq)
	if err != nil || dropped != 0 {
		t.Fatalf("the lab's command log: %v, %d dropped", err, dropped)
	}
	beats := map[hal.Serial]int{}
	for _, rec := range recs {
		seq = rec.Seq
		switch rec.Op {
		case emu.OpEnableHeartbeat, emu.OpHeartbeat, emu.OpDisableHeartbeat:
		default:
			continue
		}
		if rec.Session != "cg:plain-cg" {
			t.Fatalf("a heartbeat command for group %q, not the plain session's: %+v", rec.Session, rec)
		}
		for _, lp := range rec.LSSPairs {
			if slices.Contains(hsLSSs, lp.Source.LSS) {
				t.Fatalf("a heartbeat armed on LSS pair %s of the HyperSwap session: %+v", lp, rec)
			}
		}
		beats[rec.Serial]++
	}
	return beats, seq
}

// TestHyperSwapEndToEnd (issue 19 §3) runs lockstepd over the lab with
// its z/OS host, the workload writing through the host:
//   - the heartbeat never covers the HyperSwap session: the lab's command
//     log has heartbeat commands for the plain session's LSS pairs on
//     both primaries, none for the HyperSwap session's, all along;
//   - planned: hyperswap makes the session Target Available, Normal, H2
//     active; the host writes to H2, the workload goes on, the oracle
//     finds no acknowledged write lost; start-h2-h1 makes it Prepared in
//     the other direction; hyperswap and start-h1-h2 bring it back;
//   - unplanned: a primary crashes; the host swaps by itself, lockstepd
//     records the session Target Available, H2 active, with the trigger
//     and event LS2018W; the workload goes on; no acknowledged write lost.
func TestHyperSwapEndToEnd(t *testing.T) {
	r := newHSRig(t)
	ctx := t.Context()
	p0 := topology.PrimarySerial(0)

	beats, seq := r.heartbeatsSince(t, 0)
	if err := Eventually(ctx, 20*time.Second, func() error {
		var more map[hal.Serial]int
		more, seq = r.heartbeatsSince(t, seq)
		for s, n := range more {
			beats[s] += n
		}
		for i := range 2 {
			if s := topology.PrimarySerial(i); beats[s] < 3 {
				return fmt.Errorf("%d heartbeat commands to %s for the plain session: the test proves nothing yet", beats[s], s)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// Planned.
	d, err := r.c.SessionCommand(ctx, "hs", api.CmdHyperSwap)
	if err != nil {
		t.Fatalf("hyperswap: %v", err)
	}
	if d.State != api.StateTargetAvailable || d.Status != api.StatusNormal || d.ActiveSite != api.H2 {
		t.Fatalf("after hyperswap: %s/%s, %s active (%s); want Target Available, Normal, H2 active", d.State, d.Status, d.ActiveSite, d.Reason)
	}
	if err := r.swappedTo(true); err != nil {
		t.Fatal(err)
	}
	r.wroteMore(t, 100)
	r.check(t, true)
	if d, err := r.c.SessionShow(ctx, "plain"); err != nil || d.State != api.StatePrepared {
		t.Fatalf("the plain session after the HyperSwap: %+v, %v; want Prepared", d, err)
	}
	r.start(t, "hs", api.CmdStartH2H1, api.H2)
	r.wroteMore(t, 50)
	if _, err := r.c.SessionCommand(ctx, "hs", api.CmdHyperSwap); err != nil {
		t.Fatalf("hyperswap back to H1: %v", err)
	}
	r.waitSession(t, "hs", 10*time.Second, false, func(d api.SessionDoc) bool {
		return d.State == api.StateTargetAvailable && d.ActiveSite == api.H1
	}, "Target Available, H1 active")
	if err := r.swappedTo(false); err != nil {
		t.Fatal(err)
	}
	r.start(t, "hs", api.CmdStartH1H2, api.H1)
	r.wroteMore(t, 50)

	// Unplanned.
	if err := r.p.Lab.Inject(lab.Fault{Kind: "crash", System: string(p0)}); err != nil {
		t.Fatal(err)
	}
	d = r.waitSession(t, "hs", 20*time.Second, false, func(d api.SessionDoc) bool {
		return d.State == api.StateTargetAvailable && d.ActiveSite == api.H2
	}, "Target Available, H2 active")
	if !strings.Contains(d.Reason, string(p0)) {
		t.Errorf("the session's reason %q does not give the trigger (%s)", d.Reason, p0)
	}
	if err := r.swappedTo(true); err != nil {
		t.Fatal(err)
	}
	if err := Eventually(ctx, 10*time.Second, func() error {
		evs, err := r.c.Events(ctx, 0)
		if err == nil && !slices.ContainsFunc(evs, func(e api.EventDoc) bool {
			return e.ID == "LS2018W" && strings.Contains(e.Text, "unplanned") && strings.Contains(e.Text, ZOSHost)
		}) {
			err = fmt.Errorf("no event LS2018W telling the unplanned HyperSwap by %s", ZOSHost)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r.wroteMore(t, 100)
	r.check(t, true)

	more, _ := r.heartbeatsSince(t, seq)
	if more[topology.PrimarySerial(1)] == 0 {
		t.Errorf("no heartbeat command to %s for the plain session after the swaps", topology.PrimarySerial(1))
	}
}
