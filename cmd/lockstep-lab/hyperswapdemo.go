package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/hapair"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// hyperSwapDemo is the demo's last part: Metro Mirror Failover/Failback
// with HyperSwap. A lab of its own (2 primaries, 2 secondaries, and z/OS
// host SYSA of sysplex PLEX1 with all four online) and one lockstepd of
// that sysplex; the workload writes through SYSA, as a z/OS application
// does. A planned hyperswap, the way back, then an H1 storage system
// crashes and SYSA swaps by itself; the oracle holds H2 to the
// lost-write rule after each swap.
type hyperSwapDemo struct {
	out  io.Writer
	bin  string
	dir  string
	pair *hapair.Pair
	node *hapair.Node
}

const hsServer = "lockstepd-z"

func runHyperSwapDemo(ctx context.Context, out io.Writer, bin, dir string) (ok bool, err error) {
	dir = filepath.Join(dir, "hyperswap")
	h := &hyperSwapDemo{out: out, bin: bin, dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	if h.pair, err = hapair.New(ctx, hapair.Options{Bin: bin, Dir: dir, Primaries: 2, CGTimeout: 10 * time.Second,
		Names: [2]string{hsServer, hsServer + "-b"}, ZOS: true}); err != nil {
		return false, err
	}
	defer h.pair.Close()
	h.node = h.pair.A
	h.say("HyperSwap: another lab, 2 primaries and 2 secondaries, with z/OS host %s (sysplex %s) that has all four online;\n"+
		"# %s runs in sysplex %s ([server] sysplex)", hapair.ZOSHost, hapair.ZOSSysplex, hsServer, hapair.ZOSSysplex)
	if err := h.node.Start(ctx); err != nil {
		return false, err
	}
	for _, step := range []func(context.Context) error{h.define, h.start, h.planned, h.back, h.unplanned} {
		if err := step(ctx); err != nil {
			return false, err
		}
	}
	return h.verdict()
}

func (h *hyperSwapDemo) say(format string, a ...any) { fmt.Fprintf(h.out, "\n# "+format+"\n", a...) }

func (h *hyperSwapDemo) ctl(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(h.bin, "lockstepctl"), append([]string{"--bus", h.node.Bus}, args...)...).CombinedOutput()
	return string(out), err
}

func (h *hyperSwapDemo) show(ctx context.Context, args ...string) error {
	fmt.Fprintf(h.out, "%s$ lockstepctl %s\n", hsServer, strings.Join(args, " "))
	out, err := h.ctl(ctx, args...)
	fmt.Fprint(h.out, indent(out))
	if err != nil {
		return fmt.Errorf("lockstepctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// quiet runs lockstepctl without showing it.
func (h *hyperSwapDemo) quiet(ctx context.Context, args ...string) error {
	if out, err := h.ctl(ctx, args...); err != nil {
		return fmt.Errorf("lockstepctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (h *hyperSwapDemo) define(ctx context.Context) error {
	h.say("define the storage systems, the z/OS connection, and one HyperSwap session over all 32 pairs")
	var serials []string
	for i, st := range h.pair.Lab.Status() {
		serials = append(serials, st.Serial)
		args := []string{"storage", "add", st.Serial, "--addr", st.Endpoints[0] + "," + st.Endpoints[1],
			"--user", "lockstep", "--password-file", hapair.PasswordFile(h.dir, hal.Serial(st.Serial))}
		if i == 0 {
			if err := h.show(ctx, args...); err != nil {
				return err
			}
		} else if err := h.quiet(ctx, args...); err != nil {
			return err
		}
	}
	fmt.Fprintln(h.out, "  ... (the 3 others alike)")
	if err := h.show(ctx, "zos", "add", hapair.ZOSHost, "--addr", h.pair.Lab.ZOSEndpoint(hapair.ZOSHost), "--sysplex", hapair.ZOSSysplex,
		"--serial", strings.Join(serials, ","), "--user", hapair.ZOSUser, "--password-file", hapair.ZOSPasswordFile(h.dir)); err != nil {
		return err
	}
	if err := h.show(ctx, "session", "create", "hs", "--type", "mm-hyperswap", "--cg", "hs-cg"); err != nil {
		return err
	}
	for i, p := range h.pair.Lab.Topology().Pairs {
		args := []string{"session", "add-copyset", "hs", p.Source.String(), p.Target.String()}
		if i == 0 {
			if err := h.show(ctx, args...); err != nil {
				return err
			}
		} else if err := h.quiet(ctx, args...); err != nil {
			return err
		}
	}
	fmt.Fprintln(h.out, "  ... (31 more)")
	return nil
}

// wait waits until the session satisfies ok, refreshing it first when
// refresh (a swap is waited for without: what lockstepd recorded on its
// own is what counts).
func (h *hyperSwapDemo) wait(ctx context.Context, refresh bool, ok func(api.SessionDoc) bool, want string) error {
	c := h.node.Client()
	return hapair.Eventually(ctx, 30*time.Second, func() error {
		var d api.SessionDoc
		var err error
		if refresh {
			d, err = c.SessionCommand(ctx, "hs", api.CmdRefresh)
		} else {
			d, err = c.SessionShow(ctx, "hs")
		}
		if err == nil && !ok(d) {
			err = fmt.Errorf("session hs is %s/%s, %s active (%s), want %s", d.State, d.Status, d.ActiveSite, d.Reason, want)
		}
		return err
	})
}

func prepared(site api.Site) func(api.SessionDoc) bool {
	return func(d api.SessionDoc) bool {
		return d.State == api.StatePrepared && d.Status == api.StatusNormal && d.ActiveSite == site
	}
}

func swappedTo(site api.Site) func(api.SessionDoc) bool {
	return func(d api.SessionDoc) bool { return d.State == api.StateTargetAvailable && d.ActiveSite == site }
}

// wrote waits until the workload acknowledged n more writes.
func (h *hyperSwapDemo) wrote(ctx context.Context, n uint64) (uint64, error) {
	st, err := h.pair.Lab.Workload(ctx, lab.WorkloadParam{Action: "status"})
	if err != nil {
		return 0, err
	}
	from := st.Writes
	err = hapair.Eventually(ctx, 30*time.Second, func() error {
		if st, err = h.pair.Lab.Workload(ctx, lab.WorkloadParam{Action: "status"}); err == nil && st.Writes < from+n {
			err = fmt.Errorf("the workload wrote %d writes since %d, want %d", st.Writes-from, from, n)
		}
		return err
	})
	return st.Writes, err
}

func (h *hyperSwapDemo) start(ctx context.Context) error {
	h.say("start mirroring H1 -> H2: once every pair is full-duplex, lockstepd loads the pairs into %s (HyperSwap enabled)", hapair.ZOSHost)
	if err := h.show(ctx, "session", "cmd", "hs", "start-h1-h2"); err != nil {
		return err
	}
	if err := h.wait(ctx, true, prepared(api.H1), "Prepared, H1 active"); err != nil {
		return err
	}
	h.say("lockstep-lab workload start --via-host %s: 8 chains of dependent writes through the host's devices", hapair.ZOSHost)
	if _, err := h.pair.Lab.Workload(ctx, lab.WorkloadParam{Action: "start", Chains: 8, VolumesPerChain: 4, Think: "2ms",
		ViaHost: hapair.ZOSHost}); err != nil {
		return err
	}
	_, err := h.wrote(ctx, 100)
	return err
}

// planned is the hyperswap command and the oracle's verdict after it.
func (h *hyperSwapDemo) planned(ctx context.Context) error {
	h.say("planned HyperSwap: %s holds the session's I/O, swaps its devices to H2 and re-drives; then the group is frozen", hapair.ZOSHost)
	if err := h.show(ctx, "session", "cmd", "hs", "hyperswap"); err != nil {
		return err
	}
	if err := h.wait(ctx, false, swappedTo(api.H2), "Target Available, H2 active"); err != nil {
		return err
	}
	writes, err := h.wrote(ctx, 100)
	if err != nil {
		return err
	}
	h.say("the workload goes on, on H2 (%d acknowledged writes so far)", writes)
	if err := h.show(ctx, "session", "show", "hs"); err != nil {
		return err
	}
	return h.check("after the planned HyperSwap")
}

// back mirrors H2 -> H1 and swaps back, so that H1 is production again.
func (h *hyperSwapDemo) back(ctx context.Context) error {
	h.say("back to H1: start-h2-h1 mirrors the other way (and loads that direction into %s), hyperswap, start-h1-h2", hapair.ZOSHost)
	steps := []struct {
		cmd     string
		refresh bool
		ok      func(api.SessionDoc) bool
		want    string
	}{
		{"start-h2-h1", true, prepared(api.H2), "Prepared, H2 active"},
		{"hyperswap", false, swappedTo(api.H1), "Target Available, H1 active"},
		{"start-h1-h2", true, prepared(api.H1), "Prepared, H1 active"},
	}
	for _, s := range steps {
		if err := h.show(ctx, "session", "cmd", "hs", s.cmd); err != nil {
			return err
		}
		if err := h.wait(ctx, s.refresh, s.ok, s.want); err != nil {
			return err
		}
	}
	_, err := h.wrote(ctx, 50)
	return err
}

// unplanned crashes an H1 storage system: the host swaps by itself.
func (h *hyperSwapDemo) unplanned(ctx context.Context) error {
	p := topology.PrimarySerial(0)
	h.say("FAULT: H1 storage system %s crashes (lockstep-lab fault crash %s); %s swaps to H2 by itself, no admin", p, p, hapair.ZOSHost)
	if err := h.pair.Lab.Inject(lab.Fault{Kind: "crash", System: string(p)}); err != nil {
		return err
	}
	if err := h.wait(ctx, false, swappedTo(api.H2), "Target Available, H2 active"); err != nil {
		return err
	}
	writes, err := h.wrote(ctx, 100)
	if err != nil {
		return err
	}
	h.say("lockstepd recorded the host's report; the workload goes on, on H2 (%d acknowledged writes so far)", writes)
	if err := h.show(ctx, "session", "show", "hs"); err != nil {
		return err
	}
	out, err := h.ctl(ctx, "events")
	if err != nil {
		return fmt.Errorf("lockstepctl events: %w: %s", err, out)
	}
	fmt.Fprintf(h.out, "%s$ lockstepctl events | grep LS2018W\n", hsServer)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "LS2018W") {
			fmt.Fprint(h.out, indent(line))
		}
	}
	return nil
}

// check is lockstep-lab check: every chain the host swapped is held to
// the lost-write rule on H2.
func (h *hyperSwapDemo) check(when string) error {
	rep, st, err := h.pair.Lab.Check()
	if err != nil {
		return err
	}
	h.say("lockstep-lab check %s, after %d acknowledged writes:\n  %s\n  lost writes = %d (lost-write rule applied: %v)",
		when, st.Writes, rep, rep.Lost, rep.AckedChecked)
	if !rep.Consistent || rep.Lost != 0 || !rep.AckedChecked {
		return fmt.Errorf("%w: HyperSwap %s: %s", errDemoInconsistent, when, rep)
	}
	return nil
}

func (h *hyperSwapDemo) verdict() (bool, error) {
	if _, err := h.pair.Lab.Workload(context.Background(), lab.WorkloadParam{Action: "stop"}); err != nil {
		return false, err
	}
	if err := h.check("after the unplanned HyperSwap"); err != nil {
		return false, err
	}
	return true, nil
}
