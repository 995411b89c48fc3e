// Command lockstep-lab runs emulated storage systems for lockstep: the
// demonstrations and, later, the lab server and its control API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"slices"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/scenario"
)

// Exit codes: 0 consistent / ok, 1 inconsistent / failed, 2 usage.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

var errUsage = errors.New("usage")

const usage = `usage: lockstep-lab COMMAND [flags]

commands:
  run --config LAB.toml [--control SOCK]
          serve the lab file's emulated storage systems and the control API
  status [--json]
          the systems, their cluster endpoints, crashed or not; the z/OS hosts
  fault paths SYSTEM up|down
  fault lss-path SERIAL/LSS SERIAL/LSS up|down
  fault manager SYSTEM up|down|blackhole [--endpoint 0|1|both] [--manager NAME]
  fault latency SYSTEM DURATION [--endpoint 0|1|both]
  fault crash|restart SYSTEM
  fault hmc NAME up|down|blackhole
  fault hmc NAME latency DURATION
  fault hmc-link NAME SERIAL up|down|blackhole
  fault zos HOST down|up|blackhole|latency DURATION
  fault channel HOST SERIAL down|up
          inject a fault into a running lab (an HMC, its private link to
          one storage system, a z/OS host, or its channels to one system)
  workload start [--chains N] [--volumes-per-chain N] [--think DURATION] [--via-host HOST]
  workload stop|status [--json]
          the dependent-write workload over the lab file's mirrors; with
          --via-host, written through z/OS host HOST, whose HyperSwap moves
          the writes to H2
  check [--json]
          the oracle: exit 0 if the secondary image is consistent (and, for
          a workload the host swapped, no acknowledged write is lost), 1 if not
  commands [--after N] [--json]
          the commands the storage systems judged, one line each: manager,
          the command's epoch and the system's, outcome ok, refused or fenced
  scenario S1|S2|S3|S5|S6|S7|S8|H1|H2|H3|H4|random [--heartbeat on|off] [--seed N] [--speed N] [--via direct|hmc]
  scenario hyperswap-planned|hyperswap-unplanned|hyperswap-unplanned-channel|hyperswap-pathloss [--speed N]
          a Metro Mirror Failover/Failback with HyperSwap session, the workload
          on an emulated z/OS host: exit 0 if the H2 image is consistent, no
          acknowledged write was lost and the host swapped (pathloss: did not)
          a failure scenario of the design with the real freeze core, in-process,
          or with --via over loopback TLS through the direct driver or a dual
          HMC (H1-H4: HMC failures, --via hmc only; S7, S8: a silent
          cluster, --via direct only); exit 0 if the secondary image is
          consistent, 1 if not. S5 (over loopback TLS, direct + a
          z/OS host) runs twice, with the z/OS connection and without it, and
          prints the times side by side; exit 0 also needs the run with z/OS
          Recoverable
  demo [--speed N]
          S1 and S2, each without and then with the Metro Mirror heartbeat;
          S5 with and without a z/OS connection

The control commands find the lab at --control SOCK, else $LOCKSTEP_LAB_CONTROL,
else ./lockstep-lab.sock.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "demo":
		err = demo(ctx, args[1:], stdout)
	case "scenario":
		err = scenarioCmd(ctx, args[1:], stdout)
	case "run":
		err = serve(ctx, args[1:], stdout, stderr)
	case "status", "fault", "workload", "check", "commands":
		err = control(ctx, args[0], args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "lockstep-lab: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errInconsistent):
		return exitFail
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "lockstep-lab: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "lockstep-lab: %v\n", err)
		return exitFail
	}
}

// demo runs S1 and S2, each without and then with the heartbeat, with the
// real freeze core on a scaled clock, then S5 (with and without a z/OS
// connection) over loopback TLS.
func demo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	speed := fs.Float64("speed", 100, "how many times faster than real time the storage timers run")
	only := fs.String("only", "", "run only \"scenarios\" (S1 and S2 in-process) or \"daemon\" (lockstepd driven by lockstepctl)")
	bin := fs.String("bin", "", "folder holding lockstepd and lockstepctl (default: next to lockstep-lab)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *only != "daemon" {
		if err := demoScenarios(ctx, out, *speed); err != nil {
			return err
		}
	}
	if *only == "scenarios" {
		return nil
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		*bin = filepath.Dir(exe)
	}
	fmt.Fprint(out, "\n=== lockstepd, driven with lockstepctl over D-Bus, against the lab over TLS ===\n")
	consistent, err := runDaemonDemo(ctx, out, *bin)
	if err != nil {
		return err
	}
	if !consistent {
		return errDemoInconsistent
	}
	return nil
}

// demoScenarios runs S1 and S2 in-process, without and with the heartbeat,
// then S5 over loopback TLS, with and without the z/OS connection.
func demoScenarios(ctx context.Context, out io.Writer, speed float64) error {
	fmt.Fprintf(out, "lockstep demo: the freeze core against 4 primary and 4 secondary emulated storage\n"+
		"systems, storage time %gx faster than real time.\n", speed)
	var unexpected []string
	for _, name := range []string{"S1", "S2"} {
		for _, hb := range []bool{false, true} {
			res, err := runScenario(ctx, out, name, hb, 0, clock.NewScaled(speed), "", 0)
			if err != nil {
				return err
			}
			if res.Consistent() != hb {
				unexpected = append(unexpected, fmt.Sprintf("%s heartbeat %s", name, onOff(hb)))
			}
		}
	}
	fmt.Fprint(out, `
Why: without the heartbeat, a primary that stops mirroring while the manager
cannot hear it (S1), or a primary the manager cannot reach while another one
suspends (S2), is never frozen in time: when the CG timeout releases the held
write, the application's next, dependent write is mirrored by a primary that
nobody froze, and the secondary site holds the later write without the
earlier one. The manager says what it can know: in S2, Suspended (Partial),
not recoverable; in S1 it cannot see the primary at all, so the session stays
Prepared with status Warning, then Severe once the primary has been out of
contact longer than the lowest CG timeout.
With the heartbeat on, the manager freezes everything it can reach as soon as
a primary stops answering, and a primary it cannot reach freezes itself when
its heartbeat timer runs out, before any CG timeout can release a held write:
the secondary site stays consistent, and the manager knows when it is.
`)
	// S5: the heartbeat cannot flow through z/OS, but a z/OS host that
	// still reaches a primary carries its freeze at once.
	if err := zosScenario(ctx, out, "S5", true, 0); err != nil {
		unexpected = append(unexpected, "S5: "+err.Error())
	}
	fmt.Fprint(out, `
S5: the same cut, over loopback TLS, with a z/OS host that still has the primary
online: its state-change message tells the manager of the suspend and the freeze
goes out in-band through it, so the session is Recoverable in seconds instead of
after the heartbeat timeout H, and the applications are held that much less.
`)
	if len(unexpected) > 0 {
		return fmt.Errorf("unexpected verdicts: %s", strings.Join(unexpected, ", "))
	}
	return nil
}

// runScenario runs and prints one scenario.
func runScenario(ctx context.Context, out io.Writer, name string, hb bool, seed uint64, clk clock.Clock, via string, speed float64) (*scenario.Result, error) {
	return runScenarioOpt(ctx, out, name, scenario.Options{Clock: clk, Heartbeat: hb, Seed: seed, Via: via, Speed: speed})
}

// runScenarioOpt runs and prints one scenario with opt.
func runScenarioOpt(ctx context.Context, out io.Writer, name string, opt scenario.Options) (*scenario.Result, error) {
	hb, seed, via := opt.Heartbeat, opt.Seed, opt.Via
	var res *scenario.Result
	var err error
	if name == "random" {
		fmt.Fprintf(out, "\n=== random schedule, seed %d, heartbeat %s ===\n", seed, onOff(hb))
		res, _, err = scenario.RunSchedule(ctx, opt)
	} else {
		through := ""
		if via != "" {
			through = ", via " + via
		}
		if slices.Contains(scenario.ZOSNames, name) {
			through += map[bool]string{false: " + z/OS host", true: ", NO z/OS connection (control)"}[opt.NoZOS]
		}
		fmt.Fprintf(out, "\n=== %s, heartbeat %s%s: %s ===\n", name, onOff(hb), through, scenario.Descriptions[name])
		res, err = scenario.Run(ctx, name, opt)
	}
	if err != nil {
		return nil, err
	}
	for _, line := range res.Timeline {
		fmt.Fprintln(out, "  "+line)
	}
	fmt.Fprintf(out, "  oracle: %s\n  manager: Recoverable = %v\n", res.Report, res.Recoverable)
	return res, nil
}

// scenarioCmd runs one scenario: exit 0 consistent, 1 inconsistent.
func scenarioCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("scenario", flag.ContinueOnError)
	fs.SetOutput(out)
	hb := fs.String("heartbeat", "off", "on or off")
	seed := fs.Uint64("seed", 0, "seed of the random schedule (scenario random)")
	speed := fs.Float64("speed", 0, "run on a clock this many times faster than real time instead of the default (100 in-process, 20 with --via)")
	via := fs.String("via", "", "reach storage over loopback TLS through the direct driver (direct) or a dual HMC (hmc)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: scenario NAME (%s, random; with --via hmc %s; with --via direct %s)", errUsage,
			strings.Join(scenario.Names, ", ")+", "+strings.Join(scenario.HyperSwapNames, ", "), strings.Join(scenario.HMCNames, ", "),
			strings.Join(append(slices.Clone(scenario.ZOSNames), scenario.DirectNames...), ", "))
	}
	if *hb != "on" && *hb != "off" {
		return fmt.Errorf("%w: --heartbeat %q is not on or off", errUsage, *hb)
	}
	if *via != "" && *via != scenario.ViaDirect && *via != scenario.ViaHMC {
		return fmt.Errorf("%w: --via %q is not direct or hmc", errUsage, *via)
	}
	if slices.Contains(scenario.HyperSwapNames, pos[0]) {
		if *via != "" || *hb == "on" {
			return fmt.Errorf("%w: %s runs in-process, heartbeat off (the heartbeat does not cover a HyperSwap session)", errUsage, pos[0])
		}
		return hyperSwapScenario(ctx, out, pos[0], *speed)
	}
	if slices.Contains(scenario.ZOSNames, pos[0]) {
		if *via == scenario.ViaHMC {
			return fmt.Errorf("%w: %s runs --via direct (its TCP/IP connections are direct ones)", errUsage, pos[0])
		}
		wireSpeed := *speed
		return zosScenario(ctx, out, pos[0], *hb == "on", wireSpeed)
	}
	if *via != "" && pos[0] == "random" {
		return fmt.Errorf("%w: scenario random runs in-process only (no --via)", errUsage)
	}
	wireSpeed := *speed
	if *speed == 0 {
		*speed = 100
	}
	res, err := runScenario(ctx, out, pos[0], *hb == "on", *seed, clock.NewScaled(*speed), *via, wireSpeed)
	if err != nil {
		return err
	}
	if !res.Consistent() {
		return errInconsistent
	}
	return nil
}

// hyperSwapScenario runs a HyperSwap scenario in-process on a scaled
// clock. Exit 0: the H2 image is consistent with no acknowledged write
// lost, and the z/OS host swapped with the workload going on on H2 (or,
// for hyperswap-pathloss, did not swap).
func hyperSwapScenario(ctx context.Context, out io.Writer, name string, speed float64) error {
	if speed == 0 {
		speed = 100
	}
	res, err := runScenarioOpt(ctx, out, name, scenario.Options{Clock: clock.NewScaled(speed)})
	if err != nil {
		return err
	}
	if res.Swapped {
		fmt.Fprintf(out, "  z/OS host swapped (%s); %d acknowledged writes, %d of them after the swap\n",
			res.SwapTrigger, res.Writes, res.Writes-res.WritesAtSwap)
	}
	if err := scenario.HyperSwapOK(name, res, 100); err != nil {
		fmt.Fprintf(out, "  FAILED: %v\n", err)
		return errInconsistent
	}
	return nil
}

// zosScenario runs a z/OS scenario twice over loopback TLS: with the
// z/OS connection, and the control case without it (TCP/IP only), and
// prints the times side by side. Exit 0: the run with z/OS ended
// Recoverable (every freeze certain: the session Suspended, not Partial)
// and both images are consistent.
func zosScenario(ctx context.Context, out io.Writer, name string, hb bool, speed float64) error {
	var res [2]*scenario.Result
	for i, noZOS := range []bool{false, true} {
		r, err := runScenarioOpt(ctx, out, name, scenario.Options{Heartbeat: hb, Via: scenario.ViaDirect, Speed: speed,
			NoZOS: noZOS, ReleaseIO: true})
		if err != nil {
			return err
		}
		res[i] = r
	}
	since := func(r *scenario.Result, at time.Duration) string {
		if at == 0 {
			return "never"
		}
		return fmt.Sprintf("%.3fs", (at - r.FaultAt).Seconds())
	}
	state := func(r *scenario.Result) string {
		switch {
		case r.Recoverable:
			return "Suspended, Recoverable"
		case r.Froze:
			return "Suspended (Partial)"
		}
		return "not frozen"
	}
	fmt.Fprintf(out, "\n=== %s side by side (storage time after the fault) ===\n", name)
	fmt.Fprintf(out, "  %-34s %-24s %s\n", "", "with z/OS", "TCP/IP only (control)")
	rows := []struct{ label, a, b string }{
		{"session", state(res[0]), state(res[1])},
		{"Recoverable after", since(res[0], res[0].RecoverableAt), since(res[1], res[1].RecoverableAt)},
		{"longest application write", fmt.Sprintf("%.3fs", res[0].MaxWait.Seconds()), fmt.Sprintf("%.3fs", res[1].MaxWait.Seconds())},
		{"self-frozen at H", fmt.Sprint(res[0].SelfFrozen), fmt.Sprint(res[1].SelfFrozen)},
		{"oracle", verdict(res[0]), verdict(res[1])},
	}
	for _, r := range rows {
		fmt.Fprintf(out, "  %-34s %-24s %s\n", r.label, r.a, r.b)
	}
	switch {
	case !res[0].Consistent() || !res[1].Consistent():
		return errInconsistent
	case !res[0].Recoverable:
		return fmt.Errorf("%s with z/OS: the session is not Suspended and Recoverable: %s", name, res[0].Why)
	}
	return nil
}

func verdict(r *scenario.Result) string {
	if r.Consistent() {
		return "consistent"
	}
	return "INCONSISTENT"
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}
