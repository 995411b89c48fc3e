package link

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
)

// flood keeps n connections to addr open from the local address from,
// opening a new one as soon as one is closed, until stop. Each sends
// first (if not nil) and then nothing. It returns once all n are open
// (the listener's kernel queue holds them ahead of anything dialed
// later), and counts the renewals.
type flood struct {
	renewals atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startFlood(t *testing.T, addr, from string, n int, first []byte) *flood {
	t.Helper()
	f := &flood{stop: make(chan struct{})}
	opened := make(chan struct{}, n)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	for range n {
		f.wg.Go(func() {
			once := false
			for {
				select {
				case <-f.stop:
					return
				default:
				}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					continue // the backlog overflowed: try again
				}
				if first != nil {
					c.Write(first)
				}
				if !once {
					once = true
					opened <- struct{}{}
				} else {
					f.renewals.Add(1)
				}
				// Hold it until the listener closes it (or the test ends).
				done := make(chan struct{})
				go func() {
					select {
					case <-f.stop:
						c.Close()
					case <-done:
					}
				}()
				io.Copy(io.Discard, c)
				close(done)
				c.Close()
			}
		})
	}
	for range n {
		<-opened
	}
	t.Cleanup(f.end)
	return f
}

func (f *flood) end() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.wg.Wait()
}

// TestHandshakeSlotsUnderFlood: while 64 connections that send nothing
// (or only the first byte of a TLS record, then stall) are held and
// renewed as soon as they are closed, the real partner still links, on
// its first attempt, without the injected clock moving: no timeout has
// to free a slot for it. Before, the 64 held every slot for 10 s each and
// the partner's connection was closed at once.
func TestHandshakeSlotsUnderFlood(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		from  string // the attacker's source address; the partner dials from 127.0.0.1
		first []byte
	}{
		{name: "idle, from the partner's own address", from: "127.0.0.1"},
		{name: "idle, from another address", from: "127.0.0.2"},
		{name: "a TLS record started and stalled, from another address", from: "127.0.0.2", first: []byte{recordHandshake}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pki := newPKI(t)
			clk := clock.NewFake(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
			l, err := Listen("tcp://127.0.0.1:0", testOptions(pki.creds(t, "db2"), helloStandby, clk))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			f := startFlood(t, l.Addr().String(), tt.from, maxHandshakes, tt.first)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			accepted := make(chan *Conn, 1)
			go func() {
				c, err := l.Accept(ctx)
				if err == nil {
					accepted <- c
				}
			}()
			before := f.renewals.Load()
			c, err := Dial(ctx, l.Addr().String(), testOptions(pki.creds(t, "db1"), helloActive, clk))
			if err != nil {
				t.Fatalf("the partner's dial under the flood: %v", err)
			}
			defer c.Close(nil)
			s := <-accepted
			defer s.Close(nil)
			if s.Peer().Name != helloActive.Name {
				t.Fatalf("accepted %q", s.Peer().Name)
			}
			t.Logf("linked while the flood renewed %d connections (the clock did not move)", f.renewals.Load()-before)
			f.end()
		})
	}
}

// TestPreTLSTimeout: a connection that sends nothing is closed after
// PreTLSTimeout on the injected clock, not before; one that sends
// something else than TLS is closed at once.
func TestPreTLSTimeout(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	clk := clock.NewFake(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	refused := make(chan error, 4)
	opts := testOptions(pki.creds(t, "db2"), helloStandby, clk)
	opts.OnRefused = func(_ net.Addr, err error) { refused <- err }
	l, err := Listen("tcp://127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	junk, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	junk.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	if _, err := junk.Read(make([]byte, 1)); err == nil {
		t.Fatal("a plain-text connection got an answer")
	}
	if err := <-refused; !errors.Is(err, errNotTLS) || !errors.Is(err, ErrHandshake) {
		t.Fatalf("refused with %v", err)
	}

	idleConn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idleConn.Close()
	waitFor(t, func() bool { return l.slots.len() == 1 && clk.Pending() > 0 })
	clk.Advance(DefaultPreTLSTimeout - time.Millisecond)
	if l.slots.len() != 1 || clk.Pending() == 0 {
		t.Fatal("the idle connection was closed before PreTLSTimeout")
	}
	clk.Advance(time.Millisecond)
	if _, err := idleConn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the idle connection got an answer")
	}
	waitFor(t, func() bool { return l.slots.len() == 0 })
}
