package main

import (
	"strings"
	"testing"
)

// TestHMCFaultCommands: the shipped lab's dual HMC shows in status, and
// the HMC faults reach it.
func TestHMCFaultCommands(t *testing.T) {
	sock, _ := startShippedLab(t)
	steps := []struct {
		args []string
		want string // in status afterwards
	}{
		{[]string{"fault", "hmc", "LAB-HMC1", "blackhole"}, "hmc LAB-HMC1         BLACKHOLE"},
		{[]string{"fault", "hmc", "LAB-HMC1", "up"}, "hmc LAB-HMC1         up"},
		{[]string{"fault", "hmc", "LAB-HMC2", "latency", "5ms"}, "latency +5ms"},
		{[]string{"fault", "hmc-link", "LAB-HMC2", "LAB.2107-75P0003", "down"}, "LAB.2107-75P0003     link DOWN"},
		{[]string{"fault", "hmc-link", "LAB-HMC2", "LAB.2107-75P0003", "blackhole"}, "LAB.2107-75P0003     link BLACKHOLE"},
		{[]string{"fault", "hmc-link", "LAB-HMC2", "LAB.2107-75P0003", "up"}, "LAB.2107-75P0003     link up"},
		{[]string{"fault", "hmc", "LAB-HMC2", "down"}, "hmc LAB-HMC2         DOWN"},
	}
	for _, st := range steps {
		if code, out := lab1(t, append(st.args, "--control", sock)...); code != exitOK {
			t.Fatalf("%q: exit %d: %s", st.args, code, out)
		}
		code, out := lab1(t, "status", "--control", sock)
		if code != exitOK || !strings.Contains(out, st.want) {
			t.Fatalf("after %q, status (exit %d) does not say %q:\n%s", st.args, code, st.want, out)
		}
	}
	for _, args := range [][]string{
		{"fault", "hmc", "LAB-HMC1"},
		{"fault", "hmc", "LAB-HMC1", "latency"},
		{"fault", "hmc-link", "LAB-HMC1", "LAB.2107-75P0001"},
		{"fault", "hmc-link", "LAB-HMC1", "LAB.2107-75P0001", "sideways"},
	} {
		if code, out := lab1(t, append(args, "--control", sock)...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, out)
		}
	}
	if code, out := lab1(t, "fault", "hmc", "NOPE", "down", "--control", sock); code != exitFail || !strings.Contains(out, `unknown HMC "NOPE"`) {
		t.Errorf("unknown HMC: exit %d: %s", code, out)
	}
}
