package relay

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
)

const (
	// quiet is how long a read waits to show that nothing arrives.
	quiet = 200 * time.Millisecond
	// patience bounds a read or accept that must succeed or end.
	patience = 10 * time.Second
)

// rig is a relay in front of a target listener the test accepts on.
type rig struct {
	t      *testing.T
	relay  *Relay
	target *net.TCPListener
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r, err := New("127.0.0.1:0", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &rig{t: t, relay: r, target: ln}
}

// dial connects to the relay.
func (g *rig) dial() *net.TCPConn {
	g.t.Helper()
	c, err := net.DialTimeout("tcp", g.relay.Addr(), patience)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// accept is the target side of the next forwarded connection; within
// bounds the wait.
func (g *rig) accept(within time.Duration) (*net.TCPConn, error) {
	g.target.SetDeadline(time.Now().Add(within))
	c, err := g.target.AcceptTCP()
	if err == nil {
		g.t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// pair is a client connection through the relay and its target side.
func (g *rig) pair() (client, server *net.TCPConn) {
	g.t.Helper()
	client = g.dial()
	server, err := g.accept(patience)
	if err != nil {
		g.t.Fatalf("the target got no connection: %v", err)
	}
	return client, server
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(patience))
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func receive(t *testing.T, c net.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(patience))
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
		t.Fatalf("read %q, %v; want %q", buf, err, want)
	}
}

// roundTrip shows bytes flowing both ways between client and server.
func roundTrip(t *testing.T, client, server net.Conn) {
	t.Helper()
	send(t, client, "ping")
	receive(t, server, "ping")
	send(t, server, "pong")
	receive(t, client, "pong")
}

// silent checks that nothing arrives on c and that it is still open.
func silent(t *testing.T, c net.Conn, side string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(quiet))
	n, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read %d bytes, %v; want nothing until the deadline", side, n, err)
	}
}

// reset checks that c ends with a TCP reset.
func reset(t *testing.T, c net.Conn, side string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(patience))
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			t.Fatalf("%s: read %q; want the connection reset", side, buf[:n])
		}
		if err != nil {
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("%s: %v; want the connection reset", side, err)
			}
			return
		}
	}
}

// dialReset checks that a connection to addr is reset as soon as it is
// made: by the time connect returns, or at the first read.
func dialReset(t *testing.T, addr, side string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, patience)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("%s: %v; want the connection reset", side, err)
		}
		return
	}
	defer c.Close()
	reset(t, c, side)
}

// waitAccepted waits until the relay has accepted n connections.
func waitAccepted(t *testing.T, r *Relay, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(patience); r.Stats().Accepted < n; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("the relay accepted %d connections, want %d", r.Stats().Accepted, n)
		}
	}
}

func wantStats(t *testing.T, r *Relay, want Stats) {
	t.Helper()
	if got := r.Stats(); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
}

func TestForwardsBothWays(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	client, server := g.pair()
	roundTrip(t, client, server)

	// A MiB each way at once, byte for byte.
	up, down := make([]byte, 1<<20), make([]byte, 1<<20)
	rand.Read(up)
	rand.Read(down)
	var wg sync.WaitGroup
	var upErr, downErr error
	wg.Go(func() { _, upErr = client.Write(up) })
	wg.Go(func() { _, downErr = server.Write(down) })
	client.SetDeadline(time.Now().Add(patience))
	server.SetDeadline(time.Now().Add(patience))
	gotUp, gotDown := make([]byte, len(up)), make([]byte, len(down))
	_, err1 := io.ReadFull(server, gotUp)
	_, err2 := io.ReadFull(client, gotDown)
	wg.Wait()
	if err := errors.Join(upErr, downErr, err1, err2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(up, gotUp) || !bytes.Equal(down, gotDown) {
		t.Fatal("bytes changed on the way")
	}

	// A half-close passes through: the server reads the end of the
	// client's stream and can still answer.
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("server after the client's half-close: %d, %v; want EOF", n, err)
	}
	send(t, server, "last words")
	server.Close()
	receive(t, client, "last words")
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client after the server closed: %d, %v; want EOF", n, err)
	}

	// Several connections at once, each to its own target connection.
	c2, s2 := g.pair()
	c3, s3 := g.pair()
	send(t, c3, "three")
	send(t, c2, "two")
	receive(t, s2, "two")
	receive(t, s3, "three")
	wantStats(t, g.relay, Stats{Accepted: 3, Forwarded: 3})
}

func TestTLSPassesThrough(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	ss, err := wire.NewSelfSigned(time.Now(), time.Hour, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	raw := g.dial()
	client := tls.Client(raw, wire.ClientTLSConfig(ss.Pool, "127.0.0.1"))
	rawServer, err := g.accept(patience)
	if err != nil {
		t.Fatal(err)
	}
	server := tls.Server(rawServer, wire.ServerTLSConfig(ss.Server))
	var wg sync.WaitGroup
	var serverErr error
	wg.Go(func() {
		server.SetDeadline(time.Now().Add(patience))
		serverErr = server.Handshake()
	})
	client.SetDeadline(time.Now().Add(patience))
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake through the relay: %v", err)
	}
	wg.Wait()
	if serverErr != nil {
		t.Fatalf("server handshake through the relay: %v", serverErr)
	}
	roundTrip(t, client, server)
}

func TestCutResetsBothSidesAndRefusesUntilHeal(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	client, server := g.pair()
	roundTrip(t, client, server)

	g.relay.Cut()
	reset(t, client, "client")
	reset(t, server, "target")

	// Accepted and reset at once; the target never hears of it.
	dialReset(t, g.relay.Addr(), "client during the cut")
	if c, err := g.accept(quiet); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the target got a connection during the cut: %v, %v", c, err)
	}
	wantStats(t, g.relay, Stats{Accepted: 2, Forwarded: 1, Cut: 1, Refused: 1})

	g.relay.Heal()
	client, server = g.pair()
	roundTrip(t, client, server)
	wantStats(t, g.relay, Stats{Accepted: 3, Forwarded: 2, Cut: 1, Refused: 1})
}

func TestBlackholeSilencesUntilHealResets(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	client, server := g.pair()
	roundTrip(t, client, server)

	g.relay.Blackhole()
	send(t, client, "lost up")
	send(t, server, "lost down")
	silent(t, server, "target")
	silent(t, client, "client")

	// Accepted, never connected.
	late := g.dial()
	waitAccepted(t, g.relay, 2)
	if c, err := g.accept(quiet); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the target got a connection during the black hole: %v, %v", c, err)
	}
	send(t, late, "hello?")
	silent(t, late, "client accepted during the black hole")
	g.relay.Blackhole() // again: nothing changes
	wantStats(t, g.relay, Stats{Accepted: 2, Forwarded: 1, Blackholed: 2})

	g.relay.Heal()
	reset(t, client, "client")
	reset(t, server, "target")
	reset(t, late, "client accepted during the black hole")
	client, server = g.pair()
	roundTrip(t, client, server)
	wantStats(t, g.relay, Stats{Accepted: 3, Forwarded: 2, Blackholed: 2})

	// A cut during a black hole resets the silenced connections at once.
	g.relay.Blackhole()
	g.relay.Cut()
	reset(t, client, "client black-holed then cut")
	reset(t, server, "target black-holed then cut")
	wantStats(t, g.relay, Stats{Accepted: 3, Forwarded: 2, Blackholed: 3, Cut: 1})
}

func TestBlackholeStopsAWriteInProgress(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	client, server := g.pair()
	roundTrip(t, client, server)
	// The target does not read: once every buffer on the way is full, the
	// relay is blocked writing to it, and the client's writes stall.
	before := make([]byte, 64<<10) // zeros
	stalled := false
	for written := 0; !stalled; written += len(before) {
		if written > 1<<30 {
			t.Fatal("a GiB went into a target that does not read")
		}
		client.SetWriteDeadline(time.Now().Add(quiet))
		_, err := client.Write(before)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			stalled = true
		case err != nil:
			t.Fatal(err)
		}
	}
	// Blackhole must abort the relay's blocked write, or wait forever.
	done := make(chan struct{})
	go func() { g.relay.Blackhole(); close(done) }()
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatal("Blackhole hangs on a write in progress")
	}
	// The client goes on writing, other bytes: none may reach the target.
	var writer sync.WaitGroup
	writer.Go(func() {
		after := bytes.Repeat([]byte{0xff}, 1<<20)
		client.SetWriteDeadline(time.Now().Add(patience))
		client.Write(after) // ends with the reset of Heal
	})
	// The target drains what the kernels already held, then hears nothing.
	buf := make([]byte, 64<<10)
	drained := 0
	for end := time.Now().Add(patience); ; {
		server.SetReadDeadline(time.Now().Add(quiet))
		n, err := server.Read(buf)
		if i := bytes.IndexByte(buf[:n], 0xff); i >= 0 {
			t.Fatalf("a byte written after the black hole reached the target, after %d bytes", drained+i)
		}
		drained += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("target during the black hole: %v", err)
		}
		if time.Now().After(end) {
			t.Fatalf("bytes still arrive %v into the black hole (%d drained)", patience, drained)
		}
	}
	g.relay.Heal()
	reset(t, server, "target")
	writer.Wait()
}

func TestTargetDownResetsClient(t *testing.T) {
	t.Parallel()
	// A port bound without listening refuses connections, and no other
	// test can listen on it meanwhile.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	r, err := New("127.0.0.1:0", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dialReset(t, r.Addr(), "client of a dead target")
	wantStats(t, r, Stats{Accepted: 1, DialFailed: 1})
}

func TestCloseEndsEverything(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	client, server := g.pair()
	roundTrip(t, client, server)
	c2, s2 := g.pair()
	roundTrip(t, c2, s2)
	g.relay.Blackhole()
	late := g.dial()
	waitAccepted(t, g.relay, 3)
	silent(t, late, "client accepted during the black hole")

	if err := g.relay.Close(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]net.Conn{"client": client, "target": server, "black-holed client": c2,
		"black-holed target": s2, "never connected": late} {
		reset(t, c, name)
	}
	if c, err := net.DialTimeout("tcp", g.relay.Addr(), patience); err == nil {
		c.Close()
		t.Fatal("the relay still accepts after Close")
	}
	if err := g.relay.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	g.relay.Cut() // no effect, no panic
	g.relay.Heal()
	wantStats(t, g.relay, Stats{Accepted: 3, Forwarded: 2, Blackholed: 3})
}

func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, listen, target string
		ok                   bool
	}{
		{"loopback", "127.0.0.1:0", "127.0.0.1:9", true},
		{"the rest of 127/8", "127.0.0.2:0", "127.3.4.5:9", true},
		{"ipv6 loopback", "[::1]:0", "[::1]:9", true},
		{"listen on every address", "0.0.0.0:0", "127.0.0.1:9", false},
		{"listen on every ipv6 address", "[::]:0", "127.0.0.1:9", false},
		{"listen on a name", "localhost:0", "127.0.0.1:9", false},
		{"listen without a host", ":0", "127.0.0.1:9", false},
		{"target off the host", "127.0.0.1:0", "192.0.2.1:9", false},
		{"target by name", "127.0.0.1:0", "example.com:80", false},
		{"target without a port", "127.0.0.1:0", "127.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.listen, tc.target)
			if tc.ok {
				if err != nil {
					if strings.Contains(tc.listen, "::1") && !errors.Is(err, ErrNotLoopback) {
						t.Skipf("no IPv6 loopback here: %v", err)
					}
					t.Fatal(err)
				}
				r.Close()
				return
			}
			if !errors.Is(err, ErrNotLoopback) {
				if r != nil {
					r.Close()
				}
				t.Fatalf("New(%q, %q): %v, want ErrNotLoopback", tc.listen, tc.target, err)
			}
		})
	}
}

// TestConcurrentFaults runs clients through the relay while another
// goroutine switches it between its modes: no race, no deadlock, and the
// relay still forwards once healed.
func TestConcurrentFaults(t *testing.T) {
	t.Parallel()
	g := newRig(t)
	var echo sync.WaitGroup
	echo.Go(func() { // an echo server at the target
		for {
			c, err := g.target.Accept()
			if err != nil {
				return
			}
			echo.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(patience))
				io.Copy(c, c)
			})
		}
	})
	stop := make(chan struct{})
	var clients sync.WaitGroup
	for range 8 {
		clients.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", g.relay.Addr(), patience)
				if err != nil {
					continue
				}
				c.SetDeadline(time.Now().Add(50 * time.Millisecond))
				c.Write([]byte("x"))
				c.Read(make([]byte, 1))
				c.Close()
			}
		})
	}
	deadline := time.Now().Add(patience)
	for i := range 90 {
		switch i % 3 {
		case 0:
			g.relay.Cut()
		case 1:
			g.relay.Blackhole()
		case 2:
			g.relay.Heal()
		}
		// Some client meets each mode.
		for seen := g.relay.Stats().Accepted; g.relay.Stats().Accepted == seen; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatalf("no client got through in time: %+v", g.relay.Stats())
			}
		}
	}
	close(stop)
	clients.Wait()
	g.relay.Heal()
	client := g.dial()
	send(t, client, "still there")
	receive(t, client, "still there")
	st := g.relay.Stats()
	if st.Accepted < st.Forwarded || st.Forwarded == 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := g.relay.Close(); err != nil {
		t.Fatal(err)
	}
	g.target.Close()
	echo.Wait()
}

// relayGoroutines counts the goroutines running the relay's code.
func relayGoroutines() (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var n int
	var stacks []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "internal/relay.(*Relay)") || strings.Contains(g, "internal/relay.(*link)") {
			n++
			stacks = append(stacks, g)
		}
	}
	return n, strings.Join(stacks, "\n\n")
}

// TestNoGoroutineLeft drives every mode and path, then checks that Close
// leaves no goroutine of the relay behind. Not parallel: the other tests'
// relays would count.
func TestNoGoroutineLeft(t *testing.T) {
	g := newRig(t)
	client, server := g.pair()
	roundTrip(t, client, server)
	c2, _ := g.pair()
	send(t, c2, "half")
	c2.CloseWrite()
	g.relay.Blackhole()
	late := g.dial()
	silent(t, late, "late")
	g.relay.Heal()
	reset(t, client, "client")
	client, server = g.pair()
	roundTrip(t, client, server)
	g.relay.Cut()
	reset(t, server, "target")
	dialReset(t, g.relay.Addr(), "refused")
	g.relay.Heal()
	client, server = g.pair()
	roundTrip(t, client, server)
	finished, fs := g.pair() // a connection that ends on its own
	finished.Close()
	fs.Close()

	if n, _ := relayGoroutines(); n == 0 {
		t.Fatal("no relay goroutine seen while connections are open: the check is blind")
	}
	closed := make(chan error, 1)
	go func() { closed <- g.relay.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(patience):
		_, stacks := relayGoroutines()
		t.Fatalf("Close waits for goroutines that do not end:\n%s", stacks)
	}
	// Close waited for them; one may still be returning from its deferred
	// Done.
	deadline := time.Now().Add(patience)
	for {
		n, stacks := relayGoroutines()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d relay goroutines left after Close:\n%s", n, stacks)
		}
		runtime.Gosched()
	}
}
