package daemon

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/internal/privbus"
)

// TestRefusedStorageAddChangesNothing: issue 12 §3. A storage system
// added with an address that cannot be dialled, or with credentials the
// daemon cannot use, is refused with a clear error before anything is
// journaled: the journal's last index does not move.
func TestRefusedStorageAddChangesNothing(t *testing.T) {
	c := startServerWith(t, storageCA(t))
	ctx := context.Background()
	dir := t.TempDir()
	pw := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("pw-Zq81x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, open := pw("good.pw", 0o600), pw("open.pw", 0o644)
	conn := func(addrs []string, user, file string) api.StorageSpec {
		return api.StorageSpec{Serial: "LAB.2107-75P0001", Connections: []api.ConnectionSpec{
			{Name: "direct", Kind: api.Direct, Addresses: addrs, User: user, PasswordFile: file}}}
	}
	last := func() uint64 {
		t.Helper()
		doc, err := c.HAStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return doc.LastIndex
	}
	tests := []struct {
		name string
		spec api.StorageSpec
		kind error
		msg  string
	}{
		{"user without password file", conn([]string{"127.0.0.1:1750"}, "admin", ""), api.ErrInvalid, "needs --password-file"},
		{"relative password file", conn([]string{"127.0.0.1:1750"}, "admin", "good.pw"), api.ErrInvalid, "absolute path"},
		{"missing password file", conn([]string{"127.0.0.1:1750"}, "admin", filepath.Join(dir, "none.pw")), api.ErrRefused, "no such file"},
		{"password file readable by others", conn([]string{"127.0.0.1:1750"}, "admin", open), api.ErrRefused, "mode 0644"},
		{"password file is a directory", conn([]string{"127.0.0.1:1750"}, "admin", dir), api.ErrRefused, "directory"},
	}
	for _, port := range []string{"99999", "65536", "-1", "0", "1e9", "18446744073709551617"} {
		tests = append(tests, struct {
			name string
			spec api.StorageSpec
			kind error
			msg  string
		}{"port " + port, conn([]string{"127.0.0.1:1751", "127.0.0.1:" + port}, "", ""), api.ErrInvalid, "port"})
	}
	before := last()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.StorageAdd(ctx, tc.spec)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("storage add: %v, want %v saying %q", err, tc.kind, tc.msg)
			}
			if strings.Contains(err.Error(), "Zq81x") {
				t.Fatalf("the error shows the password: %v", err)
			}
			if got := last(); got != before {
				t.Fatalf("the journal moved from %d to %d on a refused storage add", before, got)
			}
			if list, err := c.StorageList(ctx); err != nil || len(list) != 0 {
				t.Fatalf("storage list after a refusal: %v, %v", list, err)
			}
		})
	}
	if _, err := c.StorageAdd(ctx, conn([]string{"127.0.0.1:1751", "127.0.0.1:65535"}, "admin", good)); err != nil {
		t.Fatalf("a good storage add: %v", err)
	}
	if got := last(); got != before+1 {
		t.Fatalf("a good storage add moved the journal from %d to %d, want one record", before, got)
	}
}

// TestAdminChangesNeedRootOrTheGroup: docs/architecture.md (Trust), issue 13 §2. On a
// bus whose policy lets anyone call anything, the real lockstepctl run
// as uid 65534 (setpriv) may read but not change; a member of the
// configured admin group may change.
func TestAdminChangesNeedRootOrTheGroup(t *testing.T) {
	need := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format+" (CI=true: a missing test peer is a failure)", args...)
		}
		t.Skipf(format, args...)
	}
	if os.Geteuid() != 0 {
		need("needs root to run lockstepctl as uid 65534")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		need("setpriv missing (Debian package util-linux): %v", err)
	}
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		need("dbus-daemon missing (make deps installs it)")
	}
	nogroup, err := user.LookupGroupId("65534")
	if err != nil {
		t.Fatalf("group 65534: %v", err)
	}
	// A directory uid 65534 can enter: the bus socket and lockstepctl.
	world, err := os.MkdirTemp("", "lockstep-admin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(world) })
	if err := os.Chmod(world, 0o755); err != nil {
		t.Fatal(err)
	}
	ctlBin := filepath.Join(world, "lockstepctl")
	if out, err := exec.Command("go", "build", "-o", ctlBin, "../cmd/lockstepctl").CombinedOutput(); err != nil {
		t.Fatalf("go build lockstepctl: %v\n%s", err, out)
	}
	asNobody := func(t *testing.T, addr string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--",
			ctlBin, "--bus", addr}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &ee):
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("run lockstepctl as uid 65534: %v\n%s", err, out)
		return 0, ""
	}
	for _, tc := range []struct {
		name   string
		group  string
		change bool
	}{
		{"default group lockstep", "", false},
		{"configured group " + nogroup.Name, nogroup.Name, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			busDir := filepath.Join(world, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.Mkdir(busDir, 0o755); err != nil {
				t.Fatal(err)
			}
			addr, stop, err := privbus.StartAnyUser(busDir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(stop)
			c := startServerOn(t, t.TempDir(), addr, "", func(cfg *config.Config) {
				if tc.group != "" {
					cfg.Control.AdminGroup = tc.group
				}
			})
			ctx := context.Background()
			before, err := c.HAStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if code, out := asNobody(t, addr, "status"); code != 0 || !strings.Contains(out, "role") {
				t.Fatalf("status as uid 65534: exit %d\n%s", code, out)
			}
			code, out := asNobody(t, addr, "heartbeat", "on")
			hb, err := c.HeartbeatShow(ctx)
			if err != nil {
				t.Fatal(err)
			}
			after, err := c.HAStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.change {
				if code != 0 || !hb.Enabled {
					t.Fatalf("heartbeat on by a member of %s: exit %d, heartbeat %v\n%s", tc.group, code, hb.Enabled, out)
				}
				return
			}
			if code != 1 || !strings.Contains(out, "access denied") || !strings.Contains(out, "uid 65534") {
				t.Fatalf("heartbeat on as uid 65534: exit %d\n%s\nwant exit 1, access denied naming the uid", code, out)
			}
			if hb.Enabled || after.LastIndex != before.LastIndex {
				t.Fatalf("a refused change changed something: heartbeat %v, last index %d -> %d", hb.Enabled, before.LastIndex, after.LastIndex)
			}
		})
	}
}
