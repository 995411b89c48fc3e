package daemon

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/internal/privbus"
)

// propsWatch reads the admin API's D-Bus properties of a lockstepd and
// waits for them to change: it subscribes to PropertiesChanged before its
// first read, so that no change between a read and the wait is missed,
// and it waits for the signal, not for time.
type propsWatch struct {
	c       *client.Client
	signals chan *dbus.Signal
}

func watchProps(t *testing.T, addr string) *propsWatch {
	t.Helper()
	conn, err := client.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.AddMatchSignal(dbus.WithMatchSender(api.BusName), dbus.WithMatchObjectPath(api.ObjectPath),
		dbus.WithMatchInterface("org.freedesktop.DBus.Properties"), dbus.WithMatchMember("PropertiesChanged")); err != nil {
		t.Fatal(err)
	}
	// And to the daemon taking its name, for a watch begun before.
	if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, api.BusName)); err != nil {
		t.Fatal(err)
	}
	w := &propsWatch{c: client.New(conn), signals: make(chan *dbus.Signal, 64)}
	conn.Signal(w.signals)
	return w
}

// await returns the properties once ok accepts them (reading them again
// after each PropertiesChanged), and fails the test after 10 s without.
func (w *propsWatch) await(t *testing.T, what string, ok func(api.Properties) bool) api.Properties {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var p api.Properties
	for {
		var err error
		p, err = w.c.Properties(ctx)
		switch {
		case errors.Is(err, api.ErrUnavailable): // not on the bus yet
		case err != nil:
			t.Fatalf("%s: properties: %v", what, err)
		case ok(p):
			return p
		}
		select {
		case <-w.signals:
		case <-ctx.Done():
			t.Fatalf("%s: the properties stay %+v", what, p)
		}
	}
}

// TestPropertiesFollowTheDaemon: the documented D-Bus properties (Role,
// HAState, Heartbeat, Epoch, Version) say what lockstepctl status says,
// from the start and after a change, with PropertiesChanged announcing
// each change; and the version the daemon reports, there and in the
// status document, is the one main gave it (Options.Version).
func TestPropertiesFollowTheDaemon(t *testing.T) {
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
	cfg, err := config.Parse("[server]\nname = \"t\"\nstate_dir = \"" + filepath.Join(dir, "state") +
		"\"\n[control]\nbus = \"" + addr + "\"\n")
	if err != nil {
		t.Fatal(err)
	}
	const version = "9.9.9-properties-test"
	srv, err := New(Options{Config: cfg, Notifier: &countingNotifier{}, Version: version, Drivers: testDrivers()})
	if err != nil {
		t.Fatal(err)
	}
	w := watchProps(t, addr) // before the daemon owns its name: nothing is missed
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// At the start: what status says.
	p := w.await(t, "at the start", func(p api.Properties) bool { return p.Role != "unknown" })
	st, err := w.c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := api.Properties{Role: st.Role, HAState: st.HAState, Heartbeat: st.Heartbeat, Epoch: st.Epoch, Version: version}
	if p != want || st.Version != version {
		t.Fatalf("properties %+v, status version %q; want %+v (what status says, the version given)", p, st.Version, want)
	}
	if p.Role != "standalone" || p.HAState != "Standalone" || p.Heartbeat {
		t.Fatalf("a new server without a partner: %+v, want standalone, heartbeat off", p)
	}

	// The heartbeat switch, once the server acts.
	if err := eventually(func() bool { d, _ := w.c.HAStatus(context.Background()); return d.Acting }); err != nil {
		t.Fatal("the standalone server does not act")
	}
	if _, err := w.c.HeartbeatSet(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	w.await(t, "heartbeat on", func(p api.Properties) bool { return p.Heartbeat })
	if _, err := w.c.HeartbeatSet(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	w.await(t, "heartbeat off", func(p api.Properties) bool { return !p.Heartbeat })
}
