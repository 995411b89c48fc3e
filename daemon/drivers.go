package daemon

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/firewall"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/daemon/transitions"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/hal/compose"
	"github.com/lockstep-io/lockstep/internal/secretfile"
)

// Drivers map each connection kind this build can use to the factory of
// its driver. cmd/lockstepd fills it (direct; zos when linked); the
// daemon names no concrete driver type, and a kind without a factory
// (nor a console factory) is shown as not supported by this build.
type Drivers map[hal.ConnectionKind]hal.Factory

// Consoles map each connection kind that fronts several storage systems
// (hmc) to the factory of its console: one console is opened per defined
// connection and shared by every system it fronts (Console.Driver).
type Consoles map[hal.ConnectionKind]hal.ConsoleFactory

// kindOrder is the preference among a storage system's connections,
// which is also the failover order of a system with several (hal/compose):
// direct (one hop fewer), then HMC, then z/OS (which cannot carry the
// heartbeat).
var kindOrder = []hal.ConnectionKind{hal.Direct, hal.HMC, hal.ZOS}

// part is one connection of a storage system and the driver opened from
// it.
type part struct {
	conn registry.Connection
	hal.Driver
}

// openDriver is a storage system's driver: its connections' drivers,
// composed when there are several, and the connections it was opened
// from (key: a change of them opens it again).
type openDriver struct {
	hal.Driver
	parts []part
	key   string
}

// via names the connection and the endpoint that carry the commands now,
// as compose does for several: "direct d1: cluster 0".
func (d openDriver) via() string {
	if len(d.parts) != 1 {
		return d.Via()
	}
	if v := d.Via(); v != "" {
		return string(d.parts[0].conn.Kind) + " " + d.parts[0].conn.Name + ": " + v
	}
	return ""
}

// partFor is the part opened from connection c, if any.
func (d openDriver) partFor(c registry.Connection) (part, bool) {
	for _, p := range d.parts {
		if p.conn.Name == c.Name && p.conn.HMC == c.HMC && p.conn.Kind == c.Kind {
			return p, true
		}
	}
	return part{}, false
}

// openConsole is an open console (an HMC connection) and the definition
// it was opened from.
type openConsole struct {
	hal.Console
	key string
}

// storageDrivers owns the open drivers, one per registered storage
// system that has a usable connection, the open consoles (one per HMC
// connection), and why the others are not usable (reach). Every driver
// and console it opens lives in one context, set by start (Run's,
// without its cancellation: a freeze in flight when Run is cancelled
// must still reach storage); closeAll ends that context and waits for
// every one. That is the one context it keeps: a driver's whole life is
// it.
type storageDrivers struct {
	factories Drivers
	consoleFs Consoles
	reach     reachability

	// What a driver is opened with: the registry (in the store), the
	// configuration (manager name, pins), the storage CA, the clock and
	// logger.
	cfg   func() *config.Config
	store *state.Store
	roots *x509.CertPool
	clock clock.Clock
	log   *slog.Logger
	// snmp traps a storage system's loss and recovery of contact;
	// acting's engine hears of the drivers and of a system reachable
	// again; changed is called after the drivers may have changed (the
	// trap sources follow the registry); discovered hears what an HMC
	// connection's consoles front now (the server journals it when it
	// acts).
	snmp       *notify.SNMP
	track      *transitions.Tracker
	acting     *periods
	changed    func()
	discovered func(name string, serials []hal.Serial)

	mu       sync.Mutex
	life     context.Context // nil before start: nothing opens
	end      context.CancelFunc
	open     map[hal.Serial]openDriver
	consoles map[string]openConsole
	// retries are the HMC connections whose console did not open, each
	// opened again on the clock with backoff (consoleFailed).
	retries map[string]*consoleRetry
	closed  bool
	bg      sync.WaitGroup // goBackground's
}

// goBackground runs fn in the drivers' life (discovery's journal write),
// unless closed; closeAll waits for it.
func (ds *storageDrivers) goBackground(fn func(ctx context.Context)) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.life == nil || ds.closed {
		return
	}
	life := ds.life
	ds.bg.Go(func() { fn(life) })
}

func newStorageDrivers(f Drivers, c Consoles) *storageDrivers {
	return &storageDrivers{factories: f, consoleFs: c, open: map[hal.Serial]openDriver{},
		consoles: map[string]openConsole{}, retries: map[string]*consoleRetry{}, changed: func() {},
		discovered: func(string, []hal.Serial) {}}
}

// start sets the context every driver lives in until closeAll.
func (ds *storageDrivers) start(ctx context.Context) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.life, ds.end = context.WithCancel(context.WithoutCancel(ctx))
}

// usableConn reports whether this build can open c: a direct or z/OS
// connection whose kind has a factory, an HMC connection (defined with
// hmc add) whose kind has a console factory.
func (ds *storageDrivers) usableConn(c registry.Connection) bool {
	switch c.Kind {
	case hal.HMC:
		return c.HMC != "" && ds.consoleFs[hal.HMC] != nil
	case hal.ZOS:
		return ds.factories[c.Kind] != nil && notInSysplex(ds.sysplex(), c) == ""
	}
	return ds.factories[c.Kind] != nil
}

// notInSysplex says why this server cannot use z/OS connection c ("" it
// can): a z/OS host serves only the managers of its own sysplex, so a
// server configured in another one (or in none) would only be refused.
func notInSysplex(mine string, c registry.Connection) string {
	if c.Kind != hal.ZOS || c.Sysplex == mine {
		return ""
	}
	if mine == "" {
		mine = "none is set"
	} else {
		mine = "it is " + mine
	}
	return fmt.Sprintf("not in sysplex %s: this server's [server] sysplex is not the z/OS host's (%s)", c.Sysplex, mine)
}

// sysplex is this server's sysplex ("" none, or no configuration yet).
func (ds *storageDrivers) sysplex() string {
	if ds.cfg == nil {
		return ""
	}
	return ds.cfg().Server.Sysplex
}

// unusableReason says why this build or configuration cannot use c ("" it
// can), for storage show and readiness.
func (ds *storageDrivers) unusableReason(c registry.Connection) string {
	switch {
	case ds.usableConn(c):
		return ""
	case c.Legacy():
		return legacyHMC
	case c.Kind == hal.ZOS && ds.factories[hal.ZOS] != nil:
		return notInSysplex(ds.sysplex(), c)
	case c.Kind == hal.ZOS:
		return "this build cannot issue commands through z/OS"
	case c.Kind == hal.HMC:
		return "this build cannot reach storage through an HMC"
	}
	return "not supported by this build"
}

// plan is the connections of conns this build can open, in failover
// order (kindOrder, then as registered).
func (ds *storageDrivers) plan(conns []registry.Connection) []registry.Connection {
	var out []registry.Connection
	for _, k := range kindOrder {
		for _, c := range conns {
			if c.Kind == k && ds.usableConn(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// pick is the connection of conns that commands go to first, nil when
// this build can use none of them.
func (ds *storageDrivers) pick(conns []registry.Connection) *registry.Connection {
	if p := ds.plan(conns); len(p) > 0 {
		return &p[0]
	}
	return nil
}

// connKey identifies the connections a driver is opened from.
func connKey(conns []registry.Connection) string {
	var b strings.Builder
	for _, c := range conns {
		fmt.Fprintf(&b, "%s|%s|%s|%s|%q|%s|%s|%s\n", c.Name, c.Kind, c.HMC, c.ZOS, c.Addresses, c.Sysplex, c.User, c.PasswordFile)
	}
	return b.String()
}

// usable words what this build can and cannot use, for an error.
func (ds *storageDrivers) usable() (have, lack []string) {
	for _, k := range kindOrder {
		if ds.factories[k] != nil || (k == hal.HMC && ds.consoleFs[k] != nil) {
			have = append(have, string(k))
		} else {
			lack = append(lack, string(k))
		}
	}
	return have, lack
}

// noUsableConnection is connect's error for a system none of whose
// connections this build can open.
func (ds *storageDrivers) noUsableConnection(serial hal.Serial) error {
	have, lack := ds.usable()
	if len(have) == 0 {
		return fmt.Errorf("%s: this build has no storage driver", serial)
	}
	msg := fmt.Sprintf("%s has no %s connection", serial, strings.Join(have, " or "))
	if len(lack) > 0 {
		msg += fmt.Sprintf(" (%s connections are not supported by this build)", strings.Join(lack, " and "))
	}
	return fmt.Errorf("%s", msg)
}

// add opens a single driver with f for spec (test helper of one part).
func (ds *storageDrivers) add(f hal.Factory, kind hal.ConnectionKind, spec hal.ConnectionSpec) error {
	life, err := ds.lifetime(spec.Serial)
	if err != nil {
		return err
	}
	d, err := f(life, spec)
	if err != nil {
		return err
	}
	ds.install(spec.Serial, openDriver{Driver: d, parts: []part{{conn: registry.Connection{Name: spec.Name, Kind: kind}, Driver: d}}})
	return nil
}

// lifetime is the context drivers open in; errNotRunning before start and
// after closeAll.
func (ds *storageDrivers) lifetime(serial hal.Serial) (context.Context, error) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.life == nil || ds.closed {
		return nil, fmt.Errorf("%s: %w", serial, errNotRunning)
	}
	return ds.life, nil
}

// install makes d serial's driver, closing the one it replaces (or d,
// when the set closed meanwhile).
func (ds *storageDrivers) install(serial hal.Serial, d openDriver) {
	ds.mu.Lock()
	if ds.closed {
		ds.mu.Unlock()
		_ = d.Close()
		return
	}
	old, had := ds.open[serial]
	ds.open[serial] = d
	ds.mu.Unlock()
	if had {
		_ = old.Close()
	}
}

// errNotRunning: a driver is asked for while the daemon does not run.
var errNotRunning = fmt.Errorf("daemon: not running: no storage driver is opened")

func (ds *storageDrivers) get(serial hal.Serial) (openDriver, bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	d, ok := ds.open[serial]
	return d, ok
}

// systems are the drivers as the core and the engine take them.
func (ds *storageDrivers) systems() map[hal.Serial]hal.StorageSystem {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	out := make(map[hal.Serial]hal.StorageSystem, len(ds.open))
	for k, v := range ds.open {
		out[k] = v.Driver
	}
	return out
}

func (ds *storageDrivers) snapshot() map[hal.Serial]openDriver {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return maps.Clone(ds.open)
}

// remove closes a system's driver, if it has one.
func (ds *storageDrivers) remove(serial hal.Serial) {
	ds.mu.Lock()
	d, ok := ds.open[serial]
	delete(ds.open, serial)
	ds.mu.Unlock()
	if ok {
		_ = d.Close()
	}
}

// retain closes the drivers of systems not in want and returns the
// systems of want that have none, sorted.
func (ds *storageDrivers) retain(want []hal.Serial) (missing []hal.Serial) {
	ds.mu.Lock()
	var gone []openDriver
	for serial, d := range ds.open {
		if !slices.Contains(want, serial) {
			gone = append(gone, d)
			delete(ds.open, serial)
		}
	}
	for _, serial := range want {
		if _, ok := ds.open[serial]; !ok {
			missing = append(missing, serial)
		}
	}
	ds.mu.Unlock()
	for _, d := range gone {
		_ = d.Close()
	}
	slices.Sort(missing)
	return missing
}

// closeAll closes every driver and console and waits for them; nothing
// opens after it.
func (ds *storageDrivers) closeAll() {
	ds.mu.Lock()
	ds.closed = true
	open, consoles := ds.open, ds.consoles
	ds.open, ds.consoles = map[hal.Serial]openDriver{}, map[string]openConsole{}
	for name, r := range ds.retries {
		r.timer.Stop()
		delete(ds.retries, name)
	}
	end := ds.end
	ds.mu.Unlock()
	for _, d := range open {
		_ = d.Close()
	}
	for _, c := range consoles {
		_ = c.Close()
	}
	if end != nil {
		end()
	}
	ds.bg.Wait()
}

// password reads a connection's password file.
func password(c registry.Connection) (string, error) {
	if c.PasswordFile == "" {
		return "", nil
	}
	b, err := secretfile.Read(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// console is HMC connection h's console, opened now if it is not open or
// its definition changed (the old one is closed: the systems' drivers
// opened from it are opened again by reconcile, their key changed).
func (ds *storageDrivers) console(h registry.HMC) (hal.Console, error) {
	key := connKey([]registry.Connection{{Name: h.Name, Addresses: h.Addresses, User: h.User, PasswordFile: h.PasswordFile}})
	ds.mu.Lock()
	c, ok := ds.consoles[h.Name]
	var pending error
	if r := ds.retries[h.Name]; r != nil && r.key == key && !r.due {
		// Its retry is armed: it is opened then, not by every system
		// behind it meanwhile.
		pending = r.err
	}
	ds.mu.Unlock()
	if ok && c.key == key {
		return c.Console, nil
	}
	if pending != nil {
		return nil, pending
	}
	con, err := ds.openConsole(h, key)
	if err != nil {
		ds.consoleFailed(h.Name, key, err)
		return nil, err
	}
	ds.consoleOpened(h.Name)
	return con, nil
}

// openConsole opens HMC connection h's console and installs it.
func (ds *storageDrivers) openConsole(h registry.HMC, key string) (hal.Console, error) {
	f := ds.consoleFs[hal.HMC]
	if f == nil {
		return nil, fmt.Errorf("HMC %s: this build cannot reach storage through an HMC", h.Name)
	}
	life, err := ds.lifetime(hal.Serial("HMC " + h.Name))
	if err != nil {
		return nil, err
	}
	if ds.roots == nil {
		return nil, fmt.Errorf("HMC %s: %w: the HMCs' certificates cannot be checked", h.Name, ErrNoStorageCA)
	}
	pw, err := password(registry.Connection{PasswordFile: h.PasswordFile})
	if err != nil {
		return nil, fmt.Errorf("HMC %s: %w", h.Name, err)
	}
	cfg := ds.cfg()
	name := h.Name
	con, err := f(life, hal.ConsoleSpec{ConnectionSpec: hal.ConnectionSpec{Name: name, Addresses: h.Addresses,
		Manager: cfg.Server.Name, User: h.User, Password: pw, Roots: ds.roots, Pin: cfg.Storage.Pins["hmc:"+name],
		Clock: ds.clock, Logger: ds.log, DialTimedOut: ds.dialTimedOut, KeepAlive: cfg.Storage.KeepAlive},
		Changed: func() { ds.consoleChanged(name) }})
	if err != nil {
		return nil, err
	}
	ds.mu.Lock()
	if ds.closed {
		ds.mu.Unlock()
		_ = con.Close()
		return nil, fmt.Errorf("HMC %s: %w", name, errNotRunning)
	}
	old, had := ds.consoles[name]
	ds.consoles[name] = openConsole{Console: con, key: key}
	ds.mu.Unlock()
	if had {
		_ = old.Close()
	}
	return con, nil
}

// consoleChanged hears an HMC of connection name connect or disconnect:
// what its HMCs front now goes to discovered, once some HMC is up (an
// HMC that is down tells nothing of what it fronts).
func (ds *storageDrivers) consoleChanged(name string) {
	ds.mu.Lock()
	c, ok := ds.consoles[name]
	ds.mu.Unlock()
	if !ok {
		return
	}
	up := false
	var att []hal.Serial
	for _, e := range c.Endpoints() {
		if e.Up {
			up = true
			att = append(att, e.Attached...)
		}
	}
	if up {
		slices.Sort(att)
		ds.discovered(name, slices.Compact(att))
	}
}

// consoleStatus is HMC connection name's endpoints as this server sees
// them; nil when it has no console open for it.
func (ds *storageDrivers) consoleStatus(name string) []hal.ConsoleEndpoint {
	ds.mu.Lock()
	c, ok := ds.consoles[name]
	ds.mu.Unlock()
	if !ok {
		return nil
	}
	return c.Endpoints()
}

// retainConsoles closes the consoles of HMC connections no longer
// defined.
func (ds *storageDrivers) retainConsoles(want []registry.HMC) {
	ds.mu.Lock()
	var gone []openConsole
	for name, c := range ds.consoles {
		if !slices.ContainsFunc(want, func(h registry.HMC) bool { return h.Name == name }) {
			gone = append(gone, c)
			delete(ds.consoles, name)
		}
	}
	for name, r := range ds.retries {
		if !slices.ContainsFunc(want, func(h registry.HMC) bool { return h.Name == name }) {
			r.timer.Stop()
			delete(ds.retries, name)
		}
	}
	ds.mu.Unlock()
	for _, c := range gone {
		_ = c.Close()
	}
}

// systemReach joins the reachability reports of a system's connections:
// the system is reachable while one of them is, reported once per
// change.
type systemReach struct {
	mu       sync.Mutex
	up       []int // per part: 0 not yet, 1 up, 2 down
	reported int
	report   func(up, timeout bool, detail string)
}

func (r *systemReach) part(i int) func(up, timeout bool, detail string) {
	return func(up, timeout bool, detail string) {
		r.mu.Lock()
		r.up[i] = map[bool]int{true: 1, false: 2}[up]
		any, all := false, true
		for _, u := range r.up {
			any = any || u == 1
			all = all && u == 2
		}
		state := 0
		switch {
		case any:
			state = 1
		case all:
			state = 2
		}
		send := state != 0 && state != r.reported
		if send {
			r.reported = state
		}
		r.mu.Unlock()
		if send {
			r.report(state == 1, timeout, detail)
		}
	}
}

// connect opens the driver of a registered storage system from every
// connection of it this build can use, composed in failover order
// (kindOrder) when there are several.
func (ds *storageDrivers) connect(serial hal.Serial) error {
	conns := ds.store.Registry().Connections(serial)
	plan := ds.plan(conns)
	if len(plan) == 0 {
		return ds.noUsableConnection(serial)
	}
	if ds.roots == nil {
		return fmt.Errorf("%s: %w: the storage systems' certificates cannot be checked", serial, ErrNoStorageCA)
	}
	life, err := ds.lifetime(serial)
	if err != nil {
		return err
	}
	cfg := ds.cfg()
	reach := &systemReach{up: make([]int, len(plan)),
		report: func(up, timeout bool, detail string) { ds.reachability(serial, up, timeout, detail) }}
	var parts []part
	fail := func(err error) error {
		for _, p := range parts {
			_ = p.Close()
		}
		return err
	}
	var consoleErr error
	for i, c := range plan {
		var d hal.Driver
		if c.Kind == hal.HMC {
			h, _ := ds.store.Registry().HMC(c.HMC)
			con, err := ds.console(h)
			if err != nil {
				// The system's other connections still carry it; the
				// console is retried (and its failure logged) on its own.
				consoleErr = fmt.Errorf("%s: %w", serial, err)
				reach.part(i)(false, false, err.Error())
				continue
			}
			d = con.Driver(serial, reach.part(i))
		} else {
			pw, err := password(c)
			if err != nil {
				return fail(fmt.Errorf("%s: %w", serial, err))
			}
			pin := cfg.Storage.Pins[string(serial)]
			if c.Kind == hal.ZOS { // the host's certificate, not the system's
				pin = cfg.Storage.Pins["zos:"+c.Name]
			}
			d, err = ds.factories[c.Kind](life, hal.ConnectionSpec{Serial: serial, Name: c.Name,
				Addresses: c.Addresses, Sysplex: c.Sysplex, Manager: cfg.Server.Name, User: c.User,
				Password: pw, Roots: ds.roots, Pin: pin,
				Clock: ds.clock, Logger: ds.log, DialTimedOut: ds.dialTimedOut, Reachability: reach.part(i),
				KeepAlive: cfg.Storage.KeepAlive})
			if err != nil {
				return fail(err)
			}
		}
		parts = append(parts, part{conn: c, Driver: d})
	}
	if len(parts) == 0 {
		return consoleErr
	}
	od := openDriver{Driver: parts[0].Driver, parts: parts, key: connKey(conns)}
	if len(parts) > 1 {
		drs, names := make([]hal.Driver, len(parts)), make([]string, len(parts))
		for i, p := range parts {
			drs[i], names[i] = p.Driver, string(p.conn.Kind)+" "+p.conn.Name
		}
		cd, err := compose.New(serial, drs, names, compose.WithClock(ds.clock))
		if err != nil {
			return fail(err)
		}
		od.Driver = cd
	}
	ds.install(serial, od)
	ds.engineSystems()
	return nil
}

// reconcile opens a console for every HMC connection (discovery runs
// on it), a driver for every registered system that has none or whose
// connections changed, and closes those of removed systems and HMC
// connections: a standby learns of storage added on the active from the
// journal it receives, and connects to it when it takes over.
func (ds *storageDrivers) reconcile() {
	reg := ds.store.Registry()
	hmcs := reg.HMCs()
	for _, h := range hmcs {
		_, _ = ds.console(h) // a failure is logged and retried by consoleFailed
	}
	for serial, d := range ds.snapshot() {
		if d.key != "" && d.key != connKey(reg.Connections(serial)) {
			ds.remove(serial)
		}
	}
	for _, serial := range ds.retain(reg.Serials()) {
		err := ds.connect(serial)
		ds.reach.connected(serial, err)
		if err != nil {
			ds.log.Error("storage system not connected", "serial", serial, "err", err)
		}
	}
	ds.retainConsoles(hmcs)
	ds.changed()
}

// dialTimedOut logs, for a connect that got no answer at all, the
// firewall rule that would let it through (docs/operations.md).
func (ds *storageDrivers) dialTimedOut(addr string) {
	hint := firewall.Hints{Config: ds.cfg()}.TimeoutHint(addr, firewall.NFT)
	notify.Log(ds.log, notify.ConnectTimeoutHint, "connection attempt timed out; a firewall may drop it",
		"addr", addr, "rule", hint)
}

// reachability tells the operator and the NMS when a storage
// system stops answering (timeout or error), once per outage, and when it
// answers again.
func (ds *storageDrivers) reachability(serial hal.Serial, up, timeout bool, detail string) {
	ds.reach.changed(serial, up, timeout, detail)
	ds.track.Changed(transitions.Storage, string(serial), transitions.StorageState(!up), transitions.StorageState(up))
	if up {
		if d := ds.acting.current(); d != nil {
			d.engine.Reachable(serial) // CG timeouts it could not tell before
		}
		if ds.snmp.CommRecovered(serial) {
			notify.Log(ds.log, notify.StorageCommRecovered, "communication with a storage system recovered", "serial", string(serial))
		}
		return
	}
	if ds.snmp.CommFailure(serial, timeout, detail) {
		kind := map[bool]string{true: "timeout", false: "error"}[timeout]
		notify.Log(ds.log, notify.StorageCommFailure, "communication with a storage system failed",
			"serial", string(serial), "kind", kind, "detail", detail)
	}
}

// engineSystems gives the acting engine the current drivers.
func (ds *storageDrivers) engineSystems() {
	if d := ds.acting.current(); d != nil {
		d.engine.SetSystems(ds.systems())
	}
}

// readiness lists the storage systems this server cannot use now, and
// why: no usable connection, or a driver that is not connected (with its
// last error). A standby shows it so that the administrator knows before
// a takeover (docs/architecture.md, Storage connections).
func (ds *storageDrivers) readiness(reg *registry.DB) []api.ReadinessDoc {
	out := []api.ReadinessDoc{}
	open := ds.snapshot()
	for _, serial := range reg.Serials() {
		d, ok := open[serial]
		switch {
		case !ok:
			out = append(out, api.ReadinessDoc{Serial: serial, Reason: ds.noDriverReason(reg, serial)})
		case d.Via() == "":
			if why := ds.onlyThroughHMCs(d); why != "" {
				out = append(out, api.ReadinessDoc{Serial: serial, Reason: why})
				continue
			}
			why := ds.reach.down(serial)
			if why == "" {
				why = "no answer from either cluster yet"
			}
			out = append(out, api.ReadinessDoc{Serial: serial, Reason: "not connected: " + why})
		}
	}
	return out
}

// onlyThroughHMCs says, for a system not connected whose every usable
// connection is an HMC connection, that this server reaches it only
// through HMCs it cannot reach, and what it saw of each ("" otherwise):
// the standby's own reach to each HMC, which takeover readiness shows.
func (ds *storageDrivers) onlyThroughHMCs(d openDriver) string {
	var names, seen []string
	for _, p := range d.parts {
		if p.conn.Kind != hal.HMC {
			return ""
		}
		names = append(names, p.conn.HMC)
		for _, e := range ds.consoleStatus(p.conn.HMC) {
			state := "connected, but it does not front this system"
			if !e.Up {
				state = "unreachable: " + e.Detail
			}
			who := e.Addr
			if e.Name != "" {
				who = e.Name + " (" + e.Addr + ")"
			}
			seen = append(seen, "HMC "+who+" "+state)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("reachable only through HMC connection %s, which this server cannot reach: %s",
		strings.Join(names, ", "), strings.Join(seen, "; "))
}

// noDriverReason says why a registered storage system has no driver: its
// connection failed to start, or none of its connections is one this
// build can use (docs/architecture.md (Storage connections): no IP connection, z/OS outside the
// sysplex, HMC).
func (ds *storageDrivers) noDriverReason(reg *registry.DB, serial hal.Serial) string {
	conns := reg.Connections(serial)
	if c := ds.pick(conns); c != nil {
		if why := ds.reach.failed(serial); why != "" {
			return "its " + string(c.Kind) + " connection did not start: " + why
		}
		return "its " + string(c.Kind) + " connection is not started yet"
	}
	var kinds []string
	for _, c := range conns {
		switch c.Kind {
		case hal.ZOS:
			kinds = append(kinds, fmt.Sprintf("z/OS host %s: no IP connection, and %s", c.Name, ds.unusableReason(c)))
		case hal.HMC:
			if c.Legacy() {
				kinds = append(kinds, fmt.Sprintf("HMC %s: %s", strings.Join(c.Addresses, ";"), legacyHMC))
			} else {
				kinds = append(kinds, fmt.Sprintf("HMC %s: this build cannot reach storage through an HMC", strings.Join(c.Addresses, ";")))
			}
		default:
			kinds = append(kinds, string(c.Kind)+": not supported by this build")
		}
	}
	if len(kinds) == 0 {
		return "no connection defined"
	}
	return "no usable connection: " + strings.Join(kinds, "; ")
}

// legacyHMC says why a connection of kind hmc added with storage add is
// not used.
const legacyHMC = "defined with storage add --kind hmc, which is gone: define the HMC connection with " +
	"lockstepctl hmc add, then remove this one with lockstepctl storage remove --connection"

// reachability remembers why each storage system is not usable: the
// error of its connection's start, or the last error its driver
// reported. Readiness reads it.
type reachability struct {
	mu       sync.Mutex
	startErr map[hal.Serial]string
	downErr  map[hal.Serial]string
}

// connected records the outcome of starting a system's connection.
func (r *reachability) connected(serial hal.Serial, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.startErr == nil {
		r.startErr = map[hal.Serial]string{}
	}
	if err != nil {
		r.startErr[serial] = err.Error()
	} else {
		delete(r.startErr, serial)
	}
}

// changed records a driver's report: up, or down with detail.
func (r *reachability) changed(serial hal.Serial, up, timeout bool, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.downErr == nil {
		r.downErr = map[hal.Serial]string{}
	}
	switch {
	case up:
		delete(r.downErr, serial)
	case timeout:
		r.downErr[serial] = "timed out: " + detail
	default:
		r.downErr[serial] = detail
	}
}

func (r *reachability) failed(serial hal.Serial) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startErr[serial]
}

func (r *reachability) down(serial hal.Serial) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.downErr[serial]
}
