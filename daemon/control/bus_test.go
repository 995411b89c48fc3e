package control

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
)

// The bus tests run a private dbus-daemon configured like Debian's system
// bus (system.conf: deny own and method calls by default, allow receive)
// that includes our policy file, systemd/org.lockstep.Manager1.conf, as
// shipped. The test process is root: root may own the name and call
// everything by that policy. The unprivileged client is the test binary
// itself, re-executed as uid/gid 65534 (nobody/nogroup).

// policyFile is the shipped policy, relative to this package.
const policyFile = "../../systemd/org.lockstep.Manager1.conf"

// requirePeer skips a test whose peer (a binary, root) is missing, or
// fails it in CI, where a missing peer must never pass silently.
func requirePeer(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: a missing test peer is a failure; `make deps` installs it)", args...)
	}
	t.Skipf(format, args...)
}

// worldDir is a temporary directory that uid 65534 can enter and read.
func worldDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lockstep-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// busConfig is a system bus configuration after Debian's system.conf,
// without the service helper, pid file, syslog or user switch, listening
// in dir and including policy.
func busConfig(dir, policy string) string {
	return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=` + filepath.Join(dir, "system_bus_socket") + `</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <include>` + policy + `</include>
</busconfig>
`
}

// needBus returns the path of dbus-daemon, or skips (fails in CI) if it
// is missing or the test does not run as root.
func needBus(t *testing.T) string {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		requirePeer(t, "dbus-daemon not found (Debian package dbus-daemon): %v", err)
	}
	if os.Geteuid() != 0 {
		requirePeer(t, "the bus tests need root: they own %s as root and run a client as uid %d", api.BusName, helperUID)
	}
	return daemon
}

// startBus runs a private system-style dbus-daemon with the given policy
// file included and returns its address. It needs dbus-daemon and root.
func startBus(t *testing.T, policy string) (addr string) {
	t.Helper()
	daemon := needBus(t)
	policy, err := filepath.Abs(policy)
	if err != nil {
		t.Fatal(err)
	}
	dir := worldDir(t)
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(busConfig(dir, policy)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait() // a second Wait after a failed start only errors
	})
	// The daemon prints its address once it listens.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Wait() // so that stderr is complete
		t.Fatalf("dbus-daemon did not start: %v; stderr:\n%s", err, stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	return strings.TrimSpace(line)
}

// connect opens a connection to addr, closed at the end of the test.
func connect(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := client.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// env is a bus with a server on it (as root) and a root client.
type env struct {
	addr    string
	server  *Server
	backend *fakeBackend
	client  *client.Client
	conn    *dbus.Conn // the client's connection
}

// newEnv starts a bus with the shipped policy, serves a fake backend on it
// and connects a client, all as root.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvPolicy(t, policyFile, Options{})
}

func newEnvPolicy(t *testing.T, policy string, opts Options) *env {
	t.Helper()
	e := &env{addr: startBus(t, policy), backend: &fakeBackend{}}
	srv, err := Serve(t.Context(), connect(t, e.addr), e.backend, opts)
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	e.server = srv
	e.conn = connect(t, e.addr)
	e.client = client.New(e.conn)
	return e
}

// helperEnv names the variables of the unprivileged helper process.
const (
	helperEnv     = "LOCKSTEP_CONTROL_HELPER"
	helperBusEnv  = "LOCKSTEP_CONTROL_HELPER_BUS"
	helperUID     = 65534
	helperGID     = 65534
	helperTestRun = "^TestUnprivilegedHelper$"
)

// helperBinary copies the running test binary where uid 65534 can read
// and execute it (go test builds it in a directory only root can enter).
func helperBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(worldDir(t), "control.test")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// probes is what the helper reported: probe name -> outcome ("ok", "ok
// VALUE", or a D-Bus error name).
type probes map[string]string

// runHelper runs TestUnprivilegedHelper as uid/gid 65534 against addr.
// When the helper says it follows events, onFollowing runs (the parent
// emits then). It returns the probes the helper reported.
func runHelper(t *testing.T, bin, addr string, onFollowing func()) probes {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run="+helperTestRun, "-test.count=1", "-test.v")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = []string{helperEnv + "=1", helperBusEnv + "=" + addr, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
		Uid: helperUID, Gid: helperGID, Groups: []uint32{helperGID},
	}}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper as uid %d: %v", helperUID, err)
	}
	got := probes{}
	var transcript strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(&transcript, line)
		rest, ok := strings.CutPrefix(line, "PROBE ")
		if !ok {
			continue
		}
		name, outcome, _ := strings.Cut(rest, " ")
		got[name] = outcome
		if name == "following" && onFollowing != nil {
			onFollowing()
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper failed: %v\nstdout:\n%s\nstderr:\n%s", err, transcript.String(), stderr.String())
	}
	if got["done"] != "ok" {
		t.Fatalf("helper did not run to its end (skipped?)\nstdout:\n%s\nstderr:\n%s", transcript.String(), stderr.String())
	}
	return got
}
