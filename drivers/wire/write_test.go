package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// The client's write path: what must hold when the peer stops reading
// (a black hole) and the socket's buffers fill.

// countingConn counts the bytes its writes took.
type countingConn struct {
	net.Conn
	written atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// connectSmallBuffer connects to srv through a socket with a small send
// buffer (so that a few hundred kilobytes fill it), counting what it
// takes.
func connectSmallBuffer(t *testing.T, srv *testServer, opts ClientOptions) (*Client, *countingConn) {
	t.Helper()
	raw, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.(*net.TCPConn).SetWriteBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{Conn: raw}
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	c, _, err := NewClient(ctx, tls.Client(cc, ClientTLSConfig(srv.pki.Pool, "localhost")), sampleHello, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, cc
}

// stalledPeer is a server that, once the handshake is done, reads nothing
// until release is closed; then it reads every request, sends the ops of
// the requests with arguments to got, and answers pings.
func stalledPeer(t *testing.T, release <-chan struct{}, got chan<- Op) *testServer {
	return startRaw(t, func(conn net.Conn, br *bufio.Reader) {
		<-release
		for {
			f, err := ReadFrame(br, MaxFrameSize)
			if err != nil {
				return
			}
			r, err := DecodeRequest(f.Body)
			if err != nil {
				return
			}
			if len(r.Args) > 0 {
				got <- r.Op
				continue
			}
			body, _ := EncodeResponse(Response{ID: r.ID})
			if WriteFrame(conn, Frame{Type: MsgResponse, Body: body}) != nil {
				return
			}
		}
	})
}

// releaser closes release once, by the first of release() and the end of
// the test: it must run before the server's own clean-up, which waits for
// the peer's handler.
func releaser(t *testing.T, release chan struct{}) (releaseNow func()) {
	var once sync.Once
	releaseNow = func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseNow)
	return releaseNow
}

// TestCallsReturnWhileTheWriteBlocks: the peer reads nothing, the
// socket's buffers are full and the write of a request is blocked in the
// middle. Every Call still returns at its ctx's end (the write timeout is
// an hour), the one whose request is being written too; the connection
// stays up; and the requests that waited behind the blocked write are not
// sent once it goes on.
func TestCallsReturnWhileTheWriteBlocks(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	got := make(chan Op, 16)
	srv := stalledPeer(t, release, got)
	releaseNow := releaser(t, release)
	c, cc := connectSmallBuffer(t, srv, ClientOptions{WriteTimeout: time.Hour})

	const big = 2 << 20 // far more than the buffers take
	start := cc.written.Load()
	firstCtx, cancelFirst := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := c.Call(firstCtx, 1, OpFreeze, make([]byte, big))
		first <- err
	}()
	for cc.written.Load() == start { // its write is under way
		select {
		case err := <-first:
			t.Fatalf("the first call returned before its write began: %v", err)
		case <-time.After(time.Millisecond):
		}
	}

	const n = 8
	errc := make(chan error, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			_, err := c.Call(ctx, 1, OpFreeze, []byte{1})
			errc <- err
		}()
	}
	for range n {
		if err := wait(t, errc, "a call behind the blocked write"); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want the ctx's timeout", err)
		}
	}
	cancelFirst()
	if err := wait(t, first, "the call whose write blocks"); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want the ctx's cancellation", err)
	}
	if w := cc.written.Load() - start; w >= big {
		t.Fatalf("%d bytes written of %d: the write never blocked, the test proves nothing", w, big)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("the connection ended: %v", err)
	}

	releaseNow()
	if err := c.Ping(callCtx(t)); err != nil {
		t.Fatalf("ping after the peer read again: %v", err)
	}
	if sent := len(got); sent != 1 {
		t.Fatalf("%d requests reached the peer before the ping, want 1: the one being written, none of the %d queued behind it", sent, n)
	}
}

// TestBlockedWriteFailsTheConnection: a write still blocked after
// WriteTimeout ends the connection (half a frame may be out: the stream
// is unusable), and its Call hears that the request may have run.
func TestBlockedWriteFailsTheConnection(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := stalledPeer(t, release, make(chan Op, 16))
	releaseNow := releaser(t, release)
	c, _ := connectSmallBuffer(t, srv, ClientOptions{WriteTimeout: 200 * time.Millisecond})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(callCtx(t), 1, OpFreeze, make([]byte, 1<<20))
		errc <- err
	}()
	wait(t, c.Done(), "the connection's end")
	releaseNow() // the peer reads again: closing the connection need not wait for its TLS alert's write to time out
	if err := c.Err(); !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("Err = %v, want the write's timeout", err)
	}
	if err := wait(t, errc, "the call"); !errors.Is(err, hal.ErrUnreachable) || !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("call: %v, want unreachable and maybe-executed", err)
	}
}

// TestWriteTimeoutIsPerWrite: requests written one after the other for
// five times WriteTimeout, each at once, do not end the connection: the
// write deadline moves with the writes.
func TestWriteTimeoutIsPerWrite(t *testing.T) {
	t.Parallel()
	srv := startServer(t, acceptFake(newFake(serialP), heartbeatCaps), ServerOptions{})
	const writeTimeout = 250 * time.Millisecond // far above a write's scheduling delay under load
	c := srv.mustConnect(t, ClientOptions{WriteTimeout: writeTimeout})
	for end := time.Now().Add(5 * writeTimeout); time.Now().Before(end); time.Sleep(writeTimeout / 20) {
		if err := c.Ping(callCtx(t)); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("the connection ended: %v", err)
	}
}
