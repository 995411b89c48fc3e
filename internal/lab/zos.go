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
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
)

// zosHost is an emulated z/OS host agent: it serves managers of its
// sysplex over the wire protocol (z/OS extension) and carries their
// commands in-band over its channels to the storage systems it has
// online, and relays the state changes those systems raise as
// state-change messages.
type zosHost struct {
	server *Server
	cfg    ZOSHost
	ln     net.Listener
	tls    *tls.Config
	online map[hal.Serial]ZOSOnline
	// io is the host as its applications see storage: its device map,
	// its channels, and the HyperSwap it runs (emu.Host). The host's
	// faults drive it too, so a channel loss is a swap trigger.
	io *emu.Host

	mu          sync.Mutex
	mode        emu.LinkMode // up, down (IPL'd, agent stopped), blackhole
	latency     time.Duration
	channelDown map[hal.Serial]bool
	conns       map[*zosConn]struct{}
	seq         uint64 // message numbers
	messages    uint64 // messages relayed to managers
	dropped     uint64 // messages lost: host not up, channel down, or a manager too slow
}

// zosConn is one manager's connection to the host, for one storage system.
type zosConn struct {
	manager string
	serial  hal.Serial
	raw     net.Conn
	cancel  context.CancelFunc
	msgs    chan wire.StateChange
}

// zosMessageBuffer is how many messages one connection may have waiting;
// beyond it the host drops them (the manager polls as a backstop).
const zosMessageBuffer = 4096

// startZOS listens for every z/OS host of the lab file and relays its
// systems' state changes until ctx is done.
func (s *Server) startZOS(ctx context.Context) error {
	var hosts []*zosHost
	closeAll := func() {
		for _, h := range hosts {
			h.ln.Close()
			if h.io != nil {
				h.io.Close()
			}
		}
	}
	for _, hc := range s.cfg.ZOSHosts {
		tlsCfg, err := s.zosTLS(hc)
		if err != nil {
			closeAll()
			return fmt.Errorf("lab: z/OS host %s: %w", hc.Name, err)
		}
		ln, err := net.Listen("tcp", hc.Endpoint)
		if err != nil {
			closeAll()
			return fmt.Errorf("lab: z/OS host %s: %w", hc.Name, err)
		}
		h := &zosHost{server: s, cfg: hc, ln: ln, tls: tlsCfg, online: map[hal.Serial]ZOSOnline{},
			channelDown: map[hal.Serial]bool{}, conns: map[*zosConn]struct{}{}}
		var serials []hal.Serial
		for _, o := range hc.Online {
			h.online[o.Serial] = o
			serials = append(serials, o.Serial)
		}
		hosts = append(hosts, h)
		if h.io, err = s.fabric.NewHost(emu.HostConfig{Name: hc.Name, Online: serials}); err != nil {
			closeAll()
			return fmt.Errorf("lab: z/OS host %s: %w", hc.Name, err)
		}
	}
	s.zos = map[string]*zosHost{}
	for _, h := range hosts {
		s.zos[h.cfg.Name] = h
		s.wg.Go(func() { h.serve(ctx) })
		if swaps, err := h.io.SwapEvents(ctx); err == nil {
			s.wg.Go(func() {
				for ev := range swaps {
					s.log.Warn("z/OS host swapped", "zos_host", ev.Host, "session", ev.Session,
						"planned", ev.Planned, "trigger", ev.Trigger)
				}
			})
		}
		for serial := range h.online {
			changes := s.fabric.System(serial).StateChanges(ctx, h.hears)
			s.wg.Go(func() { h.relay(changes) })
		}
	}
	context.AfterFunc(ctx, closeAll)
	return nil
}

// zosTLS is what a host's agent serves: its configured certificate, or
// one from the lab's CA naming the host and its listen address.
func (s *Server) zosTLS(hc ZOSHost) (*tls.Config, error) {
	if hc.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(hc.CertFile, hc.KeyFile)
		if err != nil {
			return nil, err
		}
		return wire.ServerTLSConfig(cert), nil
	}
	if s.ca == nil {
		return nil, errors.New("no certificate and no lab CA to issue one")
	}
	cert, err := s.ca.IssueZOSHost(hc.Name, certHosts(hc.Endpoint)...)
	if err != nil {
		return nil, err
	}
	return wire.ServerTLSConfig(cert), nil
}

// hears says whether the host hears an interrupt at the instant the
// system raises it (under the fabric's lock): not while it is down or
// black-holed, nor while its channels to the system are down.
func (h *zosHost) hears(sc emu.StateChange) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mode != emu.LinkUp || h.channelDown[sc.Serial] {
		h.dropped++
		return false
	}
	return true
}

// relay turns one system's state-change interrupts the host heard into
// messages to the managers connected for it.
func (h *zosHost) relay(changes <-chan emu.StateChange) {
	for sc := range changes {
		h.mu.Lock()
		h.seq++
		m := wire.StateChange{Kind: stateKind(sc.Kind), Host: h.cfg.Name, Seq: h.seq, At: sc.At, Serial: sc.Serial,
			EventSeq: sc.EventSeq, LSSPair: sc.LSSPair, Reason: sc.Reason, Volumes: sc.Volumes,
			LPARs: h.online[sc.Serial].LPARs}
		for c := range h.conns {
			if c.serial != sc.Serial {
				continue
			}
			select {
			case c.msgs <- m:
				h.messages++
			default:
				h.dropped++
			}
		}
		h.mu.Unlock()
		h.server.log.Debug("z/OS message", "host", h.cfg.Name, "msg", m.String())
	}
}

func stateKind(k emu.StateChangeKind) wire.StateKind {
	switch k {
	case emu.PairPending:
		return wire.StatePairPending
	case emu.PairSuspending:
		return wire.StatePairSuspending
	case emu.PairSuspended:
		return wire.StatePairSuspended
	case emu.PairFullDuplex:
		return wire.StatePairFullDuplex
	case emu.ExtendedLongBusy:
		return wire.StateExtendedLongBusy
	}
	return 0 // not encodable: the server drops it with a warning
}

func (h *zosHost) modeNow() emu.LinkMode {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mode
}

func (h *zosHost) serve(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := h.ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				h.server.log.Warn("accept failed", "zos_host", h.cfg.Name, "err", err)
			}
			return
		}
		if h.modeNow() == emu.LinkDown {
			conn.Close() // the agent is down: the manager's connect fails
			continue
		}
		wg.Go(func() { h.serveConn(ctx, conn) })
	}
}

func (h *zosHost) serveConn(ctx context.Context, raw net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	zc := &zosConn{raw: raw, cancel: cancel, msgs: make(chan wire.StateChange, zosMessageBuffer)}
	accept := func(hello wire.Hello) (wire.HelloOK, hal.StorageSystem, error) {
		// Credentials first: the host says nothing of its sysplex or
		// devices to a peer that has not logged on.
		if err := wire.CheckCredentials(hello, h.cfg.User, h.cfg.Password); err != nil {
			return wire.HelloOK{}, nil, err
		}
		if hello.Sysplex != h.cfg.Sysplex {
			stated := "states no sysplex"
			if hello.Sysplex != "" {
				stated = fmt.Sprintf("states sysplex %q", hello.Sysplex)
			}
			return wire.HelloOK{}, nil, fmt.Errorf("%w: manager %q %s; z/OS host %s is in sysplex %s",
				wire.ErrSysplex, hello.Manager, stated, h.cfg.Name, h.cfg.Sysplex)
		}
		if hello.Serial == "" {
			// A discovery connection: it names no storage system and
			// carries only query-online.
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.mode == emu.LinkDown {
				return wire.HelloOK{}, nil, fmt.Errorf("%w: z/OS host %s is down", hal.ErrUnreachable, h.cfg.Name)
			}
			zc.manager = hello.Manager
			h.conns[zc] = struct{}{}
			return wire.HelloOK{}, &zosAgent{host: h}, nil
		}
		if _, ok := h.online[hello.Serial]; !ok {
			return wire.HelloOK{}, nil, fmt.Errorf("%w: z/OS host %s has no device of %q online",
				wire.ErrUnknownSerial, h.cfg.Name, hello.Serial)
		}
		sys := h.server.fabric.System(hello.Serial)
		epoch := sys.Epoch() // not under h.mu: the fabric's lock comes first (hears)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.mode == emu.LinkDown {
			return wire.HelloOK{}, nil, fmt.Errorf("%w: z/OS host %s is down", hal.ErrUnreachable, h.cfg.Name)
		}
		zc.manager, zc.serial = hello.Manager, hello.Serial
		h.conns[zc] = struct{}{}
		return wire.HelloOK{Serial: hello.Serial, Capabilities: hal.Capabilities{}, Epoch: epoch},
			&zosSystem{StorageSystem: sys.Connect(hello.Manager), host: h, conn: zc}, nil
	}
	conn := &zosGatedConn{Conn: tls.Server(raw, h.tls), host: h}
	err := wire.Serve(ctx, conn, accept, wire.ServerOptions{Clock: h.server.clock,
		Logger: h.server.log.With("zos_host", h.cfg.Name)})
	h.mu.Lock()
	delete(h.conns, zc)
	h.mu.Unlock()
	if err != nil {
		h.server.log.Debug("z/OS connection ended", "zos_host", h.cfg.Name, "err", err)
	}
}

// zosGatedConn drops what a black-holed host writes: answers and messages
// vanish, as from a host that stopped responding with its link up.
type zosGatedConn struct {
	net.Conn
	host *zosHost
}

func (c *zosGatedConn) Write(b []byte) (int, error) {
	if c.host.modeNow() == emu.LinkBlackhole {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// setMode applies a host fault; down closes every connection.
func (h *zosHost) setMode(mode emu.LinkMode) {
	// Down is the host IPL'd: nothing it runs writes. A black hole is its
	// agent's link only: its applications go on writing, and it goes on
	// swapping on its own. Not under h.mu: coming up, the host's I/O view
	// queries the fabric, whose lock comes before h.mu (hears).
	h.io.SetDown(mode == emu.LinkDown)
	h.mu.Lock()
	h.mode = mode
	var kill []*zosConn
	if mode == emu.LinkDown {
		kill = slices.Collect(maps.Keys(h.conns))
	}
	h.mu.Unlock()
	for _, c := range kill {
		c.raw.Close() // first: commands the cancel ends must not answer
		c.cancel()
	}
}

// zosSystem is a storage system as a z/OS host serves it to one manager:
// commands go through the host and its channel (each command waits the
// channel latency and the host's added latency on the lab clock, and fails
// unreachable when the channel is down); the heartbeat is refused.
type zosSystem struct {
	hal.StorageSystem // the system as the manager's commands reach it
	host              *zosHost
	conn              *zosConn
}

var (
	_ hal.StorageSystem      = (*zosSystem)(nil)
	_ wire.StateChangeSource = (*zosSystem)(nil)
)

func (z *zosSystem) Capabilities() hal.Capabilities { return hal.Capabilities{} }

// gate is the way through the host and its channel.
func (z *zosSystem) gate(ctx context.Context) error {
	h := z.host
	h.mu.Lock()
	mode, delay, down := h.mode, h.latency+h.cfg.ChannelLatency, h.channelDown[z.conn.serial]
	h.mu.Unlock()
	switch mode {
	case emu.LinkBlackhole:
		<-ctx.Done()
		return fmt.Errorf("%w: z/OS host %s: no answer: %w", hal.ErrTimeout, h.cfg.Name, ctx.Err())
	case emu.LinkDown:
		return fmt.Errorf("%w: z/OS host %s is down", hal.ErrUnreachable, h.cfg.Name)
	}
	if down {
		return fmt.Errorf("%w: z/OS host %s: no channel path to %s is online", hal.ErrUnreachable, h.cfg.Name, z.conn.serial)
	}
	if delay > 0 {
		if err := clock.Sleep(ctx, h.server.clock, delay); err != nil {
			return fmt.Errorf("%w: z/OS host %s: %w", hal.ErrTimeout, h.cfg.Name, err)
		}
	}
	return nil
}

func (z *zosSystem) noHeartbeat() error {
	return fmt.Errorf("%w: z/OS host %s: the Metro Mirror heartbeat does not work through z/OS (it needs an IP connection, direct or HMC)",
		hal.ErrUnsupported, z.host.cfg.Name)
}

func (z *zosSystem) EstablishPaths(ctx context.Context, e hal.Epoch, p []hal.PathSpec) error {
	if err := z.gate(ctx); err != nil {
		return err
	}
	return z.StorageSystem.EstablishPaths(ctx, e, p)
}

func (z *zosSystem) EstablishPairs(ctx context.Context, e hal.Epoch, p []hal.PairSpec) error {
	if err := z.gate(ctx); err != nil {
		return err
	}
	return z.StorageSystem.EstablishPairs(ctx, e, p)
}

func (z *zosSystem) Freeze(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	if err := z.gate(ctx); err != nil {
		return err
	}
	return z.StorageSystem.Freeze(ctx, e, p)
}

func (z *zosSystem) Thaw(ctx context.Context, e hal.Epoch, l []hal.LSS) error {
	if err := z.gate(ctx); err != nil {
		return err
	}
	return z.StorageSystem.Thaw(ctx, e, l)
}

func (z *zosSystem) Suspend(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	if err := z.gate(ctx); err != nil {
		return err
	}
	return z.StorageSystem.Suspend(ctx, e, p)
}

func (z *zosSystem) Recover(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	if err := z.gate(ctx); err != nil {
		return err
	}
	return z.StorageSystem.Recover(ctx, e, p)
}

func (z *zosSystem) Failback(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	if err := z.gate(ctx); err != nil {
		return err
	}
	return z.StorageSystem.Failback(ctx, e, p)
}

func (z *zosSystem) RemovePairs(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	if err := z.gate(ctx); err != nil {
		return err
	}
	return z.StorageSystem.RemovePairs(ctx, e, p)
}

func (z *zosSystem) RemovePaths(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	if err := z.gate(ctx); err != nil {
		return err
	}
	return z.StorageSystem.RemovePaths(ctx, e, p)
}

func (z *zosSystem) EnableHeartbeat(context.Context, hal.Epoch, hal.HeartbeatSpec) error {
	return z.noHeartbeat()
}

func (z *zosSystem) Heartbeat(context.Context, hal.Epoch, string) error { return z.noHeartbeat() }

func (z *zosSystem) DisableHeartbeat(context.Context, hal.Epoch, string) error {
	return z.noHeartbeat()
}

func (z *zosSystem) QueryPairs(ctx context.Context, e hal.Epoch) ([]hal.PairStatus, error) {
	if err := z.gate(ctx); err != nil {
		return nil, err
	}
	return z.StorageSystem.QueryPairs(ctx, e)
}

func (z *zosSystem) QueryPaths(ctx context.Context, e hal.Epoch) ([]hal.PathStatus, error) {
	if err := z.gate(ctx); err != nil {
		return nil, err
	}
	return z.StorageSystem.QueryPaths(ctx, e)
}

func (z *zosSystem) QueryLSSs(ctx context.Context, e hal.Epoch) ([]hal.LSSStatus, error) {
	if err := z.gate(ctx); err != nil {
		return nil, err
	}
	return z.StorageSystem.QueryLSSs(ctx, e)
}

// Events passes on only the fenced events of the manager's commands:
// pair state changes reach it as state-change messages instead.
func (z *zosSystem) Events(ctx context.Context) (<-chan hal.Event, error) {
	in, err := z.StorageSystem.Events(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan hal.Event, 16)
	go func() {
		defer close(out)
		for ev := range in {
			if ev.Kind != hal.EventFenced {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// StateChanges are the host's messages about the connection's system.
func (z *zosSystem) StateChanges(context.Context) <-chan wire.StateChange { return z.conn.msgs }

// ZOSStatus is what status says of one z/OS host.
type ZOSStatus struct {
	Name        string          `json:"name"`
	Sysplex     string          `json:"sysplex"`
	Endpoint    string          `json:"endpoint"`
	Mode        string          `json:"mode"`
	Latency     string          `json:"latency,omitempty"`
	Online      []ZOSOnlineStat `json:"online"`
	Connections int             `json:"connections"`
	Messages    uint64          `json:"messages"`
	Dropped     uint64          `json:"dropped"`
}

// ZOSOnlineStat is a storage system a host has online, and its channels.
type ZOSOnlineStat struct {
	Serial   string   `json:"serial"`
	Channels []string `json:"channels"`
	Up       bool     `json:"up"`
	LPARs    []string `json:"lpars"`
}

// ZOSStatus lists the z/OS hosts.
func (s *Server) ZOSStatus() []ZOSStatus {
	var out []ZOSStatus
	for _, name := range slices.Sorted(maps.Keys(s.zos)) {
		h := s.zos[name]
		h.mu.Lock()
		st := ZOSStatus{Name: name, Sysplex: h.cfg.Sysplex, Endpoint: h.ln.Addr().String(), Mode: h.mode.String(),
			Connections: len(h.conns), Messages: h.messages, Dropped: h.dropped}
		if h.latency > 0 {
			st.Latency = h.latency.String()
		}
		for _, o := range h.cfg.Online {
			st.Online = append(st.Online, ZOSOnlineStat{Serial: string(o.Serial), Channels: o.Channels,
				Up: !h.channelDown[o.Serial], LPARs: o.LPARs})
		}
		h.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// ZOSHost is a z/OS host's I/O view (nil if the lab has no such host):
// its applications' writes, its device map and its HyperSwap.
func (s *Server) ZOSHost(name string) *emu.Host {
	if h := s.zos[name]; h != nil {
		return h.io
	}
	return nil
}

// ZOSEndpoint is the bound address of a z/OS host's agent ("" if none).
func (s *Server) ZOSEndpoint(name string) string {
	if h := s.zos[name]; h != nil {
		return h.ln.Addr().String()
	}
	return ""
}

// injectZOS applies a fault kind "zos" (Host; Mode up, down or blackhole,
// or Latency) or "channel" (Host, System; Mode up or down).
func (s *Server) injectZOS(f Fault) error {
	h := s.zos[f.Host]
	if h == nil {
		return fmt.Errorf("fault %s: unknown z/OS host %q", f.Kind, f.Host)
	}
	switch f.Kind {
	case "zos":
		if f.Latency != "" {
			d, err := time.ParseDuration(f.Latency)
			if err != nil || d < 0 {
				return fmt.Errorf("fault zos: latency %q is not a duration", f.Latency)
			}
			h.mu.Lock()
			h.latency = d
			h.mu.Unlock()
			break
		}
		mode, ok := map[string]emu.LinkMode{"up": emu.LinkUp, "down": emu.LinkDown, "blackhole": emu.LinkBlackhole}[f.Mode]
		if !ok {
			return fmt.Errorf("fault zos: mode %q is not up, down, blackhole (or a latency)", f.Mode)
		}
		h.setMode(mode)
	case "channel":
		if _, ok := h.online[hal.Serial(f.System)]; !ok {
			return fmt.Errorf("fault channel: z/OS host %s has no channel to %q", f.Host, f.System)
		}
		var down bool
		switch f.Mode {
		case "up":
		case "down":
			down = true
		default:
			return fmt.Errorf("fault channel: mode %q is not up or down", f.Mode)
		}
		h.mu.Lock()
		h.channelDown[hal.Serial(f.System)] = down
		h.mu.Unlock()
		// Not under h.mu: the host's I/O view takes the fabric's lock
		// when the channel comes back, and hears is called under it.
		h.io.SetChannel(hal.Serial(f.System), !down)
	}
	s.log.Info("fault injected", "kind", f.Kind, "zos_host", f.Host, "system", f.System, "mode", f.Mode, "latency", f.Latency)
	return nil
}

// onlineList is what query-online answers: the systems the host has
// online, in the lab file's order, with their channel state.
func (h *zosHost) onlineList(ctx context.Context) ([]wire.OnlineSystem, error) {
	h.mu.Lock()
	mode := h.mode
	var out []wire.OnlineSystem
	for _, o := range h.cfg.Online {
		out = append(out, wire.OnlineSystem{Serial: o.Serial, ChannelsUp: !h.channelDown[o.Serial]})
	}
	h.mu.Unlock()
	if mode == emu.LinkBlackhole {
		<-ctx.Done()
		return nil, fmt.Errorf("%w: z/OS host %s: no answer: %w", hal.ErrTimeout, h.cfg.Name, ctx.Err())
	}
	return out, nil
}

// Online lists the systems the host has online.
func (z *zosSystem) Online(ctx context.Context) ([]wire.OnlineSystem, error) {
	return z.host.onlineList(ctx)
}

// zosAgent is what a discovery connection (a Hello naming no storage
// system) reaches: the host itself, which answers query-online, runs
// HyperSwap (hal.SwapHost, through the host's emu.Host; the wire server
// pushes its swaps to the manager) and refuses every storage command.
type zosAgent struct {
	host *zosHost
}

var (
	_ hal.StorageSystem = (*zosAgent)(nil)
	_ wire.OnlineLister = (*zosAgent)(nil)
	_ hal.SwapHost      = (*zosAgent)(nil)
)

// gate is the way to the host's agent: a black-holed host never answers,
// and a command waits the latency a fault added, on the lab clock. A down
// host has no connection to carry the command.
func (a *zosAgent) gate(ctx context.Context) error {
	h := a.host
	h.mu.Lock()
	mode, delay := h.mode, h.latency
	h.mu.Unlock()
	switch mode {
	case emu.LinkBlackhole:
		<-ctx.Done()
		return fmt.Errorf("%w: z/OS host %s: no answer: %w", hal.ErrTimeout, h.cfg.Name, ctx.Err())
	case emu.LinkDown:
		return fmt.Errorf("%w: z/OS host %s is down", hal.ErrUnreachable, h.cfg.Name)
	}
	if delay > 0 {
		if err := clock.Sleep(ctx, h.server.clock, delay); err != nil {
			return fmt.Errorf("%w: z/OS host %s: %w", hal.ErrTimeout, h.cfg.Name, err)
		}
	}
	return nil
}

func (a *zosAgent) LoadSwap(ctx context.Context, e hal.Epoch, session string, pairs []hal.VolumePair) error {
	if err := a.gate(ctx); err != nil {
		return err
	}
	return a.host.io.LoadSwap(ctx, e, session, pairs)
}

func (a *zosAgent) UnloadSwap(ctx context.Context, e hal.Epoch, session string) error {
	if err := a.gate(ctx); err != nil {
		return err
	}
	return a.host.io.UnloadSwap(ctx, e, session)
}

func (a *zosAgent) Swap(ctx context.Context, e hal.Epoch, session string) error {
	if err := a.gate(ctx); err != nil {
		return err
	}
	err := a.host.io.Swap(ctx, e, session)
	a.host.server.log.Info("hyperswap command", "zos_host", a.host.cfg.Name, "session", session, "err", err)
	return err
}

func (a *zosAgent) SwapStatus(ctx context.Context, e hal.Epoch) ([]hal.SwapState, error) {
	if err := a.gate(ctx); err != nil {
		return nil, err
	}
	return a.host.io.SwapStatus(ctx, e)
}

// SwapEvents are the host's swaps, for as long as the connection lasts
// (the wire server subscribes once per connection).
func (a *zosAgent) SwapEvents(ctx context.Context) (<-chan hal.SwapEvent, error) {
	return a.host.io.SwapEvents(ctx)
}

func (a *zosAgent) refuse() error {
	return fmt.Errorf("%w: z/OS host %s: this connection names no storage system (discovery only)", hal.ErrRefused, a.host.cfg.Name)
}

func (a *zosAgent) Online(ctx context.Context) ([]wire.OnlineSystem, error) {
	return a.host.onlineList(ctx)
}
func (a *zosAgent) Serial() hal.Serial             { return "" }
func (a *zosAgent) Capabilities() hal.Capabilities { return hal.Capabilities{} }
func (a *zosAgent) EstablishPaths(context.Context, hal.Epoch, []hal.PathSpec) error {
	return a.refuse()
}
func (a *zosAgent) EstablishPairs(context.Context, hal.Epoch, []hal.PairSpec) error {
	return a.refuse()
}
func (a *zosAgent) Freeze(context.Context, hal.Epoch, []hal.LSSPair) error { return a.refuse() }
func (a *zosAgent) Thaw(context.Context, hal.Epoch, []hal.LSS) error       { return a.refuse() }
func (a *zosAgent) Suspend(context.Context, hal.Epoch, []hal.VolumePair) error {
	return a.refuse()
}
func (a *zosAgent) Recover(context.Context, hal.Epoch, []hal.VolumePair) error {
	return a.refuse()
}
func (a *zosAgent) Failback(context.Context, hal.Epoch, []hal.VolumePair) error {
	return a.refuse()
}
func (a *zosAgent) RemovePairs(context.Context, hal.Epoch, []hal.VolumePair) error {
	return a.refuse()
}
func (a *zosAgent) RemovePaths(context.Context, hal.Epoch, []hal.LSSPair) error {
	return a.refuse()
}
func (a *zosAgent) EnableHeartbeat(context.Context, hal.Epoch, hal.HeartbeatSpec) error {
	return a.refuse()
}
func (a *zosAgent) Heartbeat(context.Context, hal.Epoch, string) error        { return a.refuse() }
func (a *zosAgent) DisableHeartbeat(context.Context, hal.Epoch, string) error { return a.refuse() }
func (a *zosAgent) QueryPairs(context.Context, hal.Epoch) ([]hal.PairStatus, error) {
	return nil, a.refuse()
}
func (a *zosAgent) QueryPaths(context.Context, hal.Epoch) ([]hal.PathStatus, error) {
	return nil, a.refuse()
}
func (a *zosAgent) QueryLSSs(context.Context, hal.Epoch) ([]hal.LSSStatus, error) {
	return nil, a.refuse()
}

// Events of a discovery connection: none, until it ends.
func (a *zosAgent) Events(ctx context.Context) (<-chan hal.Event, error) {
	ch := make(chan hal.Event)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch, nil
}
