package hmc

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

// Console is one HMC of a connection.
type Console struct {
	Addr string // host:port
	// Name is the HMC's name, which its certificate must carry (URI SAN
	// urn:lockstep:hmc:NAME). Empty: whichever HMC the certificate
	// names, which must then be the one the HMC's HelloOK gives.
	Name string
	// Pin, when set, is the SHA-256 of the HMC's certificate, which then
	// proves its identity instead of naming it (wire.VerifyHMCIdentity).
	Pin []byte
}

// Options configure one HMC connection: one HMC, or two (a dual HMC,
// CSM's "HMC1;HMC2"), with one user and password, as CSM defines them.
type Options struct {
	// Consoles are the HMCs, one or two. A command goes to the first in
	// this order that is connected and fronts its storage system, and to
	// the next when that one dies under it, cannot reach the system, or
	// does not answer within its share of the deadline (System.call).
	Consoles []Console
	Manager  string // this manager's name, sent in the handshake
	User     string
	Password string
	// TLS is the client config (wire.ClientTLSConfig): its RootCAs, the
	// configured storage CA, are required. Its ServerName is ignored:
	// each HMC is verified against its own host name.
	TLS *tls.Config

	Clock  clock.Clock  // nil: real time
	Logger *slog.Logger // nil: discard
	// Dial opens a TCP connection (default: net.Dialer).
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	ConnectTimeout time.Duration // TCP connect + TLS + handshake (default 2 s)
	RequestTimeout time.Duration // for a command whose ctx has no deadline (default 5 s)
	BackoffMin     time.Duration // default 100 ms
	BackoffMax     time.Duration // default 10 s
	StableAfter    time.Duration // a connection younger than this that dies counts as a failure (default 1 s)
	// KeepAlive is how often each connection is pinged (default 1 s); a
	// ping unanswered for three intervals (wire.KeepAliveMisses) closes
	// the connection, so that a black-holed HMC releases its commands to
	// the other one.
	KeepAlive time.Duration
	// StateChanged, if set, hears when an HMC becomes reachable or not.
	StateChanged func(console int, up bool, detail string)
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

// Errors of New.
var (
	ErrConsoles = errors.New("hmc: an HMC connection has one or two HMCs")
	ErrNoCA     = errors.New("hmc: no storage CA configured (the system roots are not trusted for storage)")
)

// Conn is one HMC connection: a connection to each of its HMCs, shared
// by every storage system they front (System).
type Conn struct {
	opt      Options
	log      *slog.Logger
	consoles []*console

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when a console connects or disconnects
	subs    map[hal.Serial]map[*eventsub.Subscription]struct{}
	seen    map[hal.Serial]*seqWindow
	dupes   uint64

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// console is one HMC and its live connection; the fields below cfg are
// guarded by Conn.mu.
type console struct {
	idx int
	cfg Console

	client   *wire.Client
	ok       wire.HelloOK
	lastErr  error
	dials    int
	reported int // 0 none yet, 1 up, 2 down
}

// New validates opt and starts connecting to every HMC in the
// background, until Close.
func New(opt Options) (*Conn, error) {
	if n := len(opt.Consoles); n < 1 || n > 2 {
		return nil, fmt.Errorf("%w, not %d", ErrConsoles, n)
	}
	if opt.TLS == nil || opt.TLS.RootCAs == nil {
		return nil, ErrNoCA
	}
	for _, cs := range opt.Consoles {
		if _, _, err := net.SplitHostPort(cs.Addr); err != nil {
			return nil, fmt.Errorf("hmc: address %q: %w", cs.Addr, err)
		}
	}
	opt = opt.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{opt: opt, log: opt.Logger.With("component", "hmc"), changed: make(chan struct{}),
		subs: map[hal.Serial]map[*eventsub.Subscription]struct{}{}, seen: map[hal.Serial]*seqWindow{}, stop: cancel}
	for i, cs := range opt.Consoles {
		c.consoles = append(c.consoles, &console{idx: i, cfg: cs})
	}
	for _, cons := range c.consoles {
		c.wg.Go(func() { c.connectLoop(ctx, cons) })
	}
	return c, nil
}

// Close stops the connection's goroutines and closes its connections.
func (c *Conn) Close() error {
	c.stop()
	c.wg.Wait()
	return nil
}

// System is storage system serial through this connection's HMCs. It may
// be called for a serial no HMC fronts (yet): its commands then fail with
// hal.ErrUnreachable.
func (c *Conn) System(serial hal.Serial) *System {
	return &System{c: c, serial: serial}
}

// ConsoleStatus is one HMC as the connection sees it.
type ConsoleStatus struct {
	Addr string
	Name string // from its HelloOK once connected, else the configured one
	Up   bool
	// Attached are the storage systems it said it fronts when it last
	// connected (its HelloOK).
	Attached []hal.Serial
	Err      error // why it is not up
	Dials    int
}

// Consoles reports each HMC, in the configured order.
func (c *Conn) Consoles() []ConsoleStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ConsoleStatus
	for _, cons := range c.consoles {
		st := ConsoleStatus{Addr: cons.cfg.Addr, Name: cons.cfg.Name, Dials: cons.dials, Err: cons.lastErr,
			Attached: slices.Clone(cons.ok.Attached)}
		if cons.ok.HMC != "" {
			st.Name = cons.ok.HMC
		}
		if cons.client != nil && !cons.client.Dead() {
			st.Up, st.Err = true, nil
		}
		out = append(out, st)
	}
	return out
}

// Attached is every storage system some HMC of the connection said it
// fronts, sorted: what discovery offers.
func (c *Conn) Attached() []hal.Serial {
	var out []hal.Serial
	for _, st := range c.Consoles() {
		for _, s := range st.Attached {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Attachments asks HMC i which systems it fronts and whether it reaches
// each now (wire op attached).
func (c *Conn) Attachments(ctx context.Context, i int) ([]wire.AttachedSystem, error) {
	if i < 0 || i >= len(c.consoles) {
		return nil, fmt.Errorf("hmc: no HMC %d", i)
	}
	c.mu.Lock()
	cl := c.consoles[i].client
	c.mu.Unlock()
	if cl == nil {
		return nil, fmt.Errorf("%w: HMC %s not connected", hal.ErrUnreachable, c.consoles[i].cfg.Addr)
	}
	return cl.Attached(ctx)
}

// DuplicateEvents is how many events were dropped because the other HMC
// had already delivered them.
func (c *Conn) DuplicateEvents() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dupes
}

// setClient publishes a console's live connection (nil: none) and wakes
// the commands waiting for one.
func (c *Conn) setClient(cons *console, cl *wire.Client, ok wire.HelloOK, err error) {
	c.mu.Lock()
	cons.client = cl
	if cl != nil {
		cons.ok = ok
	}
	if err != nil {
		cons.lastErr = err
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// connectLoop keeps one connection to one HMC live, with backoff on the
// clock after a failed dial or a connection that died young.
func (c *Conn) connectLoop(ctx context.Context, cons *console) {
	log := c.log.With("hmc_addr", cons.cfg.Addr)
	failures := 0
	for ctx.Err() == nil {
		cl, ok, err := c.dial(ctx, cons)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			c.setClient(cons, nil, wire.HelloOK{}, err)
			c.report(cons, false, err)
			log.Warn("hmc unreachable", "err", err, "attempt", failures)
		} else {
			log.Info("connected", "hmc", ok.HMC, "attached", len(ok.Attached))
			c.setClient(cons, cl, ok, nil)
			c.report(cons, true, nil)
			since := c.opt.Clock.Now()
			var wg sync.WaitGroup
			wg.Go(func() { c.forwardEvents(cl) })
			select {
			case <-cl.Done():
			case <-ctx.Done():
			}
			cl.Close()
			wg.Wait()
			lost := fmt.Errorf("connection to HMC %s lost: %w", ok.HMC, cl.Err())
			c.setClient(cons, nil, wire.HelloOK{}, lost)
			if ctx.Err() != nil {
				return
			}
			c.report(cons, false, lost)
			log.Warn("connection lost", "hmc", ok.HMC, "err", cl.Err())
			if c.opt.Clock.Since(since) >= c.opt.StableAfter {
				failures = 0
				continue // reconnect at once
			}
			failures++
		}
		if clock.Sleep(ctx, c.opt.Clock, Backoff(failures, c.opt.BackoffMin, c.opt.BackoffMax)) != nil {
			return
		}
	}
}

func (c *Conn) dial(ctx context.Context, cons *console) (*wire.Client, wire.HelloOK, error) {
	c.mu.Lock()
	cons.dials++
	c.mu.Unlock()
	host, _, _ := net.SplitHostPort(cons.cfg.Addr) // checked by New
	cfg := c.opt.TLS.Clone()
	cfg.ServerName = host
	dctx, cancel := context.WithTimeout(ctx, c.opt.ConnectTimeout)
	defer cancel()
	raw, err := c.opt.Dial(dctx, cons.cfg.Addr)
	if err != nil {
		return nil, wire.HelloOK{}, err
	}
	return wire.NewClient(dctx, tls.Client(raw, cfg), wire.Hello{ToHMC: true, HMC: cons.cfg.Name,
		Manager: c.opt.Manager, User: c.opt.User, Password: c.opt.Password},
		wire.ClientOptions{Clock: c.opt.Clock, Logger: c.opt.Logger, DefaultTimeout: c.opt.RequestTimeout,
			EventBuffer: 4096, Pin: cons.cfg.Pin, KeepAlive: c.opt.KeepAlive, Silent: func(err error) {
				// A black-holed HMC gives its commands back, to be sent to
				// the other HMC, rather than holding them to their deadline.
				c.log.Warn("hmc does not answer; closing the connection", "hmc_addr", cons.cfg.Addr, "err", err)
			}})
}

// forwardEvents hands the connection's events to deliver until it ends.
func (c *Conn) forwardEvents(cl *wire.Client) {
	for ev := range cl.Events() {
		c.deliver(ev)
	}
}

// deliver fans an event out to the subscribers of its storage system,
// once: the same event through the other HMC (same serial and sequence
// number) is dropped. Events without a number (fenced) are not deduped.
// The wire client has already dropped events naming a system the HMC
// does not front.
func (c *Conn) deliver(ev hal.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Seq != 0 {
		w := c.seen[ev.Serial]
		if w == nil {
			w = newSeqWindow(dedupWindow)
			c.seen[ev.Serial] = w
		}
		if !w.add(ev.Seq) {
			c.dupes++
			return
		}
	}
	for sub := range c.subs[ev.Serial] {
		sub.Offer(ev) // never blocks; beyond its bound, polls catch up
	}
}

// report tells StateChanged about a change of an HMC's reachability, once.
func (c *Conn) report(cons *console, up bool, err error) {
	if c.opt.StateChanged == nil {
		return
	}
	state := 2
	if up {
		state = 1
	}
	c.mu.Lock()
	changed := cons.reported != state
	cons.reported = state
	c.mu.Unlock()
	if changed {
		detail := ""
		if err != nil {
			detail = err.Error()
		}
		c.opt.StateChanged(cons.idx, up, detail)
	}
}

// live waits until ctx is done for an HMC that is connected, fronts
// serial and is not in skip (it already answered that it cannot reach
// serial), first in the configured order. It fails at once when every
// HMC is connected and none fronts serial, or every one refused the
// credentials, or every one is in skip (last is then why).
func (c *Conn) live(ctx context.Context, serial hal.Serial, skip []bool, last error) (*console, *wire.Client, error) {
	for {
		c.mu.Lock()
		changed := c.changed
		var waiting, auth int
		var errs []error
		for _, cons := range c.consoles {
			if skip[cons.idx] {
				continue
			}
			cl := cons.client
			switch {
			case cons.reaches(serial):
				c.mu.Unlock()
				return cons, cl, nil
			case cl != nil && !cl.Dead():
				errs = append(errs, fmt.Errorf("HMC %s does not front %s", cons.ok.HMC, serial))
			case errors.Is(cons.lastErr, hal.ErrAuth):
				auth++
				errs = append(errs, fmt.Errorf("HMC %s: %w", cons.cfg.Addr, cons.lastErr))
			default:
				waiting++
				if cons.lastErr != nil {
					errs = append(errs, fmt.Errorf("HMC %s: %w", cons.cfg.Addr, cons.lastErr))
				}
			}
		}
		c.mu.Unlock()
		switch {
		case waiting == 0 && auth > 0 && len(errs) == auth:
			return nil, nil, fmt.Errorf("%s: %w", serial, errors.Join(errs...))
		case waiting == 0 && len(errs) > 0:
			return nil, nil, fmt.Errorf("%w: %s: %w", hal.ErrUnreachable, serial, errors.Join(errs...))
		case waiting == 0:
			return nil, nil, last
		}
		select {
		case <-changed:
		case <-ctx.Done():
			why := errors.Join(errs...)
			if why == nil {
				why = errors.New("not connected yet")
			}
			return nil, nil, fmt.Errorf("%w: %s: no HMC connection (%v): %w", hal.ErrUnreachable, serial, ctx.Err(), why)
		}
	}
}

// System is one storage system reached through an HMC connection.
type System struct {
	c      *Conn
	serial hal.Serial
}

var _ hal.StorageSystem = (*System)(nil)

// call runs fn through the first HMC that reaches the system, within the
// command's deadline. A command whose HMC connection died before the
// answer is sent again (every hal command is idempotent: a freeze must
// not be lost to an HMC failure), and one that an HMC answered it cannot
// deliver (unreachable: it did not run) goes to the other HMC.
//
// While the other HMC is connected and fronts the system too, the first
// gets an equal share of what is left of the deadline, not all of it,
// and one that times out within its share leaves the rest to the other:
// an HMC that answers (its pings too) while its private link to this
// system is silent would otherwise hold a freeze to its deadline, and
// the HMC that reaches the system would get none of it.
func (s *System) call(ctx context.Context, fn func(ctx context.Context, t *wire.Target) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = clock.WithTimeout(ctx, s.c.opt.Clock, s.c.opt.RequestTimeout)
		defer cancel()
	}
	skip := make([]bool, len(s.c.consoles))
	var last, ran error // ran: the latest attempt that was sent and may have run
	// done says so when the error that ends the command does not: a
	// command that may have run is never reported as not run.
	done := func(err error) error {
		if err != nil && ran != nil && !errors.Is(err, hal.ErrTimeout) {
			return fmt.Errorf("%w; sent before, it may have run: %w", err, ran)
		}
		return err
	}
	for range 2*len(s.c.consoles) + 1 {
		cons, cl, err := s.c.live(ctx, s.serial, skip, last)
		if err != nil {
			return done(err)
		}
		sub, cancel := clock.WithShare(ctx, s.c.opt.Clock, 1+s.c.others(cons, s.serial, skip))
		err = fn(sub, cl.To(s.serial))
		cancel()
		switch {
		case err == nil || ctx.Err() != nil:
			return done(err)
		case cl.Dead():
			s.c.log.Info("HMC connection died under a command; sending it again", "serial", s.serial,
				"hmc", cons.ok.HMC, "err", err)
		case errors.Is(err, hal.ErrUnreachable):
			s.c.log.Info("HMC cannot reach the storage system; trying the other", "serial", s.serial,
				"hmc", cons.ok.HMC, "err", err)
			skip[cons.idx] = true
		case errors.Is(err, hal.ErrTimeout):
			// Timed out with time left: within its share, or answered
			// by the HMC that the system did not answer it in time.
			s.c.log.Warn("no answer through this HMC in time; trying the other", "serial", s.serial,
				"hmc", cons.ok.HMC, "err", err)
			skip[cons.idx] = true
		default:
			return done(err)
		}
		if errors.Is(err, hal.ErrTimeout) {
			ran = err
		}
		last = err
	}
	return done(last)
}

// others counts the HMCs other than cons that are connected, front
// serial and are not in skip: those a command could still go to.
func (c *Conn) others(cons *console, serial hal.Serial, skip []bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, o := range c.consoles {
		if o != cons && !skip[o.idx] && o.reaches(serial) {
			n++
		}
	}
	return n
}

// reaches says whether the console is connected and fronts serial
// (Conn.mu held).
func (cons *console) reaches(serial hal.Serial) bool {
	return cons.client != nil && !cons.client.Dead() && cons.client.Fronts(serial)
}

func (s *System) Serial() hal.Serial             { return s.serial }
func (s *System) Capabilities() hal.Capabilities { return hal.Capabilities{Heartbeat: true} }

func (s *System) EstablishPaths(ctx context.Context, epoch hal.Epoch, paths []hal.PathSpec) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.EstablishPaths(ctx, epoch, paths) })
}

func (s *System) EstablishPairs(ctx context.Context, epoch hal.Epoch, pairs []hal.PairSpec) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.EstablishPairs(ctx, epoch, pairs) })
}

func (s *System) Freeze(ctx context.Context, epoch hal.Epoch, pairs []hal.LSSPair) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.Freeze(ctx, epoch, pairs) })
}

func (s *System) Thaw(ctx context.Context, epoch hal.Epoch, lsss []hal.LSS) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.Thaw(ctx, epoch, lsss) })
}

func (s *System) Suspend(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.Suspend(ctx, epoch, pairs) })
}

func (s *System) Recover(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.Recover(ctx, epoch, pairs) })
}

func (s *System) Failback(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.Failback(ctx, epoch, pairs) })
}

func (s *System) RemovePairs(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.RemovePairs(ctx, epoch, pairs) })
}

func (s *System) RemovePaths(ctx context.Context, epoch hal.Epoch, paths []hal.LSSPair) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.RemovePaths(ctx, epoch, paths) })
}

func (s *System) EnableHeartbeat(ctx context.Context, epoch hal.Epoch, hb hal.HeartbeatSpec) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.EnableHeartbeat(ctx, epoch, hb) })
}

func (s *System) Heartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.Heartbeat(ctx, epoch, session) })
}

func (s *System) DisableHeartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return s.call(ctx, func(ctx context.Context, t *wire.Target) error { return t.DisableHeartbeat(ctx, epoch, session) })
}

func (s *System) QueryPairs(ctx context.Context, epoch hal.Epoch) (out []hal.PairStatus, err error) {
	err = s.call(ctx, func(ctx context.Context, t *wire.Target) error {
		out, err = t.QueryPairs(ctx, epoch)
		return err
	})
	return out, err
}

func (s *System) QueryPaths(ctx context.Context, epoch hal.Epoch) (out []hal.PathStatus, err error) {
	err = s.call(ctx, func(ctx context.Context, t *wire.Target) error {
		out, err = t.QueryPaths(ctx, epoch)
		return err
	})
	return out, err
}

func (s *System) QueryLSSs(ctx context.Context, epoch hal.Epoch) (out []hal.LSSStatus, err error) {
	err = s.call(ctx, func(ctx context.Context, t *wire.Target) error {
		out, err = t.QueryLSSs(ctx, epoch)
		return err
	})
	return out, err
}

// Events subscribes to the system's events pushed through any of the
// connection's HMCs, each delivered once.
func (s *System) Events(ctx context.Context) (<-chan hal.Event, error) {
	sub := eventsub.New(ctx)
	c := s.c
	c.mu.Lock()
	if c.subs[s.serial] == nil {
		c.subs[s.serial] = map[*eventsub.Subscription]struct{}{}
	}
	c.subs[s.serial][sub] = struct{}{}
	c.mu.Unlock()
	context.AfterFunc(ctx, func() {
		c.mu.Lock()
		delete(c.subs[s.serial], sub)
		c.mu.Unlock()
		sub.Close()
	})
	return sub.C(), nil
}
