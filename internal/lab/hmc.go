package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/netdelay"
)

// hmcEndpoint serves one emulated HMC on its address: TLS with a
// certificate naming the HMC (urn:lockstep:hmc:NAME), the HMC's own
// credentials, and the storage control protocol with a target serial on
// every request.
type hmcEndpoint struct {
	server *Server
	hmc    *emu.HMC
	cfg    HMC
	ln     net.Listener
	tls    *tls.Config

	mu         sync.Mutex
	conns      map[*servedConn]struct{}
	hmcLatency time.Duration // the injected latency, for status
	// downFor are the managers the HMC is down for (fault hmc with a
	// manager): their log-on is refused, as a manager whose network
	// cannot reach the HMC sees it, while the others are served.
	downFor map[string]bool
}

// startHMCs builds the lab file's HMCs over the fabric, listens on their
// endpoints (appending the listeners to *listeners) and serves them until
// ctx is done.
func (s *Server) startHMCs(ctx context.Context, listeners *[]net.Listener) error {
	s.hmcs = map[string]*hmcEndpoint{}
	for _, hc := range s.cfg.HMCs {
		h, err := emu.NewHMC(s.fabric, hc.HMCConfig)
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		ln, err := net.Listen("tcp", hc.Endpoint)
		if err != nil {
			return fmt.Errorf("lab: HMC %s: %w", hc.Name, err)
		}
		*listeners = append(*listeners, ln)
		tlsCfg := s.tls
		if tlsCfg == nil {
			cert, err := s.ca.IssueHMC(hc.Name, certHosts(hc.Endpoint)...)
			if err != nil {
				return fmt.Errorf("lab: HMC %s: %w", hc.Name, err)
			}
			tlsCfg = wire.ServerTLSConfig(cert)
		}
		s.hmcs[hc.Name] = &hmcEndpoint{server: s, hmc: h, cfg: hc, ln: ln, tls: tlsCfg, conns: map[*servedConn]struct{}{}}
	}
	for _, ep := range s.hmcs {
		s.wg.Go(func() { ep.serve(ctx) })
	}
	return nil
}

// HMC is the emulated HMC of that name, or nil.
func (s *Server) HMC(name string) *emu.HMC {
	if ep := s.hmcs[name]; ep != nil {
		return ep.hmc
	}
	return nil
}

func (ep *hmcEndpoint) serve(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ep.ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				ep.server.log.Warn("accept failed", "hmc", ep.cfg.Name, "err", err)
			}
			return
		}
		if ep.hmc.Mode() == emu.LinkDown {
			conn.Close() // a dead HMC: the manager's connect fails
			continue
		}
		wg.Go(func() { ep.serveConn(ctx, conn) })
	}
}

func (ep *hmcEndpoint) serveConn(ctx context.Context, raw net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc := &servedConn{conn: raw, cancel: cancel}
	accept := func(h wire.Hello) (wire.HelloOK, hal.StorageSystem, error) {
		if h.HMC != "" && h.HMC != ep.cfg.Name {
			return wire.HelloOK{}, nil, fmt.Errorf("%w: this endpoint is HMC %s", wire.ErrUnknownSerial, ep.cfg.Name)
		}
		if err := wire.CheckCredentials(h, ep.cfg.User, ep.cfg.Password); err != nil {
			return wire.HelloOK{}, nil, err
		}
		if ep.hmc.Mode() == emu.LinkDown {
			return wire.HelloOK{}, nil, fmt.Errorf("%w: HMC %s is down", hal.ErrUnreachable, ep.cfg.Name)
		}
		ep.mu.Lock()
		if ep.downFor[h.Manager] {
			ep.mu.Unlock()
			return wire.HelloOK{}, nil, fmt.Errorf("%w: HMC %s is down for manager %s", hal.ErrUnreachable, ep.cfg.Name, h.Manager)
		}
		sc.manager = h.Manager
		ep.conns[sc] = struct{}{}
		ep.mu.Unlock()
		return wire.HelloOK{HMC: ep.cfg.Name, Attached: ep.hmc.Systems(), Capabilities: hal.Capabilities{Heartbeat: true}},
			&hmcServed{session: ep.hmc.Connect(h.Manager), hmc: ep.hmc}, nil
	}
	conn := &hmcGatedConn{Conn: netdelay.NewConn(tls.Server(raw, ep.tls), ep.server.clock, ep.hmc.Latency), hmc: ep.hmc}
	err := wire.Serve(ctx, conn, accept, wire.ServerOptions{Logger: ep.server.log.With("hmc", ep.cfg.Name),
		Clock: ep.server.clock})
	ep.mu.Lock()
	delete(ep.conns, sc)
	ep.mu.Unlock()
	if err != nil {
		ep.server.log.Debug("connection ended", "hmc", ep.cfg.Name, "err", err)
	}
}

// dropAll closes every manager connection (the HMC went down), or the
// named manager's only.
func (ep *hmcEndpoint) dropAll(manager string) {
	ep.mu.Lock()
	var kill []*servedConn
	for sc := range ep.conns {
		if manager == "" || sc.manager == manager {
			kill = append(kill, sc)
		}
	}
	ep.mu.Unlock()
	for _, sc := range kill {
		// Close before cancelling: cancelling ends the commands the HMC
		// held, and their answers must not get out (a dead HMC answers
		// nothing; a "timeout" answer would stop the manager's resend).
		sc.conn.Close()
		sc.cancel()
	}
}

// hmcGatedConn drops what a black-holed HMC would write: its answers and
// events vanish while the connection stays open. What it does write
// waits out the HMC's injected latency (the emulated HMC holds each
// relayed command for it on the way out).
type hmcGatedConn struct {
	*netdelay.Conn
	hmc *emu.HMC
}

func (c *hmcGatedConn) Write(b []byte) (int, error) {
	if c.hmc.Mode() == emu.LinkBlackhole {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// hmcServed is what wire.Serve runs an HMC connection's requests on: a
// wire.Router over the HMC session. Requests always name their target,
// so the hal.StorageSystem methods themselves are never called; they
// refuse, should a future server call them.
type hmcServed struct {
	session *emu.HMCSession
	hmc     *emu.HMC
}

var (
	_ hal.StorageSystem = (*hmcServed)(nil)
	_ wire.Router       = (*hmcServed)(nil)
)

func (h *hmcServed) Route(serial hal.Serial) (hal.StorageSystem, error) {
	return h.session.Route(serial)
}

func (h *hmcServed) Attached() []wire.AttachedSystem {
	var out []wire.AttachedSystem
	for _, l := range h.hmc.Links() {
		out = append(out, wire.AttachedSystem{Serial: l.Serial, LinkUp: l.Up})
	}
	return out
}

func (h *hmcServed) Events(ctx context.Context) (<-chan hal.Event, error) {
	return h.session.Events(ctx)
}

var errNoTarget = fmt.Errorf("%w: a request to an HMC names its storage system", hal.ErrUnsupported)

func (h *hmcServed) Serial() hal.Serial             { return "" }
func (h *hmcServed) Capabilities() hal.Capabilities { return hal.Capabilities{Heartbeat: true} }
func (h *hmcServed) EstablishPaths(context.Context, hal.Epoch, []hal.PathSpec) error {
	return errNoTarget
}
func (h *hmcServed) EstablishPairs(context.Context, hal.Epoch, []hal.PairSpec) error {
	return errNoTarget
}
func (h *hmcServed) Freeze(context.Context, hal.Epoch, []hal.LSSPair) error     { return errNoTarget }
func (h *hmcServed) Thaw(context.Context, hal.Epoch, []hal.LSS) error           { return errNoTarget }
func (h *hmcServed) Suspend(context.Context, hal.Epoch, []hal.VolumePair) error { return errNoTarget }
func (h *hmcServed) Recover(context.Context, hal.Epoch, []hal.VolumePair) error { return errNoTarget }
func (h *hmcServed) Failback(context.Context, hal.Epoch, []hal.VolumePair) error {
	return errNoTarget
}
func (h *hmcServed) RemovePairs(context.Context, hal.Epoch, []hal.VolumePair) error {
	return errNoTarget
}
func (h *hmcServed) RemovePaths(context.Context, hal.Epoch, []hal.LSSPair) error {
	return errNoTarget
}
func (h *hmcServed) EnableHeartbeat(context.Context, hal.Epoch, hal.HeartbeatSpec) error {
	return errNoTarget
}
func (h *hmcServed) Heartbeat(context.Context, hal.Epoch, string) error        { return errNoTarget }
func (h *hmcServed) DisableHeartbeat(context.Context, hal.Epoch, string) error { return errNoTarget }
func (h *hmcServed) QueryPairs(context.Context, hal.Epoch) ([]hal.PairStatus, error) {
	return nil, errNoTarget
}
func (h *hmcServed) QueryPaths(context.Context, hal.Epoch) ([]hal.PathStatus, error) {
	return nil, errNoTarget
}
func (h *hmcServed) QueryLSSs(context.Context, hal.Epoch) ([]hal.LSSStatus, error) {
	return nil, errNoTarget
}

// registerHMCTraps makes HMC p.HMC send its attached systems' events as
// traps to p.Addr from its endpoint's address, until ctx ends. The HMC's
// own faults (down, black-holed, a private link down) lose them; a
// manager's endpoint faults do not: the traps do not cross them.
func (s *Server) registerHMCTraps(ctx context.Context, p TrapParam) error {
	ep := s.hmcs[p.HMC]
	switch {
	case ep == nil:
		return fmt.Errorf("trap-register: unknown HMC %q", p.HMC)
	case p.System != "":
		return fmt.Errorf("trap-register: an HMC sends the traps of every system it fronts: give hmc or system, not both")
	}
	r := emu.TrapReceiver{Addr: p.Addr, Community: p.Community, Manager: "snmp-trap:" + p.Addr + ":" + p.Manager + "@hmc:" + p.HMC}
	if host, _, err := net.SplitHostPort(ep.ln.Addr().String()); err == nil {
		r.LocalAddr = net.JoinHostPort(host, "0")
	}
	if err := ep.hmc.RegisterTrapReceiver(ctx, r); err != nil {
		return fmt.Errorf("trap-register: %w", err)
	}
	s.log.Info("trap receiver registered", "addr", p.Addr, "manager", p.Manager, "hmc", p.HMC)
	return nil
}

// HMCStatus is what status says of one HMC.
type HMCStatus struct {
	Name     string          `json:"name"`
	Endpoint string          `json:"endpoint"`
	Mode     string          `json:"mode"` // up | down | blackhole
	Latency  string          `json:"latency,omitempty"`
	Held     int             `json:"held,omitempty"` // commands swallowed while black-holed
	Systems  []HMCLinkStatus `json:"systems"`
}

// HMCLinkStatus is an HMC's private link to one attached system.
type HMCLinkStatus struct {
	Serial string `json:"serial"`
	Up     bool   `json:"up"`   // as the HMC sees it: a black-holed link looks up
	Mode   string `json:"mode"` // the fault's: up, down or blackhole
}

// HMCStatus lists the HMCs with their bound endpoints and links.
func (s *Server) HMCStatus() []HMCStatus {
	var out []HMCStatus
	for _, name := range slices.Sorted(maps.Keys(s.hmcs)) {
		ep := s.hmcs[name]
		st := HMCStatus{Name: name, Endpoint: ep.ln.Addr().String(), Mode: ep.hmc.Mode().String(), Held: ep.hmc.Held()}
		ep.mu.Lock()
		if d := ep.hmcLatency; d > 0 {
			st.Latency = d.String()
		}
		ep.mu.Unlock()
		for _, l := range ep.hmc.Links() {
			st.Systems = append(st.Systems, HMCLinkStatus{Serial: string(l.Serial), Up: l.Up, Mode: l.Mode.String()})
		}
		out = append(out, st)
	}
	return out
}

// injectHMC applies the faults of an HMC: kind hmc (Mode up, down or
// blackhole, or Latency) and hmc-link (System's private link: Up, or
// Mode up, down or blackhole).
func (s *Server) injectHMC(f Fault) error {
	ep := s.hmcs[f.HMC]
	if ep == nil {
		return fmt.Errorf("fault %s: unknown HMC %q", f.Kind, f.HMC)
	}
	switch f.Kind {
	case "hmc":
		switch {
		case f.Mode != "" && f.Latency != "":
			return fmt.Errorf("fault hmc: a mode or a latency, not both")
		case f.Latency != "":
			d, err := time.ParseDuration(f.Latency)
			if err != nil || d < 0 {
				return fmt.Errorf("fault hmc: latency %q is not a duration", f.Latency)
			}
			ep.mu.Lock()
			ep.hmcLatency = d
			ep.mu.Unlock()
			ep.hmc.SetLatency(d)
		case f.Manager != "":
			// Down for one manager only: up or down, no black hole.
			if f.Mode != "up" && f.Mode != "down" {
				return fmt.Errorf("fault hmc: mode %q for manager %s is not up or down", f.Mode, f.Manager)
			}
			ep.mu.Lock()
			if ep.downFor == nil {
				ep.downFor = map[string]bool{}
			}
			ep.downFor[f.Manager] = f.Mode == "down"
			ep.mu.Unlock()
			if f.Mode == "down" {
				ep.dropAll(f.Manager)
			}
		default:
			mode, ok := map[string]emu.LinkMode{"up": emu.LinkUp, "down": emu.LinkDown, "blackhole": emu.LinkBlackhole}[f.Mode]
			if !ok {
				return fmt.Errorf("fault hmc: mode %q is not up, down or blackhole (or give a latency)", f.Mode)
			}
			ep.hmc.SetMode(mode)
			if mode == emu.LinkDown {
				ep.dropAll("")
			}
		}
	case "hmc-link":
		// Up says up or down; a mode, when given, says it instead (and
		// is the only way to black-hole the link).
		mode := map[bool]emu.LinkMode{true: emu.LinkUp, false: emu.LinkDown}[f.Up]
		if f.Mode != "" {
			m, ok := map[string]emu.LinkMode{"up": emu.LinkUp, "down": emu.LinkDown, "blackhole": emu.LinkBlackhole}[f.Mode]
			if !ok {
				return fmt.Errorf("fault hmc-link: mode %q is not up, down or blackhole", f.Mode)
			}
			mode = m
		}
		if err := ep.hmc.SetLinkMode(hal.Serial(f.System), mode); err != nil {
			return fmt.Errorf("fault hmc-link: %w", err)
		}
	}
	s.log.Info("fault injected", "kind", f.Kind, "hmc", f.HMC, "system", f.System, "up", f.Up,
		"mode", f.Mode, "latency", f.Latency, "manager", f.Manager)
	return nil
}
