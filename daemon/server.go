package daemon

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/daemon/transitions"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
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
	// Drivers open the storage systems' connections, by kind (nil: no
	// storage system is ever connected).
	Drivers Drivers
	// Consoles open the connections that front several storage systems
	// (HMC), by kind (nil: none).
	Consoles Consoles
	// SwapHosts opens the HyperSwap side of a z/OS connection (nil:
	// HyperSwap is unavailable; a HyperSwap session's start is refused
	// saying so).
	SwapHosts hal.SwapHostFactory
	// Version is lockstepd's version as main knows it (its -ldflags -X),
	// which the status document and the Version property report ("":
	// internal/version's).
	Version string
}

// Server is one lockstepd: it builds the parts, runs them as Tasks and
// stops them in order. The parts hold what they use, not the server:
// the emitter (log, SNMP, bus), the store, the clock, the drivers, the
// acting periods and the HA part.
type Server struct {
	opt   Options
	cfg   atomic.Pointer[config.Config]
	log   *slog.Logger
	clock clock.Clock
	store *state.Store
	em    *emitter
	ha    *haNode
	// acting owns the acting periods and the server's view of itself.
	acting *periods
	// drivers owns the storage drivers, and why systems are not usable:
	// the takeover readiness.
	drivers *storageDrivers
	// swaps owns the z/OS hosts' HyperSwap side.
	swaps   *swapHosts
	snmp    *notify.SNMP
	bus     *dbus.Conn
	roots   *x509.CertPool              // [storage] ca_file; nil: no storage system is connected
	traps   *notify.StorageTrapListener // nil without [snmp] trap_listen
	sources *trapSources

	// propsMu makes reading the view and setting the admin API's
	// properties one step (publishProperties), so that of two calls the
	// later one publishes the later view.
	propsMu sync.Mutex
	// idleBeat moves the watchdog's counter while no core runs: a
	// standby has no core loop that could wedge.
	idleBeat atomic.Uint64
	// Test hooks (package tests only): watchdogEvery replaces half of
	// WATCHDOG_USEC, and wedged stops the watchdog's counter as a wedged
	// core's stops.
	watchdogEvery time.Duration
	wedged        atomic.Bool
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
	s := &Server{opt: opt, log: opt.Logger, clock: clock.OrReal(opt.Clock),
		drivers: newStorageDrivers(opt.Drivers, opt.Consoles)}
	s.cfg.Store(opt.Config)
	var err error
	if s.roots, err = loadStorageCA(opt.Config); err != nil {
		return nil, err
	}
	// A storage trap goes to the acting core, if any.
	if s.traps, err = newTrapListener(opt.Config, s.clock, s.log, func(ev hal.Event) {
		if d := s.acting.current(); d != nil {
			d.core.Observe(ev, "snmp trap")
			s.log.Debug("storage trap handed to the freeze core", "serial", string(ev.Serial), "seq", ev.Seq, "kind", ev.Kind.String())
		}
	}); err != nil {
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
	// The HA part and the acting periods call each other (the loop
	// starts periods; a period tells the loop of a higher epoch); the
	// SNMP agent names the role: they are tied once all exist.
	role := func() string { return s.ha.state().Role.String() }
	if s.snmp, err = notify.NewSNMP(opt.Config.SNMP, opt.Config.Server.Name, role, s.clock, s.log); err != nil {
		store.Close()
		return nil, err
	}
	s.em = &emitter{log: s.log, clock: s.clock, snmp: s.snmp, track: transitions.New(s.clock)}
	s.sources = &trapSources{traps: s.traps, store: s.store, clock: s.clock, log: s.log}
	ds := s.drivers
	ds.cfg, ds.store, ds.roots, ds.clock, ds.log = s.cfg.Load, s.store, s.roots, s.clock, s.log
	ds.snmp, ds.track, ds.changed, ds.discovered = s.snmp, s.em.track, s.sources.refresh, s.discovered
	s.acting = &periods{cfg: s.cfg.Load, clock: s.clock, log: s.log, store: s.store, em: s.em, drivers: ds,
		status: s.updateStatus}
	ds.acting = s.acting
	s.swaps = newSwapHosts(opt.SwapHosts, ds)
	s.acting.swaps = s.swaps
	if s.ha, err = newHANode(haDeps{cfg: s.cfg.Load, store: s.store, clock: s.clock, log: s.log, em: s.em,
		acting: s.acting, reconcile: ds.reconcile, status: s.updateStatus, view: s.consoleView}); err != nil {
		store.Close()
		return nil, err
	}
	s.acting.higher = s.ha.higherEpoch
	s.acting.replicated = func(ctx context.Context) { s.ha.waitReplicated(ctx, s.store.LastIndex()) }
	s.sources.refresh()
	return s, nil
}

func (s *Server) registry() *registry.DB { return s.store.Registry() }

// stopBound is how long Run waits, at shutdown, for the acting period
// to end before it closes the drivers under it: well past the core's
// own bound on its drain of the freezes in flight (a request timeout and
// a heartbeat interval).
func stopBound(cfg *config.Config) time.Duration {
	return 2 * (cfg.Heartbeat.RequestTimeout + cfg.Heartbeat.Interval)
}

// Run serves until ctx ends: the freeze core, the engine's recorder, the
// admin API and the watchdog. READY=1 goes to systemd once all of them
// serve (the journal was replayed in New).
//
// The shutdown order is explicit: the tasks stop (the HA part joins its
// goroutines), the acting period stops and is waited for (its core
// finishes the freezes in flight, on drivers still open), then the
// drivers close (each waits for its goroutines), then the store.
func (s *Server) Run(ctx context.Context) (err error) {
	defer s.store.Close()
	// The drivers outlive ctx's cancellation (a freeze in flight when it
	// ends must still reach storage); closeDrivers ends them.
	s.drivers.start(ctx)
	defer s.closeDrivers()
	for _, serial := range s.registry().Serials() {
		if err := s.drivers.connect(serial); err != nil {
			s.log.Error("storage system not connected", "serial", serial, "err", err)
		}
	}
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
	s.acting.open(ctx)
	defer s.stopActing()
	every := s.watchdogEvery
	if every == 0 {
		every = WatchdogInterval()
	}
	wd := &Watchdog{Notifier: s.opt.Notifier, Interval: every, Progress: s.progress, Logger: s.log, Clock: s.clock,
		Withheld: func(progress uint64, stalled time.Duration) {
			s.em.emit(notify.WatchdogWithheld, fmt.Sprintf("the freeze core made no progress for %s: the watchdog ping is withheld, "+
				"systemd restarts lockstepd when WatchdogSec passes", stalled),
				"progress", fmt.Sprint(progress), "stalled", stalled.String())
		}}
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
	err = RunTasks(ctx, tasks, func() {
		st := s.acting.selfView().st
		notify.Log(s.log, notify.DaemonStarted, "lockstepd ready", "role", st.Role.String(),
			"ha_state", st.HAState(), "epoch", s.registry().Epoch(), "sessions", len(s.db().Sessions()))
		_ = s.opt.Notifier.Notify("READY=1")
		s.updateStatus()
	})
	_ = s.opt.Notifier.Notify("STOPPING=1")
	notify.Log(s.log, notify.DaemonStopping, "lockstepd stopping")
	return err
}

// stopActing is the first step of the shutdown: the acting period stops
// and is waited for, so that the freezes in flight finish on open
// drivers.
func (s *Server) stopActing() {
	if !s.acting.join(stopBound(s.cfg.Load())) {
		s.drivers.closeAll() // unwedges a period stuck on storage
		s.acting.wait()
	}
}

// closeDrivers is the second step: every driver closes, and has ended
// when it returns.
func (s *Server) closeDrivers() {
	s.drivers.closeAll() // ends the life the z/OS hosts' connections run in too
	s.swaps.closeAll()
}

// progress is the watchdog's counter: the acting core's loop, which
// stops moving when the core is wedged; a server that does not act has no
// core loop, and its counter always moves.
func (s *Server) progress() uint64 {
	if s.wedged.Load() {
		return 0
	}
	if d := s.acting.current(); d != nil {
		return d.core.Progress()
	}
	return s.idleBeat.Add(1)
}

// db is the session state after the last durable record.
func (s *Server) db() *session.DB { return s.store.DB() }

// serveControl owns the bus name and serves the admin API; it is ready
// once the name is owned.
func (s *Server) serveControl(ctx context.Context, ready func()) error {
	ctl, err := control.Serve(ctx, s.bus, control.Tracked(s, s.em.track), control.Options{Logger: s.log, AdminGroup: s.cfg.Load().Control.AdminGroup,
		Properties: s.properties()})
	if err != nil {
		return err
	}
	// A change between the properties given to Serve and serve found no
	// server to tell.
	s.em.serve(ctl, s.publishProperties)
	ready()
	<-ctx.Done()
	return ctl.Close()
}

// Reload applies a new configuration (SIGHUP): what may change at run
// time changes, the rest is logged as waiting for a restart. An invalid
// file is refused by main before it gets here.
func (s *Server) Reload(cfg *config.Config) {
	old := s.cfg.Load()
	if d := s.acting.current(); d != nil {
		if err := d.core.SetTimings(context.Background(), cfg.Heartbeat); err != nil {
			s.emit(notify.ConfigRefused, "new heartbeat timings refused; the old configuration stays", "err", err.Error())
			return
		}
	} else if err := cfg.Heartbeat.Validate(); err != nil {
		s.emit(notify.ConfigRefused, "new heartbeat timings refused; the old configuration stays", "err", err.Error())
		return
	}
	if err := s.snmp.SetManagers(cfg.SNMP.Managers); err != nil {
		s.emit(notify.ConfigRefused, "new SNMP managers refused; the old configuration stays", "err", err.Error())
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

// Refuse tells the operator and the NMS that the configuration file
// given to a reload (SIGHUP) does not load: the old one stays in force.
func (s *Server) Refuse(file string, err error) {
	s.emit(notify.ConfigRefused, "new configuration refused; keeping the old one", "file", file, "err", err.Error())
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
	v := s.acting.selfView()
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
	if deg := s.acting.current().degradations(); len(deg) > 0 {
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
	st := s.acting.selfView().st
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
	ctl := s.em.control()
	if ctl == nil {
		return // Serve takes them when it starts
	}
	if err := ctl.SetProperties(s.properties()); err != nil {
		s.log.Warn("admin api properties changed but not announced", "err", err)
	}
}

// emit logs a catalogue event, traps it if it traps, and signals it on
// the bus.
func (s *Server) emit(e notify.Event, text string, kv ...string) { s.em.emit(e, text, kv...) }

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
