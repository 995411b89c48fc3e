package main

import (
	"encoding/json"
	"strings"
	"testing"

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
