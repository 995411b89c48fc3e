package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of New.
var (
	ErrNotLoopback = errors.New("relay: address is not a loopback IP literal")
	ErrClosed      = errors.New("relay: closed")
)

// Stats counts what a relay did with the connections it accepted.
type Stats struct {
	Accepted   uint64 // every connection accepted on the relay's address
	Forwarded  uint64 // connected to the target and forwarded
	Refused    uint64 // accepted while cut, and reset at once
	Cut        uint64 // open when Cut was called, and reset by it
	Blackholed uint64 // silenced by Blackhole, or accepted during one and never connected
	DialFailed uint64 // the target did not take the connection (it was reset)
}

// mode is what the relay does with new connections.
type mode uint8

const (
	modeForward mode = iota
	modeCut
	modeBlackhole
)

// Link states. A link goes from forwarding to silent (black hole) or
// dead, and from silent to dead; never back.
const (
	linkForwarding int32 = iota
	linkSilent
	linkDead
)

// aborted is a deadline long past: it fails every read and write at once.
func aborted() time.Time { return time.Unix(1, 0) }

// Relay forwards the TCP connections it accepts to a target address.
type Relay struct {
	ln     *net.TCPListener
	target string
	dialer net.Dialer

	mu        sync.Mutex
	mode      mode
	links     map[*link]struct{}
	stats     Stats
	closed    bool
	acceptErr error

	wg sync.WaitGroup
}

// link is one accepted connection and, once dialed, its twin to the
// target.
type link struct {
	client *net.TCPConn
	target *net.TCPConn // set under Relay.mu once dialed
	state  atomic.Int32 // changed under Relay.mu
	cancel context.CancelFunc
	// dir[0] is held while client->target bytes are written, dir[1] for
	// target->client: Blackhole takes both to know that no write is left.
	dir [2]sync.Mutex
}

// New listens on listenAddr (an IP literal on loopback; port 0 picks one)
// and forwards every connection it accepts to targetAddr (an IP literal on
// loopback) until Close.
func New(listenAddr, targetAddr string) (*Relay, error) {
	if err := checkLoopback(listenAddr); err != nil {
		return nil, fmt.Errorf("%w: listen %q: %v", ErrNotLoopback, listenAddr, err)
	}
	if err := checkLoopback(targetAddr); err != nil {
		return nil, fmt.Errorf("%w: target %q: %v", ErrNotLoopback, targetAddr, err)
	}
	// No TCP keepalives of the relay's own: it adds no traffic.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r := &Relay{ln: ln.(*net.TCPListener), target: targetAddr, dialer: net.Dialer{KeepAlive: -1},
		links: map[*link]struct{}{}}
	r.wg.Go(r.accept)
	return r, nil
}

func checkLoopback(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	if !ap.Addr().Unmap().IsLoopback() {
		return errors.New("not 127.0.0.0/8 or ::1")
	}
	return nil
}

// Addr is the address the relay listens on, host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Cut partitions the network: every open connection, forwarded or
// black-holed, is reset on both sides at once, and new connections are
// reset as soon as they are accepted, until Heal.
func (r *Relay) Cut() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.mode = modeCut
	dead := r.takeLinksLocked(linkForwarding, linkSilent)
	r.stats.Cut += uint64(len(dead))
	r.mu.Unlock()
	for _, l := range dead {
		l.reset()
	}
}

// Blackhole partitions the network silently: open connections stay open
// but no byte moves in either direction any more, and new connections are
// accepted and never connected to the target, until Heal, which resets
// them all. When Blackhole returns no further byte is written.
func (r *Relay) Blackhole() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.mode = modeBlackhole
	var silenced []*link
	for l := range r.links {
		if l.state.Load() == linkForwarding {
			l.state.Store(linkSilent)
			silenced = append(silenced, l)
		}
	}
	r.stats.Blackholed += uint64(len(silenced))
	r.mu.Unlock()
	for _, l := range silenced {
		l.silence()
	}
}

// Heal ends a partition: new connections are forwarded again. The
// connections a Cut reset stay dead; those a Blackhole silenced, or that
// were accepted during it, are reset now.
func (r *Relay) Heal() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.mode = modeForward
	dead := r.takeLinksLocked(linkSilent)
	r.mu.Unlock()
	for _, l := range dead {
		l.reset()
	}
}

// Close stops listening, resets every connection and returns once every
// goroutine of the relay has ended. It returns the error that stopped the
// listener early, if one did.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	dead := r.takeLinksLocked(linkForwarding, linkSilent)
	r.mu.Unlock()
	err := r.ln.Close()
	for _, l := range dead {
		if l.cancel != nil {
			l.cancel() // Close must not wait for a dial that hangs
		}
		l.reset()
	}
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acceptErr != nil {
		return r.acceptErr
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// takeLinksLocked marks dead, and removes, the links in one of the given
// states; the caller resets them once the lock is released.
func (r *Relay) takeLinksLocked(states ...int32) []*link {
	var out []*link
	for l := range r.links {
		s := l.state.Load()
		for _, want := range states {
			if s == want {
				l.state.Store(linkDead)
				delete(r.links, l)
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func (r *Relay) accept() {
	for {
		c, err := r.ln.AcceptTCP()
		if err != nil {
			r.mu.Lock()
			if !r.closed && !errors.Is(err, net.ErrClosed) {
				r.acceptErr = fmt.Errorf("relay: accept: %w", err)
			}
			r.mu.Unlock()
			return
		}
		l := &link{client: c}
		r.mu.Lock()
		r.stats.Accepted++
		switch {
		case r.closed || r.mode == modeCut:
			r.stats.Refused++
			r.mu.Unlock()
			resetConn(c)
			continue
		case r.mode == modeBlackhole:
			// Held open, never connected: Heal or Close resets it.
			l.state.Store(linkSilent)
			r.stats.Blackholed++
			r.links[l] = struct{}{}
			r.mu.Unlock()
			continue
		}
		var ctx context.Context
		ctx, l.cancel = context.WithCancel(context.Background())
		r.links[l] = struct{}{}
		r.mu.Unlock()
		r.wg.Go(func() { r.serve(ctx, l) })
	}
}

// serve connects a link to the target and forwards it until both
// directions end or the link is cut, black-holed or closed.
func (r *Relay) serve(ctx context.Context, l *link) {
	defer l.cancel()
	conn, err := r.dialer.DialContext(ctx, "tcp", r.target)
	r.mu.Lock()
	if err != nil || l.state.Load() != linkForwarding {
		if err != nil && l.state.Load() == linkForwarding {
			// The target refused: so does the relay.
			r.stats.DialFailed++
			l.state.Store(linkDead)
			delete(r.links, l)
			r.mu.Unlock()
			resetConn(l.client)
			return
		}
		// Cut, black-holed or closed while dialing: the target's side
		// is reset at once; the client's is someone else's now.
		r.mu.Unlock()
		if conn != nil {
			resetConn(conn.(*net.TCPConn))
		}
		return
	}
	l.target = conn.(*net.TCPConn)
	r.stats.Forwarded++
	r.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { r.pipe(l, &l.dir[0], l.target, l.client) })
	wg.Go(func() { r.pipe(l, &l.dir[1], l.client, l.target) })
	wg.Wait()

	r.mu.Lock()
	done := l.state.Load() == linkForwarding
	if done {
		l.state.Store(linkDead)
		delete(r.links, l)
	}
	r.mu.Unlock()
	if done { // both directions ended on their own (FIN both ways)
		l.client.Close()
		l.target.Close()
	}
}

// pipe copies src to dst while the link forwards. An end of stream is
// passed on as a half-close; a reset or error resets both sides.
func (r *Relay) pipe(l *link, dir *sync.Mutex, dst, src *net.TCPConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			dir.Lock()
			if l.state.Load() != linkForwarding {
				dir.Unlock()
				return
			}
			_, werr := dst.Write(buf[:n])
			dir.Unlock()
			if werr != nil {
				r.abort(l)
				return
			}
		}
		if err != nil {
			if l.state.Load() != linkForwarding {
				return // cut, black-holed or closed: not ours to close
			}
			if errors.Is(err, io.EOF) {
				if dst.CloseWrite() != nil {
					r.abort(l)
				}
				return
			}
			r.abort(l)
			return
		}
	}
}

// abort resets both sides of a link that failed while forwarding.
func (r *Relay) abort(l *link) {
	r.mu.Lock()
	mine := l.state.Load() == linkForwarding
	if mine {
		l.state.Store(linkDead)
		delete(r.links, l)
	}
	r.mu.Unlock()
	if mine {
		l.reset()
	}
}

// reset closes both sides of a dead link with a TCP reset. A dial in
// progress goes on (on loopback it ends at once): serve resets what it
// yields, where cancelling it would close it with a FIN.
func (l *link) reset() {
	resetConn(l.client)
	if t := l.target; t != nil {
		resetConn(t)
	}
}

// silence stops every read and write of a black-holed link, and waits
// for a write in progress to give up.
func (l *link) silence() {
	l.client.SetDeadline(aborted())
	if t := l.target; t != nil {
		t.SetDeadline(aborted())
	}
	for i := range l.dir {
		l.dir[i].Lock()
		//lint:ignore SA2001 the empty critical section waits for a write in progress to give up
		l.dir[i].Unlock()
	}
}

// resetConn closes a connection with a TCP reset rather than a FIN.
func resetConn(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}
