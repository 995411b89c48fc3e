package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/persist"
)

// Storage trust (docs/architecture.md, Trust): the storage CA of [storage] ca_file,
// without which no storage system is connected (never the system roots),
// and the addresses storage traps are accepted from.

// ErrNoStorageCA: storage systems are defined (or being added) and
// [storage] ca_file is not set.
var ErrNoStorageCA = errors.New("daemon: storage.ca_file is not set")

// loadStorageCA reads the CA of [storage] ca_file; nil when it is not
// set.
func loadStorageCA(cfg *config.Config) (*x509.CertPool, error) {
	if cfg.Storage.CAFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(cfg.Storage.CAFile)
	if err != nil {
		return nil, fmt.Errorf("daemon: storage.ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("daemon: storage.ca_file %s: no PEM certificate in it", cfg.Storage.CAFile)
	}
	return pool, nil
}

// noCAError says why storage cannot be used without the CA.
func noCAError(n int) error {
	return fmt.Errorf("%w, and %d storage system(s) are defined: set it in [storage] to the PEM file of the CA that "+
		"signs the storage systems' certificates (the system roots are never trusted for storage)", ErrNoStorageCA, n)
}

// CheckStorageConfig is the storage part of lockstepd --check-config:
// the CA file must be readable PEM, the trap credentials readable, and
// the CA must be set when the state directory holds storage systems. It
// returns warnings for what it could not check, and for each z/OS
// connection this server cannot use (not in its host's sysplex).
func CheckStorageConfig(cfg *config.Config) (warnings []string, err error) {
	if _, err := loadStorageCA(cfg); err != nil {
		return nil, err
	}
	if cfg.SNMP.TrapListen != nil {
		if _, err := notify.ReadTrapAuth(cfg.SNMP.TrapAuth); err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
	}
	caSet := cfg.Storage.CAFile != ""
	if _, err := os.Stat(filepath.Join(cfg.Server.StateDir, "journal")); errors.Is(err, os.ErrNotExist) {
		return nil, nil // never started: nothing is defined
	}
	store, err := state.Open(cfg.Server.StateDir, persist.Options{})
	switch {
	case errors.Is(err, persist.ErrLocked) && caSet:
		return nil, nil // the running daemon's storage show says which connections it cannot use
	case errors.Is(err, persist.ErrLocked):
		return []string{"storage.ca_file is not set, and the state directory is in use (lockstepd runs), so the " +
			"storage systems it holds were not counted: lockstepd refuses to start while any is defined without it"}, nil
	case err != nil && caSet:
		return nil, nil
	case err != nil:
		return []string{fmt.Sprintf("storage.ca_file is not set, and the state directory could not be read to count "+
			"the storage systems it holds (%v): lockstepd refuses to start while any is defined without it", err)}, nil
	}
	reg := store.Registry()
	n := len(reg.Serials())
	for _, serial := range reg.Serials() {
		for _, c := range reg.Connections(serial) {
			if why := notInSysplex(cfg.Server.Sysplex, c); why != "" {
				warnings = append(warnings, fmt.Sprintf("storage system %s: z/OS connection %s is unusable: %s",
					serial, c.Name, why))
			}
		}
	}
	if err := store.Close(); err != nil {
		return nil, err
	}
	if n > 0 && !caSet {
		return nil, noCAError(n)
	}
	return warnings, nil
}

// trapSources keeps the storage trap listener's sources (the addresses
// storage traps are accepted from) in step with the registry.
type trapSources struct {
	traps *notify.StorageTrapListener // nil without [snmp] trap_listen
	store *state.Store
	clock clock.Clock
	log   *slog.Logger
	// mu orders refresh; key is the connections the listener's sources
	// were last built from.
	mu  sync.Mutex
	key *string
}

// newTrapListener builds the storage trap listener of [snmp] trap_listen
// (nil when not set), which hands each trap to handle; its sources are
// set by trapSources.refresh.
func newTrapListener(cfg *config.Config, clk clock.Clock, log *slog.Logger, handle func(hal.Event)) (*notify.StorageTrapListener, error) {
	if cfg.SNMP.TrapListen == nil {
		return nil, nil
	}
	auth, err := notify.ReadTrapAuth(cfg.SNMP.TrapAuth)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	// Storage traps: the third source of suspend events, beside the
	// pushed stream and the poll; the core counts each event once.
	return notify.NewStorageTrapListener(notify.StorageTrapOptions{Addr: cfg.SNMP.TrapListen.HostPort(), Auth: auth,
		Clock: clk, Logger: log, Handle: handle}), nil
}

// resolveTimeout bounds the lookup of a connection's host name.
const resolveTimeout = 2 * time.Second

// refresh gives the trap listener the addresses of the
// defined storage systems' TCP/IP connections (direct and HMC; a z/OS
// agent sends no storage traps), each with the serials it may send traps
// for. Called whenever the registry may have changed; host names are
// looked up again only when the connections changed.
func (ts *trapSources) refresh() {
	if ts.traps == nil {
		return
	}
	conns, key := trapConnections(ts.store.Registry())
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.key != nil && *ts.key == key {
		return
	}
	ts.traps.SetSources(trapSourceMap(conns, ts.connectionIPs))
	ts.key = &key
}

// trapConn is a TCP/IP connection a storage system's traps may come
// through.
type trapConn struct {
	serial hal.Serial
	c      registry.Connection
}

// trapConnections are the registry's TCP/IP connections, direct and HMC
// (an HMC connection stands in the connections of every system it
// fronts: its address may send their traps), and a key that changes with
// them.
func trapConnections(db *registry.DB) (conns []trapConn, key string) {
	for _, serial := range db.Serials() {
		for _, c := range db.Connections(serial) {
			if c.Kind == hal.ZOS {
				continue
			}
			conns = append(conns, trapConn{serial, c})
			key += fmt.Sprintf("%s %q\n", serial, c.Addresses)
		}
	}
	return conns, key
}

// trapSourceMap is each address of conns with the serials it may send
// traps for.
func trapSourceMap(conns []trapConn, ips func(registry.Connection) []netip.Addr) map[netip.Addr][]hal.Serial {
	sources := map[netip.Addr][]hal.Serial{}
	for _, c := range conns {
		for _, addr := range ips(c.c) {
			if !slices.Contains(sources[addr], c.serial) {
				sources[addr] = append(sources[addr], c.serial)
			}
		}
	}
	return sources
}

// connectionIPs are the IP addresses of a connection's endpoints; a
// host name is looked up (and logged when it does not resolve).
func (ts *trapSources) connectionIPs(c registry.Connection) []netip.Addr {
	var out []netip.Addr
	for _, a := range c.Addresses {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			out = append(out, ip.Unmap())
			continue
		}
		// Bounded on its own: a refresh runs from the places the
		// registry changes, some of which (the HA part's watch, an
		// acting period's start) carry no request.
		ctx, cancel := clock.WithTimeout(context.Background(), ts.clock, resolveTimeout)
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err != nil {
			ts.log.Warn("storage address does not resolve: its traps are not accepted", "host", host, "err", err)
			continue
		}
		for _, ip := range ips {
			out = append(out, ip.Unmap())
		}
	}
	return out
}
