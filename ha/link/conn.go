package link

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Options configure Dial and Listen. Credentials and Hello are required.
type Options struct {
	Credentials Credentials
	// Hello returns this server's Hello, asked at each connection; its
	// LastIndex also goes into every Keepalive.
	Hello func() Hello
	// SourcePorts, if set, is the local port range the dialing side binds
	// (tcp only): each port is tried in turn until one is free.
	SourcePorts PortRange
	// KeepaliveInterval between Keepalives (default 1 s).
	KeepaliveInterval time.Duration
	// KeepaliveMisses: the peer is declared down after this many of its
	// keepalive intervals without a frame (default 3).
	KeepaliveMisses int
	// HandshakeTimeout bounds TLS and the Hello exchange (default 10 s).
	HandshakeTimeout time.Duration
	// PreTLSTimeout bounds, on the accepting side, the wait for the
	// first TLS record of a new connection (default 2 s): a connection
	// that sends nothing holds a handshake slot no longer (and is
	// evicted sooner when the slots are full, see Listener).
	PreTLSTimeout time.Duration
	// Clock runs the keepalives and the handshake timeout (nil: real).
	Clock clock.Clock
	// Logger (nil: discard).
	Logger *slog.Logger
	// OnRefused, if set, is called for each connection a Listener refused
	// before accepting its Hello (bad certificate, bad Hello, timeout).
	OnRefused func(remote net.Addr, err error)
}

// Defaults of Options.
const (
	DefaultKeepaliveInterval = time.Second
	DefaultKeepaliveMisses   = 3
	DefaultHandshakeTimeout  = 10 * time.Second
)

const (
	// closeGrace bounds the write of a Goodbye on Close (wall time: it is
	// a socket deadline).
	closeGrace = time.Second
	inQueue    = 64
	outQueue   = 16
	bufSize    = 64 << 10
)

func (o Options) withDefaults() (Options, error) {
	if err := o.Credentials.check(); err != nil {
		return o, err
	}
	if o.Hello == nil {
		return o, errors.New("link: Options.Hello is required")
	}
	if o.KeepaliveInterval <= 0 {
		o.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if time.Duration(maxKeepalive) < o.KeepaliveInterval {
		o.KeepaliveInterval = time.Duration(maxKeepalive)
	}
	if o.KeepaliveMisses <= 0 {
		o.KeepaliveMisses = DefaultKeepaliveMisses
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.PreTLSTimeout <= 0 {
		o.PreTLSTimeout = DefaultPreTLSTimeout
	}
	o.Clock = clock.OrReal(o.Clock)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("component", "ha-link")
	return o, nil
}

// Conn is an authenticated link to the peer: mutual TLS done, Hellos
// exchanged. It sends Keepalives on its own and ends when the peer is
// silent; Recv returns every other message. One goroutine may Recv while
// others Send.
type Conn struct {
	opts   Options
	raw    net.Conn // beneath TLS: closed at once on a forced end
	tc     *tls.Conn
	br     *bufio.Reader
	peer   Hello
	cert   ha.CertIdentity // the peer's verified certificate
	dialed bool

	in      chan Message
	out     chan []byte
	closing chan struct{} // closed when the link starts ending
	done    chan struct{} // closed when it has ended (writer gone, socket closed)

	endOnce sync.Once
	mu      sync.Mutex
	err     error  // why it ended
	goodbye string // sent before closing, for a graceful end

	lastHeard    atomic.Int64 // unix ns on opts.Clock
	peerInterval atomic.Int64 // ns, the peer's announced keepalive interval
	peerLast     atomic.Uint64
	peerView     atomic.Pointer[View] // the peer's last View, nil before one
	delivering   atomic.Bool          // the reader waits for Recv: the peer is not silent
	ka           clock.Timer
}

// handshake runs TLS and the Hello exchange on raw, within the handshake
// timeout, and returns the link.
func handshake(ctx context.Context, raw net.Conn, tc *tls.Conn, opts Options, dialed bool) (*Conn, error) {
	hctx, cancel := clock.WithTimeout(ctx, opts.Clock, opts.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(hctx, func() { raw.Close() }) // unblocks whatever waits
	fail := func(err error) (*Conn, error) {
		stop()
		raw.Close()
		if cerr := hctx.Err(); cerr != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w after %v: %w", ErrHandshakeTimeout, opts.HandshakeTimeout, err)
		}
		return nil, fmt.Errorf("%w with %s: %w", ErrHandshake, raw.RemoteAddr(), err)
	}
	if err := tc.HandshakeContext(hctx); err != nil {
		return fail(err)
	}
	cert, err := peerIdentity(tc.ConnectionState())
	if err != nil {
		return fail(err)
	}
	// From here the peer is authenticated; still nothing it sends is
	// processed before its Hello is read and checked.
	f, err := Encode(opts.Hello())
	if err != nil {
		return fail(err)
	}
	if _, err := tc.Write(f); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(tc, bufSize)
	m, err := readFrame(br, MaxHandshakeFrame)
	if err != nil {
		if errors.Is(err, ErrVersion) || errors.Is(err, ErrMalformed) {
			// Tell a peer of another version why, before closing.
			if f, ferr := Encode(Goodbye{Reason: err.Error()}); ferr == nil {
				tc.Write(f)
			}
		}
		return fail(err)
	}
	var peer Hello
	switch m := m.(type) {
	case Hello:
		peer = m
	case Goodbye:
		return fail(fmt.Errorf("%w: %s", ErrPeerClosed, m.Reason))
	default:
		return fail(fmt.Errorf("%w: %s before the hello", ErrProtocol, m.Type()))
	}
	if !stop() {
		return fail(context.DeadlineExceeded)
	}
	peer.Listen = dialable(peer.Listen, raw.RemoteAddr())
	return newConn(raw, tc, br, peer, cert, dialed, opts), nil
}

// peerIdentity is what the verified certificate of the peer says about
// it: its subject alternative names and its SHA-256.
func peerIdentity(cs tls.ConnectionState) (ha.CertIdentity, error) {
	if len(cs.PeerCertificates) == 0 {
		return ha.CertIdentity{}, errors.New("link: the peer sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	id := ha.CertIdentity{DNSNames: leaf.DNSNames, Fingerprint: sha256.Sum256(leaf.Raw)}
	for _, u := range leaf.URIs {
		id.URIs = append(id.URIs, u.String())
	}
	return id, nil
}

func newConn(raw net.Conn, tc *tls.Conn, br *bufio.Reader, peer Hello, cert ha.CertIdentity, dialed bool, opts Options) *Conn {
	c := &Conn{
		opts:    opts,
		raw:     raw,
		tc:      tc,
		br:      br,
		peer:    peer,
		cert:    cert,
		dialed:  dialed,
		in:      make(chan Message, inQueue),
		out:     make(chan []byte, outQueue),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.lastHeard.Store(opts.Clock.Now().UnixNano())
	go c.readLoop()
	go c.writeLoop()
	c.mu.Lock()
	c.ka = opts.Clock.AfterFunc(opts.KeepaliveInterval, c.keepalive)
	c.mu.Unlock()
	return c
}

// Peer is the peer's Hello; its Listen is made dialable (an unspecified
// host replaced by the address the connection came from).
func (c *Conn) Peer() Hello { return c.peer }

// PeerInfo is the peer's Hello as the HA state machine takes it, with
// what its verified certificate says (which the state machine checks
// against the configured partner before anything else).
func (c *Conn) PeerInfo() ha.PeerInfo {
	return ha.PeerInfo{Name: c.peer.Name, Addr: c.peer.Listen, Role: c.peer.Role, Epoch: c.peer.Epoch, LastIndex: c.peer.LastIndex,
		Cert: c.cert}
}

// PeerCert is what the peer's verified certificate says about it.
func (c *Conn) PeerCert() ha.CertIdentity { return c.cert }

// Dialed reports a link this server dialed.
func (c *Conn) Dialed() bool { return c.dialed }

// PeerLastIndex is the last durable record the peer announced (Hello,
// then Keepalives).
func (c *Conn) PeerLastIndex() uint64 { return max(c.peer.LastIndex, c.peerLast.Load()) }

func (c *Conn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// Done is closed once the link has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the link ended (nil while it lives).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Send queues m for the peer; it waits while the queue is full.
func (c *Conn) Send(ctx context.Context, m Message) error {
	f, err := Encode(m)
	if err != nil {
		return err
	}
	select {
	case c.out <- f:
		return nil
	case <-c.closing:
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Recv returns the peer's next message other than Keepalive, View and
// Goodbye, which the link handles itself.
func (c *Conn) Recv(ctx context.Context) (Message, error) {
	select {
	case m := <-c.in:
		return m, nil
	case <-c.closing:
		return nil, c.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// PeerView is the last View the peer sent, false before the first. The
// link keeps it itself (Recv does not return Views): it is the peer's
// view of its storage connections, shown beside this server's own.
func (c *Conn) PeerView() (View, bool) {
	if v := c.peerView.Load(); v != nil {
		return *v, true
	}
	return View{}, false
}

// Close ends the link, telling the peer why (a Goodbye, sent within a
// second), and waits until it has ended. It returns nil; the link's Err
// says ErrClosed.
func (c *Conn) Close(why error) error {
	reason := "closed"
	if why != nil {
		reason = why.Error()
	}
	if len(reason) > MaxText {
		reason = reason[:MaxText]
	}
	err := ErrClosed
	if why != nil {
		err = fmt.Errorf("%w: %w", ErrClosed, why)
	}
	c.end(err, reason)
	<-c.done
	return nil
}

// end starts the end of the link once: with a goodbye, the writer sends
// it (bounded by closeGrace) before closing; without, the socket is
// closed at once.
func (c *Conn) end(err error, goodbye string) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.err, c.goodbye = err, goodbye
		if c.ka != nil {
			c.ka.Stop()
		}
		c.mu.Unlock()
		if goodbye != "" {
			// Socket deadlines are wall-clock time whatever the injected
			// clock says.
			c.raw.SetWriteDeadline(clock.Real().Now().Add(closeGrace))
		} else {
			c.raw.Close()
		}
		close(c.closing)
		if errors.Is(err, ErrClosed) {
			c.opts.Logger.Info("ha link closed", "msg_id", MsgClosed, "peer", c.peer.Name, "remote", c.raw.RemoteAddr().String(), "err", err)
		} else {
			c.opts.Logger.Warn("ha link down", "msg_id", MsgDown, "peer", c.peer.Name, "remote", c.raw.RemoteAddr().String(), "err", err)
		}
	})
}

func (c *Conn) readLoop() {
	for {
		m, err := readFrame(c.br, MaxFrame)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
				err = fmt.Errorf("%w: %w", ErrPeerClosed, err)
			}
			c.end(err, "")
			return
		}
		c.lastHeard.Store(c.opts.Clock.Now().UnixNano())
		switch m := m.(type) {
		case Keepalive:
			c.peerInterval.Store(m.Interval)
			c.peerLast.Store(m.LastIndex)
			continue
		case View:
			c.peerView.Store(&m)
			continue
		case Goodbye:
			c.end(fmt.Errorf("%w: %s", ErrPeerClosed, m.Reason), "")
			return
		case Hello:
			c.end(fmt.Errorf("%w: a second hello", ErrProtocol), "protocol violation: a second hello")
			return
		}
		c.delivering.Store(true)
		select {
		case c.in <- m:
			c.delivering.Store(false)
		case <-c.closing:
			c.delivering.Store(false)
			return
		}
	}
}

func (c *Conn) writeLoop() {
	bw := bufio.NewWriterSize(c.tc, bufSize)
	defer close(c.done)
	defer c.raw.Close()
	write := func(f []byte) error {
		if _, err := bw.Write(f); err != nil {
			return err
		}
		if len(c.out) == 0 {
			return bw.Flush()
		}
		return nil
	}
	for {
		select {
		case f := <-c.out:
			if err := write(f); err != nil {
				c.end(fmt.Errorf("link: writing to the peer: %w", err), "")
				return
			}
		case <-c.closing:
			c.mu.Lock()
			reason := c.goodbye
			c.mu.Unlock()
			if reason == "" {
				return // forced: the socket is closed already
			}
			// Graceful: what was sent before Close goes out first (an
			// EpochNotice before a takeover's goodbye), all within the
			// write deadline end set.
			for {
				select {
				case f := <-c.out:
					if _, err := bw.Write(f); err != nil {
						return
					}
					continue
				default:
				}
				break
			}
			if f, err := Encode(Goodbye{Reason: reason}); err == nil {
				bw.Write(f)
				bw.Flush()
			}
			return
		}
	}
}

// keepalive runs every interval on the clock: it ends a silent link, or
// sends a Keepalive (never waiting: with a full queue, frames are flowing
// anyway) and re-arms.
func (c *Conn) keepalive() {
	select {
	case <-c.closing:
		return
	default:
	}
	now := c.opts.Clock.Now()
	last := time.Unix(0, c.lastHeard.Load())
	interval := time.Duration(c.peerInterval.Load())
	if interval <= 0 {
		interval = c.opts.KeepaliveInterval
	}
	if !c.delivering.Load() && Silent(last, now, interval, c.opts.KeepaliveMisses) {
		c.end(fmt.Errorf("%w: nothing for %v (%d keepalive intervals of %v)", ErrPeerSilent,
			now.Sub(last), c.opts.KeepaliveMisses, interval), "")
		return
	}
	if f, err := Encode(Keepalive{Interval: int64(c.opts.KeepaliveInterval), LastIndex: c.opts.Hello().LastIndex}); err == nil {
		select {
		case c.out <- f:
		default:
		}
	}
	c.mu.Lock()
	if c.err == nil {
		c.ka.Reset(c.opts.KeepaliveInterval)
	}
	c.mu.Unlock()
}
