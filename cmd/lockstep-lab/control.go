package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/lab"
)

// errInconsistent makes check exit 1 after printing its verdict.
var errInconsistent = errors.New("the secondary image is inconsistent or lost acknowledged writes")

// parseInterleaved parses flags that may stand before, between or after
// the positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func defaultControl() string {
	if s := os.Getenv("LOCKSTEP_LAB_CONTROL"); s != "" {
		return s
	}
	return "lockstep-lab.sock"
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "lab file (TOML)")
	sock := fs.String("control", "", "control socket (default: the lab file's control_socket)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fmt.Errorf("%w: run needs --config LAB.toml", errUsage)
	}
	cfg, err := lab.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // journald and terminals stamp lines themselves
			}
			return a
		}}))
	srv, err := lab.Start(ctx, cfg, lab.Options{Logger: logger, ControlSocket: *sock})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lab ready: control socket %s\n", srv.ControlAddr())
	for _, st := range srv.Status() {
		fmt.Fprintf(stdout, "  %-20s cluster 0 %-22s cluster 1 %s\n", st.Serial, st.Endpoints[0], st.Endpoints[1])
	}
	for _, z := range srv.ZOSStatus() {
		fmt.Fprintf(stdout, "  z/OS %-15s agent %s (sysplex %s)\n", z.Name, z.Endpoint, z.Sysplex)
	}
	srv.Wait()
	return nil
}

func control(ctx context.Context, cmd string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	sock := fs.String("control", defaultControl(), "control socket of the running lab")
	asJSON := fs.Bool("json", false, "print the full answer as JSON")
	endpoint := fs.String("endpoint", "both", "fault manager/latency: cluster 0, 1 or both")
	manager := fs.String("manager", "", "fault manager: only this manager's connections")
	chains := fs.Int("chains", 16, "workload start: dependent-write chains")
	perChain := fs.Int("volumes-per-chain", 8, "workload start: volumes each chain cycles through")
	think := fs.Duration("think", 0, "workload start: pause between two writes of a chain")
	viaHost := fs.String("via-host", "", "workload start: write through this z/OS host (its HyperSwap moves the writes to H2)")
	after := fs.Uint64("after", 0, "commands: only the records after this sequence number")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	req, err := buildRequest(cmd, pos, *endpoint, *manager, *chains, *perChain, *think, *after)
	if err != nil {
		return err
	}
	if *viaHost != "" {
		if req.Workload == nil || req.Workload.Action != "start" {
			return fmt.Errorf("%w: --via-host is for workload start", errUsage)
		}
		req.Workload.ViaHost = *viaHost
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var resp *lab.Response
	if cmd == "commands" {
		// Every record after --after, however many answers that takes.
		recs, dropped, err := lab.FetchCommands(ctx, *sock, req.Commands.After)
		if err != nil {
			return err
		}
		resp = &lab.Response{OK: true, Commands: recs, Dropped: dropped}
	} else if resp, err = lab.Call(ctx, *sock, req); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(resp); err != nil {
			return err
		}
	} else {
		printResponse(out, cmd, resp)
	}
	if cmd == "check" && !resp.Report.Sound() {
		return errInconsistent
	}
	return nil
}

func buildRequest(cmd string, pos []string, endpoint, manager string, chains, perChain int,
	think time.Duration, after uint64) (lab.Request, error) {
	usage := func(format string, a ...any) (lab.Request, error) {
		return lab.Request{}, fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
	}
	switch cmd {
	case "status", "check":
		if len(pos) != 0 {
			return usage("%s takes no arguments", cmd)
		}
		return lab.Request{Op: cmd}, nil
	case "commands":
		if len(pos) != 0 {
			return usage("commands takes no arguments (--after N)")
		}
		return lab.Request{Op: cmd, Commands: &lab.CommandsParam{After: after}}, nil
	case "workload":
		if len(pos) != 1 {
			return usage("workload start|stop|status")
		}
		return lab.Request{Op: "workload", Workload: &lab.WorkloadParam{Action: pos[0], Chains: chains,
			VolumesPerChain: perChain, Think: think.String()}}, nil
	}
	if len(pos) < 2 {
		return usage("fault KIND SYSTEM ...: see lockstep-lab help")
	}
	switch pos[0] {
	case "hmc", "hmc-link":
		return hmcFault(pos) // hmc.go
	case "zos", "channel":
		return zosFault(pos) // zos.go
	}
	ep := map[string]int{"0": 0, "1": 1, "both": -1}
	epIndex, ok := ep[endpoint]
	if !ok {
		return usage("--endpoint %q is not 0, 1 or both", endpoint)
	}
	upDown := func(s string) (bool, error) {
		switch s {
		case "up":
			return true, nil
		case "down":
			return false, nil
		}
		return false, fmt.Errorf("%w: %q is not up or down", errUsage, s)
	}
	f := lab.Fault{Kind: pos[0], System: pos[1], Endpoint: epIndex, Manager: manager}
	switch {
	case (f.Kind == "paths" || f.Kind == "manager" || f.Kind == "latency") && len(pos) == 3:
		switch f.Kind {
		case "paths":
			up, err := upDown(pos[2])
			if err != nil {
				return lab.Request{}, err
			}
			f.Up = up
		case "manager":
			f.Mode = pos[2]
		case "latency":
			f.Latency = pos[2]
		}
	case f.Kind == "lss-path" && len(pos) == 4:
		up, err := upDown(pos[3])
		if err != nil {
			return lab.Request{}, err
		}
		f.System, f.Source, f.Target, f.Up = "", pos[1], pos[2], up
	case (f.Kind == "crash" || f.Kind == "restart") && len(pos) == 2:
	default:
		return usage("fault %s: wrong arguments %q: see lockstep-lab help", f.Kind, strings.Join(pos[1:], " "))
	}
	return lab.Request{Op: "fault", Fault: &f}, nil
}

func printResponse(out io.Writer, cmd string, resp *lab.Response) {
	switch cmd {
	case "status":
		for _, s := range resp.Systems {
			state := "up"
			if s.Crashed {
				state = "CRASHED"
			}
			fmt.Fprintf(out, "%-20s %-8s cluster 0 %-22s cluster 1 %-22s epoch %d  host writes %d\n",
				s.Serial, state, s.Endpoints[0], s.Endpoints[1], s.Epoch, s.Writes)
		}
		printHMCs(out, resp.HMCs) // hmc.go
		printZOS(out, resp.ZOS)   // zos.go
	case "fault":
		fmt.Fprintln(out, "fault injected")
	case "workload":
		w := resp.Workload
		state := "stopped"
		if w.Running {
			state = "running"
		}
		via := ""
		if resp.ViaHost != "" {
			via = " through z/OS host " + resp.ViaHost
		}
		fmt.Fprintf(out, "workload %s%s: %d chains, %d writes acknowledged, %d failed attempts\n",
			state, via, len(w.Acked), w.Writes, w.Errors)
	case "check":
		fmt.Fprintln(out, resp.Report.String())
	case "commands":
		if resp.Dropped > 0 {
			fmt.Fprintf(out, "dropped=%d (records the lab's bounded log no longer holds)\n", resp.Dropped)
		}
		for _, r := range resp.Commands {
			fmt.Fprintln(out, formatCommand(r))
		}
	}
}

// formatCommand is one command record on one line, as key=value pairs.
func formatCommand(r emu.CommandRecord) string {
	return fmt.Sprintf("seq=%d at=%s serial=%s manager=%s op=%s epoch=%d system_epoch=%d outcome=%s",
		r.Seq, r.At.UTC().Format(time.RFC3339Nano), quoteIfNeeded(string(r.Serial)), quoteIfNeeded(r.Manager),
		r.Op, r.Epoch, r.SystemEpoch, r.Outcome)
}

// quoteIfNeeded quotes a value that is empty or would split the line.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=\n") {
		return strconv.Quote(s)
	}
	return s
}
