package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
)

// Handshake slots. A connection that has not authenticated yet costs the
// listener a goroutine and a socket for up to the handshake timeout, and
// anyone who can reach the port can open one. So that connections that
// send nothing cannot keep the partner out:
//
//   - at most maxHandshakes run at once;
//   - a connection must send the start of a TLS ClientHello (a handshake
//     record header) within Options.PreTLSTimeout (2 s by default), or it
//     is closed; anything but a TLS handshake record is closed at once;
//   - when the slots are full, a new connection evicts an idle one (no
//     byte received yet, none waiting in its socket): the oldest of the
//     source that holds the most slots; failing that, one not started
//     yet from a source that holds more than maxPerSource slots. Only
//     when there is none is the new one refused;
//   - at most maxPerSource handshakes from one source address may have
//     started TLS: one more is closed as it starts.
//
// A real peer's ClientHello follows its TCP handshake at once, so its
// connection is idle for a moment only, and the newest of all: an
// attacker renewing idle connections evicts its own, oldest first, even
// from the partner's own address (a NAT, a relay). One that starts TLS
// and stalls holds at most maxPerSource slots per address, each for the
// handshake timeout, so it cannot fill the listener from one address.
const (
	maxHandshakes = 64
	maxPerSource  = 16
	// DefaultPreTLSTimeout bounds the wait for the first TLS record.
	DefaultPreTLSTimeout = 2 * time.Second
	// refusedLogEvery: refusals and evictions are logged once per period
	// with their count, not once each: a flood must not flood the log.
	refusedLogEvery = 10 * time.Second
)

// tlsRecordHeader is the size of a TLS record header: type, version,
// length.
const tlsRecordHeader = 5

// recordHandshake is the TLS record type of a ClientHello.
const recordHandshake = 0x16

var (
	// errNotTLS: the first bytes of a connection are not a TLS handshake
	// record.
	errNotTLS = errors.New("link: not a TLS handshake")
	// errEvicted: an idle connection made room for a new one.
	errEvicted = errors.New("link: evicted while idle: the handshake slots were full")
	// errTooMany: a source holds its share of the handshake slots.
	errTooMany = errors.New("link: too many handshakes from one address")
)

// slot is one accepted connection that has not authenticated yet.
type slot struct {
	raw     net.Conn
	source  string
	seq     uint64
	started atomic.Bool // its first bytes were read
	evicted atomic.Bool
}

// slots is a Listener's table of handshakes under way.
type slots struct {
	clk clock.Clock

	mu        sync.Mutex
	all       map[*slot]struct{}
	perSource map[string]int // slots held, idle or not
	started   map[string]int // of which TLS started
	seq       uint64

	// refusal counts since the last log line.
	refused, evicted int
	lastLog          time.Time
}

func newSlots(clk clock.Clock) *slots {
	return &slots{clk: clk, all: map[*slot]struct{}{}, perSource: map[string]int{}, started: map[string]int{}}
}

// sourceOf is the address a connection came from, without its port.
func sourceOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// admit takes a slot for raw, evicting an idle connection if a limit is
// reached; nil when none is idle (raw must then be refused).
func (t *slots) admit(raw net.Conn) *slot {
	s := &slot{raw: raw, source: sourceOf(raw.RemoteAddr())}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started[s.source] >= maxPerSource {
		t.refused++ // it would be refused as it starts
		return nil
	}
	if len(t.all) >= maxHandshakes {
		v := t.idlest()
		if v == nil {
			t.refused++
			return nil
		}
		t.evictLocked(v)
	}
	t.seq++
	s.seq = t.seq
	t.all[s] = struct{}{}
	t.perSource[s.source]++
	return s
}

// idlest is the connection to evict: one that has not started TLS and is
// idle, or comes from a source that holds its share of started
// handshakes (it would be refused as it starts); failing that, one that
// has not started TLS yet from a source that holds more than its share of
// slots (a flood of connections that will start and stall). From the
// source that holds the most slots, the oldest.
func (t *slots) idlest() *slot {
	if v := t.pick(func(s *slot) bool { return t.started[s.source] >= maxPerSource || idle(s.raw) }); v != nil {
		return v
	}
	return t.pick(func(s *slot) bool { return t.perSource[s.source] > maxPerSource })
}

func (t *slots) pick(evictable func(*slot) bool) *slot {
	var best *slot
	for s := range t.all {
		if s.started.Load() || !evictable(s) {
			continue
		}
		if best == nil {
			best = s
			continue
		}
		bn, sn := t.perSource[best.source], t.perSource[s.source]
		if sn > bn || (sn == bn && s.seq < best.seq) {
			best = s
		}
	}
	return best
}

func (t *slots) evictLocked(s *slot) {
	t.removeLocked(s)
	s.evicted.Store(true)
	t.evicted++
	s.raw.Close()
}

func (t *slots) removeLocked(s *slot) {
	if _, ok := t.all[s]; !ok {
		return
	}
	delete(t.all, s)
	if t.perSource[s.source]--; t.perSource[s.source] <= 0 {
		delete(t.perSource, s.source)
	}
	if s.started.Load() {
		if t.started[s.source]--; t.started[s.source] <= 0 {
			delete(t.started, s.source)
		}
	}
}

// start marks s as having started TLS (its first bytes came); false when
// its source holds maxPerSource started handshakes already, or s was
// evicted meanwhile: it must be closed.
func (t *slots) start(s *slot) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.all[s]; !ok {
		return false
	}
	if t.started[s.source] >= maxPerSource {
		t.refused++
		return false
	}
	t.started[s.source]++
	s.started.Store(true)
	return true
}

// release gives the slot back (once its handshake ended, whatever the
// outcome).
func (t *slots) release(s *slot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(s)
}

// len is the number of handshakes under way.
func (t *slots) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.all)
}

// summary returns, at most once per refusedLogEvery, the refusals and
// evictions counted since the last summary; ok false when it is not time
// yet or there is nothing to say.
func (t *slots) summary() (refused, evicted int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clk.Now()
	if t.refused+t.evicted == 0 || (!t.lastLog.IsZero() && now.Sub(t.lastLog) < refusedLogEvery) {
		return 0, 0, false
	}
	refused, evicted = t.refused, t.evicted
	t.refused, t.evicted, t.lastLog = 0, 0, now
	return refused, evicted, true
}

// preTLS reads the first TLS record header of an accepted connection
// within timeout (on clk) and returns a connection that reads it again,
// for the TLS server. The slot is marked started at the first byte.
func (t *slots) preTLS(ctx context.Context, s *slot, timeout time.Duration) (net.Conn, error) {
	pctx, cancel := clock.WithTimeout(ctx, t.clk, timeout)
	defer cancel()
	stop := context.AfterFunc(pctx, func() { s.raw.Close() })
	var hdr [tlsRecordHeader]byte
	n, err := s.raw.Read(hdr[:])
	if n > 0 {
		if !t.start(s) {
			stop()
			if s.evicted.Load() {
				return nil, errEvicted
			}
			return nil, fmt.Errorf("%w: %d TLS handshakes from %s under way already", errTooMany, maxPerSource, s.source)
		}
		if n < len(hdr) {
			var m int
			m, err = io.ReadFull(s.raw, hdr[n:])
			n += m
		}
	}
	if !stop() {
		if s.evicted.Load() {
			return nil, errEvicted
		}
		if ctx.Err() == nil {
			return nil, fmt.Errorf("%w after %v: no TLS record (%d bytes)", ErrHandshakeTimeout, timeout, n)
		}
		return nil, ctx.Err()
	}
	if err != nil {
		if s.evicted.Load() {
			return nil, errEvicted
		}
		return nil, fmt.Errorf("before the TLS handshake: %w", err)
	}
	if hdr[0] != recordHandshake || hdr[1] != 3 {
		return nil, fmt.Errorf("%w: first bytes % x", errNotTLS, hdr[:])
	}
	return &prefixConn{Conn: s.raw, r: io.MultiReader(bytes.NewReader(hdr[:]), s.raw)}, nil
}

// prefixConn reads what preTLS read, then the connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }
