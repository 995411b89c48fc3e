package netdelay

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
)

// Conn is a connection whose writes take the way back of a network with
// a one-way latency (see writer). Reads are the connection's own.
type Conn struct {
	net.Conn
	w *writer
}

// NewConn delays what is written to conn by latency() (read at each
// write: faults change it), on clock c.
func NewConn(conn net.Conn, c clock.Clock, latency func() time.Duration) *Conn {
	return &Conn{Conn: conn, w: newWriter(conn, c, latency)}
}

func (c *Conn) Write(b []byte) (int, error) { return c.w.Write(b) }

// Close ends the delay (what is still on the way is lost with the link)
// and closes the connection.
func (c *Conn) Close() error {
	c.w.Close()
	return c.Conn.Close()
}

// writer is the way back of a network with a one-way latency: what a
// storage endpoint writes to a manager (answers and events) reaches the
// socket the latency after it was written, in the order written. The
// way out is the endpoint's own: the lab's command gate holds a command
// for the same latency before it runs. Together a latency of d costs a
// command 2d and an event d, as on a link with d each way: what DESIGN
// §11's closeness-to-the-limit bench adds.
//
// Writes return at once, as into a socket's send buffer; the bytes are
// copied. A write error on the way closes the connection, as a broken
// link does. With no latency and nothing queued a write goes straight
// through, so a lab without latency faults pays nothing.
type writer struct {
	conn    net.Conn // the connection the bytes reach, written by one goroutine at a time
	clock   clock.Clock
	latency func() time.Duration // read at each write: faults change it

	mu      sync.Mutex
	queue   []delayedBytes
	busy    bool // the drain goroutine holds bytes it took off the queue
	started bool
	wake    chan struct{} // 1-buffered: something was queued
	ctx     context.Context
	stop    context.CancelFunc
}

type delayedBytes struct {
	due time.Time
	b   []byte
}

func newWriter(conn net.Conn, c clock.Clock, latency func() time.Duration) *writer {
	ctx, stop := context.WithCancel(context.Background())
	return &writer{conn: conn, clock: c, latency: latency, wake: make(chan struct{}, 1), ctx: ctx, stop: stop}
}

func (w *writer) Write(b []byte) (int, error) {
	d := w.latency()
	w.mu.Lock()
	if d <= 0 && len(w.queue) == 0 && !w.busy {
		w.mu.Unlock()
		return w.conn.Write(b)
	}
	if err := w.ctx.Err(); err != nil {
		w.mu.Unlock()
		return 0, net.ErrClosed
	}
	w.queue = append(w.queue, delayedBytes{due: w.clock.Now().Add(max(d, 0)), b: append([]byte(nil), b...)})
	if !w.started {
		w.started = true
		go w.drain()
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return len(b), nil
}

// drain writes the queued bytes as they fall due: all that are due at
// once in one write, as a link delivers the packets that arrived.
func (w *writer) drain() {
	var out []byte
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.busy = false
			w.mu.Unlock()
			select {
			case <-w.wake:
				continue
			case <-w.ctx.Done():
				return
			}
		}
		w.busy = true
		due := w.queue[0].due
		w.mu.Unlock()
		if wait := due.Sub(w.clock.Now()); wait > 0 {
			if clock.Sleep(w.ctx, w.clock, wait) != nil {
				return
			}
		}
		now := w.clock.Now()
		w.mu.Lock()
		out = out[:0]
		n := 0
		for n < len(w.queue) && !w.queue[n].due.After(now) {
			out = append(out, w.queue[n].b...)
			n++
		}
		w.queue = append(w.queue[:0], w.queue[n:]...)
		w.mu.Unlock()
		if n == 0 { // the clock's wait ended early: wait again
			continue
		}
		if _, err := w.conn.Write(out); err != nil {
			w.conn.Close()
			w.stop()
			return
		}
	}
}

// Close ends the drain; what is still queued is lost with the link.
func (w *writer) Close() { w.stop() }
