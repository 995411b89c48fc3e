package direct

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/hal/eventsub"
)

// Options configure a driver for one storage system.
type Options struct {
	Serial    hal.Serial
	Endpoints [2]string // cluster 0 and cluster 1, host:port
	Manager   string    // this manager's name, sent in the handshake
	User      string
	Password  string
	// TLS is the client config (wire.ClientTLSConfig): its RootCAs, the
	// configured storage CA, are required (the system roots are never
	// used for storage). Its ServerName is ignored: each endpoint is
	// verified against its own host name.
	TLS *tls.Config
	// Pin, when set, is the SHA-256 of the storage system's certificate,
	// which then proves its identity instead of naming the serial
	// (wire.VerifyIdentity).
	Pin []byte

	Clock  clock.Clock  // nil: real time
	Logger *slog.Logger // nil: discard
	// Dial opens a TCP connection (default: net.Dialer). Tests use it to
	// black-hole or count dials.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	ConnectTimeout time.Duration // TCP connect + TLS + handshake per endpoint (default 2 s)
	RequestTimeout time.Duration // for a command whose ctx has no deadline (default 5 s)
	BackoffMin     time.Duration // default 100 ms
	BackoffMax     time.Duration // default 10 s
	StableAfter    time.Duration // a connection younger than this that dies counts as a failure (default 1 s)
	// KeepAlive is how often the live connection is pinged (default 1 s);
	// a ping unanswered for three intervals (wire.KeepAliveMisses) closes
	// it, and the driver fails over to the other cluster: a cluster gone
	// silent (its network dead without a word, the connection still open)
	// would otherwise hold every command to its deadline for as long as
	// TCP takes to notice.
	KeepAlive time.Duration
	// DialTimedOut, if set, hears of every TCP connect that timed out (no
	// answer at all: most likely a firewall dropping the SYN), so that the
	// daemon can log the rule that would let it through.
	DialTimedOut func(addr string)
	// StateChanged, if set, hears when the storage system becomes
	// reachable (up) or unreachable (after a round in which no cluster
	// answered); timeout says whether the last round timed out rather
	// than being refused.
	StateChanged func(up bool, timeout bool, detail string)
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

// System is a storage system over its direct connections.
type System struct {
	opt Options
	log *slog.Logger

	mu      sync.Mutex
	client  *wire.Client  // the live connection, nil while there is none
	cluster int           // the live connection's endpoint index, -1 for none
	changed chan struct{} // closed and replaced when client changes
	lastErr error         // why the last dial round failed
	dials   int           // dial attempts, for tests
	// subs are the Events subscribers; the live connection's read loop
	// sends to them (publish), under subMu.
	subMu sync.Mutex
	subs  []*eventsub.Subscription
	// reported is the reachability last told to StateChanged: 0 none
	// yet, 1 up, 2 down.
	reported int

	stop context.CancelFunc
	done chan struct{}
}

var _ hal.Driver = (*System)(nil)

// New starts a driver; it connects in the background until ctx ends or
// Close, which waits for it. The driver's whole life is that one
// context: its connect loop is the only goroutine it starts, and the
// loop (not the struct) holds the context.
func New(ctx context.Context, opt Options) *System {
	opt = opt.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	s := &System{
		opt: opt, log: opt.Logger.With("component", "direct", "serial", string(opt.Serial)),
		changed: make(chan struct{}), cluster: -1,
		stop: cancel, done: make(chan struct{}),
	}
	go s.connectLoop(ctx)
	return s
}

// Factory opens the driver of a direct connection (a hal.Factory): its
// one or two addresses are the cluster endpoints (one address serves
// both), each verified against its own host name.
func Factory(ctx context.Context, spec hal.ConnectionSpec) (hal.Driver, error) {
	if spec.Roots == nil {
		return nil, fmt.Errorf("%s: %w", spec.Serial, ErrNoCA)
	}
	if n := len(spec.Addresses); n < 1 || n > 2 {
		return nil, fmt.Errorf("%w: %s: a direct connection has one or two cluster endpoints, not %d",
			ErrBadEndpoint, spec.Serial, n)
	}
	var eps [2]string
	for i, a := range spec.Addresses {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("%w: %s: %q: %w", ErrBadEndpoint, spec.Serial, a, err)
		}
		eps[i] = a
	}
	if eps[1] == "" {
		eps[1] = eps[0]
	}
	return New(ctx, Options{Serial: spec.Serial, Endpoints: eps, Manager: spec.Manager, User: spec.User,
		Password: spec.Password, TLS: wire.ClientTLSConfig(spec.Roots, ""), Pin: spec.Pin,
		Clock: spec.Clock, Logger: spec.Logger, DialTimedOut: spec.DialTimedOut, StateChanged: spec.Reachability,
		KeepAlive: spec.KeepAlive}), nil
}

// ErrBadEndpoint: a connection's endpoints are not one or two host:port.
var ErrBadEndpoint = errors.New("direct: bad endpoint")

// Close stops the driver, closes its connection and waits for its
// goroutines.
func (s *System) Close() error {
	s.stop()
	<-s.done
	return nil
}

// Via is the cluster whose endpoint carries the commands ("" while
// neither answers).
func (s *System) Via() string {
	if c := s.Cluster(); c >= 0 {
		return fmt.Sprintf("cluster %d", c)
	}
	return ""
}

// Dials is the number of connection attempts so far.
func (s *System) Dials() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dials
}

// Cluster is the endpoint index of the live connection, or -1.
func (s *System) Cluster() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cluster
}

// setClient publishes the live connection (nil: none) and wakes waiters.
func (s *System) setClient(c *wire.Client, cluster int, lastErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client, s.cluster = c, cluster
	if lastErr != nil {
		s.lastErr = lastErr
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// connectLoop keeps one connection live: on loss it fails over to the
// other endpoint at once, and after a round in which neither answered it
// waits Backoff on the clock.
func (s *System) connectLoop(ctx context.Context) {
	defer close(s.done)
	preferred, failures := 0, 0
	for ctx.Err() == nil {
		var errs []error
		connected := false
		for i := range 2 {
			idx := (preferred + i) % 2
			c, err := s.dial(ctx, s.opt.Endpoints[idx])
			if err != nil {
				errs = append(errs, fmt.Errorf("cluster %d (%s): %w", idx, s.opt.Endpoints[idx], err))
				continue
			}
			connected, preferred = true, idx
			s.log.Info("connected", "cluster", idx, "endpoint", s.opt.Endpoints[idx])
			s.setClient(c, idx, nil)
			s.reportState(true, nil)
			since := s.opt.Clock.Now()
			select {
			case <-c.Done():
			case <-ctx.Done():
			}
			c.Close()
			s.setClient(nil, -1, fmt.Errorf("connection to cluster %d lost: %w", idx, c.Err()))
			if s.opt.Clock.Since(since) >= s.opt.StableAfter {
				failures = 0
			} else {
				failures++
			}
			s.log.Warn("connection lost", "cluster", idx, "err", c.Err())
			preferred = 1 - idx // fail over to the other cluster first
			break
		}
		if connected && failures == 0 {
			continue
		}
		if !connected {
			failures++
			s.setClient(nil, -1, errors.Join(errs...))
			s.reportState(false, errors.Join(errs...))
			s.log.Warn("storage system unreachable", "err", errors.Join(errs...), "attempt", failures)
		}
		if err := clock.Sleep(ctx, s.opt.Clock, Backoff(failures, s.opt.BackoffMin, s.opt.BackoffMax)); err != nil {
			return
		}
	}
}

// ErrNoCA: the driver has no storage CA to verify certificates against.
var ErrNoCA = errors.New("direct: no storage CA configured (the system roots are not trusted for storage)")

// endpointTLS is the TLS config for one endpoint: verified against that
// endpoint's own host name (cluster 1 has its own certificate, which
// names cluster 1, not cluster 0).
func (s *System) endpointTLS(addr string) (*tls.Config, error) {
	if s.opt.TLS == nil || s.opt.TLS.RootCAs == nil {
		return nil, ErrNoCA
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("direct: endpoint %q: %w", addr, err)
	}
	cfg := s.opt.TLS.Clone()
	cfg.ServerName = host
	return cfg, nil
}

func (s *System) dial(ctx context.Context, addr string) (*wire.Client, error) {
	s.mu.Lock()
	s.dials++
	s.mu.Unlock()
	cfg, err := s.endpointTLS(addr)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, s.opt.ConnectTimeout)
	defer cancel()
	raw, err := s.opt.Dial(dctx, addr)
	if err != nil {
		if s.opt.DialTimedOut != nil && (errors.Is(err, context.DeadlineExceeded) || isTimeout(err)) && ctx.Err() == nil {
			s.opt.DialTimedOut(addr)
		}
		return nil, err
	}
	c, ok, err := wire.NewClient(dctx, tls.Client(raw, cfg), wire.Hello{
		Manager: s.opt.Manager, Serial: s.opt.Serial, User: s.opt.User, Password: s.opt.Password,
	}, wire.ClientOptions{Clock: s.opt.Clock, Logger: s.opt.Logger, DefaultTimeout: s.opt.RequestTimeout,
		OnEvent: s.publish, Pin: s.opt.Pin, KeepAlive: s.opt.KeepAlive, Silent: func(err error) {
			s.log.Warn("cluster does not answer; closing the connection", "endpoint", addr, "err", err)
		}})
	if err != nil {
		return nil, err
	}
	if ok.Serial != s.opt.Serial {
		c.Close()
		return nil, fmt.Errorf("endpoint serves %s, not %s", ok.Serial, s.opt.Serial)
	}
	return c, nil
}

// publish gives an event of the live connection to every subscriber.
// It runs in the connection's read loop and never blocks: a subscriber
// more than eventsub.MaxQueued events behind loses events; polls
// catch up.
func (s *System) publish(ev hal.Event) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for _, sub := range s.subs {
		sub.Offer(ev)
	}
}

// live waits for a live connection until ctx is done. Refused
// credentials end the wait at once: retrying will not mend them.
func (s *System) live(ctx context.Context) (*wire.Client, error) {
	for {
		s.mu.Lock()
		c, changed, lastErr := s.client, s.changed, s.lastErr
		s.mu.Unlock()
		if c != nil && !c.Dead() {
			return c, nil
		}
		if errors.Is(lastErr, hal.ErrAuth) {
			return nil, fmt.Errorf("%s: %w", s.opt.Serial, lastErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = errors.New("not connected yet")
			}
			return nil, fmt.Errorf("%w: %s: no connection (%v): %w", hal.ErrUnreachable, s.opt.Serial, ctx.Err(), lastErr)
		}
	}
}

// reportState tells StateChanged about a change of reachability, once.
func (s *System) reportState(up bool, err error) {
	if s.opt.StateChanged == nil {
		return
	}
	s.mu.Lock()
	changed := s.reported != stateOf(up)
	s.reported = stateOf(up)
	s.mu.Unlock()
	if !changed {
		return
	}
	detail := ""
	if err != nil {
		detail = err.Error()
	}
	s.opt.StateChanged(up, err != nil && (errors.Is(err, context.DeadlineExceeded) || isTimeout(err)), detail)
}

func stateOf(up bool) int {
	if up {
		return 1
	}
	return 2
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// call runs fn on the live connection within the command's deadline
// (RequestTimeout when ctx has none), and again on the next live
// connection, within the same deadline, if its connection dies under it
// (wire.SendAgain): a freeze must not be lost to a cluster failover.
func (s *System) call(ctx context.Context, fn func(ctx context.Context, c *wire.Client) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = clock.WithTimeout(ctx, s.opt.Clock, s.opt.RequestTimeout)
		defer cancel()
	}
	return wire.SendAgain(ctx, s.log, s.live, fn)
}

func (s *System) Serial() hal.Serial             { return s.opt.Serial }
func (s *System) Capabilities() hal.Capabilities { return hal.Capabilities{Heartbeat: true} }

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

func (s *System) RemovePairs(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.RemovePairs(ctx, epoch, pairs) })
}

func (s *System) RemovePaths(ctx context.Context, epoch hal.Epoch, paths []hal.LSSPair) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.RemovePaths(ctx, epoch, paths) })
}

func (s *System) EnableHeartbeat(ctx context.Context, epoch hal.Epoch, hb hal.HeartbeatSpec) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.EnableHeartbeat(ctx, epoch, hb) })
}

func (s *System) Heartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.Heartbeat(ctx, epoch, session) })
}

func (s *System) DisableHeartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return s.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.DisableHeartbeat(ctx, epoch, session) })
}

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

// Events subscribes to the events of whichever connection is live.
func (s *System) Events(ctx context.Context) (<-chan hal.Event, error) {
	sub := eventsub.New(ctx)
	s.subMu.Lock()
	s.subs = append(s.subs, sub)
	s.subMu.Unlock()
	context.AfterFunc(ctx, func() {
		s.subMu.Lock()
		s.subs = slices.DeleteFunc(s.subs, func(q *eventsub.Subscription) bool { return q == sub })
		s.subMu.Unlock()
		sub.Close()
	})
	return sub.C(), nil
}
