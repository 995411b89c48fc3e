package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/hapair"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// daemonDemo is the administrator's tour: the lab's 4+4 storage systems
// on loopback, two real lockstepd (each on its own private D-Bus), and
// every step done with lockstepctl as an admin would type it. The lab's CG timeouts are
// 10 s (instead of 60/120 s) so that the whole story fits in a minute;
// lockstepd's heartbeat timings are shortened to match.
type daemonDemo struct {
	out    io.Writer
	bin    string // folder with lockstepd and lockstepctl
	dir    string
	bus    string // the bus lockstepctl talks to: the active's
	srv    *lab.Server
	cancel []func()

	// pair is the lab and the two servers (internal/hapair, which the HA
	// tests use too): each server has its own private D-Bus and its HA
	// listener behind a loopback relay.
	pair   *hapair.Pair
	active *hapair.Node
}

const (
	serverA = "lockstepd-a"
	serverB = "lockstepd-b"
)

func runDaemonDemo(ctx context.Context, out io.Writer, bin string) (consistent bool, err error) {
	d := &daemonDemo{out: out, bin: bin}
	defer d.stop()
	if d.dir, err = os.MkdirTemp("", "lockstep-demo-"); err != nil {
		return false, err
	}
	defer os.RemoveAll(d.dir)
	steps := []func(context.Context) error{d.startLab, d.startActive, d.defineHMC, d.defineStorage,
		d.defineSession, d.startSession, d.heartbeatOn, d.scheduledTask, d.runWorkload, d.hmcFails, d.startStandby, d.takeover,
		d.s1Fault, d.oldActiveReturns}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return false, err
		}
	}
	rep, st, err := d.srv.Check()
	if err != nil {
		return false, err
	}
	d.say("the oracle reads every secondary volume after %d acknowledged writes:\n  %s", st.Writes, rep)
	if !rep.Consistent {
		return false, nil
	}
	// The story's lab and servers are done: the HyperSwap part has its
	// own.
	d.stop()
	d.cancel = nil
	fmt.Fprint(d.out, "\n=== Metro Mirror Failover/Failback with HyperSwap, through an emulated z/OS host ===\n")
	return runHyperSwapDemo(ctx, d.out, d.bin, d.dir)
}

func (d *daemonDemo) say(format string, a ...any) { fmt.Fprintf(d.out, "\n# "+format+"\n", a...) }

func (d *daemonDemo) stop() {
	for i := len(d.cancel) - 1; i >= 0; i-- {
		d.cancel[i]()
	}
}

// ctl runs lockstepctl against the active.
func (d *daemonDemo) ctl(ctx context.Context, args ...string) (string, error) {
	return d.ctlOn(ctx, d.bus, args...)
}

// ctlOn runs lockstepctl against the server on bus.
func (d *daemonDemo) ctlOn(ctx context.Context, bus string, args ...string) (string, error) {
	full := append([]string{"--bus", bus}, args...)
	out, err := exec.CommandContext(ctx, filepath.Join(d.bin, "lockstepctl"), full...).CombinedOutput()
	return string(out), err
}

// show runs lockstepctl against the active and shows the command and its
// answer.
func (d *daemonDemo) show(ctx context.Context, args ...string) error {
	return d.showOn(ctx, d.bus, args...)
}

func (d *daemonDemo) showOn(ctx context.Context, bus string, args ...string) error {
	host := d.pair.A.Name
	if bus == d.pair.B.Bus {
		host = d.pair.B.Name
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if strings.ContainsAny(a, " \t") {
			quoted[i] = strconv.Quote(a)
		}
	}
	fmt.Fprintf(d.out, "%s$ lockstepctl %s\n", host, strings.Join(quoted, " "))
	out, err := d.ctlOn(ctx, bus, args...)
	fmt.Fprint(d.out, indent(out))
	if err != nil {
		return fmt.Errorf("lockstepctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

func (d *daemonDemo) startLab(ctx context.Context) error {
	p, err := hapair.New(ctx, hapair.Options{Bin: d.bin, Dir: d.dir, Primaries: 4, CGTimeout: 10 * time.Second,
		Names: [2]string{serverA, serverB}, HMCFront: behindHMCs})
	if err != nil {
		return err
	}
	d.pair, d.srv, d.active = p, p.Lab, p.A
	d.cancel = append(d.cancel, p.Close)
	d.say("lockstep-lab serves 4 primary and 4 secondary storage systems on loopback (TLS, two clusters each),\n"+
		"# %s and %s also behind a dual HMC (%s, %s);\n"+
		"# every LSS has a CG timeout of 10 s for this demo (60 s FB / 120 s CKD on real arrays)",
		behindHMCs[0], behindHMCs[1], hapair.HMCNames[0], hapair.HMCNames[1])
	return nil
}

func (d *daemonDemo) pwFile(serial hal.Serial) string { return hapair.PasswordFile(d.dir, serial) }

func (d *daemonDemo) startActive(ctx context.Context) error {
	a := d.pair.A
	if err := a.Start(ctx); err != nil {
		return err
	}
	d.bus = a.Bus
	d.say("%s starts on its own private D-Bus (%s) with its state in %s", a.Name, a.Bus, filepath.Join(a.Dir, "state"))
	return d.show(ctx, "status")
}

// startStandby starts the second server and pairs the two: the active
// ships its journal to the standby, which acknowledges every record after
// its own fsync.
func (d *daemonDemo) startStandby(ctx context.Context) error {
	a, b := d.pair.A, d.pair.B
	if err := b.Start(ctx); err != nil {
		return err
	}
	d.say("a second server, %s, becomes the standby: it takes a backup, receives a snapshot, then every record", b.Name)
	if err := d.showOn(ctx, b.Bus, "ha", "set-as-standby", a.Addr(), "--name", a.Name); err != nil {
		return err
	}
	d.say("%s links to %s, whose certificate names it %s, and which becomes its active (the same as ha set-standby %s --name %s on %s)",
		b.Name, a.Name, a.Name, b.Addr(), b.Name, a.Name)
	for i := 0; ; i++ {
		out, err := d.ctlOn(ctx, b.Bus, "ha", "status")
		if err == nil && strings.Contains(out, "Synchronized") {
			break
		}
		if i == 100 {
			return fmt.Errorf("the pair did not synchronize: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.show(ctx, "ha", "status"); err != nil {
		return err
	}
	// The standby connects to the storage systems it learned of (it
	// issues nothing): its takeover readiness.
	for i := 0; i < 50; i++ {
		if out, err := d.ctlOn(ctx, b.Bus, "ha", "status"); err == nil && !strings.Contains(out, "cannot reach") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.say("the standby reaches every storage system (it issues nothing to them): it is ready to take over")
	return d.showOn(ctx, b.Bus, "ha", "status")
}

// takeover is S4: the active's host dies (kill -9) while the workload
// runs; the administrator takes over on the standby well within the
// heartbeat timeout: nothing freezes, and the new active keeps the
// heartbeat with its higher epoch.
func (d *daemonDemo) takeover(ctx context.Context) error {
	a, b := d.pair.A, d.pair.B
	d.say("S4: %s dies (kill -9) while the workload runs", a.Name)
	a.Kill()
	time.Sleep(500 * time.Millisecond)
	d.say("the administrator takes over on %s within the heartbeat timeout", b.Name)
	if err := d.showOn(ctx, b.Bus, "ha", "takeover"); err != nil {
		return err
	}
	d.bus, d.active = b.Bus, b
	time.Sleep(2 * time.Second)
	d.say("%s is the active now, with the higher epoch; its heartbeat is armed on every primary; nothing froze", b.Name)
	if err := d.show(ctx, "heartbeat", "show"); err != nil {
		return err
	}
	return d.show(ctx, "session", "list")
}

// behindHMCs are the systems the demo reaches through a dual HMC only:
// the last primary and its secondary.
var behindHMCs = []hal.Serial{topology.PrimarySerial(3), topology.SecondarySerial(3)}

// defineHMC defines the dual HMC connection; the two systems behind it
// are discovered, with no storage add.
func (d *daemonDemo) defineHMC(ctx context.Context) error {
	d.say("define the dual HMC connection: the storage systems behind it are discovered, no storage add")
	var addrs []string
	for _, name := range hapair.HMCNames {
		for _, h := range d.srv.HMCStatus() {
			if h.Name == name {
				addrs = append(addrs, h.Endpoint)
			}
		}
	}
	if err := d.show(ctx, "hmc", "add", "LAB-HMCS", "--addr", strings.Join(addrs, ","), "--user", hapair.HMCUser,
		"--password-file", hapair.HMCPasswordFile(d.dir)); err != nil {
		return err
	}
	for i := 0; ; i++ {
		out, err := d.ctl(ctx, "hmc", "list")
		if err == nil && strings.Count(out, "(connected)") == 2 && strings.Contains(out, string(behindHMCs[1])) {
			break
		}
		if i == 100 {
			return fmt.Errorf("the HMCs did not answer: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.show(ctx, "hmc", "list"); err != nil {
		return err
	}
	return d.show(ctx, "hmc", "show", "LAB-HMCS")
}

// hmcFails kills the HMC that carries the commands of the systems behind
// it: the other carries them and the heartbeat, and nothing changes for
// the session.
func (d *daemonDemo) hmcFails(ctx context.Context) error {
	p := string(behindHMCs[0])
	d.say("FAULT: %s dies; %s carries the commands and the heartbeat of %s from now on", hapair.HMCNames[0], hapair.HMCNames[1], p)
	if err := d.srv.Inject(lab.Fault{Kind: "hmc", HMC: hapair.HMCNames[0], Mode: "down"}); err != nil {
		return err
	}
	for i := 0; ; i++ {
		out, err := d.ctl(ctx, "storage", "show", p)
		if err == nil && strings.Contains(out, hapair.HMCNames[1]) {
			break
		}
		if i == 100 {
			return fmt.Errorf("%s not reached through %s: %s", p, hapair.HMCNames[1], out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.show(ctx, "storage", "show", p); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // heartbeats flow through the other HMC meanwhile
	d.say("the session is still Prepared: one HMC of two failing changes nothing for consistency")
	if err := d.show(ctx, "session", "list"); err != nil {
		return err
	}
	out, err := d.ctl(ctx, "session", "list")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Prepared") {
		return fmt.Errorf("the session is no longer Prepared after %s died:\n%s\n%s's log:\n%s", hapair.HMCNames[0], out, serverA, d.active.Log())
	}
	return nil
}

func (d *daemonDemo) defineStorage(ctx context.Context) error {
	d.say("define the other storage systems, directly (credentials are read by lockstepd from a file)")
	shown := false
	for _, st := range d.srv.Status() {
		if slices.Contains(behindHMCs, hal.Serial(st.Serial)) {
			continue
		}
		i := map[bool]int{true: 1, false: 0}[shown]
		shown = true
		args := []string{"storage", "add", st.Serial, "--addr", st.Endpoints[0] + "," + st.Endpoints[1],
			"--user", "lockstep", "--password-file", d.pwFile(hal.Serial(st.Serial))}
		if i == 0 {
			if err := d.show(ctx, args...); err != nil {
				return err
			}
			continue
		}
		if out, err := d.ctl(ctx, args...); err != nil {
			return fmt.Errorf("storage add %s: %v: %s", st.Serial, err, out)
		}
	}
	fmt.Fprintln(d.out, "  ... (the 5 others alike)")
	time.Sleep(time.Second) // let the drivers connect
	return d.show(ctx, "storage", "list")
}

func (d *daemonDemo) defineSession(ctx context.Context) error {
	d.say("one Metro Mirror failover/failback session over all 64 volume pairs")
	if err := d.show(ctx, "session", "create", "prod", "--type", "mm-failover-failback", "--cg", "prod-cg"); err != nil {
		return err
	}
	for i, p := range d.srv.Topology().Pairs {
		args := []string{"session", "add-copyset", "prod", p.Source.String(), p.Target.String()}
		if i == 0 {
			if err := d.show(ctx, args...); err != nil {
				return err
			}
			continue
		}
		if out, err := d.ctl(ctx, args...); err != nil {
			return fmt.Errorf("add-copyset: %v: %s", err, out)
		}
	}
	fmt.Fprintln(d.out, "  ... (63 more)")
	return nil
}

func (d *daemonDemo) startSession(ctx context.Context) error {
	d.say("start mirroring H1 -> H2")
	if err := d.show(ctx, "session", "cmd", "prod", "start-h1-h2"); err != nil {
		return err
	}
	for i := 0; ; i++ {
		out, err := d.ctl(ctx, "session", "cmd", "prod", "refresh")
		if err == nil && strings.Contains(out, "Prepared") {
			break
		}
		if i == 50 {
			return fmt.Errorf("session never Prepared: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return d.show(ctx, "session", "list")
}

func (d *daemonDemo) heartbeatOn(ctx context.Context) error {
	d.say("switch the Metro Mirror heartbeat on")
	if err := d.show(ctx, "heartbeat", "on"); err != nil {
		return err
	}
	time.Sleep(time.Second)
	return d.show(ctx, "heartbeat", "show")
}

// scheduledTask defines a nightly task that suspends the session (a
// consistent point-in-time image at H2) and starts it again, runs it
// once now, and shows its result the way lstasks -l would.
func (d *daemonDemo) scheduledTask(ctx context.Context) error {
	d.say("a scheduled task: every night at 02:00 (Europe/Berlin), suspend prod for a consistent H2 image, then resync")
	if err := d.show(ctx, "task", "create", "nightly-pit", "--schedule", "daily 02:00", "--zone", "Europe/Berlin",
		"--step", "suspend prod", "--step", "wait prod suspended timeout 1m", "--step", "start-h1-h2 prod"); err != nil {
		return err
	}
	d.say("run it once now (only the acting server runs tasks; the run is journaled before its first step)")
	if err := d.show(ctx, "task", "run", "nightly-pit"); err != nil {
		return err
	}
	for i := 0; ; i++ {
		out, err := d.ctl(ctx, "--json", "task", "show", "nightly-pit")
		if err == nil && strings.Contains(out, `"result": "success"`) {
			break
		}
		if err == nil && strings.Contains(out, `"result": "failed"`) || i == 100 {
			return fmt.Errorf("the task did not succeed: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.show(ctx, "task", "list"); err != nil {
		return err
	}
	for i := 0; ; i++ {
		out, err := d.ctl(ctx, "session", "cmd", "prod", "refresh")
		if err == nil && strings.Contains(out, "Prepared") {
			break
		}
		if i == 50 {
			return fmt.Errorf("session never Prepared again: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return d.show(ctx, "session", "list")
}

func (d *daemonDemo) runWorkload(ctx context.Context) error {
	d.say("the lab runs 16 chains of dependent writes across the 4 primaries")
	_, err := d.srv.Workload(ctx, lab.WorkloadParam{Action: "start", Chains: 16, VolumesPerChain: 8, Think: "10ms"})
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	return nil
}

func (d *daemonDemo) s1Fault(ctx context.Context) error {
	p1 := string(topology.PrimarySerial(0))
	d.say("FAULT S1: %s loses its replication paths and its connection to the active (%s) at the same instant", p1, d.active.Name)
	for _, f := range []lab.Fault{
		{Kind: "manager", System: p1, Endpoint: -1, Mode: "down", Manager: d.active.Name},
		{Kind: "paths", System: p1},
	} {
		if err := d.srv.Inject(f); err != nil {
			return err
		}
	}
	time.Sleep(3 * time.Second)
	d.say("a few seconds later: lockstepd froze every primary it reaches; the silent one is not known frozen yet")
	if err := d.show(ctx, "session", "show", "prod"); err != nil {
		return err
	}
	d.say("...until its own heartbeat timer has certainly run out (last heartbeat + H + request timeout)")
	time.Sleep(8 * time.Second)
	if err := d.show(ctx, "session", "show", "prod"); err != nil {
		return err
	}
	if err := d.show(ctx, "events"); err != nil {
		return err
	}
	if _, err := d.srv.Workload(ctx, lab.WorkloadParam{Action: "stop"}); err != nil {
		return err
	}
	return nil
}

// oldActiveReturns restarts the server that died: it still believes it
// is the active with epoch 1, learns of epoch 2 from the storage systems
// (which refuse its commands) and from the new active, stops acting at
// once, and becomes the new active's standby: the demo ends with a pair.
func (d *daemonDemo) oldActiveReturns(ctx context.Context) error {
	a, b := d.pair.A, d.pair.B
	d.say("%s comes back: it learns of the higher epoch, stops acting at once, and becomes the standby of %s", a.Name, b.Name)
	if err := a.Start(ctx); err != nil {
		return err
	}
	for i := 0; ; i++ {
		out, err := d.ctlOn(ctx, a.Bus, "ha", "status")
		if err == nil && strings.Contains(out, "Synchronized") && strings.Contains(out, "standby") {
			break
		}
		if i == 200 {
			return fmt.Errorf("%s did not become the standby: %s", a.Name, out)
		}
		if i%20 == 19 {
			d.ctl(ctx, "ha", "reconnect") // the new active's single attempt may have come too early
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.showOn(ctx, a.Bus, "ha", "status"); err != nil {
		return err
	}
	return d.show(ctx, "ha", "status")
}

var errDemoInconsistent = errors.New("the demo's secondary image is inconsistent")
