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
	"github.com/lockstep-io/lockstep/internal/secretfile"
)

// Drivers map each connection kind this build can use to the factory of
// its driver. cmd/lockstepd fills it (direct today; hmc and zos are one
// entry each); the daemon names no concrete driver type, and a kind
// without a factory is shown as not supported by this build.
type Drivers map[hal.ConnectionKind]hal.Factory

// kindOrder is the preference among a storage system's connections: the
// first one, in this order, whose kind has a factory carries its driver
// (TCP/IP before z/OS, which cannot carry the heartbeat).
var kindOrder = []hal.ConnectionKind{hal.Direct, hal.HMC, hal.ZOS}

// openDriver is a storage system's driver and the kind of the connection
// it was opened from.
type openDriver struct {
	hal.Driver
	kind hal.ConnectionKind
}

// storageDrivers owns the open drivers, one per registered storage
// system that has a usable connection, and why the others are not
// usable (reach). Every driver it opens lives in one context, set by
// start (Run's, without its cancellation: a freeze in flight when Run is
// cancelled must still reach storage); closeAll ends that context and
// waits for every driver. That is the one context it keeps: a driver's
// whole life is it.
type storageDrivers struct {
	factories Drivers
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
	// trap sources follow the registry).
	snmp    *notify.SNMP
	track   *transitions.Tracker
	acting  *periods
	changed func()

	mu     sync.Mutex
	life   context.Context // nil before start: nothing opens
	end    context.CancelFunc
	open   map[hal.Serial]openDriver
	closed bool
}

func newStorageDrivers(f Drivers) *storageDrivers {
	return &storageDrivers{factories: f, open: map[hal.Serial]openDriver{}, changed: func() {}}
}

// start sets the context every driver lives in until closeAll.
func (ds *storageDrivers) start(ctx context.Context) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.life, ds.end = context.WithCancel(context.WithoutCancel(ctx))
}

// pick is the connection of conns that carries the driver, and its
// factory; nil when none of them has a factory.
func (ds *storageDrivers) pick(conns []registry.Connection) (*registry.Connection, hal.Factory) {
	for _, k := range kindOrder {
		f := ds.factories[k]
		if f == nil {
			continue
		}
		for _, c := range conns {
			if c.Kind == k {
				return &c, f
			}
		}
	}
	return nil, nil
}

// unsupported words what this build cannot use, for an error: "hmc and
// zos connections are not supported by this build".
func (ds *storageDrivers) usable() (have, lack []string) {
	for _, k := range kindOrder {
		if ds.factories[k] != nil {
			have = append(have, string(k))
		} else {
			lack = append(lack, string(k))
		}
	}
	return have, lack
}

// noUsableConnection is connect's error for a system none of whose
// connections has a factory.
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

// add opens a driver with f for spec (replacing and closing none: the
// caller checked there is none).
func (ds *storageDrivers) add(f hal.Factory, kind hal.ConnectionKind, spec hal.ConnectionSpec) error {
	ds.mu.Lock()
	life, closed := ds.life, ds.closed
	ds.mu.Unlock()
	if life == nil || closed {
		return fmt.Errorf("%s: %w", spec.Serial, errNotRunning)
	}
	d, err := f(life, spec)
	if err != nil {
		return err
	}
	ds.mu.Lock()
	if ds.closed {
		ds.mu.Unlock()
		return d.Close()
	}
	old, had := ds.open[spec.Serial]
	ds.open[spec.Serial] = openDriver{Driver: d, kind: kind}
	ds.mu.Unlock()
	if had {
		_ = old.Close()
	}
	return nil
}

// errNotRunning: a driver is asked for while the daemon does not run.
var errNotRunning = fmt.Errorf("daemon: not running: no storage driver is opened")

func (ds *storageDrivers) get(serial hal.Serial) (openDriver, bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	d, ok := ds.open[serial]
	return d, ok
}

// openFrom reports whether serial has no driver, or one opened from a
// connection of kind.
func (ds *storageDrivers) openFrom(serial hal.Serial, kind hal.ConnectionKind) bool {
	d, ok := ds.get(serial)
	return !ok || d.kind == kind
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

// closeAll closes every driver and waits for them; nothing opens after
// it.
func (ds *storageDrivers) closeAll() {
	ds.mu.Lock()
	ds.closed = true
	open := ds.open
	ds.open = map[hal.Serial]openDriver{}
	end := ds.end
	ds.mu.Unlock()
	for _, d := range open {
		_ = d.Close()
	}
	if end != nil {
		end()
	}
}

// connect opens the driver of a registered storage system, from the
// first of its connections whose kind this build has a factory for.
func (ds *storageDrivers) connect(serial hal.Serial) error {
	conn, factory := ds.pick(ds.store.Registry().Connections(serial))
	if conn == nil {
		return ds.noUsableConnection(serial)
	}
	if ds.roots == nil {
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
	cfg := ds.cfg()
	if err := ds.add(factory, conn.Kind, hal.ConnectionSpec{Serial: serial, Name: conn.Name,
		Addresses: conn.Addresses, Sysplex: conn.Sysplex, Manager: cfg.Server.Name, User: conn.User,
		Password: password, Roots: ds.roots, Pin: cfg.Storage.Pins[string(serial)],
		Clock: ds.clock, Logger: ds.log, DialTimedOut: ds.dialTimedOut,
		Reachability: func(up, timeout bool, detail string) { ds.reachability(serial, up, timeout, detail) }}); err != nil {
		return err
	}
	ds.engineSystems()
	return nil
}

// reconcile starts a driver for every registered system that has
// none and closes those of removed systems: a standby learns of storage
// added on the active from the journal it receives, and connects to it
// when it takes over.
func (ds *storageDrivers) reconcile() {
	for _, serial := range ds.retain(ds.store.Registry().Serials()) {
		err := ds.connect(serial)
		ds.reach.connected(serial, err)
		if err != nil {
			ds.log.Error("storage system not connected", "serial", serial, "err", err)
		}
	}
	ds.changed()
}

// dialTimedOut logs, for a connect that got no answer at all, the
// firewall rule that would let it through (DESIGN.md §9).
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
// a takeover (DESIGN.md §4).
func (ds *storageDrivers) readiness(reg *registry.DB) []api.ReadinessDoc {
	out := []api.ReadinessDoc{}
	open := ds.snapshot()
	for _, serial := range reg.Serials() {
		d, ok := open[serial]
		switch {
		case !ok:
			out = append(out, api.ReadinessDoc{Serial: serial, Reason: ds.noDriverReason(reg, serial)})
		case d.Via() == "":
			why := ds.reach.down(serial)
			if why == "" {
				why = "no answer from either cluster yet"
			}
			out = append(out, api.ReadinessDoc{Serial: serial, Reason: "not connected: " + why})
		}
	}
	return out
}

// noDriverReason says why a registered storage system has no driver: its
// connection failed to start, or none of its connections is one this
// build can use (DESIGN.md §4: no IP connection, z/OS outside the
// sysplex, HMC).
func (ds *storageDrivers) noDriverReason(reg *registry.DB, serial hal.Serial) string {
	conns := reg.Connections(serial)
	if c, _ := ds.pick(conns); c != nil {
		if why := ds.reach.failed(serial); why != "" {
			return "its " + string(c.Kind) + " connection did not start: " + why
		}
		return "its " + string(c.Kind) + " connection is not started yet"
	}
	var kinds []string
	for _, c := range conns {
		switch c.Kind {
		case hal.ZOS:
			kinds = append(kinds, fmt.Sprintf("z/OS (sysplex %s): no IP connection, and this build cannot issue commands through z/OS", c.Sysplex))
		case hal.HMC:
			kinds = append(kinds, fmt.Sprintf("HMC %s: this build cannot reach storage through an HMC", strings.Join(c.Addresses, ";")))
		default:
			kinds = append(kinds, string(c.Kind)+": not supported by this build")
		}
	}
	if len(kinds) == 0 {
		return "no connection defined"
	}
	return "no usable connection: " + strings.Join(kinds, "; ")
}

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
