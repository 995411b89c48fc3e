package adminsched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon"
	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/privbus"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// Manager is the name lockstepd gives the storage systems (server.name):
// the lab's manager-link faults name it.
const Manager = "lockstepd"

// world is one schedule's lab and lockstepd, in this process: the lab
// serves the emulated systems on loopback TLS, lockstepd reaches them
// through its direct drivers and serves its admin API on a private
// dbus-daemon, and the schedule drives it through the same D-Bus client
// lockstepctl uses. Both run on one scaled clock.
type world struct {
	clk    *clock.Scaled
	lab    *lab.Server
	fab    *emu.Fabric
	dir    string
	bus    string
	client *client.Client
	conn   *dbus.Conn
	logf   *os.File
	stops  []func()

	mu        sync.Mutex
	timings   string // the timings of the configuration file: what a start reads
	srv       *daemon.Server
	srvCancel context.CancelFunc
	srvDone   chan error
}

// copyPerBlock makes a resync of a few dozen blocks last a second or
// so of storage time: long enough for faults to land while pairs are
// copy-pending.
const copyPerBlock = 20 * time.Millisecond

func startWorld(ctx context.Context, dir string, plan *Plan, speed float64) (w *world, err error) {
	w = &world{clk: clock.NewScaled(speed), dir: dir, timings: plan.Timings}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	topo := &topology.Topology{}
	cfg := &lab.Config{Speed: speed, CopyPerBlock: copyPerBlock, Topology: topo}
	for i := range Primaries {
		var scs [2]emu.SystemConfig
		for k, serial := range []hal.Serial{topology.PrimarySerial(i), topology.SecondarySerial(i)} {
			sc := emu.SystemConfig{Serial: serial}
			for _, l := range LSSs {
				sc.LSSs = append(sc.LSSs, emu.LSSConfig{LSS: l.ID, Type: l.Type, Volumes: Volumes,
					CGTimeout: plan.CG[hal.LSSRef{Serial: serial, LSS: l.ID}]})
			}
			scs[k] = sc
			topo.Systems = append(topo.Systems, sc)
			cfg.Systems = append(cfg.Systems, lab.System{SystemConfig: sc, User: "lockstep",
				Password: "pw-" + string(serial), Endpoints: [2]string{"127.0.0.1:0", "127.0.0.1:0"}})
			if err := os.WriteFile(w.passwordFile(serial), []byte("pw-"+string(serial)+"\n"), 0o600); err != nil {
				return nil, err
			}
		}
		if problems := topo.AddMirror(scs[0], scs[1]); len(problems) > 0 {
			return nil, fmt.Errorf("adminsched: lab: %v", problems)
		}
	}
	if w.logf, err = os.Create(filepath.Join(dir, "lockstepd.log")); err != nil {
		return nil, err
	}
	labCtx, cancel := context.WithCancel(context.Background())
	w.lab, err = lab.Start(labCtx, cfg, lab.Options{Clock: w.clk, ControlSocket: filepath.Join(dir, "lab.sock"),
		Logger: slog.New(slog.NewTextHandler(w.logf, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		cancel()
		return nil, err
	}
	w.stops = append(w.stops, func() { cancel(); w.lab.Wait() })
	w.fab = w.lab.Fabric()
	addr, stop, err := privbus.Start(dir)
	if err != nil {
		return nil, err
	}
	w.bus = addr
	w.stops = append(w.stops, stop)
	if err := w.startDaemon(ctx); err != nil {
		return nil, err
	}
	if w.conn, err = client.Connect(addr); err != nil {
		return nil, err
	}
	w.client = client.New(w.conn)
	return w, w.waitAnswers(ctx)
}

func (w *world) passwordFile(serial hal.Serial) string {
	return filepath.Join(w.dir, "pw-"+string(serial))
}

// configText is lockstepd's configuration with the named timings.
func (w *world) configText(timings string) string {
	t := Timings[timings]
	return fmt.Sprintf(`[server]
name = %q
state_dir = %q

[heartbeat]
interval = %q
detection_window = %q
request_timeout = %q
poll_interval = %q
retry_interval = %q

[control]
bus = %q

[storage]
ca_file = %q
`, Manager, filepath.Join(w.dir, "state"), t.Interval, t.DetectionWindow, t.RequestTimeout, t.PollInterval,
		t.RetryInterval, w.bus, filepath.Join(w.dir, "storage-ca.pem"))
}

func (w *world) config(timings string) (*config.Config, error) {
	return config.Parse(w.configText(timings))
}

// startDaemon runs lockstepd on its journal (state_dir), as systemd
// would after a stop.
func (w *world) startDaemon(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	cfg, err := w.config(w.timings)
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.Storage.CAFile, w.lab.CAPEM(), 0o644); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(w.logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := daemon.New(daemon.Options{Config: cfg, Logger: log, Clock: w.clk,
		Notifier: quietNotifier{}, Drivers: daemon.Drivers{hal.Direct: direct.Factory}})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	w.srv, w.srvCancel, w.srvDone = srv, cancel, done
	return nil
}

// stopDaemon stops lockstepd as SIGTERM does and waits until it is gone.
func (w *world) stopDaemon() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.srv == nil {
		return
	}
	w.srvCancel()
	<-w.srvDone
	w.srv = nil
}

// running reports whether lockstepd runs.
func (w *world) running() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.srv != nil
}

// waitAnswers waits until lockstepd's admin API answers (it owns its
// bus name once its tasks serve).
func (w *world) waitAnswers(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := w.client.Status(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("adminsched: lockstepd does not answer: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// reload gives lockstepd a configuration with other timings, as SIGHUP
// does after the file changed. lockstepd may refuse them (the old ones
// stay): what it runs with is read back from heartbeat show.
func (w *world) reload(ctx context.Context, timings string) error {
	cfg, err := w.config(timings)
	if err != nil {
		return err
	}
	w.mu.Lock()
	srv := w.srv
	w.timings = timings // the file on disk: what a restart reads
	w.mu.Unlock()
	if srv == nil {
		return errors.New("lockstepd is not running")
	}
	srv.Notify("RELOADING=1")
	srv.Reload(cfg)
	srv.Notify("READY=1")
	hb, err := w.client.HeartbeatShow(ctx)
	if err != nil {
		return err
	}
	if time.Duration(hb.Interval) != Timings[timings].Interval {
		return fmt.Errorf("%w: lockstepd keeps interval %v", errReloadRefused, time.Duration(hb.Interval))
	}
	return nil
}

// errReloadRefused: lockstepd kept its old timings. The file keeps the
// new ones, and a restart starts with them.
var errReloadRefused = errors.New("reload refused")

func (w *world) close() {
	w.stopDaemon()
	if w.conn != nil {
		w.conn.Close()
	}
	for i := len(w.stops) - 1; i >= 0; i-- {
		w.stops[i]()
	}
	if w.logf != nil {
		w.logf.Close()
	}
}

// quietNotifier drops what lockstepd tells systemd.
type quietNotifier struct{}

func (quietNotifier) Notify(string) error { return nil }
