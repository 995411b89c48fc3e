package daemon

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/daemon/firewall"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/daemon/transitions"
	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/secretfile"
	"github.com/lockstep-io/lockstep/internal/version"
	"github.com/lockstep-io/lockstep/persist"
)

// Options are what main hands the server.
type Options struct {
	Config   *config.Config
	Bus      *dbus.Conn // nil: connect to the config's bus
	Notifier Notifier   // nil: SystemdNotifier
	Logger   *slog.Logger
	Level    *slog.LevelVar // changed on reload
	Clock    clock.Clock
	// Version is lockstepd's version as main knows it (its -ldflags -X),
	// which the status document and the Version property report ("":
	// internal/version's).
	Version string
}

// Server is one lockstepd.
type Server struct {
	opt   Options
	cfg   atomic.Pointer[config.Config]
	log   *slog.Logger
	clock clock.Clock
	store *state.Store
	ha    *haNode
	ctl   atomic.Pointer[control.Server] // set once the bus name is owned
	// early holds the events emitted before the admin API served (the
	// acting core's first reports race with the bus name), for it to
	// list once it does; earlyMu orders them with its start.
	earlyMu sync.Mutex
	early   []api.EventDoc
	snmp    *notify.SNMP
	bus     *dbus.Conn
	roots   *x509.CertPool              // [storage] ca_file; nil: no storage system is connected
	traps   *notify.StorageTrapListener // nil without [snmp] trap_listen
	// trapMu orders refreshTrapSources; trapKey is the connections the
	// listener's sources were last built from.
	trapMu  sync.Mutex
	trapKey *string

	mu      sync.Mutex
	drivers map[hal.Serial]*direct.System
	reach   reachability // why systems are not usable: the takeover readiness
	// track keeps what the NMS polls: last change and transitions.
	track *transitions.Tracker

	// runCtx is Run's context, the parent of every acting period.
	runCtx context.Context
	// duty is the current acting period (nil: this server does not act);
	// dutyMu orders its starts and stops, and lastDuties is the latest
	// period, which the next one waits for.
	duty       atomic.Pointer[duties]
	dutyMu     sync.Mutex
	lastDuties *duties
	// viewMu makes the server's view of itself one snapshot: the HA
	// state the loop committed (view), the period in duty, and whether
	// that period acts (its fence pass done, not superseded) change only
	// under it, and selfView reads them, with the time, under it.
	viewMu sync.Mutex
	view   ha.State
	// propsMu makes reading the view and setting the admin API's
	// properties one step (publishProperties), so that of two calls the
	// later one publishes the later view.
	propsMu sync.Mutex
	// idleBeat moves the watchdog's counter while no core runs: a
	// standby has no core loop that could wedge.
	idleBeat atomic.Uint64
}

// New opens the state directory, replays the journal and builds the
// parts; Run starts them.
func New(opt Options) (*Server, error) {
	if opt.Notifier == nil {
		opt.Notifier = SystemdNotifier{}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Version == "" {
		opt.Version = version.Version
	}
	s := &Server{opt: opt, log: opt.Logger, clock: clock.OrReal(opt.Clock), drivers: map[hal.Serial]*direct.System{}}
	s.track = transitions.New(s.clock)
	s.cfg.Store(opt.Config)
	var err error
	if s.roots, err = loadStorageCA(opt.Config); err != nil {
		return nil, err
	}
	if err := s.newTrapListener(); err != nil {
		return nil, err
	}
	store, err := state.Open(opt.Config.Server.StateDir, persist.Options{Clock: s.clock, Logger: s.log})
	if err != nil {
		return nil, err
	}
	s.store = store
	if n := len(s.registry().Serials()); n > 0 && s.roots == nil {
		store.Close()
		return nil, noCAError(n)
	}
	ctx := context.Background()
	if s.registry().Epoch() == 0 {
		if err := s.store.ProposeRegistry(ctx, registry.Record{Version: registry.RecordVersion,
			Kind: registry.KindEpochSet, Epoch: 1, At: s.clock.Now()}); err != nil {
			store.Close()
			return nil, err
		}
	}
	if s.ha, err = newHANode(s); err != nil {
		store.Close()
		return nil, err
	}
	if s.snmp, err = notify.NewSNMP(opt.Config.SNMP, opt.Config.Server.Name, func() string { return s.ha.state().Role.String() },
		s.clock, s.log); err != nil {
		store.Close()
		return nil, err
	}
	for _, serial := range s.registry().Serials() {
		if err := s.connect(serial); err != nil {
			s.log.Error("storage system not connected", "serial", serial, "err", err)
		}
	}
	s.refreshTrapSources()
	return s, nil
}

func (s *Server) registry() *registry.DB { return s.store.Registry() }

// Run serves until ctx ends: the freeze core, the engine's recorder, the
// admin API and the watchdog. READY=1 goes to systemd once all of them
// serve (the journal was replayed in New).
func (s *Server) Run(ctx context.Context) error {
	defer s.store.Close()
	defer s.closeDrivers()
	bus := s.opt.Bus
	if bus == nil {
		var err error
		if bus, err = client.Connect(s.cfg.Load().Control.String()); err != nil {
			return fmt.Errorf("daemon: control bus: %w", err)
		}
		defer bus.Close()
	}
	s.bus = bus
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.runCtx = ctx
	defer s.stopDuties()
	wd := &Watchdog{Notifier: s.opt.Notifier, Interval: WatchdogInterval(), Progress: s.progress, Logger: s.log}
	api := newTask("admin API", s.serveControl)
	tasks := []Task{
		newTask("snmp notifications", readyAtOnce(s.snmp.Run)),
		s.ha,
		api,
		newTask("watchdog", readyAtOnce(wd.Run)),
		newTask("journal health", readyAtOnce(journalWatch{store: s.store, clock: s.clock,
			report: s.reportJournal, after: api.Ready()}.run)),
	}
	if s.traps != nil {
		tasks = append(tasks, s.traps)
	}
	err := RunTasks(ctx, tasks, func() {
		notify.Log(s.log, notify.DaemonStarted, "lockstepd ready", "role", s.ha.state().Role.String(),
			"ha_state", s.ha.state().HAState(), "epoch", s.registry().Epoch(), "sessions", len(s.db().Sessions()))
		_ = s.opt.Notifier.Notify("READY=1")
		s.updateStatus()
	})
	_ = s.opt.Notifier.Notify("STOPPING=1")
	notify.Log(s.log, notify.DaemonStopping, "lockstepd stopping")
	return err
}

// progress is the watchdog's counter: the acting core's loop, which
// stops moving when the core is wedged; a server that does not act has no
// core loop, and its counter always moves.
func (s *Server) progress() uint64 {
	if d := s.duty.Load(); d != nil {
		return d.core.Progress()
	}
	return s.idleBeat.Add(1)
}

// db is the session state after the last durable record.
func (s *Server) db() *session.DB { return s.store.DB() }

// serveControl owns the bus name and serves the admin API; it is ready
// once the name is owned.
func (s *Server) serveControl(ctx context.Context, ready func()) error {
	ctl, err := control.Serve(ctx, s.bus, control.Tracked(s, s.track), control.Options{Logger: s.log, AdminGroup: s.cfg.Load().Control.AdminGroup,
		Properties: s.properties()})
	if err != nil {
		return err
	}
	s.earlyMu.Lock()
	s.ctl.Store(ctl)
	early := s.early
	s.early = nil
	s.earlyMu.Unlock()
	// A change between the properties given to Serve and the store above
	// found no server to tell.
	s.publishProperties()
	for _, ev := range early {
		_, _ = ctl.Emit(ev)
	}
	ready()
	<-ctx.Done()
	return ctl.Close()
}

// Reload applies a new configuration (SIGHUP): what may change at run
// time changes, the rest is logged as waiting for a restart. An invalid
// file is refused by main before it gets here.
func (s *Server) Reload(cfg *config.Config) {
	old := s.cfg.Load()
	if d := s.duty.Load(); d != nil {
		if err := d.core.SetTimings(context.Background(), cfg.Heartbeat); err != nil {
			notify.Log(s.log, notify.ConfigRefused, "new heartbeat timings refused; the old configuration stays", "err", err.Error())
			return
		}
	} else if err := cfg.Heartbeat.Validate(); err != nil {
		notify.Log(s.log, notify.ConfigRefused, "new heartbeat timings refused; the old configuration stays", "err", err.Error())
		return
	}
	if err := s.snmp.SetManagers(cfg.SNMP.Managers); err != nil {
		notify.Log(s.log, notify.ConfigRefused, "new SNMP managers refused; the old configuration stays", "err", err.Error())
		return
	}
	s.cfg.Store(cfg)
	if s.opt.Level != nil {
		s.opt.Level.Set(cfg.Log.Level)
	}
	if later := config.RestartRequired(old, cfg); len(later) > 0 {
		s.log.Warn("these settings take effect at the next restart", "keys", strings.Join(later, ", "))
	}
	s.emit(notify.ConfigChanged, "configuration reloaded", "changed", strings.Join(config.Reloadable(old, cfg), ", "))
}

// Notify sends a state to systemd (RELOADING=1 and READY=1 around a
// reload come from main, which handles the signal).
func (s *Server) Notify(state string) { _ = s.opt.Notifier.Notify(state) }

// updateStatus sends systemd a STATUS= line.
func (s *Server) updateStatus() {
	hb := "off"
	if s.registry().Heartbeat() {
		hb = "on"
	}
	v := s.selfView()
	acting := "acting"
	if !v.acting {
		acting = "not acting"
	}
	journal := ""
	if err := s.store.WriteHealth().Err; err != nil {
		journal = "JOURNAL CANNOT WRITE, changes refused (" + err.Error() + "); "
	}
	line := fmt.Sprintf("STATUS=%srole %s (%s, %s), %d sessions, heartbeat %s, epoch %d",
		journal, v.st.Role, v.st.HAState(), acting, len(s.db().Sessions()), hb, v.st.Epoch)
	if deg := s.duty.Load().degradations(); len(deg) > 0 {
		// systemd shows one line: say it is degraded first, then what.
		line += "; DEGRADED: " + strings.Join(deg, "; ")
	}
	_ = s.opt.Notifier.Notify(line)
	s.publishProperties()
}

// properties are the admin API's D-Bus properties: the role and HA state
// of the server's view, and the epoch and heartbeat switch that the
// status document shows.
func (s *Server) properties() api.Properties {
	st := s.selfView().st
	return api.Properties{Role: st.Role.String(), HAState: st.HAState(), Heartbeat: s.registry().Heartbeat(),
		Epoch: s.registry().Epoch(), Version: s.opt.Version}
}

// publishProperties brings the admin API's properties up to date, which
// emits PropertiesChanged for those that changed. updateStatus calls it,
// and every change of role, HA state, epoch or heartbeat switch ends in
// updateStatus.
func (s *Server) publishProperties() {
	s.propsMu.Lock()
	defer s.propsMu.Unlock()
	ctl := s.ctl.Load()
	if ctl == nil {
		return // Serve takes them when it starts
	}
	if err := ctl.SetProperties(s.properties()); err != nil {
		s.log.Warn("admin api properties changed but not announced", "err", err)
	}
}

// emit logs a catalogue event and signals it on the bus.
func (s *Server) emit(e notify.Event, text string, kv ...string) {
	args := make([]any, 0, len(kv))
	fields := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		args = append(args, kv[i], kv[i+1])
		fields[kv[i]] = kv[i+1]
	}
	notify.Log(s.log, e, text, args...)
	if e.Trap {
		s.snmp.Send(e, fields)
	}
	ev := api.EventDoc{At: s.clock.Now(), ID: e.ID(), Severity: string(e.Severity), Text: text, Fields: fields}
	ctl := s.ctl.Load()
	if ctl == nil {
		s.earlyMu.Lock()
		if ctl = s.ctl.Load(); ctl == nil {
			if len(s.early) < maxEarlyEvents {
				s.early = append(s.early, ev)
			}
			s.earlyMu.Unlock()
			return
		}
		s.earlyMu.Unlock()
	}
	_, _ = ctl.Emit(ev)
}

// maxEarlyEvents bounds the events kept before the admin API serves.
const maxEarlyEvents = 256

// fnTask is a Task made of a function that says when it is ready.
type fnTask struct {
	name  string
	run   func(ctx context.Context, ready func()) error
	once  sync.Once
	ready chan struct{}
}

func newTask(name string, run func(ctx context.Context, ready func()) error) *fnTask {
	return &fnTask{name: name, run: run, ready: make(chan struct{})}
}

// readyAtOnce is for tasks that serve as soon as they run.
func readyAtOnce(run func(context.Context) error) func(context.Context, func()) error {
	return func(ctx context.Context, ready func()) error {
		ready()
		return run(ctx)
	}
}

func (t *fnTask) String() string         { return t.name }
func (t *fnTask) Ready() <-chan struct{} { return t.ready }
func (t *fnTask) Run(ctx context.Context) error {
	return t.run(ctx, func() { t.once.Do(func() { close(t.ready) }) })
}

// systems are the drivers as the core and engine take them.
func (s *Server) systems() map[hal.Serial]hal.StorageSystem {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[hal.Serial]hal.StorageSystem, len(s.drivers))
	for k, v := range s.drivers {
		out[k] = v
	}
	return out
}

// connect starts the driver of a registered storage system from its
// first direct connection.
func (s *Server) connect(serial hal.Serial) error {
	var conn *registry.Connection
	for _, c := range s.registry().Connections(serial) {
		if c.Kind == string(api.Direct) {
			conn = &c
			break
		}
	}
	if conn == nil {
		return fmt.Errorf("%s has no direct connection (hmc and zos connections are not supported by this build)", serial)
	}
	if s.roots == nil {
		return fmt.Errorf("%s: %w: the storage systems' certificates cannot be checked", serial, ErrNoStorageCA)
	}
	var password string
	if conn.PasswordFile != "" {
		b, err := secretfile.Read(conn.PasswordFile)
		if err != nil {
			return fmt.Errorf("%s: password file: %w", serial, err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	var eps [2]string
	copy(eps[:], conn.Addresses)
	if eps[1] == "" {
		eps[1] = eps[0]
	}
	// Each endpoint is verified against its own host name (direct sets
	// it), then its certificate must name serial or match its pin.
	d := direct.New(direct.Options{Serial: serial, Endpoints: eps, Manager: s.cfg.Load().Server.Name,
		User: conn.User, Password: password, TLS: wire.ClientTLSConfig(s.roots, ""),
		Pin:   s.cfg.Load().Storage.Pins[string(serial)],
		Clock: s.clock, Logger: s.log, DialTimedOut: s.dialTimedOut,
		StateChanged: func(up, timeout bool, detail string) { s.storageReachability(serial, up, timeout, detail) }})
	s.mu.Lock()
	s.drivers[serial] = d
	s.mu.Unlock()
	s.engineSystems()
	return nil
}

// dialTimedOut logs, for a connect that got no answer at all, the
// firewall rule that would let it through (DESIGN.md §9).
func (s *Server) dialTimedOut(addr string) {
	hint := firewall.Hints{Config: s.cfg.Load()}.TimeoutHint(addr, firewall.NFT)
	notify.Log(s.log, notify.ConnectTimeoutHint, "connection attempt timed out; a firewall may drop it",
		"addr", addr, "rule", hint)
}

// storageReachability tells the operator and the NMS when a storage
// system stops answering (timeout or error), once per outage, and when it
// answers again.
func (s *Server) storageReachability(serial hal.Serial, up, timeout bool, detail string) {
	s.reach.changed(serial, up, timeout, detail)
	s.track.Changed(transitions.Storage, string(serial), transitions.StorageState(!up), transitions.StorageState(up))
	if up {
		if d := s.duty.Load(); d != nil {
			d.engine.Reachable(serial) // CG timeouts it could not tell before
		}
		if s.snmp.CommRecovered(serial) {
			notify.Log(s.log, notify.StorageCommRecovered, "communication with a storage system recovered", "serial", string(serial))
		}
		return
	}
	if s.snmp.CommFailure(serial, timeout, detail) {
		kind := map[bool]string{true: "timeout", false: "error"}[timeout]
		notify.Log(s.log, notify.StorageCommFailure, "communication with a storage system failed",
			"serial", string(serial), "kind", kind, "detail", detail)
	}
}

// engineSystems gives the acting engine the current drivers.
func (s *Server) engineSystems() {
	if d := s.duty.Load(); d != nil {
		d.engine.SetSystems(s.systems())
	}
}

func (s *Server) closeDrivers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.drivers {
		d.Close()
	}
}
