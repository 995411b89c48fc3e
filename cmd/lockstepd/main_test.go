package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/internal/privbus"
	"github.com/lockstep-io/lockstep/persist"
)

func TestCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(good, []byte("[server]\nname = \"a\"\nstate_dir = \"/tmp/x\"\n"), 0o644)
	os.WriteFile(bad, []byte("[server]\nName = \"a\"\n[heartbeat]\ninterval = 5\n"), 0o644)
	var out, errb strings.Builder
	if code := run([]string{"--check-config", good}, &out, &errb); code != 0 {
		t.Fatalf("good file: exit %d %s", code, errb.String())
	}
	errb.Reset()
	code := run([]string{"--check-config", bad}, &out, &errb)
	if code != exitConfigRefused || !strings.Contains(errb.String(), "Name") || !strings.Contains(errb.String(), "interval") {
		t.Fatalf("bad file: exit %d, %q: want %d and both problems", code, errb.String(), exitConfigRefused)
	}
}

// --help prints the usage and every flag on stdout and exits 0 (the
// packaging program builds lockstepd(8) from it); an unknown flag is a
// usage error.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"help", []string{"--help"}, 0, []string{"usage: lockstepd [--config FILE]", "lockstepd --check-config [FILE]",
			"-bus BUS", "-check-config", "-config FILE", "-version"}},
		{"h", []string{"-h"}, 0, []string{"usage: lockstepd"}},
		{"unknown flag", []string{"--frob"}, 2, nil},
	} {
		var out, errb strings.Builder
		code := run(tc.args, &out, &errb)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tc.name, code, tc.code, errb.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: stdout lacks %q:\n%s", tc.name, w, out.String())
			}
		}
	}
}

// TestSystemdProtocol runs the real binary with a unixgram socket standing
// in for systemd: READY once replayed, a STATUS line, RELOADING then READY
// around SIGHUP (also when the new file is invalid: the old one stays),
// STOPPING on SIGTERM, exit 0.
func TestSystemdProtocol(t *testing.T) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dbus-daemon missing (make deps installs it)")
		}
		t.Skip("dbus-daemon missing")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "lockstepd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr, stopBus, err := privbus.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer stopBus()
	sockPath := filepath.Join(dir, "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	conf := filepath.Join(dir, "lockstep.toml")
	text := "[server]\nname = \"t\"\nstate_dir = \"" + filepath.Join(dir, "state") + "\"\n[control]\nbus = \"" + addr +
		"\"\n[log]\nformat = \"text\"\n"
	os.WriteFile(conf, []byte(text), 0o644)
	cmd := exec.Command(bin, "--config", conf)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath)
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	next := func() string {
		buf := make([]byte, 4096)
		sock.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v\nlogs:\n%s", err, logs.String())
		}
		return string(buf[:n])
	}
	expect := func(prefix string) {
		t.Helper()
		for range 10 {
			if got := next(); strings.HasPrefix(got, prefix) {
				return
			}
		}
		t.Fatalf("no %s", prefix)
	}
	expect("READY=1")
	expect("STATUS=role standalone")
	cmd.Process.Signal(syscall.SIGHUP)
	expect("RELOADING=1")
	expect("READY=1")
	os.WriteFile(conf, []byte(text+"[heartbeat]\ninterval = 5\n"), 0o644) // invalid
	cmd.Process.Signal(syscall.SIGHUP)
	expect("RELOADING=1")
	expect("READY=1")
	cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("lockstepd did not stop on SIGTERM")
	}
	if !strings.Contains(logs.String(), "LS6002E") {
		t.Errorf("the refused configuration was not logged with its message id:\n%s", logs.String())
	}
}

// TestCheckConfigNeedsTheStorageCA: once the state holds a storage
// system, --check-config refuses a file without [storage] ca_file and
// names the key, as the start would.
func TestCheckConfigNeedsTheStorageCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	store, err := state.Open(stateDir, persist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ProposeRegistry(context.Background(), registry.Record{Version: registry.RecordVersion,
		Kind: registry.KindStorageAdded, Serial: "LAB.2107-75P0001", At: time.Now(),
		Connection: &registry.Connection{Name: "direct", Kind: "direct", Addresses: []string{"127.0.0.1:1"}}}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	conf := filepath.Join(dir, "lockstep.toml")
	os.WriteFile(conf, []byte("[server]\nname = \"a\"\nstate_dir = \""+stateDir+"\"\n"), 0o644)
	var out, errb strings.Builder
	if code := run([]string{"--check-config", conf}, &out, &errb); code != exitConfigRefused || !strings.Contains(errb.String(), "storage.ca_file") {
		t.Fatalf("exit %d, %q: want %d and the key named", code, errb.String(), exitConfigRefused)
	}
}
