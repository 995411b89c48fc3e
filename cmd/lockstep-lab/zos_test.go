package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/zos"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/lab"
)

// TestZOSFaultsFromTheCommandLine: the shipped lab's z/OS host shows in
// status, and the zos and channel faults reach it.
func TestZOSFaultsFromTheCommandLine(t *testing.T) {
	sock, _ := startShippedLab(t)
	status := func() lab.ZOSStatus {
		t.Helper()
		code, out := lab1(t, "status", "--control", sock, "--json")
		if code != 0 {
			t.Fatalf("status: %d %s", code, out)
		}
		var st lab.Response
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		if len(st.ZOS) != 1 {
			t.Fatalf("z/OS hosts %+v", st.ZOS)
		}
		return st.ZOS[0]
	}
	if h := status(); h.Name != "SYSA" || h.Sysplex != "PLEX1" || h.Mode != "up" || len(h.Online) != 8 || !h.Online[0].Up {
		t.Fatalf("host %+v", h)
	}
	for _, args := range [][]string{
		{"fault", "zos", "SYSA", "blackhole"},
		{"fault", "zos", "SYSA", "latency", "5ms"},
		{"fault", "channel", "SYSA", "LAB.2107-75P0001", "down"},
	} {
		if code, out := lab1(t, append(args, "--control", sock)...); code != 0 {
			t.Fatalf("%q: %d %s", args, code, out)
		}
	}
	if h := status(); h.Mode != "blackhole" || h.Latency != "5ms" || h.Online[0].Up || !h.Online[1].Up {
		t.Fatalf("after faults: %+v", h)
	}
	code, out := lab1(t, "status", "--control", sock)
	if code != 0 || !strings.Contains(out, "z/OS SYSA") || !strings.Contains(out, "DOWN") {
		t.Fatalf("status text: %s", out)
	}
	code, out = lab1(t, "fault", "channel", "SYSA", "LAB.2107-75X9", "down", "--control", sock)
	if code != exitFail || !strings.Contains(out, "no channel to") {
		t.Fatalf("channel to an unknown system: %d %s", code, out)
	}
	code, out = lab1(t, "fault", "zos", "SYSB", "down", "--control", sock)
	if code != exitFail || !strings.Contains(out, `unknown z/OS host "SYSB"`) {
		t.Fatalf("unknown host: %d %s", code, out)
	}
}

func TestZOSFaultUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"fault", "zos", "SYSA"},
		{"fault", "zos", "SYSA", "sideways"},
		{"fault", "zos", "SYSA", "latency", "soon"},
		{"fault", "channel", "SYSA", "up"},
		{"fault", "channel", "SYSA", "LAB.2107-75P0001", "blackhole"},
	} {
		if code, out := lab1(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, out)
		}
	}
}

// TestWorkloadViaHostFromTheCommandLine: on the shipped lab, with the
// mirrors loaded into z/OS host SYSA as one HyperSwap session, `workload
// start --via-host SYSA` writes through the host; a primary crashes, the
// host swaps on its own, and `check` holds H2 to the lost-write rule:
// exit 0, consistent, no acknowledged write lost.
func TestWorkloadViaHostFromTheCommandLine(t *testing.T) {
	sock, cfg := startShippedLab(t)
	resp, err := lab.Call(t.Context(), sock, lab.Request{Op: "status"})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(resp.CAPEM))
	conns := map[hal.Serial]hal.StorageSystem{}
	for _, serial := range cfg.Topology.Sources() {
		conns[serial] = managerOf(t, sock, cfg, serial, "t")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := cfg.Topology.Establish(ctx, clock.Real(), conns, 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	zc := cfg.ZOSHosts[0]
	h, err := zos.OpenSwapHost(ctx, hal.ConnectionSpec{Name: zc.Name, Addresses: []string{resp.ZOS[0].Endpoint},
		Sysplex: zc.Sysplex, Manager: "t", User: zc.User, Password: zc.Password, Roots: pool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	events, err := h.SwapEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LoadSwap(ctx, 1, "PROD", cfg.Topology.Pairs); err != nil {
		t.Fatal(err)
	}

	if code, out := lab1(t, "workload", "stop", "--via-host", "SYSA", "--control", sock); code != exitUsage {
		t.Fatalf("--via-host on stop: %d %s", code, out)
	}
	code, out := lab1(t, "workload", "start", "--chains", "8", "--via-host", "SYSA", "--control", sock)
	if code != 0 || !strings.Contains(out, "through z/OS host SYSA") {
		t.Fatalf("workload start: %d %s", code, out)
	}
	for {
		r, err := lab.Call(ctx, sock, lab.Request{Op: "workload", Workload: &lab.WorkloadParam{Action: "status"}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Workload.Writes >= 200 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	primary := string(cfg.Topology.Sources()[0])
	if code, out := lab1(t, "fault", "crash", primary, "--control", sock); code != 0 {
		t.Fatalf("crash: %d %s", code, out)
	}
	select {
	case ev := <-events:
		if ev.Planned || !strings.Contains(ev.Trigger, primary) {
			t.Fatalf("swap event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("the host did not swap")
	}
	if code, out := lab1(t, "workload", "stop", "--control", sock); code != 0 {
		t.Fatalf("workload stop: %d %s", code, out)
	}
	code, out = lab1(t, "check", "--control", sock)
	if code != 0 || !strings.Contains(out, "no acknowledged write lost") {
		t.Fatalf("check: %d %s", code, out)
	}
	code, out = lab1(t, "check", "--json", "--control", sock)
	var rep lab.Response
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("check --json: %d %v %s", code, err, out)
	}
	if rep.ViaHost != "SYSA" || !rep.Report.AckedChecked || rep.Report.Lost != 0 || !rep.Report.Consistent {
		t.Fatalf("check --json: %s", out)
	}
}
