package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/mdlayher/vsock"
)

// Dial connects to the peer listening at addr ("tcp://host:port" or
// "vsock://cid:port"), runs mutual TLS and the Hello exchange, and
// returns the link. ctx bounds the connection; the handshake is bounded
// by Options.HandshakeTimeout too.
func Dial(ctx context.Context, addr string, opts Options) (*Conn, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if a.Port == 0 || a.unspecified() {
		return nil, fmt.Errorf("%w %q: a peer address needs a host (or CID) and a port", ErrAddress, addr)
	}
	raw, err := dialRaw(ctx, a, opts.SourcePorts)
	if err != nil {
		return nil, err
	}
	return handshake(ctx, raw, tls.Client(raw, opts.Credentials.clientTLS()), opts, true)
}

func dialRaw(ctx context.Context, a Addr, ports PortRange) (net.Conn, error) {
	if a.Network == VSock {
		c, err := vsock.DialContext(ctx, a.CID, a.Port, nil)
		if err != nil {
			return nil, fmt.Errorf("link: connecting to %s: %w", a, err)
		}
		return c, nil
	}
	if ports.Len() == 0 {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", a.hostPort())
		if err != nil {
			return nil, fmt.Errorf("link: connecting to %s: %w", a, err)
		}
		return c, nil
	}
	return dialFromRange(ctx, a, ports)
}

// dialFromRange binds each port of the range in turn; a port that is
// taken (or whose connection to this peer still lingers) moves on to the
// next, any other failure ends the attempt.
func dialFromRange(ctx context.Context, a Addr, ports PortRange) (net.Conn, error) {
	var last error
	for p := int(ports.First); p <= int(ports.Last); p++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{Port: p}, Control: reuseAddr}
		c, err := d.DialContext(ctx, "tcp", a.hostPort())
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, fmt.Errorf("link: connecting to %s from port %d: %w", a, p, err)
		}
		last = err
	}
	return nil, fmt.Errorf("%w %s connecting to %s: %w", ErrNoSourcePort, ports, a, last)
}

// Listener accepts links: each connection's TLS handshake and Hello run
// in their own goroutine, so that a slow or hostile client delays no one,
// in a bounded number of slots that idle connections cannot hold (see
// slots.go).
type Listener struct {
	nl   net.Listener
	opts Options

	conns  chan *Conn
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  *slots
}

// Listen listens on addr: "tcp://host:port" (port 0: any) or
// "vsock://cid:port" ("vsock://any:port" for every CID).
func Listen(addr string, opts Options) (*Listener, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	var nl net.Listener
	if a.Network == VSock {
		nl, err = vsock.ListenContextID(a.CID, a.Port, nil)
	} else {
		nl, err = net.Listen("tcp", a.hostPort())
	}
	if err != nil {
		return nil, fmt.Errorf("link: listening on %s: %w", a, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{nl: nl, opts: opts, conns: make(chan *Conn), ctx: ctx, cancel: cancel, slots: newSlots(opts.Clock)}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.nl.Addr() }

// Accept returns the next authenticated link.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops listening, abandons the handshakes under way and waits for
// them. Links already accepted stay up.
func (l *Listener) Close() error {
	l.cancel()
	err := l.nl.Close()
	l.wg.Wait()
	return err
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		raw, err := l.nl.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			l.opts.Logger.Warn("ha link accept failed", "msg_id", MsgRefused, "err", err)
			// Do not spin on a persistent error (out of descriptors).
			if clock.Sleep(l.ctx, l.opts.Clock, 100*time.Millisecond) != nil {
				return
			}
			continue
		}
		s := l.slots.admit(raw)
		if s == nil {
			raw.Close()
		}
		if refused, evicted, ok := l.slots.summary(); ok {
			l.opts.Logger.Warn("ha link: connections refused or evicted before TLS: too many handshakes under way",
				"msg_id", MsgRefused, "refused", refused, "evicted_idle", evicted, "last_remote", raw.RemoteAddr().String())
		}
		if s == nil {
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer l.slots.release(s)
			tc, err := l.slots.preTLS(l.ctx, s, l.opts.PreTLSTimeout)
			if err != nil {
				raw.Close()
				err = fmt.Errorf("%w with %s: %w", ErrHandshake, raw.RemoteAddr(), err)
				if !errors.Is(err, errNotTLS) {
					// Idle: a scan, a flood, or a peer that gave up; not
					// logged one by one.
					l.opts.Logger.Debug("ha link refused before TLS", "msg_id", MsgRefused, "err", err)
					return
				}
				l.opts.Logger.Warn("ha link refused", "msg_id", MsgRefused, "remote", raw.RemoteAddr().String(), "err", err)
				if l.opts.OnRefused != nil {
					l.opts.OnRefused(raw.RemoteAddr(), err)
				}
				return
			}
			c, err := handshake(l.ctx, raw, tls.Server(tc, l.opts.Credentials.serverTLS()), l.opts, false)
			if err != nil {
				l.opts.Logger.Warn("ha link refused", "msg_id", MsgRefused, "remote", raw.RemoteAddr().String(), "err", err)
				if l.opts.OnRefused != nil {
					l.opts.OnRefused(raw.RemoteAddr(), err)
				}
				return
			}
			select {
			case l.conns <- c:
			case <-l.ctx.Done():
				c.Close(errors.New("the listener closed"))
			}
		}()
	}
}
