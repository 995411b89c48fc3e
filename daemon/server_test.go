package daemon

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/privbus"
)

// startServer runs a lockstepd in-process on a private bus and returns a
// client of its admin API.
func startServer(t *testing.T) *client.Client { return startServerWith(t, "") }

// startServerWith is startServer with more configuration (TOML tables).
func startServerWith(t *testing.T, extra string) *client.Client {
	t.Helper()
	_, c := newServer(t, extra, nil)
	return c
}

// newServer is startServerWith that also returns the server; setup, if
// not nil, runs after New and before Run.
func newServer(t *testing.T, extra string, setup func(*Server)) (*Server, *client.Client) {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dbus-daemon missing (make deps installs it)")
		}
		t.Skip("dbus-daemon missing")
	}
	dir := t.TempDir()
	addr, stop, err := privbus.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return serverOn(t, dir, addr, extra, setup)
}

// startServerOn runs a lockstepd in-process with its state in dir, on
// the bus at addr.
// mods change the parsed configuration.
func startServerOn(t *testing.T, dir, addr, extra string, mods ...func(*config.Config)) *client.Client {
	t.Helper()
	_, c := serverOn(t, dir, addr, extra, nil, mods...)
	return c
}

// serverOn is startServerOn that also returns the server; setup, if not
// nil, runs after New and before Run.
func serverOn(t *testing.T, dir, addr, extra string, setup func(*Server), mods ...func(*config.Config)) (*Server, *client.Client) {
	t.Helper()
	cfg, err := config.Parse("[server]\nname = \"t\"\nstate_dir = \"" + filepath.Join(dir, "state") +
		"\"\n" + extra + "\n[control]\nbus = \"" + addr + "\"\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		m(cfg)
	}
	srv, err := New(Options{Config: cfg, Notifier: &countingNotifier{}, Drivers: testDrivers()})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := client.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := client.New(conn)
	for i := 0; ; i++ {
		if _, err := c.Status(context.Background()); err == nil {
			return srv, c
		}
		if i == 100 {
			t.Fatal("lockstepd did not answer")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLastIPConnectionRemovalOfAnUnusedSystem: with the heartbeat on, the
// last TCP/IP connection of a system no session uses goes without
// --force (nothing is suspended), with the heartbeat's warning that the
// system is now reachable only through z/OS. One that sessions use is
// refused: TestForcedRemovalOfTheLastTCPIPConnectionSuspendsAtOnce.
func TestLastIPConnectionRemovalOfAnUnusedSystem(t *testing.T) {
	c := startServerWith(t, storageCA(t))
	ctx := context.Background()
	spec := api.StorageSpec{Serial: "LAB.2107-75P0001", Connections: []api.ConnectionSpec{
		{Name: "direct", Kind: api.Direct, Addresses: []string{"127.0.0.1:1", "127.0.0.1:2"}},
	}}
	if _, err := c.StorageAdd(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ZOSAdd(ctx, api.ZOSSpec{Name: "plex1", Addresses: []string{"127.0.0.1:3"}, Sysplex: "PLEX1",
		Systems: []hal.Serial{"LAB.2107-75P0001"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.HeartbeatSet(ctx, true); err != nil {
		t.Fatal(err)
	}
	ws, err := c.StorageRemove(ctx, "LAB.2107-75P0001", "direct", false)
	if err != nil || len(ws) != 1 || !strings.Contains(ws[0], "only through z/OS") {
		t.Fatalf("removing the last TCP/IP connection of an unused system: %v, warnings %q", err, ws)
	}
	hb, err := c.HeartbeatShow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hb.Warnings) != 1 || !strings.Contains(hb.Warnings[0], "only through z/OS") {
		t.Fatalf("heartbeat warnings %v", hb.Warnings)
	}
	// Switching it on again succeeds, with the warning.
	if _, err := c.HeartbeatSet(ctx, false); err != nil {
		t.Fatal(err)
	}
	ws, err = c.HeartbeatSet(ctx, true)
	if err != nil || len(ws) != 1 {
		t.Fatalf("heartbeat on with a z/OS-only system: %v, warnings %v", err, ws)
	}
}

// TestHAVerbsWithoutHA: the basic edition has no HA, and a full edition
// without the HA link's TLS files cannot pair; both say why, and the
// server keeps acting as a standalone one.
func TestHAVerbsWithoutHA(t *testing.T) {
	for _, tc := range []struct{ name, extra, want string }{
		{"basic edition", "edition = \"basic\"", "basic edition"},
		{"no TLS", "", "mutual TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startServerWith(t, tc.extra)
			ctx := context.Background()
			err := c.HASetStandby(ctx, "tcp://127.0.0.1:9730", "b")
			if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ha set-standby: %v, want unavailable (%s)", err, tc.want)
			}
			if _, err := c.HATakeover(ctx); !errors.Is(err, api.ErrUnavailable) {
				t.Fatalf("ha takeover: %v", err)
			}
			doc, err := c.HAStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if doc.Role != "standalone" || doc.State != "Standalone" || !strings.Contains(doc.Unavailable, tc.want) {
				t.Fatalf("ha status %+v", doc)
			}
			if err := eventually(func() bool { d, _ := c.HAStatus(ctx); return d.Acting }); err != nil {
				t.Fatal("a standalone server does not act")
			}
		})
	}
}

// eventually polls cond for up to 5 s.
func eventually(cond func() bool) error {
	for i := 0; i < 100; i++ {
		if cond() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("condition not met")
}

// TestBackupRestoreStandalone: a standalone server restores a backup in
// place (through the HA loop, as a standby does); a missing backup and a
// name that is a path are told apart from a refusal.
func TestBackupRestoreStandalone(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	if err := eventually(func() bool { d, _ := c.HAStatus(ctx); return d.Acting }); err != nil {
		t.Fatal("a standalone server does not act")
	}
	b, err := c.BackupCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SessionCreate(ctx, "after-the-backup", api.MetroMirrorFailoverFailback, "", api.HoldIO); err != nil {
		t.Fatal(err)
	}
	if err := c.BackupRestore(ctx, b.Name); err != nil {
		t.Fatal(err)
	}
	if list, err := c.SessionList(ctx); err != nil || len(list) != 0 {
		t.Fatalf("after the restore: sessions %v, %v; want none", list, err)
	}
	if err := c.BackupRestore(ctx, "lockstep-none.zip"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("a missing backup: %v, want not found", err)
	}
	if err := c.BackupRestore(ctx, "../state/x.zip"); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("a path as the name: %v, want invalid", err)
	}
}

// testDrivers are the drivers lockstepd links, for the tests that
// connect to a lab.
func testDrivers() Drivers { return Drivers{hal.Direct: direct.Factory} }
