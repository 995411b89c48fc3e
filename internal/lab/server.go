package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
	"github.com/lockstep-io/lockstep/internal/workload"
)

// Server is a running lab.
type Server struct {
	cfg    *Config
	clock  clock.Clock
	log    *slog.Logger
	fabric *emu.Fabric
	tls    *tls.Config      // the configured certificate (cert_file), served by every endpoint; nil: ca issues one per endpoint
	ca     *wire.SelfSigned // the lab's own CA when no certificate is configured
	caPEM  []byte

	endpoints map[hal.Serial]*[2]*endpoint
	hmcs      map[string]*hmcEndpoint // by name (hmc.go)
	zos       map[string]*zosHost     // by host name (zos.go)
	control   net.Listener

	mu        sync.Mutex
	workload  *workload.Run
	layout    *workload.Layout
	via       *emu.Host // the z/OS host the workload writes through; nil: straight to the primaries
	trapLinks []trapLink

	wg sync.WaitGroup
}

// Options are what the lab file does not say.
type Options struct {
	Logger *slog.Logger // nil: discard
	// Clock is storage time; nil means real time scaled by the file's speed.
	Clock clock.Clock
	// ControlSocket overrides the file's control_socket.
	ControlSocket string
	// CommandLogSize bounds the fabric's record of commands (the op
	// commands); zero means emu.DefaultCommandLogSize.
	CommandLogSize int
}

// Start builds the fabric, listens on every endpoint and on the control
// socket, and serves until ctx is done; Wait returns then.
func Start(ctx context.Context, cfg *Config, opt Options) (*Server, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clk := opt.Clock
	if clk == nil {
		clk = clock.Real()
		if cfg.Speed > 1 {
			clk = clock.NewScaled(cfg.Speed)
		}
	}
	s := &Server{cfg: cfg, clock: clk, log: log.With("component", "lab"),
		endpoints: map[hal.Serial]*[2]*endpoint{}}
	s.fabric = emu.NewFabric(emu.Options{Clock: clk, CopyPerBlock: cfg.CopyPerBlock,
		CommandLogSize: opt.CommandLogSize})
	if err := cfg.Topology.Build(s.fabric); err != nil {
		return nil, err
	}
	if err := s.setupTLS(); err != nil {
		return nil, err
	}
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	for _, sc := range cfg.Systems {
		eps := &[2]*endpoint{}
		for i, addr := range sc.Endpoints {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("lab: %s cluster %d: %w", sc.Serial, i, err)
			}
			listeners = append(listeners, ln)
			tlsCfg, err := s.endpointTLS(sc.Serial, addr)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("lab: %s cluster %d: %w", sc.Serial, i, err)
			}
			eps[i] = &endpoint{server: s, system: s.fabric.System(sc.Serial), cfg: sc, index: i, ln: ln, tls: tlsCfg,
				modes: map[string]emu.LinkMode{}, conns: map[*servedConn]struct{}{}}
		}
		s.endpoints[sc.Serial] = eps
	}
	if err := s.startHMCs(ctx, &listeners); err != nil {
		closeAll()
		return nil, err
	}
	if err := s.startZOS(ctx); err != nil {
		closeAll()
		return nil, err
	}
	sock := cfg.ControlSocket
	if opt.ControlSocket != "" {
		sock = opt.ControlSocket
	}
	if sock == "" {
		sock = "lockstep-lab.sock"
	}
	_ = os.Remove(sock) // a socket left by a lab that died
	ctl, err := net.Listen("unix", sock)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("lab: control socket: %w", err)
	}
	s.control = ctl
	for _, eps := range s.endpoints {
		for _, ep := range eps {
			s.wg.Go(func() { ep.serve(ctx) })
		}
	}
	s.wg.Go(func() { s.serveControl(ctx) })
	context.AfterFunc(ctx, func() {
		closeAll()
		ctl.Close()
		s.stopWorkload()
	})
	s.log.Info("lab started", "systems", len(cfg.Systems), "control", sock)
	return s, nil
}

// Wait returns once the lab has stopped.
func (s *Server) Wait() { s.wg.Wait() }

// Fabric is the lab's emulated storage.
func (s *Server) Fabric() *emu.Fabric { return s.fabric }

// CAPEM is the certificate authority managers must trust.
func (s *Server) CAPEM() []byte { return s.caPEM }

// ControlAddr is the control socket's path.
func (s *Server) ControlAddr() string { return s.control.Addr().String() }

func (s *Server) setupTLS() error {
	if s.cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("lab: tls: %w", err)
		}
		s.tls = wire.ServerTLSConfig(cert)
		return nil
	}
	// Certificates are checked against the wall clock by the managers,
	// whatever the lab's storage time does.
	ss, err := wire.NewSelfSigned(clock.Real().Now(), 365*24*time.Hour, "localhost", "127.0.0.1", "::1")
	if err != nil {
		return fmt.Errorf("lab: tls: %w", err)
	}
	s.ca, s.caPEM = ss, ss.CAPEM
	if s.cfg.CAOut != "" {
		if err := os.WriteFile(s.cfg.CAOut, ss.CAPEM, 0o644); err != nil {
			return fmt.Errorf("lab: writing the CA: %w", err)
		}
	}
	return nil
}

// endpointTLS is what one cluster endpoint serves: the configured
// certificate, or one of its own from the lab's CA, like a real storage
// system's cluster: it names the storage system (its serial URI SAN) and
// the endpoint's own address, so a manager that checks cluster 1 against
// cluster 0's name fails, as it would with a real array.
func (s *Server) endpointTLS(serial hal.Serial, addr string) (*tls.Config, error) {
	if s.tls != nil {
		return s.tls, nil
	}
	cert, err := s.ca.Issue(serial, certHosts(addr)...)
	if err != nil {
		return nil, err
	}
	return wire.ServerTLSConfig(cert), nil
}

// certHosts are the names an endpoint listening on addr (host:port, as
// written in the lab file) is reached by: its host, or the loopback names
// when it listens on every address or on "localhost".
func certHosts(addr string) []string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "localhost" {
		return []string{"localhost", "127.0.0.1", "::1"}
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return []string{"localhost", "127.0.0.1", "::1"}
	}
	return []string{host}
}

// SourceIP is the address a system's datagrams (its traps) leave from:
// the IP address its cluster 0 listens on, so that a trap receiver can
// tell the systems apart by address, as it can real ones. It is nil when
// that endpoint listens on every address.
func (s *Server) SourceIP(serial hal.Serial) net.IP {
	eps := s.endpoints[serial]
	if eps == nil {
		return nil
	}
	if a, ok := eps[0].ln.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		return a.IP
	}
	return nil
}

// endpoint is one cluster of one storage system.
type endpoint struct {
	server *Server
	system *emu.System
	cfg    System
	index  int
	ln     net.Listener
	tls    *tls.Config

	mu      sync.Mutex
	modes   map[string]emu.LinkMode // by manager name; "" for every manager
	latency time.Duration
	conns   map[*servedConn]struct{}
}

type servedConn struct {
	manager string
	conn    net.Conn
	cancel  context.CancelFunc
}

func (ep *endpoint) addr() string { return ep.ln.Addr().String() }

// modeFor is the link state a manager sees on this endpoint.
func (ep *endpoint) modeFor(manager string) emu.LinkMode {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if m, ok := ep.modes[manager]; ok {
		return m
	}
	return ep.modes[""]
}

func (ep *endpoint) serve(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ep.ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				ep.server.log.Warn("accept failed", "serial", ep.cfg.Serial, "cluster", ep.index, "err", err)
			}
			return
		}
		if ep.system.Crashed() || ep.modeFor("") == emu.LinkDown {
			conn.Close() // a crashed cluster or a cut cable: the manager's connect fails
			continue
		}
		wg.Go(func() { ep.serveConn(ctx, conn) })
	}
}

func (ep *endpoint) serveConn(ctx context.Context, raw net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc := &servedConn{conn: raw, cancel: cancel}
	accept := func(h wire.Hello) (wire.HelloOK, hal.StorageSystem, error) {
		if h.Serial != "" && h.Serial != ep.cfg.Serial {
			return wire.HelloOK{}, nil, fmt.Errorf("%w: this endpoint serves %s", wire.ErrUnknownSerial, ep.cfg.Serial)
		}
		if err := wire.CheckCredentials(h, ep.cfg.User, ep.cfg.Password); err != nil {
			return wire.HelloOK{}, nil, err
		}
		if ep.modeFor(h.Manager) == emu.LinkDown || ep.system.Crashed() {
			return wire.HelloOK{}, nil, fmt.Errorf("%w: connection refused", hal.ErrUnreachable)
		}
		ep.mu.Lock()
		sc.manager = h.Manager
		ep.conns[sc] = struct{}{}
		ep.mu.Unlock()
		return wire.HelloOK{Serial: ep.cfg.Serial, Capabilities: hal.Capabilities{Heartbeat: true},
				Epoch: ep.system.Epoch()},
			&gatedSystem{StorageSystem: ep.system.Connect(h.Manager), ep: ep, manager: h.Manager}, nil
	}
	conn := newGatedConn(tls.Server(raw, ep.tls), ep, sc)
	err := wire.Serve(ctx, conn, accept, wire.ServerOptions{Logger: ep.server.log.With(
		"serial", string(ep.cfg.Serial), "cluster", ep.index), Clock: ep.server.clock})
	ep.mu.Lock()
	delete(ep.conns, sc)
	ep.mu.Unlock()
	if err != nil {
		ep.server.log.Debug("connection ended", "serial", ep.cfg.Serial, "cluster", ep.index, "err", err)
	}
}

// setMode applies a link fault to this endpoint; "down" also closes the
// matching live connections.
func (ep *endpoint) setMode(manager string, mode emu.LinkMode) {
	ep.mu.Lock()
	if mode == emu.LinkUp && manager == "" {
		clear(ep.modes)
	} else {
		ep.modes[manager] = mode
	}
	var kill []*servedConn
	if mode == emu.LinkDown {
		for sc := range ep.conns {
			if manager == "" || sc.manager == manager {
				kill = append(kill, sc)
			}
		}
	}
	ep.mu.Unlock()
	for _, sc := range kill {
		sc.conn.Close() // first: commands the cancel ends must not answer
		sc.cancel()
	}
}

// dropAll closes every live connection (a crash).
func (ep *endpoint) dropAll() {
	ep.mu.Lock()
	var kill []*servedConn
	for sc := range ep.conns {
		kill = append(kill, sc)
	}
	ep.mu.Unlock()
	for _, sc := range kill {
		sc.conn.Close() // first: commands the cancel ends must not answer
		sc.cancel()
	}
}

// gatedSystem applies an endpoint's latency and black hole to commands:
// a black-holed command is never executed, as if the request was lost.
type gatedSystem struct {
	hal.StorageSystem
	ep      *endpoint
	manager string
}

func (g *gatedSystem) gate(ctx context.Context) error {
	ep := g.ep
	ep.mu.Lock()
	latency := ep.latency
	ep.mu.Unlock()
	if latency > 0 {
		if err := clock.Sleep(ctx, ep.server.clock, latency); err != nil {
			return fmt.Errorf("%w: %w", hal.ErrTimeout, err)
		}
	}
	if ep.modeFor(g.manager) == emu.LinkBlackhole {
		<-ctx.Done()
		return fmt.Errorf("%w: %w", hal.ErrTimeout, ctx.Err())
	}
	return nil
}

// Topology is the lab's layout: systems, paths and the mirrored pairs.
func (s *Server) Topology() *topology.Topology { return s.cfg.Topology }
