package zos

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/hal/eventsub"
)

// Options configure a driver for one storage system reached through one
// z/OS host.
type Options struct {
	Serial hal.Serial // the storage system
	// Host is the z/OS host's name: its certificate must name it
	// (wire.VerifyZOSHost).
	Host string
	// Addr is the host agent's address, host:port; the port is
	// wire.DefaultZOSPort (5858) when left out.
	Addr string
	// Sysplex is the sysplex this manager is configured in, stated at
	// login; the host serves only managers of its own sysplex.
	Sysplex  string
	Manager  string // this manager's name, sent in the handshake
	User     string // the host's credentials
	Password string
	// TLS is the client config (wire.ClientTLSConfig): its RootCAs, the
	// configured storage CA, are required. Its ServerName is ignored: the
	// host is verified against the host part of Addr.
	TLS *tls.Config
	// Pin, when set, is the SHA-256 of the host's certificate, which then
	// proves its identity instead of naming the host.
	Pin []byte

	Clock  clock.Clock  // nil: real time
	Logger *slog.Logger // nil: discard
	// Dial opens a TCP connection (default: net.Dialer).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Messages, if set, hears every state-change message of the host about
	// this storage system (pair pending, suspending, suspended, full
	// duplex, extended long busy), from the connection's reader: it must
	// not block.
	Messages func(wire.StateChange)
	// StateChanged, if set, hears when the storage system becomes
	// reachable through the host (up) or not; timeout says whether the
	// last attempt timed out rather than being refused (as in
	// drivers/direct, so that one callback serves both).
	StateChanged func(up bool, timeout bool, detail string)

	ConnectTimeout time.Duration // TCP connect + TLS + handshake (default 2 s)
	RequestTimeout time.Duration // for a command whose ctx has no deadline (default 5 s)
	BackoffMin     time.Duration // default 100 ms
	BackoffMax     time.Duration // default 10 s
	StableAfter    time.Duration // a connection younger than this that dies counts as a failure (default 1 s)
	// KeepAlive is how often the connection is pinged (default 1 s); a
	// ping unanswered for three intervals (wire.KeepAliveMisses) closes
	// it: a host gone silent is then not connected (the other connections
	// of the system are tried at once) rather than holding every command
	// to its deadline.
	KeepAlive time.Duration
}

func (o Options) withDefaults() Options {
	o.Clock = clock.OrReal(o.Clock)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Dial == nil {
		o.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ConnectTimeout, 2*time.Second)
	def(&o.RequestTimeout, 5*time.Second)
	def(&o.BackoffMin, 100*time.Millisecond)
	def(&o.BackoffMax, 10*time.Second)
	def(&o.StableAfter, time.Second)
	def(&o.KeepAlive, time.Second)
	return o
}

// Errors of the driver.
var (
	// ErrNoCA: no storage CA to verify the host's certificate against.
	ErrNoCA = errors.New("zos: no storage CA configured (the system roots are not trusted for storage)")
	// ErrNoHeartbeat: the Metro Mirror heartbeat does not work through
	// z/OS. It wraps hal.ErrUnsupported.
	ErrNoHeartbeat = fmt.Errorf("zos: the Metro Mirror heartbeat does not work through a z/OS connection (it needs an IP connection, direct or HMC): %w", hal.ErrUnsupported)
)

// WithDefaultPort is addr with wire.DefaultZOSPort added when it names no
// port.
func WithDefaultPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	h := addr
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	return net.JoinHostPort(h, strconv.Itoa(wire.DefaultZOSPort))
}

// System is a storage system reached through a z/OS host.
type System struct {
	opt  Options
	addr string
	log  *slog.Logger

	mu       sync.Mutex
	client   *wire.Client  // the live connection, nil while there is none
	changed  chan struct{} // closed and replaced when client changes
	lastErr  error         // why the last dial failed
	subs     map[*eventsub.Subscription]struct{}
	dials    int
	reported int // reachability last told to StateChanged: 0 none, 1 up, 2 down

	// swap: the connection is a HyperSwap one (SwapHost): its Hello names
	// no storage system and it takes the host's swap events, which go to
	// swapSubs.
	swap     bool
	swapSubs map[chan hal.SwapEvent]struct{}

	ctx  context.Context // ends when the driver stops
	stop context.CancelFunc
	done chan struct{}
}

var _ hal.Driver = (*System)(nil)

// New starts a driver; it connects in the background until ctx ends or
// Close, which waits for it. Its connect loop (and the reader under it)
// are the only goroutines it starts, and they hold the context.
func New(ctx context.Context, opt Options) *System {
	return start(ctx, opt, false)
}

// start starts a driver of one storage system, or (swap) the HyperSwap
// connection of the host, which names none.
func start(ctx context.Context, opt Options, swap bool) *System {
	opt = opt.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	log := opt.Logger.With("component", "zos", "serial", string(opt.Serial), "zos_host", opt.Host)
	if swap {
		opt.Serial = ""
		log = opt.Logger.With("component", "zos", "zos_host", opt.Host, "connection", "hyperswap")
	}
	s := &System{
		opt: opt, addr: WithDefaultPort(opt.Addr), log: log,
		changed: make(chan struct{}), subs: map[*eventsub.Subscription]struct{}{},
		swap: swap, swapSubs: map[chan hal.SwapEvent]struct{}{},
		ctx: ctx, stop: cancel, done: make(chan struct{}),
	}
	go s.connectLoop(ctx)
	return s
}

// what names what the connection reaches, for errors.
func (s *System) what() string {
	if s.swap {
		return "HyperSwap"
	}
	return string(s.opt.Serial)
}

// Close stops the driver, closes its connection and waits for its
// goroutines.
func (s *System) Close() error {
	s.stop()
	<-s.done
	return nil
}

// Via names the z/OS host that carries the commands ("" while it does
// not answer).
func (s *System) Via() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil || s.client.Dead() {
		return ""
	}
	return "z/OS host " + s.opt.Host + " (" + s.addr + ")"
}

// ErrBadAddress: a z/OS connection names not exactly one host agent
// address.
var ErrBadAddress = errors.New("zos: bad address")

// Factory opens the driver of a z/OS connection (a hal.Factory): one
// connection to the host agent per storage system, since the host binds
// a connection to the device its Hello names. spec.Name is the z/OS
// host (its certificate must name it, urn:lockstep:zos:NAME, or match
// spec.Pin), spec.Addresses its one agent address (port 5858 when left
// out), spec.Sysplex the sysplex this manager states at login.
func Factory(ctx context.Context, spec hal.ConnectionSpec) (hal.Driver, error) {
	opt, err := specOptions(spec, string(spec.Serial))
	if err != nil {
		return nil, err
	}
	return New(ctx, opt), nil
}

// specOptions checks a z/OS connection spec and turns it into Options;
// what names the connection in errors.
func specOptions(spec hal.ConnectionSpec, what string) (Options, error) {
	if spec.Roots == nil {
		return Options{}, fmt.Errorf("%s: %w", what, ErrNoCA)
	}
	if len(spec.Addresses) != 1 {
		return Options{}, fmt.Errorf("%w: %s: a z/OS connection has one host agent address, not %d",
			ErrBadAddress, what, len(spec.Addresses))
	}
	if spec.Name == "" {
		return Options{}, fmt.Errorf("%w: %s: the z/OS connection names no host", ErrBadAddress, what)
	}
	if _, _, err := net.SplitHostPort(WithDefaultPort(spec.Addresses[0])); err != nil {
		return Options{}, fmt.Errorf("%w: %s: %q: %w", ErrBadAddress, what, spec.Addresses[0], err)
	}
	return Options{Serial: spec.Serial, Host: spec.Name, Addr: spec.Addresses[0], Sysplex: spec.Sysplex,
		Manager: spec.Manager, User: spec.User, Password: spec.Password, TLS: wire.ClientTLSConfig(spec.Roots, ""),
		Pin: spec.Pin, Clock: spec.Clock, Logger: spec.Logger, StateChanged: spec.Reachability, KeepAlive: spec.KeepAlive}, nil
}

// Dials is the number of connection attempts so far.
func (s *System) Dials() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dials
}

func (s *System) setClient(c *wire.Client, lastErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client = c
	if lastErr != nil {
		s.lastErr = lastErr
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// backoff is the pause after the attempt-th failed dial: BackoffMin,
// doubling, capped at BackoffMax.
func backoff(attempt int, first, limit time.Duration) time.Duration {
	d := first
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// connectLoop keeps one connection live. Refused credentials or sysplex
// end it: only configuration mends them, and a host must not see a
// manager hammer its logon.
func (s *System) connectLoop(ctx context.Context) {
	defer close(s.done)
	failures := 0
	for ctx.Err() == nil {
		c, err := s.dial(ctx)
		if err != nil {
			failures++
			err = fmt.Errorf("z/OS host %s (%s): %w", s.opt.Host, s.addr, err)
			s.setClient(nil, err)
			s.report(false, err)
			if errors.Is(err, hal.ErrAuth) {
				s.log.Error("z/OS host refused this manager; not retrying", "err", err)
				<-ctx.Done()
				return
			}
			s.log.Warn("z/OS host unreachable", "addr", s.addr, "err", err, "attempt", failures)
			if clock.Sleep(ctx, s.opt.Clock, backoff(failures, s.opt.BackoffMin, s.opt.BackoffMax)) != nil {
				return
			}
			continue
		}
		s.log.Info("connected", "addr", s.addr)
		s.setClient(c, nil)
		s.report(true, nil)
		since := s.opt.Clock.Now()
		forwarded := s.forward(ctx, c)
		select {
		case <-forwarded:
		case <-ctx.Done():
		}
		c.Close()
		<-forwarded
		s.setClient(nil, fmt.Errorf("connection to z/OS host %s lost: %w", s.opt.Host, c.Err()))
		s.log.Warn("connection lost", "err", c.Err())
		if s.opt.Clock.Since(since) >= s.opt.StableAfter {
			failures = 0
			continue
		}
		failures++
		if clock.Sleep(ctx, s.opt.Clock, backoff(failures, s.opt.BackoffMin, s.opt.BackoffMax)) != nil {
			return
		}
	}
}

func (s *System) dial(ctx context.Context) (*wire.Client, error) {
	s.mu.Lock()
	s.dials++
	s.mu.Unlock()
	if s.opt.TLS == nil || s.opt.TLS.RootCAs == nil {
		return nil, ErrNoCA
	}
	host, _, err := net.SplitHostPort(s.addr)
	if err != nil {
		return nil, fmt.Errorf("zos: address %q: %w", s.opt.Addr, err)
	}
	cfg := s.opt.TLS.Clone()
	cfg.ServerName = host
	dctx, cancel := context.WithTimeout(ctx, s.opt.ConnectTimeout)
	defer cancel()
	raw, err := s.opt.Dial(dctx, s.addr)
	if err != nil {
		return nil, err
	}
	copt := wire.ClientOptions{Clock: s.opt.Clock, Logger: s.opt.Logger, DefaultTimeout: s.opt.RequestTimeout,
		EventBuffer: 64, StateChanges: 1024,
		Identity:  func(cs tls.ConnectionState) error { return wire.VerifyZOSHost(cs, s.opt.Host, s.opt.Pin) },
		KeepAlive: s.opt.KeepAlive, Silent: func(err error) {
			s.log.Warn("z/OS host does not answer; closing the connection", "err", err)
		}}
	if s.swap {
		// The host's discovery connection: swap events, and no
		// state-change message (one is malformed there).
		copt.StateChanges, copt.SwapEvents = 0, swapEventBuffer
	}
	c, _, err := wire.NewClient(dctx, tls.Client(raw, cfg), wire.Hello{
		Manager: s.opt.Manager, Serial: s.opt.Serial, User: s.opt.User, Password: s.opt.Password, Sysplex: s.opt.Sysplex,
	}, copt)
	return c, err
}

// forward turns the connection's messages and fenced events into events
// for every subscriber until the connection ends; the returned channel is
// closed then.
func (s *System) forward(ctx context.Context, c *wire.Client) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		events, msgs, swaps := c.Events(), c.StateChanges(), c.SwapEvents()
		for events != nil || msgs != nil || swaps != nil {
			select {
			case ev, ok := <-swaps:
				if !ok {
					swaps = nil
					continue
				}
				s.publishSwap(ev)
			case ev, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				if ev.Kind == hal.EventFenced { // the host reports pairs by message only
					s.publish(ev)
				}
			case m, ok := <-msgs:
				if !ok {
					msgs = nil
					continue
				}
				if s.opt.Messages != nil {
					s.opt.Messages(m)
				}
				if ev, ok := SuspendEvent(m); ok {
					s.publish(ev)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return done
}

// SuspendEvent is the hal event a state-change message stands for: a
// "pair suspended" message is a suspend event of the storage system,
// numbered as the system numbered it. Other messages are no event.
func SuspendEvent(m wire.StateChange) (hal.Event, bool) {
	if m.Kind != wire.StatePairSuspended {
		return hal.Event{}, false
	}
	return hal.Event{Kind: hal.EventSuspend, Serial: m.Serial, Seq: m.EventSeq, At: m.At,
		LSSPair: m.LSSPair, Reason: m.Reason, Volumes: m.Volumes}, true
}

func (s *System) publish(ev hal.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		sub.Offer(ev) // never blocks; beyond its bound, polls catch up
	}
}

func (s *System) report(up bool, err error) {
	if s.opt.StateChanged == nil {
		return
	}
	st := 2
	if up {
		st = 1
	}
	s.mu.Lock()
	changed := s.reported != st
	s.reported = st
	s.mu.Unlock()
	if !changed {
		return
	}
	detail := ""
	if err != nil {
		detail = err.Error()
	}
	var ne net.Error
	timeout := err != nil && (errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()))
	s.opt.StateChanged(up, timeout, detail)
}

// live waits for a live connection until ctx is done. A refusal of
// credentials or sysplex ends the wait at once.
func (s *System) live(ctx context.Context) (*wire.Client, error) {
	for {
		s.mu.Lock()
		c, changed, lastErr := s.client, s.changed, s.lastErr
		s.mu.Unlock()
		if c != nil && !c.Dead() {
			return c, nil
		}
		if errors.Is(lastErr, hal.ErrAuth) {
			return nil, fmt.Errorf("%s: %w", s.what(), lastErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = errors.New("not connected yet")
			}
			return nil, fmt.Errorf("%w: %s through z/OS host %s: no connection (%v): %w",
				hal.ErrUnreachable, s.what(), s.opt.Host, ctx.Err(), lastErr)
		}
	}
}

// call runs fn on the live connection within the command's deadline
// (RequestTimeout when ctx has none), and again on a new connection,
// within the same deadline, if its connection dies under it
// (wire.SendAgain).
func (s *System) call(ctx context.Context, fn func(ctx context.Context, c *wire.Client) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = clock.WithTimeout(ctx, s.opt.Clock, s.opt.RequestTimeout)
		defer cancel()
	}
	return wire.SendAgain(ctx, s.log, s.live, fn)
}

func (s *System) Serial() hal.Serial { return s.opt.Serial }

// Capabilities: no heartbeat through z/OS.
func (s *System) Capabilities() hal.Capabilities { return hal.Capabilities{} }

func (s *System) EstablishPaths(ctx context.Context, epoch hal.Epoch, paths []hal.PathSpec) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.EstablishPaths(ctx, epoch, paths) })
}

func (s *System) EstablishPairs(ctx context.Context, epoch hal.Epoch, pairs []hal.PairSpec) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.EstablishPairs(ctx, epoch, pairs) })
}

func (s *System) Freeze(ctx context.Context, epoch hal.Epoch, pairs []hal.LSSPair) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.Freeze(ctx, epoch, pairs) })
}

func (s *System) Thaw(ctx context.Context, epoch hal.Epoch, lsss []hal.LSS) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.Thaw(ctx, epoch, lsss) })
}

func (s *System) Suspend(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.Suspend(ctx, epoch, pairs) })
}

func (s *System) Recover(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.Recover(ctx, epoch, pairs) })
}

func (s *System) Failback(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.Failback(ctx, epoch, pairs) })
}

func (s *System) noHeartbeat() error {
	return fmt.Errorf("%s through z/OS host %s: %w", s.opt.Serial, s.opt.Host, ErrNoHeartbeat)
}

// EnableHeartbeat is refused: the heartbeat does not work through z/OS.
func (s *System) RemovePairs(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.RemovePairs(ctx, epoch, pairs) })
}

func (s *System) RemovePaths(ctx context.Context, epoch hal.Epoch, paths []hal.LSSPair) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.RemovePaths(ctx, epoch, paths) })
}

func (s *System) EnableHeartbeat(context.Context, hal.Epoch, hal.HeartbeatSpec) error {
	return s.noHeartbeat()
}

// Heartbeat is refused: the heartbeat does not work through z/OS.
func (s *System) Heartbeat(context.Context, hal.Epoch, string) error { return s.noHeartbeat() }

// DisableHeartbeat is refused: no heartbeat was ever armed through z/OS.
func (s *System) DisableHeartbeat(context.Context, hal.Epoch, string) error { return s.noHeartbeat() }

func (s *System) QueryPairs(ctx context.Context, epoch hal.Epoch) (out []hal.PairStatus, err error) {
	err = s.call(ctx, func(ctx context.Context, c *wire.Client) error {
		out, err = c.QueryPairs(ctx, epoch)
		return err
	})
	return out, err
}

func (s *System) QueryPaths(ctx context.Context, epoch hal.Epoch) (out []hal.PathStatus, err error) {
	err = s.call(ctx, func(ctx context.Context, c *wire.Client) error {
		out, err = c.QueryPaths(ctx, epoch)
		return err
	})
	return out, err
}

func (s *System) QueryLSSs(ctx context.Context, epoch hal.Epoch) (out []hal.LSSStatus, err error) {
	err = s.call(ctx, func(ctx context.Context, c *wire.Client) error {
		out, err = c.QueryLSSs(ctx, epoch)
		return err
	})
	return out, err
}

// Events subscribes to the suspend events the host's messages report and
// to the fenced events of this manager's commands.
func (s *System) Events(ctx context.Context) (<-chan hal.Event, error) {
	sub := eventsub.New(ctx)
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
		sub.Close()
	})
	return sub.C(), nil
}

// Online asks the host which storage systems it has online, and whether
// its channels to each work now.
func (s *System) Online(ctx context.Context) (out []wire.OnlineSystem, err error) {
	err = s.call(ctx, func(ctx context.Context, c *wire.Client) error {
		out, err = c.QueryOnline(ctx)
		return err
	})
	return out, err
}

// Discover connects to the z/OS host of opt once, without naming a
// storage system (opt.Serial is ignored), and asks which storage systems
// it has online: a z/OS connection is defined per host, and the systems
// it reaches are discovered from it. The host checks the credentials and
// the sysplex as for any connection.
func Discover(ctx context.Context, opt Options) ([]wire.OnlineSystem, error) {
	opt = opt.withDefaults()
	opt.Serial = ""
	s := &System{opt: opt, addr: WithDefaultPort(opt.Addr)}
	c, err := s.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("zos: discovery through z/OS host %s (%s): %w", opt.Host, s.addr, err)
	}
	defer c.Close()
	online, err := c.QueryOnline(ctx)
	if err != nil {
		return nil, fmt.Errorf("zos: discovery through z/OS host %s: %w", opt.Host, err)
	}
	return online, nil
}
