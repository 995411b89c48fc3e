package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/internal/privbus"
)

func ctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String() + errb.String()
}

func TestUsageAndUnreachableDaemon(t *testing.T) {
	t.Parallel()
	nobus := "unix:path=" + filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "usage: lockstepctl"},
		{[]string{"--nonsense"}, exitUsage, "usage"},
		{[]string{"--bus", nobus, "status"}, exitFail, "cannot reach the"},
	} {
		code, out := ctl(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", tc.args, code, out, tc.code, tc.want)
		}
	}
}

// TestStorageAddCheckedBeforeTheCall: lockstepctl refuses an address or
// credentials that cannot work itself (exit 2, saying why), without a
// round trip: here no lockstepd owns the bus name, so a call would fail
// otherwise. The daemon checks again (daemon.TestRefusedStorageAddChangesNothing).
func TestStorageAddCheckedBeforeTheCall(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dbus-daemon missing (make deps installs it)")
		}
		t.Skip("dbus-daemon missing")
	}
	addr, stop, err := privbus.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "127.0.0.1:99999"}, "port 99999 is out of range"},
		{[]string{"--addr", "127.0.0.1:1750,127.0.0.1:1e9"}, `port "1e9" is not a decimal number`},
		{[]string{"--addr", "127.0.0.1:-1"}, `port "-1"`},
		{[]string{"--addr", "127.0.0.1:1750", "--user", "admin"}, "needs --password-file"},
		{[]string{"--addr", "127.0.0.1:1750", "--user", "admin", "--password-file", "pw"}, "absolute path"},
	} {
		args := append([]string{"--bus", addr, "storage", "add", "LAB.2107-75P0001"}, tc.args...)
		code, out := ctl(t, args...)
		if code != exitUsage || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", tc.args, code, out, exitUsage, tc.want)
		}
	}
}
