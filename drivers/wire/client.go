package wire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// ClientOptions tune a Client. The zero value is usable.
type ClientOptions struct {
	// Clock is the clock Call deadlines are read on (nil: real time):
	// the Timeout sent is ctx's deadline minus Clock.Now().
	Clock  clock.Clock
	Logger *slog.Logger // nil: discard
	// HandshakeTimeout bounds NewClient's exchange (default 10 s).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each write to the connection (default 10 s).
	// A write that does not finish kills the connection: half a frame
	// leaves the stream unusable. One still blocked after 7/8 of it may
	// already (writeDeadline).
	WriteTimeout time.Duration
	// DefaultTimeout applies to a Call whose ctx has no deadline (default
	// 30 s): every request carries a deadline.
	DefaultTimeout time.Duration
	// EventBuffer is the capacity of the Events channel (default 256;
	// none with OnEvent).
	EventBuffer int
	// OnEvent, when set, takes the connection's events instead of the
	// Events channel: it is called from the read loop, in order, and must
	// not block (every Call's answer waits behind it). A driver that
	// fans events out to its own subscribers saves a goroutine hand-off
	// per event: a freeze brings 16 of them from every storage system.
	OnEvent func(hal.Event)
	// Pin, when set, is the SHA-256 (Fingerprint) of the storage
	// system's certificate: that certificate proves the endpoint's
	// identity instead of the serial it names (VerifyIdentity).
	Pin []byte
	// Identity, when set, proves the endpoint's identity instead of
	// VerifyIdentity: an endpoint that fronts storage systems, such as a
	// z/OS host (VerifyZOSHost), names itself, not the systems it reaches.
	// It runs before the Hello is written. A Hello to an HMC ignores it:
	// an HMC's certificate must name the HMC (VerifyHMCIdentity).
	Identity func(tls.ConnectionState) error
	// StateChanges is the capacity of the StateChanges channel; zero
	// means the connection does not take state-change messages (only a
	// z/OS host sends them) and one closes the connection as malformed.
	StateChanges int
	// SwapEvents is the capacity of the SwapEvents channel; zero means the
	// connection does not take swap events (only a z/OS host's discovery
	// connection sends them) and one closes the connection as malformed.
	SwapEvents int
	// KeepAlive, when set, pings the endpoint every KeepAlive and ends the
	// connection when a ping goes unanswered for KeepAliveMisses of them.
	// An endpoint gone silent (a black hole: the connection open, nothing
	// answered) would otherwise keep it for as long as TCP takes to give
	// up, many minutes with requests unacknowledged, holding every Call to
	// its deadline; ended, its Calls in flight fail as on a lost
	// connection, and a driver sends them again elsewhere. Silent, if set,
	// hears why first.
	KeepAlive time.Duration
	Silent    func(error)
}

func (o ClientOptions) withDefaults() ClientOptions {
	o.Clock = clock.OrReal(o.Clock)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = 30 * time.Second
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 256
	}
	return o
}

// Client is the manager's end of one connection to a storage endpoint.
// Calls are pipelined: any number may be in flight, each matched to its
// response by ID. A Client never reconnects; when the connection dies,
// Done is closed and a driver dials a new one.
type Client struct {
	conn net.Conn
	opts ClientOptions

	nextID atomic.Uint64
	writeq chan *call // drained by writeLoop, the only writer of conn

	mu      sync.Mutex
	pending map[uint64]*call // by request ID, until answered or given up
	err     error            // why the connection ended; set once

	serial hal.Serial // the storage system this connection serves (HelloOK)
	// hmc is the HMC's name when the connection is to an HMC, and
	// attached the serials it fronts (HelloOK): its events may name
	// only those.
	hmc      string
	attached map[hal.Serial]bool
	events   chan hal.Event
	changes  chan StateChange   // nil unless opts.StateChanges > 0
	swaps    chan hal.SwapEvent // nil unless opts.SwapEvents > 0
	dropped  atomic.Uint64
	foreign  atomic.Uint64 // events dropped for naming another storage system

	done     chan struct{}
	failOnce sync.Once
	wg       sync.WaitGroup // readLoop, writeLoop and keepAlive
}

// call is one Call's request: queued for writeLoop, then pending until
// its response comes. What the Call, the write loop and the read loop
// share of it is one allocation, and answered, a channel of no elements,
// one more: the request queued apart and a channel of Responses (its
// buffer apart) were three, for every system of every freeze.
type call struct {
	ctx      context.Context // the Call's: a request whose caller gave up is not sent
	frame    []byte          // the request, framed (requestFrame)
	started  atomic.Bool     // writeLoop began writing it: it may reach the server
	resp     Response        // set by deliver before it closes answered
	answered chan struct{}
}

// NewClient runs the handshake on conn (already connected: a *tls.Conn
// from ClientTLSConfig), bounded by ctx and HandshakeTimeout, then starts
// serving Calls and events. On error conn is closed. hello's Version is
// set to Version if zero; if hello.Serial is set, the server must serve
// that storage system.
//
// The credentials in hello are sent only once the TLS handshake is done
// and VerifyIdentity accepted the certificate for hello.Serial (or
// opts.Pin): a conn that is not TLS, or a certificate that names another
// storage system, ends the handshake with ErrIdentity before a byte of
// the Hello is written.
//
// Handshake errors wrap ErrRejected and the reason (hal.ErrAuth,
// ErrBadVersion, ErrUnknownSerial, hal.ErrUnreachable) when the server
// refused, ErrIdentity, hal.ErrUnreachable when the connection failed, or
// a decoding sentinel when the server spoke nonsense.
func NewClient(ctx context.Context, conn net.Conn, hello Hello, opts ClientOptions) (*Client, HelloOK, error) {
	opts = opts.withDefaults()
	br := bufio.NewReader(conn) // kept: it may already hold frames sent after HelloOK
	ok, err := clientHandshake(ctx, conn, br, hello, opts.HandshakeTimeout, identityCheck{pin: opts.Pin, identity: opts.Identity})
	if err != nil {
		conn.Close()
		return nil, HelloOK{}, err
	}
	// With OnEvent, Events never carries an event: its channel has no
	// buffer (it still closes when the connection ends). A buffer of 256
	// events unused on every connection was 42 KiB of pointers that the
	// collector marked at every cycle: 15 % of the live heap of the
	// loopback freeze bench of 32 systems.
	events := make(chan hal.Event)
	if opts.OnEvent == nil {
		events = make(chan hal.Event, opts.EventBuffer)
	}
	c := &Client{
		serial:  ok.Serial,
		hmc:     ok.HMC,
		conn:    conn,
		opts:    opts,
		writeq:  make(chan *call, 64),
		pending: make(map[uint64]*call),
		events:  events,
		done:    make(chan struct{}),
	}
	if ok.HMC != "" {
		c.attached = make(map[hal.Serial]bool, len(ok.Attached))
		for _, a := range ok.Attached {
			c.attached[a] = true
		}
	}
	if opts.StateChanges > 0 {
		c.changes = make(chan StateChange, opts.StateChanges)
	}
	if opts.SwapEvents > 0 {
		c.swaps = make(chan hal.SwapEvent, opts.SwapEvents)
	}
	c.wg.Add(2)
	go c.readLoop(br)
	go c.writeLoop()
	if opts.KeepAlive > 0 {
		c.wg.Go(c.keepAlive)
	}
	return c, ok, nil
}

// identityCheck is how a client proves the endpoint's identity: by
// identity when set (ClientOptions.Identity), else by the serial or HMC
// name the Hello asks for, or by pin.
type identityCheck struct {
	pin      []byte
	identity func(tls.ConnectionState) error
}

func clientHandshake(ctx context.Context, conn net.Conn, br *bufio.Reader, hello Hello, timeout time.Duration, verify identityCheck) (HelloOK, error) {
	if hello.Version == 0 {
		hello.Version = Version
	}
	body, err := EncodeHello(hello)
	if err != nil {
		return HelloOK{}, fmt.Errorf("wire: handshake: %w", err)
	}
	tc, isTLS := conn.(*tls.Conn)
	if !isTLS {
		return HelloOK{}, fmt.Errorf("wire: handshake: %w: not a TLS connection (credentials only travel inside TLS)", ErrIdentity)
	}
	// net.Conn deadlines are wall-clock by nature; ctx cuts them short.
	conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	ok, err := verifyThenExchange(tc, br, body, hello, verify)
	if !stop() { // ctx ended during the handshake; the deadline is in the past
		return HelloOK{}, fmt.Errorf("wire: handshake: %w: %w", ErrConnLost, context.Cause(ctx))
	}
	if err != nil {
		return HelloOK{}, fmt.Errorf("wire: handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return ok, nil
}

// verifyThenExchange completes the TLS handshake and checks the
// certificate's identity before the Hello, which holds the password, is
// written.
func verifyThenExchange(tc *tls.Conn, br *bufio.Reader, body []byte, hello Hello, verify identityCheck) (HelloOK, error) {
	if err := tc.Handshake(); err != nil {
		return HelloOK{}, fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	if hello.ToHMC {
		return verifyThenExchangeHMC(tc, br, body, hello.HMC, verify.pin)
	}
	check := verify.identity
	if check == nil {
		check = func(cs tls.ConnectionState) error { return VerifyIdentity(cs, hello.Serial, verify.pin) }
	}
	if err := check(tc.ConnectionState()); err != nil {
		return HelloOK{}, err
	}
	ok, err := exchangeHellos(tc, br, body, hello.Serial)
	if err == nil && ok.HMC != "" {
		return HelloOK{}, fmt.Errorf("%w: asked for a storage system, the endpoint is HMC %s", ErrUnknownSerial, ok.HMC)
	}
	return ok, err
}

func exchangeHellos(conn net.Conn, br *bufio.Reader, hello []byte, serial hal.Serial) (HelloOK, error) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, Frame{Type: MsgHello, Body: hello}); err != nil {
		return HelloOK{}, err
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return HelloOK{}, fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	f, err := ReadFrame(br, MaxHelloAnswerFrame)
	if err != nil {
		if protocolError(err) {
			return HelloOK{}, err
		}
		return HelloOK{}, fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	switch f.Type {
	case MsgHelloOK:
		ok, err := DecodeHelloOK(f.Body)
		if err != nil {
			return HelloOK{}, err
		}
		if serial != "" && ok.Serial != serial {
			return HelloOK{}, fmt.Errorf("%w: asked for %s, the endpoint serves %s", ErrUnknownSerial, serial, ok.Serial)
		}
		return ok, nil
	case MsgHelloReject:
		rj, err := DecodeHelloReject(f.Body)
		if err != nil {
			return HelloOK{}, err
		}
		return HelloOK{}, rejectError(rj)
	}
	return HelloOK{}, fmt.Errorf("%w: server answered the hello with a %s", ErrMalformed, f.Type)
}

// rejectError is the error for a HelloReject: ErrRejected, and the error
// of its reason so that callers can tell bad credentials from a retryable
// refusal.
func rejectError(rj HelloReject) error {
	var why error
	switch rj.Code {
	case RejectVersion:
		why = ErrBadVersion
	case RejectAuth:
		why = hal.ErrAuth
	case RejectUnknownSerial:
		why = ErrUnknownSerial
	case RejectUnavailable:
		why = hal.ErrUnreachable
	case RejectSysplex:
		why = ErrSysplex
	default:
		return fmt.Errorf("%w (%s): %s", ErrRejected, rj.Code, rj.Text)
	}
	return fmt.Errorf("%w: %w: %s", ErrRejected, why, rj.Text)
}

// protocolError reports whether err says the peer broke the protocol, as
// opposed to the connection failing.
func protocolError(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrFrameTooLarge) ||
		errors.Is(err, ErrUnknownType) || errors.Is(err, ErrBadVersion)
}

// readLoop delivers responses to their Calls and events to Events, until
// the connection fails.
func (c *Client) readLoop(br *bufio.Reader) {
	defer c.wg.Done()
	defer close(c.events) // the only sender
	defer func() {
		if c.changes != nil {
			close(c.changes) // the only sender
		}
		if c.swaps != nil {
			close(c.swaps) // the only sender
		}
	}()
	var names [2]string // the events' last names (decodeEvent)
	// An event's body is decoded into a hal.Event that keeps nothing of
	// it (names are copied, or the last ones reused), before the next
	// frame is read: one buffer serves them all. A freeze of 16 LSS pairs
	// brings 16 events from every system, the larger part of what the
	// manager's connections allocated. Other frames keep their bodies (a
	// response's result is handed to its caller): a buffer of their own.
	var eventBuf []byte
	hdr := new([4]byte)
	bodyBuf := func(t MsgType, n int) []byte {
		if t != MsgEvent || n > maxEventBuf {
			return make([]byte, n)
		}
		if cap(eventBuf) < n {
			eventBuf = make([]byte, max(n, 256))
		}
		return eventBuf[:n]
	}
	for {
		f, err := readFrame(br, hdr, MaxFrameSize, bodyBuf)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		switch f.Type {
		case MsgResponse:
			r, err := DecodeResponse(f.Body)
			if err != nil {
				c.fail(err)
				return
			}
			c.deliver(r)
		case MsgEvent:
			ev, err := decodeEvent(f.Body, &names)
			if err != nil {
				c.fail(err)
				return
			}
			if !c.ownEvent(ev) {
				continue
			}
			if c.opts.OnEvent != nil {
				c.opts.OnEvent(ev)
				continue
			}
			select {
			case c.events <- ev:
			default:
				// Never block the reader on a slow consumer: that would
				// stall every Call. The manager polls as a backstop.
				// Logged at 1, 2, 4, 8... drops, not flooding the log.
				if n := c.dropped.Add(1); n&(n-1) == 0 {
					c.opts.Logger.Warn("dropped storage events: consumer too slow",
						"serial", ev.Serial, "seq", ev.Seq, "kind", ev.Kind, "dropped", n)
				}
			}
		case MsgStateChange:
			if err := c.takeStateChange(f.Body); err != nil {
				c.fail(err)
				return
			}
		case MsgSwapEvent:
			if err := c.takeSwapEvent(f.Body); err != nil {
				c.fail(err)
				return
			}
		default:
			c.fail(fmt.Errorf("%w: server sent a %s", ErrMalformed, f.Type))
			return
		}
	}
}

// maxEventBuf bounds the buffer a client's read loop keeps for event
// bodies (an event is about a hundred bytes): a larger one, which no
// event of ours is, gets a buffer of its own rather than growing it.
const maxEventBuf = 4 << 10

// ownEvent says whether an event is about the storage system this
// connection serves: one that names another (a forged or confused
// endpoint speaking for a system it was not authenticated as) is dropped,
// counted and logged at 1, 2, 4, 8... drops.
func (c *Client) ownEvent(ev hal.Event) bool {
	own := ev.Serial == c.serial
	if c.hmc != "" {
		own = c.attached[ev.Serial] // an HMC speaks for its attached systems only
	}
	if own && (ev.Kind != hal.EventSuspend || ev.LSSPair.Source.Serial == ev.Serial) {
		return true
	}
	if n := c.foreign.Add(1); n&(n-1) == 0 {
		c.opts.Logger.Warn("dropped a storage event naming another storage system",
			"connection_serial", c.serial, "serial", ev.Serial, "source_serial", ev.LSSPair.Source.Serial,
			"seq", ev.Seq, "kind", ev.Kind, "dropped", n)
	}
	return false
}

// ForeignEvents is the number of events dropped because they named
// another storage system than the connection's.
func (c *Client) ForeignEvents() uint64 { return c.foreign.Load() }

func (c *Client) deliver(r Response) {
	c.mu.Lock()
	cl := c.pending[r.ID]
	delete(c.pending, r.ID)
	c.mu.Unlock()
	if cl == nil {
		// Its Call gave up (ctx done) before the response came.
		c.opts.Logger.Debug("dropped a late response", "id", r.ID, "status", r.Status)
		return
	}
	cl.resp = r
	close(cl.answered) // once: the ID is no longer pending
}

// writeLoop is the only writer of conn, so that a write blocked on a
// black-holed peer holds up no Call beyond its ctx: Calls only queue.
// A Call writing itself while the loop is idle would not save CPU either:
// measured, it cost more, a Call's fresh goroutine growing its stack in
// TLS's encryption on every request.
func (c *Client) writeLoop() {
	defer c.wg.Done()
	bw := bufio.NewWriter(c.conn)
	var deadline time.Time // the write deadline last set on conn
	for {
		// It waits on the queue alone, not in a select with done, which
		// would cost a select per request: fail wakes it with a nil, or,
		// if the queue was full, it sees done before it waits again.
		if c.Dead() {
			return
		}
		cl := <-c.writeq
		if cl == nil {
			return
		}
		// A request whose Call already returned ErrTimeout is not sent.
		if cl.ctx.Err() == nil {
			cl.started.Store(true)
			c.writeDeadline(&deadline)
			if _, err := bw.Write(cl.frame); err != nil {
				c.fail(fmt.Errorf("write: %w", err))
				return
			}
		}
		// Flush once the queue is empty: pipelined requests share writes.
		if len(c.writeq) == 0 && bw.Buffered() > 0 {
			c.writeDeadline(&deadline)
			if err := bw.Flush(); err != nil {
				c.fail(fmt.Errorf("write: %w", err))
				return
			}
		}
	}
}

// writeDeadline readies conn for a write (a frame, a flush): it sets the
// write deadline WriteTimeout from now, but only when less than seven
// eighths of WriteTimeout remain before *set, the deadline last set.
// Every write thus starts with between 7/8 of WriteTimeout and all of it
// before the deadline, and a stream of requests costs one
// SetWriteDeadline (a runtime timer reset) per eighth of WriteTimeout
// instead of two per request.
func (c *Client) writeDeadline(set *time.Time) {
	now := time.Now()
	if set.Sub(now) >= c.opts.WriteTimeout-c.opts.WriteTimeout/8 {
		return
	}
	*set = now.Add(c.opts.WriteTimeout)
	c.conn.SetWriteDeadline(*set)
}

// keepAlive is ClientOptions.KeepAlive: a ping every interval, on the
// client's clock, until the connection ends. Three intervals, not one,
// for an answer: a slow link (a second each way) is slow, not dead.
func (c *Client) keepAlive() {
	interval := c.opts.KeepAlive
	t := c.opts.Clock.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C():
		case <-c.done:
			return
		}
		ctx, cancel := clock.WithTimeout(context.Background(), c.opts.Clock, KeepAliveMisses*interval)
		err := c.Ping(ctx)
		cancel()
		if err != nil {
			if !c.Dead() { // not ended on its own meanwhile
				if c.opts.Silent != nil {
					c.opts.Silent(err)
				}
				c.fail(fmt.Errorf("silent: no answer to a keep-alive ping in %v: %w", KeepAliveMisses*interval, err))
			}
			return
		}
		t.Reset(interval)
	}
}

// KeepAliveMisses is how many keep-alive intervals a ping may take before
// the connection is closed as silent.
const KeepAliveMisses = 3

// fail ends the connection for good; the first reason is kept.
func (c *Client) fail(err error) {
	c.failOnce.Do(func() {
		if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrConnLost) {
			err = fmt.Errorf("%w: %w", ErrConnLost, err)
		}
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
		c.conn.Close()
		select { // wake writeLoop if it waits on an empty queue
		case c.writeq <- nil:
		default:
		}
	})
}

// Call sends op with its encoded arguments (see EncodeArgs) and returns
// the encoded result (see DecodeResult). It returns when the response
// arrives, when ctx is done (an error wrapping ErrTimeout and
// hal.ErrTimeout; a late response is dropped), or when the connection dies
// (an error wrapping hal.ErrUnreachable, and also hal.ErrTimeout if the
// request had been sent: it may have run). A non-OK status gives a
// *RemoteError wrapping the matching hal error.
//
// The request carries the time left before ctx's deadline, read on the
// Client's clock, or DefaultTimeout if ctx has none.
func (c *Client) Call(ctx context.Context, epoch hal.Epoch, op Op, args []byte) ([]byte, error) {
	return c.CallTo(ctx, "", epoch, op, args)
}

// CallTo is Call for the storage system target behind the endpoint (an
// HMC's attached system; "" is a storage endpoint's own system).
func (c *Client) CallTo(ctx context.Context, target hal.Serial, epoch hal.Epoch, op Op, args []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = clock.WithTimeout(ctx, c.opts.Clock, c.opts.DefaultTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	timeout := deadline.Sub(c.opts.Clock.Now())
	if timeout <= 0 || ctx.Err() != nil {
		return nil, c.timeoutError(ctx, op)
	}

	id := c.nextID.Add(1)
	frame, err := requestFrame(Request{ID: id, Epoch: epoch, Timeout: timeout, Op: op, Target: target, Args: args})
	if err != nil {
		return nil, fmt.Errorf("wire: %s: %w", op, err)
	}
	cl := &call{ctx: ctx, frame: frame, answered: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("wire: %s: %w", op, err)
	}
	c.pending[id] = cl
	c.mu.Unlock()

	// The queue fills only behind a write that blocks (64 requests): a
	// plain send while it has room spares the select of three channels,
	// which only a full queue needs.
	select {
	case c.writeq <- cl:
	default:
		select {
		case c.writeq <- cl:
		case <-ctx.Done():
			c.forget(id)
			return nil, c.timeoutError(ctx, op)
		case <-c.done:
			c.forget(id)
			return nil, fmt.Errorf("wire: %s: %w", op, c.Err())
		}
	}

	select {
	case <-cl.answered: // deliver took it out of pending
		return result(op, cl.resp)
	case <-ctx.Done():
	case <-c.done:
	}
	select {
	case <-cl.answered: // it arrived together with the end: use it
		return result(op, cl.resp)
	default:
	}
	c.forget(id)
	if ctx.Err() != nil {
		return nil, c.timeoutError(ctx, op)
	}
	if cl.started.Load() {
		return nil, fmt.Errorf("wire: %s: %w; the request was sent and may have run: %w", op, c.Err(), hal.ErrTimeout)
	}
	return nil, fmt.Errorf("wire: %s: %w", op, c.Err())
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *Client) timeoutError(ctx context.Context, op Op) error {
	cause := ctx.Err()
	if cause == nil { // the deadline passed on the clock, the context has yet to notice
		cause = context.DeadlineExceeded
	}
	return fmt.Errorf("wire: %s: %w (%w)", op, ErrTimeout, cause)
}

func result(op Op, r Response) ([]byte, error) {
	if err := r.Status.Err(r.Text); err != nil {
		return nil, fmt.Errorf("wire: %s: %w", op, err)
	}
	return r.Result, nil
}

// Events delivers the events the server pushes. It is closed when the
// connection ends. If the consumer falls behind by more than EventBuffer
// events, further ones are dropped (see DroppedEvents), never the
// connection.
func (c *Client) Events() <-chan hal.Event { return c.events }

// DroppedEvents is how many events were dropped because Events was full.
func (c *Client) DroppedEvents() uint64 { return c.dropped.Load() }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Dead reports whether the connection has ended (Done is closed).
func (c *Client) Dead() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Err is why the connection ended (wrapping hal.ErrUnreachable), or nil
// while it is alive.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection; pending Calls fail with ErrClosed. It
// returns once the Client's goroutines have exited.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// The typed methods below encode the arguments, Call, and decode the
// result: a driver's hal.StorageSystem is mostly one line per method.

func (c *Client) command(ctx context.Context, epoch hal.Epoch, op Op, a Args) error {
	return c.commandTo(ctx, "", epoch, op, a)
}

func (c *Client) commandTo(ctx context.Context, target hal.Serial, epoch hal.Epoch, op Op, a Args) error {
	args, err := EncodeArgs(op, a)
	if err != nil {
		return fmt.Errorf("wire: %s: %w", op, err)
	}
	res, err := c.CallTo(ctx, target, epoch, op, args)
	if err != nil {
		return err
	}
	if _, err := DecodeResult(op, res); err != nil {
		return fmt.Errorf("wire: %s: %w", op, err)
	}
	return nil
}

func (c *Client) query(ctx context.Context, epoch hal.Epoch, op Op) (Result, error) {
	return c.queryTo(ctx, "", epoch, op)
}

func (c *Client) queryTo(ctx context.Context, target hal.Serial, epoch hal.Epoch, op Op) (Result, error) {
	res, err := c.CallTo(ctx, target, epoch, op, nil)
	if err != nil {
		return Result{}, err
	}
	r, err := DecodeResult(op, res)
	if err != nil {
		return Result{}, fmt.Errorf("wire: %s: %w", op, err)
	}
	return r, nil
}

// Ping asks the server to answer at once; it checks the connection, not
// the storage system. Its epoch is 0 and the server ignores it.
func (c *Client) Ping(ctx context.Context) error {
	return c.command(ctx, 0, OpPing, Args{})
}

func (c *Client) EstablishPaths(ctx context.Context, epoch hal.Epoch, paths []hal.PathSpec) error {
	return c.command(ctx, epoch, OpEstablishPaths, Args{Paths: paths})
}

func (c *Client) EstablishPairs(ctx context.Context, epoch hal.Epoch, pairs []hal.PairSpec) error {
	return c.command(ctx, epoch, OpEstablishPairs, Args{Pairs: pairs})
}

func (c *Client) Freeze(ctx context.Context, epoch hal.Epoch, pairs []hal.LSSPair) error {
	return c.command(ctx, epoch, OpFreeze, Args{LSSPairs: pairs})
}

func (c *Client) Thaw(ctx context.Context, epoch hal.Epoch, lsss []hal.LSS) error {
	return c.command(ctx, epoch, OpThaw, Args{LSSs: lsss})
}

func (c *Client) Suspend(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return c.command(ctx, epoch, OpSuspend, Args{VolumePairs: pairs})
}

func (c *Client) Recover(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return c.command(ctx, epoch, OpRecover, Args{VolumePairs: pairs})
}

func (c *Client) Failback(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return c.command(ctx, epoch, OpFailback, Args{VolumePairs: pairs})
}

func (c *Client) RemovePairs(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return c.command(ctx, epoch, OpRemovePairs, Args{VolumePairs: pairs})
}

func (c *Client) RemovePaths(ctx context.Context, epoch hal.Epoch, paths []hal.LSSPair) error {
	return c.command(ctx, epoch, OpRemovePaths, Args{LSSPairs: paths})
}

func (c *Client) EnableHeartbeat(ctx context.Context, epoch hal.Epoch, hb hal.HeartbeatSpec) error {
	return c.command(ctx, epoch, OpEnableHeartbeat, Args{Heartbeat: hb})
}

func (c *Client) Heartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return c.command(ctx, epoch, OpHeartbeat, Args{Session: session})
}

func (c *Client) DisableHeartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return c.command(ctx, epoch, OpDisableHeartbeat, Args{Session: session})
}

func (c *Client) QueryPairs(ctx context.Context, epoch hal.Epoch) ([]hal.PairStatus, error) {
	r, err := c.query(ctx, epoch, OpQueryPairs)
	return r.Pairs, err
}

func (c *Client) QueryPaths(ctx context.Context, epoch hal.Epoch) ([]hal.PathStatus, error) {
	r, err := c.query(ctx, epoch, OpQueryPaths)
	return r.Paths, err
}

func (c *Client) QueryLSSs(ctx context.Context, epoch hal.Epoch) ([]hal.LSSStatus, error) {
	r, err := c.query(ctx, epoch, OpQueryLSSs)
	return r.LSSs, err
}
