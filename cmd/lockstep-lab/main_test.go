package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/lab"
)

func lab1(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String() + errb.String()
}

// startShippedLab runs `lockstep-lab run` on the shipped etc/lab.toml,
// with its storage time 100x faster and its files in a temporary folder.
func startShippedLab(t *testing.T) (sock string, cfg *lab.Config) {
	t.Helper()
	text, err := os.ReadFile("../../etc/lab.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock = filepath.Join(dir, "lab.sock")
	mod := strings.Replace(string(text), "speed = 1 ", "speed = 100 ", 1)
	mod = strings.Replace(mod, `ca_out = "lockstep-lab-ca.pem"`, `ca_out = "`+filepath.Join(dir, "ca.pem")+`"`, 1)
	path := filepath.Join(dir, "lab.toml")
	if err := os.WriteFile(path, []byte(mod), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = lab.LoadConfig(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"run", "--config", path, "--control", sock}, io.Discard, io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })
	for i := 0; ; i++ {
		if _, err := lab.Call(context.Background(), sock, lab.Request{Op: "status"}); err == nil {
			return sock, cfg
		}
		if i == 500 {
			t.Fatal("lab did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLabEndToEnd(t *testing.T) {
	sock, cfg := startShippedLab(t)
	code, out := lab1(t, "status", "--control", sock, "--json")
	if code != 0 {
		t.Fatalf("status: %d %s", code, out)
	}
	var st lab.Response
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Systems) != 8 {
		t.Fatalf("%d systems, want 8", len(st.Systems))
	}

	// A manager establishes the mirrors over the wire.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(st.CAPEM))
	conns := map[hal.Serial]hal.StorageSystem{}
	for _, s := range st.Systems {
		var pw string
		for _, sc := range cfg.Systems {
			if string(sc.Serial) == s.Serial {
				pw = sc.Password
			}
		}
		d := direct.New(t.Context(), direct.Options{Serial: hal.Serial(s.Serial), Endpoints: s.Endpoints, Manager: "t",
			User: "lockstep", Password: pw, TLS: wire.ClientTLSConfig(pool, "127.0.0.1")})
		t.Cleanup(func() { d.Close() })
		conns[d.Serial()] = d
	}
	ctx := context.Background()
	if err := cfg.Topology.Establish(ctx, clock.Real(), conns, 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	if code, out := lab1(t, "workload", "start", "--chains", "8", "--control", sock); code != 0 {
		t.Fatalf("workload start: %d %s", code, out)
	}
	time.Sleep(200 * time.Millisecond)
	if code, out := lab1(t, "check", "--control", sock); code != 0 || !strings.Contains(out, "consistent") {
		t.Fatalf("check while healthy: %d %s", code, out)
	}
	// No manager is watching: the primary holds writes for its CG timeout
	// (0.6 to 1.2 s here), then the chains go on through the others.
	if code, out := lab1(t, "fault", "paths", "LAB.2107-75P0001", "down", "--control", sock); code != 0 {
		t.Fatalf("fault: %d %s", code, out)
	}
	time.Sleep(2 * time.Second)
	if code, out := lab1(t, "workload", "stop", "--control", sock); code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("workload stop: %d %s", code, out)
	}
	code, out = lab1(t, "check", "--json", "--control", sock)
	if code != 1 {
		t.Fatalf("check after an unfrozen path failure: exit %d, want 1\n%s", code, out)
	}
	var rep lab.Response
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Report.Consistent || rep.Report.First == nil {
		t.Fatalf("report %+v", rep.Report)
	}
}

// managerOf connects a manager over TLS to one system of a running lab.
func managerOf(t *testing.T, sock string, cfg *lab.Config, serial hal.Serial, manager string) hal.StorageSystem {
	t.Helper()
	resp, err := lab.Call(context.Background(), sock, lab.Request{Op: "status"})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(resp.CAPEM))
	opt := direct.Options{Serial: serial, Manager: manager, User: "lockstep",
		TLS: wire.ClientTLSConfig(pool, "127.0.0.1")}
	for _, s := range resp.Systems {
		if s.Serial == string(serial) {
			opt.Endpoints = s.Endpoints
		}
	}
	for _, sc := range cfg.Systems {
		if sc.Serial == serial {
			opt.Password = sc.Password
		}
	}
	d := direct.New(t.Context(), opt)
	t.Cleanup(func() { d.Close() })
	return d
}

// TestCommandsCommand: `lockstep-lab commands` prints, one line each, the
// commands a storage system judged: an accepted one and one fenced for its
// stale epoch; --after skips, --json gives the records.
func TestCommandsCommand(t *testing.T) {
	sock, cfg := startShippedLab(t)
	const serial = "LAB.2107-75P0001"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := managerOf(t, sock, cfg, serial, "ha-a").QueryPairs(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := managerOf(t, sock, cfg, serial, "ha b").QueryPaths(ctx, 4); !errors.Is(err, hal.ErrFenced) {
		t.Fatalf("stale epoch: %v, want fenced", err)
	}
	lines := func(out string) []string { return strings.Split(strings.TrimSpace(out), "\n") }
	wantFields := [][]string{
		{"seq=1 ", " serial=LAB.2107-75P0001 manager=ha-a op=query-pairs epoch=5 system_epoch=0 outcome=ok"},
		{"seq=2 ", ` serial=LAB.2107-75P0001 manager="ha b" op=query-paths epoch=4 system_epoch=5 outcome=fenced`},
	}
	check := func(got []string, want [][]string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
		}
		for i, w := range want {
			if !strings.HasPrefix(got[i], w[0]) || !strings.HasSuffix(got[i], w[1]) || !strings.Contains(got[i], " at=") {
				t.Errorf("line %d: %q, want %q...%q", i, got[i], w[0], w[1])
			}
		}
	}
	code, out := lab1(t, "commands", "--control", sock)
	if code != exitOK {
		t.Fatalf("commands: exit %d: %s", code, out)
	}
	check(lines(out), wantFields)
	code, out = lab1(t, "commands", "--after", "1", "--control", sock)
	if code != exitOK {
		t.Fatalf("commands --after 1: exit %d: %s", code, out)
	}
	check(lines(out), wantFields[1:])

	code, out = lab1(t, "commands", "--json", "--control", sock)
	if code != exitOK {
		t.Fatalf("commands --json: exit %d: %s", code, out)
	}
	var resp lab.Response
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(resp.Commands) != 2 || resp.Dropped != 0 {
		t.Fatalf("json: %+v", resp)
	}
	r := resp.Commands[1]
	if r.Seq != 2 || r.Manager != "ha b" || r.Epoch != 4 || r.SystemEpoch != 5 || r.Outcome != emu.OutcomeFenced ||
		r.Accepted() || r.At.Before(resp.Commands[0].At) || r.At.IsZero() {
		t.Fatalf("json record %+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"run"},
		{"fault", "paths"},
		{"fault", "paths", "X", "sideways"},
		{"fault", "manager", "X", "down", "--endpoint", "7"},
		{"workload"},
		{"check", "extra"},
		{"commands", "extra"},
		{"commands", "--after", "x"},
	} {
		if code, out := lab1(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, out)
		}
	}
	code, out := lab1(t, "status", "--control", filepath.Join(t.TempDir(), "none.sock"))
	if code != exitFail || !strings.Contains(out, "is lockstep-lab run going") {
		t.Errorf("status without a lab: %d %s", code, out)
	}
}

// buildDaemon builds lockstepd and lockstepctl into a temporary folder.
func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	out, err := exec.Command("go", "build", "-o", bin, "github.com/lockstep-io/lockstep/cmd/lockstepd",
		"github.com/lockstep-io/lockstep/cmd/lockstepctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// needDBus skips without dbus-daemon, except in CI where it is a failure
// (make test installs it).
func needDBus(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dbus-daemon missing (Debian package dbus-daemon; make deps installs it)")
		}
		t.Skip("dbus-daemon missing; make deps installs it")
	}
}

// TestDaemonEndToEnd: the lab over TLS, lockstepd on a private D-Bus,
// lockstepctl defining storage and a session, the heartbeat on, a
// scheduled task run once (suspend and resync), S1 injected: the session ends Suspended and recoverable, and the oracle
// agrees that the secondary image is consistent.
func TestDaemonEndToEnd(t *testing.T) {
	needDBus(t)
	bin := buildDaemon(t)
	var out bytes.Buffer
	consistent, err := runDaemonDemo(context.Background(), &out, bin)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	story := out.String()
	if !consistent {
		t.Fatalf("inconsistent image\n%s", story)
	}
	for _, want := range []string{"Suspended (Partial)", "LS2101W", "LS2102W", "recoverable         true",
		"lockstepctl task run nightly-pit", "success      3 step(s) done"} {
		if !strings.Contains(story, want) {
			t.Errorf("the story lacks %q\n%s", want, story)
		}
	}
}
