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
	"syscall"

	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/hal/emu/scripted"
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
          the systems, their cluster endpoints, crashed or not
  fault paths SYSTEM up|down
  fault lss-path SERIAL/LSS SERIAL/LSS up|down
  fault manager SYSTEM up|down|blackhole [--endpoint 0|1|both] [--manager NAME]
  fault latency SYSTEM DURATION [--endpoint 0|1|both]
  fault crash|restart SYSTEM
          inject a fault into a running lab
  workload start [--chains N] [--volumes-per-chain N] [--think DURATION]
  workload stop|status [--json]
          the dependent-write workload over the lab file's mirrors
  check [--json]
          the oracle: exit 0 if the secondary image is consistent, 1 if not
  demo [--speed N]
          scenario S1 on emulated storage with a scripted controller,
          without and then with the Metro Mirror heartbeat

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
	case "run":
		err = serve(ctx, args[1:], stdout, stderr)
	case "status", "fault", "workload", "check":
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

func demo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	speed := fs.Float64("speed", 200, "how many times faster than real time the storage timers run")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fmt.Fprintf(out, "Scenario S1: one primary loses its replication paths and its connection\n"+
		"to the manager at the same instant. Storage time runs %gx faster than real time.\n", *speed)
	verdicts := map[bool]bool{}
	for _, hb := range []bool{false, true} {
		fmt.Fprintf(out, "\n=== Metro Mirror heartbeat %s ===\n", onOff(hb))
		res, err := scripted.RunS1(ctx, scripted.Options{Clock: clock.NewScaled(*speed), Heartbeat: hb})
		if err != nil {
			return err
		}
		for _, line := range res.Timeline {
			fmt.Fprintln(out, "  "+line)
		}
		fmt.Fprintf(out, "  oracle: %s\n", res.Report)
		verdicts[hb] = res.Report.Consistent
	}
	fmt.Fprint(out, `
Why: without the heartbeat, the primary that lost its paths holds host
writes (extended long busy) but cannot tell the manager. When its CG timeout
ends, the held write completes locally and the application's next,
dependent write is mirrored by another primary that nobody froze: the
secondary site has the later write without the earlier one.
With the heartbeat armed, the manager notices within a second that the
primary stopped answering and freezes all the others while the silent one
still holds its writes; the silent primary freezes itself when its
heartbeat timer runs out. The secondary site stays consistent.
`)
	if verdicts[false] || !verdicts[true] {
		return fmt.Errorf("unexpected verdicts: heartbeat off consistent=%v, on consistent=%v",
			verdicts[false], verdicts[true])
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}
