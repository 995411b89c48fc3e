package link

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/mdlayher/vsock"
)

var (
	helloActive  = Hello{Name: "db1", Listen: "tcp://0.0.0.0:9730", Role: ha.Active, Epoch: 4, LastIndex: 40}
	helloStandby = Hello{Name: "db2", Listen: "tcp://127.0.0.1:9731", Role: ha.Standby, Epoch: 4, LastIndex: 38}
)

func TestParseAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Addr
		canon   string
		wantErr bool
	}{
		{in: "tcp://192.0.2.1:9730", want: Addr{Network: TCP, Host: "192.0.2.1", Port: 9730}, canon: "tcp://192.0.2.1:9730"},
		{in: "db2.example:9730", want: Addr{Network: TCP, Host: "db2.example", Port: 9730}, canon: "tcp://db2.example:9730"},
		{in: "tcp://[2001:DB8::1]:9730", want: Addr{Network: TCP, Host: "2001:db8::1", Port: 9730}, canon: "tcp://[2001:db8::1]:9730"},
		{in: "tcp://127.0.0.1:0", want: Addr{Network: TCP, Host: "127.0.0.1"}, canon: "tcp://127.0.0.1:0"},
		{in: "vsock://2:9730", want: Addr{Network: VSock, CID: 2, Port: 9730}, canon: "vsock://2:9730"},
		{in: "vsock://any:9730", want: Addr{Network: VSock, CID: AnyCID, Port: 9730}, canon: "vsock://any:9730"},
		{in: "udp://h:1", wantErr: true},
		{in: "tcp://h", wantErr: true},
		{in: "tcp://:9730", wantErr: true},
		{in: "tcp://h:99999", wantErr: true},
		{in: "vsock://x:1", wantErr: true},
		{in: "vsock://3", wantErr: true},
		{in: "vsock://3:0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAddr(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrAddress) {
					t.Errorf("ParseAddr = %+v, %v; want ErrAddress", got, err)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.canon {
				t.Errorf("ParseAddr = %+v (%s), %v; want %+v (%s)", got, got, err, tt.want, tt.canon)
			}
		})
	}
}

// TestHelloExchange: both sides see each other's Hello; an unspecified
// listen host becomes the address the connection came from.
func TestHelloExchange(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	p := dialPair(t, testOptions(pki.creds(t, "db1"), helloActive, nil), testOptions(pki.creds(t, "db2"), helloStandby, nil))
	if got := p.active.Peer(); got != helloStandby {
		t.Errorf("the active sees %+v", got)
	}
	want := helloActive
	want.Listen = "tcp://127.0.0.1:9730"
	if got := p.standby.Peer(); got != want {
		t.Errorf("the standby sees %+v, want %+v", got, want)
	}
	if !p.active.Dialed() || p.standby.Dialed() {
		t.Errorf("dialed: active %t, standby %t", p.active.Dialed(), p.standby.Dialed())
	}
	info := p.standby.PeerInfo()
	if info.Name != "db1" || info.Role != ha.Active || info.Epoch != 4 || info.Addr != "tcp://127.0.0.1:9730" {
		t.Errorf("PeerInfo = %+v", info)
	}

	// Messages both ways, and a goodbye with its reason.
	ctx := context.Background()
	if err := p.active.Send(ctx, EpochNotice{Epoch: 5}); err != nil {
		t.Fatal(err)
	}
	if m, err := p.standby.Recv(ctx); err != nil || m != (EpochNotice{Epoch: 5}) {
		t.Fatalf("Recv = %+v, %v", m, err)
	}
	p.standby.Close(errors.New("going away"))
	<-p.active.Done()
	if err := p.active.Err(); !errors.Is(err, ErrPeerClosed) || !contains(err, "going away") {
		t.Errorf("the active's link ended with %v", err)
	}
	if err := p.standby.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("the standby's link ended with %v", err)
	}
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// TestWrongCertificateRefused: a peer whose certificate the pair's CA did
// not sign (or that has none, or the wrong usage) gets no link: the
// listener refuses it during TLS, before reading anything from it.
func TestWrongCertificateRefused(t *testing.T) {
	t.Parallel()
	pki, other := newPKI(t), newPKI(t)
	good := pki.creds(t, "db2")
	tests := []struct {
		name   string
		server Credentials
		dial   func(ctx context.Context, addr string) error
	}{
		{name: "client certificate from another CA", server: good, dial: func(ctx context.Context, addr string) error {
			_, err := Dial(ctx, addr, testOptions(other.creds(t, "intruder"), helloActive, nil))
			return err
		}},
		{name: "client certificate without clientAuth usage", server: good, dial: func(ctx context.Context, addr string) error {
			c := Credentials{Cert: pki.issue(t, "db1", x509.ExtKeyUsageServerAuth), CA: pki.pool}
			_, err := Dial(ctx, addr, testOptions(c, helloActive, nil))
			return err
		}},
		{name: "server certificate from another CA", server: other.creds(t, "impostor"), dial: func(ctx context.Context, addr string) error {
			_, err := Dial(ctx, addr, testOptions(pki.creds(t, "db1"), helloActive, nil))
			return err
		}},
		{name: "no client certificate", server: good, dial: func(ctx context.Context, addr string) error {
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
			if err != nil {
				return err
			}
			defer c.Close()
			f, _ := Encode(helloActive)
			c.Write(f)
			_, err = c.Read(make([]byte, 1))
			return err
		}},
		{name: "no TLS at all", server: good, dial: func(ctx context.Context, addr string) error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			f, _ := Encode(helloActive)
			c.Write(f)
			_, err = c.Read(make([]byte, 1))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			refused := make(chan error, 1)
			opts := testOptions(tt.server, helloStandby, nil)
			opts.OnRefused = func(_ net.Addr, err error) { refused <- err }
			l, err := Listen("tcp://127.0.0.1:0", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tt.dial(ctx, l.Addr().String()); err == nil {
				t.Error("the connection was not refused")
			}
			select {
			case err := <-refused:
				if !errors.Is(err, ErrHandshake) {
					t.Errorf("refused with %v, want ErrHandshake", err)
				}
			case <-ctx.Done():
				t.Fatal("the listener did not refuse the connection")
			}
			// The handshake goroutine has returned: nothing was accepted.
			select {
			case c := <-l.conns:
				t.Errorf("a link was accepted from %s", c.Peer().Name)
			default:
			}
		})
	}
}

// TestKeepaliveBlackhole: a relay that stops forwarding leaves both sides
// silent; on the fake clock each declares the other down after exactly
// KeepaliveMisses intervals, not one before.
func TestKeepaliveBlackhole(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	clk := clock.NewFake(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	aopts := testOptions(pki.creds(t, "db1"), helloActive, clk)
	sopts := testOptions(pki.creds(t, "db2"), helloStandby, clk)
	aopts.KeepaliveInterval, sopts.KeepaliveInterval = time.Second, time.Second
	aopts.KeepaliveMisses, sopts.KeepaliveMisses = 3, 3
	l, err := Listen("tcp://127.0.0.1:0", sopts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := newRelay(t, l.Addr().String())
	p := dialPairTo(t, l, r.addr(), aopts)

	r.blackhole()
	for i := 1; i < 3; i++ {
		clk.Advance(time.Second) // keepalives go into the hole
		if err := p.active.Err(); err != nil {
			t.Fatalf("declared down after %d s: %v", i, err)
		}
		if err := p.standby.Err(); err != nil {
			t.Fatalf("standby declared down after %d s: %v", i, err)
		}
	}
	clk.Advance(time.Second)
	for _, c := range []*Conn{p.active, p.standby} {
		select {
		case <-c.Done():
		case <-clock.Real().NewTimer(10 * time.Second).C():
			t.Fatal("the link did not end")
		}
		if err := c.Err(); !errors.Is(err, ErrPeerSilent) {
			t.Errorf("ended with %v, want ErrPeerSilent", err)
		}
	}
}

// TestKeepaliveHealthy: keepalives keep an idle link up on the fake
// clock, well past the misses.
func TestKeepaliveHealthy(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	clk := clock.NewFake(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	aopts := testOptions(pki.creds(t, "db1"), helloActive, clk)
	sopts := testOptions(pki.creds(t, "db2"), helloStandby, clk)
	p := dialPair(t, aopts, sopts)
	for i := range 10 {
		clk.Advance(time.Second)
		now := clk.Now().UnixNano()
		// Each side's keepalive reaches the other before time moves on.
		for _, c := range []*Conn{p.active, p.standby} {
			waitFor(t, func() bool { return c.lastHeard.Load() == now || c.Err() != nil })
			if err := c.Err(); err != nil {
				t.Fatalf("after %d s: %v", i+1, err)
			}
		}
	}
	if got := p.standby.PeerLastIndex(); got != helloActive.LastIndex {
		t.Errorf("PeerLastIndex = %d", got)
	}
}

// waitFor polls cond until it holds, failing after a generous bound: the
// condition, not the time, is what the test waits for.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := clock.Real().Now().Add(20 * time.Second)
	for !cond() {
		if clock.Real().Now().After(deadline) {
			t.Fatal("condition not met")
		}
		clock.Sleep(context.Background(), clock.Real(), time.Millisecond)
	}
}

func TestSilent(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		since    time.Duration
		interval time.Duration
		misses   int
		want     bool
	}{
		{"just heard", 0, time.Second, 3, false},
		{"two misses", 2 * time.Second, time.Second, 3, false},
		{"a nanosecond before the third", 3*time.Second - 1, time.Second, 3, false},
		{"the third miss", 3 * time.Second, time.Second, 3, true},
		{"long gone", time.Hour, time.Second, 3, true},
		{"peer's long interval", 5 * time.Second, 2 * time.Second, 3, false},
		{"one miss allowed", time.Second, time.Second, 1, true},
		{"no interval: never", time.Hour, 0, 3, false},
		{"no misses: never", time.Hour, time.Second, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Silent(t0, t0.Add(tt.since), tt.interval, tt.misses); got != tt.want {
				t.Errorf("Silent after %v (%v × %d) = %t", tt.since, tt.interval, tt.misses, got)
			}
		})
	}
}

// freePorts returns n consecutive tcp ports that were free a moment ago.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n > 65535 {
			continue
		}
		ok := true
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp4", ":"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// TestSourcePortRange: the dialing side binds a port of the range, the
// first free one, and the peer sees the connection come from it.
func TestSourcePortRange(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	base := freePorts(t, 3)
	taken, err := net.Listen("tcp4", ":"+strconv.Itoa(base)) // the first port is in use
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	aopts := testOptions(pki.creds(t, "db1"), helloActive, nil)
	aopts.SourcePorts = PortRange{First: uint16(base), Last: uint16(base + 2)}
	p := dialPair(t, aopts, testOptions(pki.creds(t, "db2"), helloStandby, nil))
	remote := p.standby.RemoteAddr().(*net.TCPAddr).Port
	local := p.active.LocalAddr().(*net.TCPAddr).Port
	if remote != local {
		t.Errorf("the standby sees port %d, the active bound %d", remote, local)
	}
	if remote == base || remote < base || remote > base+2 {
		t.Errorf("connection from port %d, want %d-%d without the taken %d", remote, base+1, base+2, base)
	}

	// With every port of the range taken, the dial fails and says why.
	var hold []net.Listener
	for port := base + 1; port <= base+2; port++ {
		if port == remote {
			continue
		}
		l, err := net.Listen("tcp4", ":"+strconv.Itoa(port))
		if err != nil {
			t.Skipf("port %d: %v", port, err)
		}
		hold = append(hold, l)
	}
	defer func() {
		for _, l := range hold {
			l.Close()
		}
	}()
	l2, err := Listen("tcp://127.0.0.1:0", testOptions(pki.creds(t, "db2"), helloStandby, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	aopts.SourcePorts = PortRange{First: uint16(base), Last: uint16(base)}
	if _, err := Dial(context.Background(), l2.Addr().String(), aopts); !errors.Is(err, ErrNoSourcePort) {
		t.Errorf("Dial with the range taken = %v, want ErrNoSourcePort", err)
	}
}

// vsockLoopback reports whether vsock loopback (CID 1, VMADDR_CID_LOCAL)
// can listen and connect here, and why not. It never dials the host
// (CID 2).
func vsockLoopback(port uint32) (bool, string) {
	if _, err := os.Stat("/dev/vsock"); err != nil {
		return false, "no /dev/vsock"
	}
	l, err := vsock.ListenContextID(1, port, nil)
	if err != nil {
		return false, fmt.Sprintf("cannot listen on vsock CID 1 (is vsock_loopback loaded?): %v", err)
	}
	defer l.Close()
	accepted := make(chan struct{})
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
		close(accepted)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := vsock.DialContext(ctx, 1, port, nil)
	if err != nil {
		return false, fmt.Sprintf("cannot connect to vsock CID 1: %v", err)
	}
	c.Close()
	<-accepted
	return true, ""
}

// TestVsockLoopback runs a link over vsock where loopback exists (CID 1);
// elsewhere it says why it skips.
func TestVsockLoopback(t *testing.T) {
	t.Parallel()
	port := uint32(40000 + os.Getpid()%20000)
	if ok, why := vsockLoopback(port); !ok {
		if _, err := os.Stat("/dev/vsock"); err == nil {
			// The listener side at least: bind every CID, then close.
			l, err := Listen("vsock://any:"+strconv.Itoa(int(port)+2), testOptions(newPKI(t).creds(t, "db2"), helloStandby, nil))
			if err != nil {
				t.Errorf("vsock listener: %v", err)
			} else {
				l.Close()
			}
		}
		t.Skip("vsock loopback unavailable: " + why)
	}
	pki := newPKI(t)
	h := helloActive
	h.Listen = "vsock://any:" + strconv.Itoa(int(port)+1)
	l, err := Listen("vsock://1:"+strconv.Itoa(int(port)+1), testOptions(pki.creds(t, "db2"), helloStandby, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := dialPairTo(t, l, "vsock://1:"+strconv.Itoa(int(port)+1), testOptions(pki.creds(t, "db1"), h, nil))
	if got, want := p.standby.Peer().Listen, "vsock://1:"+strconv.Itoa(int(port)+1); got != want {
		t.Errorf("announced listen made dialable: %q, want %q", got, want)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := p.active.Send(ctx, Records{First: 1, Durable: 1, Payloads: [][]byte{[]byte("over vsock")}}); err != nil {
			t.Error(err)
		}
	})
	m, err := p.standby.Recv(ctx)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := m.(Records); !ok || string(r.Payloads[0]) != "over vsock" {
		t.Errorf("received %+v", m)
	}
}

// TestHelloVersionRefused: a peer of another protocol version is refused
// after TLS, and told why in a Goodbye.
func TestHelloVersionRefused(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	refused := make(chan error, 1)
	opts := testOptions(pki.creds(t, "db2"), helloStandby, nil)
	opts.OnRefused = func(_ net.Addr, err error) { refused <- err }
	l, err := Listen("tcp://127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{
		Certificates: []tls.Certificate{pki.issue(t, "db9")}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, _ := Encode(helloActive)
	f[10] = 9 // version 9
	if _, err := c.Write(f); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if m, err := readFrame(br, MaxFrame); err != nil || m.Type() != MsgHello {
		t.Fatalf("first frame %v, %v", m, err)
	}
	m, err := readFrame(br, MaxFrame)
	if g, ok := m.(Goodbye); err != nil || !ok || !strings.Contains(g.Reason, "version 9") {
		t.Errorf("then %+v, %v; want a goodbye naming the version", m, err)
	}
	if err := <-refused; !errors.Is(err, ErrVersion) {
		t.Errorf("refused with %v", err)
	}
}

// TestDialHandshakeTimeout: a peer that takes the TCP connection and
// never answers TLS (a firewall in the middle, a hung server) ends the
// dial after HandshakeTimeout with ErrHandshakeTimeout, which the daemon
// turns into a firewall hint.
func TestDialHandshakeTimeout(t *testing.T) {
	pki := newPKI(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	opts := testOptions(pki.creds(t, "a"), Hello{Name: "a"}, nil)
	opts.HandshakeTimeout = 100 * time.Millisecond
	_, err = Dial(context.Background(), "tcp://"+l.Addr().String(), opts)
	if !errors.Is(err, ErrHandshake) || !errors.Is(err, ErrHandshakeTimeout) {
		t.Fatalf("dial to a silent peer: %v, want ErrHandshake and ErrHandshakeTimeout", err)
	}
}

// TestViewKeptByTheLink: a View is the peer's last word on its storage
// connections: the link keeps the latest, Recv never returns it, and
// the messages around it flow as before.
func TestViewKeptByTheLink(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	p := dialPair(t, testOptions(pki.creds(t, "db1"), helloActive, nil), testOptions(pki.creds(t, "db2"), helloStandby, nil))
	ctx := context.Background()
	if _, ok := p.active.PeerView(); ok {
		t.Fatal("a view before the peer sent one")
	}
	first := View{Entries: []ViewEntry{{Conn: "HMCS", Endpoint: 1, State: ViewDisconnected, Detail: "refused"}}}
	second := View{Entries: []ViewEntry{{Conn: "HMCS", Endpoint: 1, Name: "HMC2", State: ViewConnected}}}
	for i, v := range []View{first, second} {
		if err := p.standby.Send(ctx, v); err != nil {
			t.Fatal(err)
		}
		// Frames are read in order: once the notice that followed the
		// view is out, the view is in.
		if err := p.standby.Send(ctx, EpochNotice{Epoch: hal.Epoch(i)}); err != nil {
			t.Fatal(err)
		}
		if m, err := p.active.Recv(ctx); err != nil || m != (EpochNotice{Epoch: hal.Epoch(i)}) {
			t.Fatalf("Recv = %+v, %v: want the notice, the view kept by the link", m, err)
		}
		if got, ok := p.active.PeerView(); !ok || !reflect.DeepEqual(got, v) {
			t.Fatalf("PeerView = %+v, %t; want %+v", got, ok, v)
		}
	}
}
