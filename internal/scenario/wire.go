package scenario

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/hmc"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/drivers/zos"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/hal/compose"
	"github.com/lockstep-io/lockstep/internal/emu"
	labsrv "github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// How the core reaches the storage systems (Options.Via).
const (
	// ViaInProcess: the core calls the emulated systems in-process.
	ViaInProcess = ""
	// ViaDirect: a lab server on loopback TLS, reached through the direct
	// driver (each system's two cluster endpoints).
	ViaDirect = "direct"
	// ViaHMC: a lab server on loopback TLS, every system behind two
	// emulated HMCs (dual HMC), reached through drivers/hmc.
	ViaHMC = "hmc"
)

// WireSpeed is the default scale of storage time for the runs over
// sockets: the CG timeouts of 60 s and 120 s last 3 s and 6 s of wall
// time.
const WireSpeed = 20

// The HMCs of a ViaHMC lab: both front every system, in this order in
// the manager's HMC connection.
var labHMCs = []string{"HMC1", "HMC2"}

const (
	labUser    = "lockstep"
	hmcUser    = "hmcuser"
	hmcSecret  = "hmc-pw"
	hmcConnect = 30 * time.Second // wall time for the HMCs to answer at setup

	// The z/OS host of a z/OS scenario: it has every system online.
	labZOSHost    = "SYSA"
	labSysplex    = "PLEX1"
	zosUser       = "zosuser"
	zosSecret     = "zos-pw"
	labZOSChannel = "40"
)

// wireLab is the lab server of a run over sockets and what closes it.
type wireLab struct {
	srv     *labsrv.Server
	via     string
	zos     bool                          // each system also reached through z/OS host labZOSHost
	direct  map[hal.Serial]*direct.System // ViaDirect: each system's direct driver
	cleanup []func()
}

func (w *wireLab) close() {
	for i := len(w.cleanup) - 1; i >= 0; i-- {
		w.cleanup[i]()
	}
}

// inject applies a lab fault; a fault the lab refuses is a broken
// scenario, logged in the timeline.
func (l *lab) inject(f labsrv.Fault) {
	if err := l.wire.srv.Inject(f); err != nil {
		l.logf("FAULT REFUSED by the lab: %v", err)
	}
}

// setupWire serves the standard layout from a lab server on loopback
// TLS (behind two HMCs when via is ViaHMC) and points the real core at
// it through the real drivers. The lab and the core run on scaled clocks
// of the same speed, so that durations mean the same on both sides.
func setupWire(ctx context.Context, opt Options) (*lab, error) {
	speed := opt.Speed
	if speed == 0 {
		speed = WireSpeed
	}
	topo := topology.Standard(4, topology.DefaultLSSs())
	cfg := &labsrv.Config{Speed: speed, Topology: topo}
	var serials []hal.Serial
	for _, sc := range topo.Systems {
		serials = append(serials, sc.Serial)
		cfg.Systems = append(cfg.Systems, labsrv.System{SystemConfig: sc, User: labUser,
			Password: "pw-" + string(sc.Serial), Endpoints: [2]string{"127.0.0.1:0", "127.0.0.1:0"}})
	}
	if opt.Via == ViaHMC {
		for _, name := range labHMCs {
			cfg.HMCs = append(cfg.HMCs, labsrv.HMC{HMCConfig: emu.HMCConfig{Name: name, Systems: serials,
				Processing: 200 * time.Microsecond, LinkLatency: 100 * time.Microsecond},
				User: hmcUser, Password: hmcSecret, Endpoint: "127.0.0.1:0"})
		}
	}
	if opt.zos {
		h := labsrv.ZOSHost{Name: labZOSHost, Sysplex: labSysplex, Endpoint: "127.0.0.1:0", User: zosUser,
			Password: zosSecret, LPARs: []string{labZOSHost + "1"}}
		for _, serial := range serials {
			h.Online = append(h.Online, labsrv.ZOSOnline{Serial: serial, Channels: []string{labZOSChannel}})
		}
		cfg.ZOSHosts = append(cfg.ZOSHosts, h)
	}
	dir, err := os.MkdirTemp("", "lockstep-scenario-")
	if err != nil {
		return nil, err
	}
	w := &wireLab{via: opt.Via, zos: opt.zos, cleanup: []func(){func() { os.RemoveAll(dir) }}}
	labClk, coreClk := clock.NewScaled(speed), clock.NewScaled(speed)
	labCtx, stopLab := context.WithCancel(context.WithoutCancel(ctx))
	srv, err := labsrv.Start(labCtx, cfg, labsrv.Options{Clock: labClk, ControlSocket: filepath.Join(dir, "lab.sock")})
	if err != nil {
		stopLab()
		w.close()
		return nil, err
	}
	w.srv = srv
	w.cleanup = append(w.cleanup, func() { stopLab(); srv.Wait() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM())
	conns := map[hal.Serial]hal.StorageSystem{}
	ready := func() bool { return true }
	switch opt.Via {
	case ViaDirect:
		var ds []*direct.System
		var zs []*zos.System
		w.direct = map[hal.Serial]*direct.System{}
		for _, st := range srv.Status() {
			serial := hal.Serial(st.Serial)
			d := direct.New(ctx, direct.Options{Serial: serial, Endpoints: st.Endpoints, Manager: manager,
				User: labUser, Password: "pw-" + st.Serial, TLS: wire.ClientTLSConfig(pool, "127.0.0.1"),
				Clock: coreClk, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
			w.cleanup = append(w.cleanup, func() { d.Close() })
			conns[serial], ds = d, append(ds, d)
			w.direct[serial] = d
			if !opt.zos {
				continue
			}
			// The z/OS connection after the direct one (the daemon's
			// order): the heartbeat over direct only, commands fail over.
			z := zos.New(ctx, zos.Options{Serial: serial, Host: labZOSHost, Addr: srv.ZOSEndpoint(labZOSHost),
				Sysplex: labSysplex, Manager: manager, User: zosUser, Password: zosSecret,
				TLS: wire.ClientTLSConfig(pool, "127.0.0.1"), Clock: coreClk,
				BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
			w.cleanup = append(w.cleanup, func() { z.Close() })
			zs = append(zs, z)
			cd, err := compose.New(serial, []hal.Driver{d, z}, []string{"direct", "zos " + labZOSHost}, compose.WithClock(coreClk))
			if err != nil {
				w.close()
				return nil, err
			}
			conns[serial] = cd
		}
		ready = func() bool {
			for _, d := range ds {
				if d.Cluster() < 0 {
					return false
				}
			}
			for _, z := range zs {
				if z.Via() == "" {
					return false
				}
			}
			return true
		}
	case ViaHMC:
		hopt := hmc.Options{Manager: manager, User: hmcUser, Password: hmcSecret,
			TLS: wire.ClientTLSConfig(pool, "127.0.0.1"), Clock: coreClk,
			BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}
		for _, name := range labHMCs {
			for _, st := range srv.HMCStatus() {
				if st.Name == name {
					hopt.Consoles = append(hopt.Consoles, hmc.Console{Addr: st.Endpoint, Name: name})
				}
			}
		}
		c, err := hmc.New(hopt)
		if err != nil {
			w.close()
			return nil, err
		}
		w.cleanup = append(w.cleanup, func() { c.Close() })
		for _, serial := range serials {
			conns[serial] = c.System(serial)
		}
		ready = func() bool {
			for _, st := range c.Consoles() {
				if !st.Up {
					return false
				}
			}
			return true
		}
	default:
		w.close()
		return nil, fmt.Errorf("scenario: --via %q: want %s or %s", opt.Via, ViaDirect, ViaHMC)
	}
	l := &lab{clk: labClk, fab: srv.Fabric(), topo: topo, res: &Result{}, start: labClk.Now(), wire: w}
	// Setup, not the scenario: on a loaded host the connections and the
	// establish calls take longer than the drivers' default deadline, so
	// wait for the connections (wall time) and give the calls ten
	// minutes of storage time.
	for end := time.Now().Add(hmcConnect); !ready(); {
		if time.Now().After(end) {
			w.close()
			return nil, fmt.Errorf("scenario: the %s connections did not come up in %v", opt.Via, hmcConnect)
		}
		if err := clock.Sleep(ctx, clock.Real(), 10*time.Millisecond); err != nil {
			w.close()
			return nil, err
		}
	}
	setupCtx, cancelSetup := clock.WithTimeout(ctx, coreClk, 10*time.Minute)
	defer cancelSetup()
	if err := topo.Establish(setupCtx, coreClk, conns, 1, time.Minute); err != nil {
		w.close()
		return nil, err
	}
	how := map[string]string{ViaDirect: "direct connections (two clusters each)",
		ViaHMC: "a dual HMC (HMC1, HMC2) fronting every system"}[opt.Via]
	if opt.zos {
		how += fmt.Sprintf(", then z/OS host %s (sysplex %s) with every system online (no heartbeat through it)",
			labZOSHost, labSysplex)
	}
	l.logf("%d pairs full-duplex, 4 primaries -> 4 secondaries, one consistency group; the core reaches storage over loopback TLS through %s",
		len(topo.Pairs), how)
	if err := l.startCore(ctx, opt, coreClk, conns); err != nil {
		w.close()
		return nil, err
	}
	return l, nil
}

// startCore starts the freeze core on the primaries of conns with the
// scenario's group, and waits for the heartbeat to be armed when on.
func (l *lab) startCore(ctx context.Context, opt Options, clk clock.Clock, conns map[hal.Serial]hal.StorageSystem) error {
	sources := map[hal.Serial]hal.StorageSystem{}
	for _, serial := range l.topo.Sources() {
		sources[serial] = conns[serial]
	}
	l.core = freeze.New(freeze.Options{Clock: clk, Timings: opt.Timings, Systems: sources, Epoch: 1,
		Heartbeat: opt.Heartbeat, Observer: observer{l}})
	coreCtx, stop := context.WithCancel(ctx)
	l.stopCore, l.coreDone = stop, make(chan error, 1)
	go func() { l.coreDone <- l.core.Run(coreCtx) }()
	g := freeze.Group{Name: group, Pairs: l.topo.LSSPairs(), ReleaseIO: opt.ReleaseIO, LowestCG: lowestCG(l.topo)}
	if err := l.core.SetGroups(ctx, []freeze.Group{g}); err != nil {
		stop()
		return err
	}
	if opt.Heartbeat {
		if err := l.waitArmed(ctx); err != nil {
			stop()
			return err
		}
		h, _ := freeze.DeriveH(g.LowestCG, opt.Timings)
		l.logf("heartbeat armed on every primary: every %v, storage timeout H = %v (lowest CG timeout %v - margin %v)",
			opt.Timings.Interval, h, g.LowestCG, opt.Timings.Margin())
	}
	observeStorage(ctx, l)
	return nil
}

// errNeedsHMC: a scenario of the HMC connection run without --via hmc.
var errNeedsHMC = errors.New("scenario: this scenario needs --via hmc")

// errNeedsDirect: a scenario of the z/OS connection run without --via
// direct (its TCP/IP connections are the direct driver's).
var errNeedsDirect = errors.New("scenario: this scenario needs --via direct")

// cutManager cuts the manager off one system: its two cluster endpoints
// (direct, in-process), or the private links of every HMC fronting it
// (hmc: the HMCs stay up and serve the other systems).
func (l *lab) cutManager(serial hal.Serial) {
	switch {
	case l.wire == nil:
		l.fab.System(serial).SetManagerLink(manager, emu.LinkDown)
	case l.wire.via == ViaHMC:
		for _, h := range labHMCs {
			l.inject(labsrv.Fault{Kind: "hmc-link", HMC: h, System: string(serial), Up: false})
		}
	default:
		l.inject(labsrv.Fault{Kind: "manager", System: string(serial), Endpoint: -1, Mode: "down", Manager: manager})
	}
}

// cutPaths fails every path of a system.
func (l *lab) cutPaths(serial hal.Serial) {
	if l.wire == nil {
		l.fab.SetSystemPaths(serial, false)
		return
	}
	l.inject(labsrv.Fault{Kind: "paths", System: string(serial)})
}

// emuRoute is a system through one in-process emulated HMC, as a
// hal.Driver for hal/compose: connected while the HMC is up and its
// private link to the system is.
type emuRoute struct {
	hal.StorageSystem
	h      *emu.HMC
	serial hal.Serial
}

func (r emuRoute) Via() string {
	if r.h.Mode() != emu.LinkUp {
		return ""
	}
	for _, l := range r.h.Links() {
		if l.Serial == r.serial && l.Up {
			return "HMC " + r.h.Name()
		}
	}
	return ""
}

func (r emuRoute) Close() error { return nil }

// behindDualHMC puts two emulated HMCs in front of every system of the
// in-process fabric and returns each system as the manager reaches it
// then: through either HMC, composed (hal/compose: HMC1 first, the other
// when one cannot deliver).
func (l *lab) behindDualHMC() (map[hal.Serial]hal.StorageSystem, error) {
	var serials []hal.Serial
	for _, s := range l.fab.Systems() {
		serials = append(serials, s.Serial())
	}
	var sessions []*emu.HMCSession
	for _, name := range labHMCs {
		h, err := emu.NewHMC(l.fab, emu.HMCConfig{Name: name, Systems: serials,
			Processing: 200 * time.Microsecond, LinkLatency: 100 * time.Microsecond})
		if err != nil {
			return nil, err
		}
		l.hmcs = append(l.hmcs, h)
		sessions = append(sessions, h.Connect(manager))
	}
	out := map[hal.Serial]hal.StorageSystem{}
	for _, serial := range serials {
		var drivers []hal.Driver
		for i, s := range sessions {
			route, err := s.Route(serial)
			if err != nil {
				return nil, err
			}
			drivers = append(drivers, emuRoute{StorageSystem: route, h: l.hmcs[i], serial: serial})
		}
		d, err := compose.New(serial, drivers, slices.Clone(labHMCs), compose.WithClock(l.clk))
		if err != nil {
			return nil, err
		}
		out[serial] = d
	}
	l.logf("every system behind a dual HMC (%s), reached through either", strings.Join(labHMCs, ", "))
	return out, nil
}
