package wire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// These tests run the client and the server over real loopback TCP with
// TLS 1.3. Waits are bounded by wait() only as a guard against a hang;
// no test depends on how long anything takes.

const guard = 10 * time.Second

// wait receives from ch, failing the test if nothing comes within guard.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newPKI is a CA and a server certificate for serialP at localhost and
// 127.0.0.1.
func newPKI(t *testing.T) *SelfSigned {
	t.Helper()
	pki, err := NewSelfSigned(time.Now(), time.Hour, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if pki.Server, err = pki.Issue(serialP, "localhost", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	return pki
}

// pin is the fingerprint of the server's certificate: with it, a client
// may send a Hello for any serial (or none), to test the server's checks.
func (s *testServer) pin() []byte {
	fp := Fingerprint(s.pki.Server.Certificate[0])
	return fp[:]
}

type testServer struct {
	addr    string
	pki     *SelfSigned
	logs    *syncBuffer
	results chan error // what each connection's Serve returned, in order
	stop    context.CancelFunc
}

// listen starts a TLS 1.3 listener on loopback running serve for every
// connection; everything stops at the end of the test.
func listen(t *testing.T, logs *syncBuffer, serve func(ctx context.Context, conn net.Conn) error) *testServer {
	t.Helper()
	pki := newPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, ServerTLSConfig(pki.Server))
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{addr: ln.Addr().String(), pki: pki, logs: logs, results: make(chan error, 100), stop: cancel}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := tl.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.results <- serve(ctx, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		tl.Close()
		wg.Wait()
	})
	return s
}

// startServer serves accept with Serve.
func startServer(t *testing.T, accept AcceptFunc, opts ServerOptions) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return listen(t, logs, func(ctx context.Context, conn net.Conn) error {
		return Serve(ctx, conn, accept, opts)
	})
}

// startRaw answers each connection's Hello with HelloOK and hands it to
// handle: a server that does exactly what a test says.
func startRaw(t *testing.T, handle func(conn net.Conn, br *bufio.Reader)) *testServer {
	t.Helper()
	return listen(t, &syncBuffer{}, func(ctx context.Context, conn net.Conn) error {
		defer conn.Close()
		br := bufio.NewReader(conn)
		if _, err := ReadFrame(br, MaxHandshakeFrame); err != nil {
			return err
		}
		body, _ := EncodeHelloOK(sampleOK)
		if err := WriteFrame(conn, Frame{Type: MsgHelloOK, Body: body}); err != nil {
			return err
		}
		handle(conn, br)
		return nil
	})
}

func acceptFake(sys *fakeStorage, caps hal.Capabilities) AcceptFunc {
	return func(h Hello) (HelloOK, hal.StorageSystem, error) {
		if h.Serial != "" && h.Serial != sys.serial {
			return HelloOK{}, nil, fmt.Errorf("%w: %s", ErrUnknownSerial, h.Serial)
		}
		if err := CheckCredentials(h, "admin", "secret"); err != nil {
			return HelloOK{}, nil, err
		}
		return HelloOK{Serial: sys.serial, Capabilities: caps, Epoch: 7}, sys, nil
	}
}

var heartbeatCaps = hal.Capabilities{Heartbeat: true}

func (s *testServer) dialTLS(t *testing.T) *tls.Conn {
	t.Helper()
	d := tls.Dialer{Config: ClientTLSConfig(s.pki.Pool, "localhost")}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.(*tls.Conn)
}

func (s *testServer) connect(t *testing.T, hello Hello, opts ClientOptions) (*Client, HelloOK, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	c, ok, err := NewClient(ctx, s.dialTLS(t), hello, opts)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, ok, err
}

func (s *testServer) mustConnect(t *testing.T, opts ClientOptions) *Client {
	t.Helper()
	c, _, err := s.connect(t, sampleHello, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	t.Cleanup(cancel)
	return ctx
}

func frameBytes(t *testing.T, typ MsgType, body []byte, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteFrame(&b, Frame{Type: typ, Body: body}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestHandshakeOK(t *testing.T) {
	t.Parallel()
	sys := newFake(serialP)
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{})
	conn := srv.dialTLS(t)
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("TLS version 0x%04x, want 1.3", v)
	}
	c, ok, err := NewClient(callCtx(t), conn, sampleHello, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := HelloOK{Version: Version, Serial: serialP, Capabilities: heartbeatCaps, Epoch: 7}
	if !reflect.DeepEqual(ok, want) {
		t.Fatalf("HelloOK (-want +got):\n-%+v\n+%+v", want, ok)
	}
	if err := c.Ping(callCtx(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if len(sys.Calls()) != 0 {
		t.Fatalf("ping reached the storage system: %v", sys.Calls())
	}
}

func TestTLSRefusals(t *testing.T) {
	t.Parallel()
	srv := startServer(t, acceptFake(newFake(serialP), heartbeatCaps), ServerOptions{})
	other := newPKI(t)
	tests := []struct {
		name string
		cfg  *tls.Config
	}{
		{"tls-1.2-client", &tls.Config{RootCAs: srv.pki.Pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12}},
		{"unknown-ca", ClientTLSConfig(other.Pool, "localhost")},
		{"wrong-server-name", ClientTLSConfig(srv.pki.Pool, "storage.example")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := tls.Dialer{Config: tc.cfg}
			conn, err := d.DialContext(callCtx(t), "tcp", srv.addr)
			if err == nil {
				conn.Close()
				t.Fatal("TLS handshake succeeded")
			}
		})
	}
	// The certificate also verifies for its IP address.
	d := tls.Dialer{Config: ClientTLSConfig(srv.pki.Pool, "127.0.0.1")}
	conn, err := d.DialContext(callCtx(t), "tcp", srv.addr)
	if err != nil {
		t.Fatalf("dial by IP: %v", err)
	}
	conn.Close()
}

func TestWrongPasswordRefusedBeforeAnyCommand(t *testing.T) {
	t.Parallel()
	sys := newFake(serialP)
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{})

	// A client that pipelines freezes behind a wrong password: more than
	// the server's read buffer, so that they are still unread when the
	// server decides.
	conn := srv.dialTLS(t)
	bad := sampleHello
	bad.Password = "hunter2"
	freeze, _ := EncodeArgs(OpFreeze, Args{LSSPairs: []hal.LSSPair{lssPairA}})
	var out []byte
	out = append(out, frameBytes(t, MsgHello, mustHello(t, bad), nil)...)
	for id := range uint64(500) {
		req, err := EncodeRequest(Request{ID: id + 1, Epoch: 1, Timeout: time.Second, Op: OpFreeze, Args: freeze})
		out = append(out, frameBytes(t, MsgRequest, req, err)...)
	}
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(guard))
	br := bufio.NewReader(conn)
	f, err := ReadFrame(br, MaxHandshakeFrame)
	if err != nil {
		t.Fatalf("read reject: %v", err)
	}
	rj, err := DecodeHelloReject(f.Body)
	if f.Type != MsgHelloReject || err != nil || rj.Code != RejectAuth {
		t.Fatalf("got %s %+v (%v), want a hello-reject with code auth", f.Type, rj, err)
	}
	if strings.Contains(rj.Text, "hunter2") {
		t.Fatalf("reject text %q reveals the password", rj.Text)
	}
	conn.CloseWrite() // lets the server's drain of our pipelined input end
	if _, err := ReadFrame(br, MaxFrameSize); err == nil {
		t.Fatal("server kept the connection open after rejecting")
	}
	if err := wait(t, srv.results, "serve result"); err == nil || !errors.Is(err, hal.ErrAuth) {
		t.Fatalf("Serve returned %v, want an auth refusal", err)
	}
	if calls := sys.Calls(); len(calls) != 0 {
		t.Fatalf("the storage system saw %d calls before authentication: %v", len(calls), calls)
	}

	// The same through NewClient.
	_, _, err = srv.connect(t, bad, ClientOptions{})
	if !errors.Is(err, hal.ErrAuth) || !errors.Is(err, ErrRejected) || hal.Retryable(err) {
		t.Fatalf("NewClient error = %v, want a non-retryable auth rejection", err)
	}
	if calls := sys.Calls(); len(calls) != 0 {
		t.Fatalf("the storage system saw calls: %v", calls)
	}
}

func mustHello(t *testing.T, h Hello) []byte {
	t.Helper()
	b, err := EncodeHello(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandshakeRefusals(t *testing.T) {
	t.Parallel()
	sys := newFake(serialP)
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{})
	unavailable := startServer(t, func(Hello) (HelloOK, hal.StorageSystem, error) {
		return HelloOK{}, nil, fmt.Errorf("%w: restarting", hal.ErrUnreachable)
	}, ServerOptions{})
	liar := startServer(t, func(Hello) (HelloOK, hal.StorageSystem, error) {
		return HelloOK{Serial: "SOMEONE.ELSE"}, sys, nil
	}, ServerOptions{})

	tests := []struct {
		name     string
		srv      *testServer
		hello    Hello
		want     []error
		wantText string
	}{
		{"version-4", srv, Hello{Version: 4, User: "admin", Password: "secret"}, []error{ErrBadVersion, ErrRejected}, "version 4"},
		{"unknown-serial", srv, Hello{Serial: "LAB.NOPE", User: "admin", Password: "secret"}, []error{ErrUnknownSerial, ErrRejected}, "LAB.NOPE"},
		{"wrong-user", srv, Hello{User: "root", Password: "secret"}, []error{hal.ErrAuth, ErrRejected}, ""},
		{"unavailable", unavailable, sampleHello, []error{hal.ErrUnreachable, ErrRejected}, "restarting"},
		{"serial-mismatch-checked-by-client", liar, sampleHello, []error{ErrUnknownSerial}, "SOMEONE.ELSE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Pinned: these hellos name no serial or another one, and the
			// refusals under test are the server's.
			c, _, err := tc.srv.connect(t, tc.hello, ClientOptions{Pin: tc.srv.pin()})
			if err == nil {
				c.Close()
				t.Fatal("handshake succeeded")
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %v does not wrap %v", err, w)
				}
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not say %q", err, tc.wantText)
			}
		})
	}
	if calls := sys.Calls(); len(calls) != 0 {
		t.Fatalf("refused handshakes reached the storage system: %v", calls)
	}
}

func TestServerRefusesBadHellos(t *testing.T) {
	t.Parallel()
	sys := newFake(serialP)
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{HandshakeTimeout: 200 * time.Millisecond})
	badMagic := append([]byte("HTTP"), mustHello(t, sampleHello)[4:]...)
	v4 := mustHello(t, Hello{Version: 4})
	// A version 1 client's Hello, as it was: no flags, no HMC name.
	v1 := append([]byte(Magic), hexBytes(t, "0001 016D 0153 0175 0170")...)
	tests := []struct {
		name   string
		send   []byte
		reject RejectCode // 0: closed without a reply
		want   error      // what Serve returns
	}{
		{"bad-magic", frameBytes(t, MsgHello, badMagic, nil), 0, ErrMalformed},
		{"version-4", frameBytes(t, MsgHello, v4, nil), RejectVersion, ErrBadVersion},
		{"version-1", frameBytes(t, MsgHello, v1, nil), RejectVersion, ErrBadVersion},
		{"request-first", frameBytes(t, MsgRequest, make([]byte, requestHeader), nil), 0, ErrMalformed},
		{"oversized-hello", frameBytes(t, MsgHello, make([]byte, MaxHandshakeFrame), nil), 0, ErrFrameTooLarge},
		{"silence", nil, 0, nil}, // handshake timeout
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: Serve results arrive on one channel.
			conn := srv.dialTLS(t)
			if tc.send != nil {
				if _, err := conn.Write(tc.send); err != nil {
					t.Fatal(err)
				}
			}
			conn.SetReadDeadline(time.Now().Add(guard))
			f, err := ReadFrame(bufio.NewReader(conn), MaxHandshakeFrame)
			if tc.reject != 0 {
				rj, derr := DecodeHelloReject(f.Body)
				if err != nil || derr != nil || rj.Code != tc.reject {
					t.Fatalf("got %s %+v (%v, %v), want reject %s", f.Type, rj, err, derr, tc.reject)
				}
			} else if err == nil {
				t.Fatalf("server answered with a %s", f.Type)
			}
			got := wait(t, srv.results, "serve result")
			var ne net.Error
			if tc.want == nil && !(errors.As(got, &ne) && ne.Timeout()) {
				t.Fatalf("Serve returned %v, want a handshake timeout", got)
			}
			if tc.want != nil && !errors.Is(got, tc.want) {
				t.Fatalf("Serve returned %v, want %v", got, tc.want)
			}
		})
	}
	if !strings.Contains(srv.logs.String(), "closed connection") {
		t.Fatalf("no reason logged:\n%s", srv.logs)
	}
	if calls := sys.Calls(); len(calls) != 0 {
		t.Fatalf("bad hellos reached the storage system: %v", calls)
	}
}

func TestAllOpsEndToEnd(t *testing.T) {
	t.Parallel()
	sys := newFake(serialP)
	sys.pairs, sys.paths, sys.lsss = samplePairStatus, samplePathStatus, sampleLSSStatus
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{})
	c := srv.mustConnect(t, ClientOptions{})
	ctx := callCtx(t)
	const e = hal.Epoch(9)
	vps := []hal.VolumePair{volPairA, volPairB}
	lps := []hal.LSSPair{lssPairA, lssPairB}
	lsss := []hal.LSS{0x10, 0xFE}
	for _, err := range []error{
		c.EstablishPaths(ctx, e, samplePaths),
		c.EstablishPairs(ctx, e, samplePairs),
		c.Freeze(ctx, e, lps),
		c.Thaw(ctx, e, lsss),
		c.Suspend(ctx, e, vps),
		c.Recover(ctx, e, vps[:1]),
		c.Failback(ctx, e, vps[1:]),
		c.RemovePairs(ctx, e, vps),
		c.RemovePaths(ctx, e, lps[1:]),
		c.EnableHeartbeat(ctx, e, sampleHB),
		c.Heartbeat(ctx, e, "payroll"),
		c.DisableHeartbeat(ctx, e, "payroll"),
		c.Ping(ctx),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	pairs, err := c.QueryPairs(ctx, e)
	if err != nil || !reflect.DeepEqual(pairs, samplePairStatus) {
		t.Fatalf("QueryPairs = %v, %v (-want +got):\n-%+v\n+%+v", pairs, err, samplePairStatus, pairs)
	}
	paths, err := c.QueryPaths(ctx, e)
	if err != nil || !reflect.DeepEqual(paths, samplePathStatus) {
		t.Fatalf("QueryPaths (-want +got):\n-%+v\n+%+v (%v)", samplePathStatus, paths, err)
	}
	ls, err := c.QueryLSSs(ctx, e)
	if err != nil || !reflect.DeepEqual(ls, sampleLSSStatus) {
		t.Fatalf("QueryLSSs (-want +got):\n-%+v\n+%+v (%v)", sampleLSSStatus, ls, err)
	}
	want := []fakeCall{
		{"EstablishPaths", e, samplePaths},
		{"EstablishPairs", e, samplePairs},
		{"Freeze", e, lps},
		{"Thaw", e, lsss},
		{"Suspend", e, vps},
		{"Recover", e, vps[:1]},
		{"Failback", e, vps[1:]},
		{"RemovePairs", e, vps},
		{"RemovePaths", e, lps[1:]},
		{"EnableHeartbeat", e, sampleHB},
		{"Heartbeat", e, "payroll"},
		{"DisableHeartbeat", e, "payroll"},
		{"QueryPairs", e, nil},
		{"QueryPaths", e, nil},
		{"QueryLSSs", e, nil},
	}
	if got := sys.Calls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls (-want +got):\n-%+v\n+%+v", want, got)
	}
}

func TestErrorsCrossTheWire(t *testing.T) {
	t.Parallel()
	errs := []error{
		nil,
		fmt.Errorf("epoch 3 < 5: %w", hal.ErrFenced),
		fmt.Errorf("no such volume: %w", hal.ErrRefused),
		fmt.Errorf("session payroll: %w", hal.ErrHeartbeatExpired),
		hal.ErrUnsupported,
		hal.ErrTimeout,
		hal.ErrUnreachable,
		errors.New("disk on fire"),
		errors.New(strings.Repeat("long ", 1000)),
	}
	sys := newFake(serialP)
	sys.hook = func(_ context.Context, _ string, epoch hal.Epoch) error { return errs[epoch] }
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{})
	c := srv.mustConnect(t, ClientOptions{})
	for i, sent := range errs {
		err := c.Freeze(callCtx(t), hal.Epoch(i), []hal.LSSPair{lssPairA})
		if sent == nil {
			if err != nil {
				t.Fatalf("epoch %d: %v", i, err)
			}
			continue
		}
		want := StatusOf(sent).Err("").(*RemoteError).Unwrap()
		var re *RemoteError
		if !errors.Is(err, want) || !errors.As(err, &re) || re.Status != StatusOf(sent) {
			t.Errorf("sent %v, got %v; want a %s RemoteError wrapping %v", sent, err, StatusOf(sent), want)
			continue
		}
		if len(sent.Error()) <= MaxText && !strings.Contains(err.Error(), sent.Error()) {
			t.Errorf("text of %q lost: %q", sent, err)
		}
		if errors.Is(err, ErrTimeout) {
			t.Errorf("a status from the server reads as a client-side timeout: %v", err)
		}
	}
	if err := c.Ping(callCtx(t)); err != nil {
		t.Fatalf("connection broken after error replies: %v", err)
	}
}

// TestPipelinedCalls has 100 Calls in flight on one connection at once:
// the storage system holds every request until all 100 have arrived, so
// the test passes only if both sides pipeline. Each answer echoes its
// request's epoch, so a mismatched ID would show.
func TestPipelinedCalls(t *testing.T) {
	t.Parallel()
	const n = 100
	var arrived atomic.Int32
	all := make(chan struct{})
	sys := newFake(serialP)
	sys.hook = func(ctx context.Context, _ string, _ hal.Epoch) error {
		if arrived.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sys.lsssFor = func(e hal.Epoch) []hal.LSSStatus {
		return []hal.LSSStatus{{LSS: hal.LSS(e), CGTimeout: time.Duration(e)}}
	}
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{MaxInFlight: n})
	c := srv.mustConnect(t, ClientOptions{})
	ctx := callCtx(t)
	errc := make(chan error, n)
	for i := 1; i <= n; i++ {
		go func() {
			got, err := c.QueryLSSs(ctx, hal.Epoch(i))
			want := []hal.LSSStatus{{LSS: hal.LSS(i), CGTimeout: time.Duration(i)}}
			if err == nil && !reflect.DeepEqual(got, want) {
				err = fmt.Errorf("call %d (-want +got):\n-%+v\n+%+v", i, want, got)
			}
			errc <- err
		}()
	}
	for range n {
		if err := wait(t, errc, "a pipelined call"); err != nil {
			t.Error(err)
		}
	}
}

// TestResponsesMatchedByID answers 100 requests in reverse order from a
// raw server and checks every ID on the wire is distinct and every Call
// gets its own answer.
func TestResponsesMatchedByID(t *testing.T) {
	t.Parallel()
	const n = 100
	srvErr := make(chan error, 1)
	srv := startRaw(t, func(conn net.Conn, br *bufio.Reader) {
		var reqs []Request
		seen := map[uint64]bool{}
		for range n {
			f, err := ReadFrame(br, MaxFrameSize)
			if err != nil {
				srvErr <- err
				return
			}
			r, err := DecodeRequest(f.Body)
			if err != nil || seen[r.ID] {
				srvErr <- fmt.Errorf("request %+v: duplicate ID or %v", r, err)
				return
			}
			seen[r.ID] = true
			reqs = append(reqs, r)
		}
		bw := bufio.NewWriter(conn)
		for i := len(reqs) - 1; i >= 0; i-- {
			res, _ := EncodeResult(OpQueryLSSs, Result{LSSs: []hal.LSSStatus{{CGTimeout: time.Duration(reqs[i].Epoch)}}})
			body, _ := EncodeResponse(Response{ID: reqs[i].ID, Result: res})
			WriteFrame(bw, Frame{Type: MsgResponse, Body: body})
		}
		srvErr <- bw.Flush()
		io.Copy(io.Discard, br)
	})
	c := srv.mustConnect(t, ClientOptions{})
	ctx := callCtx(t)
	errc := make(chan error, n)
	for i := 1; i <= n; i++ {
		go func() {
			got, err := c.QueryLSSs(ctx, hal.Epoch(i))
			if err == nil && (len(got) != 1 || got[0].CGTimeout != time.Duration(i)) {
				err = fmt.Errorf("call %d got %+v", i, got)
			}
			errc <- err
		}()
	}
	if err := wait(t, srvErr, "raw server"); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := wait(t, errc, "a call"); err != nil {
			t.Error(err)
		}
	}
}

// TestCallTimesOutAtItsDeadline runs the client on a fake clock against a
// server that does not answer: the Call returns ErrTimeout exactly when
// its deadline passes, and the late answer is then dropped.
func TestCallTimesOutAtItsDeadline(t *testing.T) {
	t.Parallel()
	reqs := make(chan Request, 2)
	srv := startRaw(t, func(conn net.Conn, br *bufio.Reader) {
		var got []Request
		for range 2 { // hold the first request's answer until the second comes
			f, err := ReadFrame(br, MaxFrameSize)
			if err != nil {
				return
			}
			r, _ := DecodeRequest(f.Body)
			got = append(got, r)
			reqs <- r
		}
		bw := bufio.NewWriter(conn)
		// The late answer first: if it reached the second Call, that Call
		// would fail with "refused".
		late, _ := EncodeResponse(Response{ID: got[0].ID, Status: StatusRefused, Text: "late"})
		WriteFrame(bw, Frame{Type: MsgResponse, Body: late})
		ok, _ := EncodeResponse(Response{ID: got[1].ID})
		WriteFrame(bw, Frame{Type: MsgResponse, Body: ok})
		bw.Flush()
		io.Copy(io.Discard, br)
	})
	clk := clock.NewFake(sampleT)
	c := srv.mustConnect(t, ClientOptions{Clock: clk})
	ctx, cancel := clock.WithTimeout(t.Context(), clk, 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Freeze(ctx, 3, []hal.LSSPair{lssPairA}) }()

	r := wait(t, reqs, "the request")
	if r.Timeout != 5*time.Second || r.Epoch != 3 || r.Op != OpFreeze {
		t.Fatalf("request %+v, want timeout 5s, epoch 3, freeze", r)
	}
	clk.Advance(5*time.Second - time.Nanosecond)
	select {
	case err := <-errc:
		t.Fatalf("Call returned before its deadline: %v", err)
	default:
	}
	clk.Advance(time.Nanosecond)
	err := wait(t, errc, "the timed-out call")
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, hal.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want a timeout", err)
	}
	if n := c.pendingCalls(); n != 0 { // the answer has not come yet
		t.Fatalf("%d calls still pending after the timeout", n)
	}
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("the call after a timeout got %v: the late answer was not dropped", err)
	}
	if n := c.pendingCalls(); n != 0 {
		t.Fatalf("%d calls still pending", n)
	}
	if c.Err() != nil {
		t.Fatalf("a timeout broke the connection: %v", c.Err())
	}
}

// TestCallWithPassedDeadlineIsNotSent: a Call whose deadline has already
// passed fails at once without writing anything.
func TestCallWithPassedDeadlineIsNotSent(t *testing.T) {
	t.Parallel()
	reqs := make(chan Request, 1)
	srv := startRaw(t, func(conn net.Conn, br *bufio.Reader) {
		for {
			f, err := ReadFrame(br, MaxFrameSize)
			if err != nil {
				return
			}
			r, _ := DecodeRequest(f.Body)
			reqs <- r
			body, _ := EncodeResponse(Response{ID: r.ID})
			WriteFrame(conn, Frame{Type: MsgResponse, Body: body})
		}
	})
	clk := clock.NewFake(sampleT)
	c := srv.mustConnect(t, ClientOptions{Clock: clk})
	ctx, cancel := clock.WithTimeout(t.Context(), clk, time.Second)
	defer cancel()
	clk.Advance(time.Second)
	if err := c.Freeze(ctx, 1, nil); !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("error = %v, want a timeout", err)
	}
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, reqs, "ping"); r.Op != OpPing {
		t.Fatalf("first request on the wire is %s, want the ping", r.Op)
	}
}

// TestServerRequestTimeout: the server runs each request under a context
// of its Timeout (capped by MaxRequestTimeout) on its clock, and answers
// StatusTimeout when the storage system gives up.
func TestServerRequestTimeout(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(sampleT)
	entered := make(chan context.Context, 1)
	sys := newFake(serialP)
	sys.hook = func(ctx context.Context, _ string, _ hal.Epoch) error {
		entered <- ctx
		<-ctx.Done()
		return fmt.Errorf("freeze interrupted: %w", ctx.Err())
	}
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{Clock: clk, MaxRequestTimeout: 2 * time.Second})
	c := srv.mustConnect(t, ClientOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Freeze(ctx, 1, []hal.LSSPair{lssPairA}) }()
	hctx := wait(t, entered, "the handler")
	if d, _ := hctx.Deadline(); !d.Equal(sampleT.Add(2 * time.Second)) {
		t.Fatalf("handler deadline %v, want the 2 s cap", d)
	}
	clk.Advance(2*time.Second - time.Nanosecond)
	if hctx.Err() != nil {
		t.Fatal("handler context ended early")
	}
	clk.Advance(time.Nanosecond)
	err := wait(t, errc, "the call")
	var re *RemoteError
	if !errors.Is(err, hal.ErrTimeout) || !errors.As(err, &re) || re.Status != StatusTimeout {
		t.Fatalf("error = %v, want a StatusTimeout answer", err)
	}
}

func TestEventsPushed(t *testing.T) {
	t.Parallel()
	sys := newFake(serialP)
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{})
	c1 := srv.mustConnect(t, ClientOptions{})
	c2 := srv.mustConnect(t, ClientOptions{})
	if n := sys.subscribers(); n != 2 {
		t.Fatalf("%d subscriptions after two handshakes, want 2", n)
	}
	// Events of this storage system only: the client drops the others
	// (TestForeignEventsDropped).
	events := slices.Clone(sampleEvents)
	for i := range events {
		if events[i].Serial == "" {
			events[i].Serial = serialP
		}
	}
	for _, ev := range events {
		sys.push(ev)
	}
	for _, c := range []*Client{c1, c2} {
		for i, want := range events {
			got := wait(t, c.Events(), "an event")
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("event %d (-want +got):\n-%+v\n+%+v", i, want, got)
			}
		}
	}
}

// TestSlowEventConsumer: with nobody reading Events, the reader drops
// events and keeps answering Calls.
func TestSlowEventConsumer(t *testing.T) {
	t.Parallel()
	sys := newFake(serialP)
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{})
	c := srv.mustConnect(t, ClientOptions{EventBuffer: 1})
	for i := range 10 {
		sys.push(hal.Event{Kind: hal.EventSuspend, Serial: serialP, Seq: uint64(i + 1), LSSPair: lssPairA})
	}
	// push returned after the server took event 10, so events 1-9 were
	// written before the ping's request was even sent.
	if err := c.Ping(callCtx(t)); err != nil {
		t.Fatalf("ping with a full event channel: %v", err)
	}
	if n := c.DroppedEvents(); n < 8 || n > 9 {
		t.Fatalf("dropped %d events, want 8 or 9", n)
	}
	if ev := wait(t, c.Events(), "the first event"); ev.Seq != 1 {
		t.Fatalf("kept event %d, want the first", ev.Seq)
	}
}

// TestGarbageClosesOnlyThatConnection sends bad frames after a good
// handshake; each closes its connection with the reason logged, while
// another client carries on.
func TestGarbageClosesOnlyThatConnection(t *testing.T) {
	t.Parallel()
	sys := newFake(serialP)
	srv := startServer(t, acceptFake(sys, heartbeatCaps), ServerOptions{})
	good := srv.mustConnect(t, ClientOptions{})
	badArgs, _ := EncodeRequest(Request{ID: 1, Epoch: 1, Timeout: time.Second, Op: OpFreeze, Args: []byte{0xFF, 0xFF, 0xFF, 0xFF}})
	event, _ := EncodeEvent(sampleEvents[0])
	tests := []struct {
		name string
		send []byte
		want error
	}{
		{"unknown-type", hexBytes(t, "00000001 EE"), ErrUnknownType},
		{"oversized-length", hexBytes(t, "7FFFFFFF 10"), ErrFrameTooLarge},
		{"zero-length", hexBytes(t, "00000000"), ErrMalformed},
		{"short-request", frameBytes(t, MsgRequest, []byte{1, 2, 3}, nil), ErrMalformed},
		{"malformed-args", frameBytes(t, MsgRequest, badArgs, nil), ErrMalformed},
		{"event-from-client", frameBytes(t, MsgEvent, event, nil), ErrMalformed},
		{"second-hello", frameBytes(t, MsgHello, mustHello(t, sampleHello), nil), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: Serve results arrive on one channel.
			conn := srv.dialTLS(t)
			br := bufio.NewReader(conn)
			conn.SetDeadline(time.Now().Add(guard))
			if _, err := conn.Write(frameBytes(t, MsgHello, mustHello(t, sampleHello), nil)); err != nil {
				t.Fatal(err)
			}
			if f, err := ReadFrame(br, MaxHandshakeFrame); err != nil || f.Type != MsgHelloOK {
				t.Fatalf("handshake: %v %v", f.Type, err)
			}
			if _, err := conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if f, err := ReadFrame(br, MaxFrameSize); err == nil {
				t.Fatalf("server answered garbage with a %s", f.Type)
			}
			if err := wait(t, srv.results, "serve result"); !errors.Is(err, tc.want) {
				t.Fatalf("Serve returned %v, want %v", err, tc.want)
			}
			if !strings.Contains(srv.logs.String(), tc.want.Error()) {
				t.Fatalf("reason %q not logged:\n%s", tc.want, srv.logs)
			}
			if err := good.Ping(callCtx(t)); err != nil {
				t.Fatalf("the other connection broke: %v", err)
			}
		})
	}
	if calls := sys.Calls(); len(calls) != 0 {
		t.Fatalf("garbage reached the storage system: %v", calls)
	}
}

func TestUnknownOpAnsweredUnsupported(t *testing.T) {
	t.Parallel()
	srv := startServer(t, acceptFake(newFake(serialP), heartbeatCaps), ServerOptions{})
	c := srv.mustConnect(t, ClientOptions{})
	if _, err := c.Call(callCtx(t), 1, 0x7F, []byte{1, 2}); !errors.Is(err, hal.ErrUnsupported) {
		t.Fatalf("error = %v, want unsupported", err)
	}
	if err := c.Ping(callCtx(t)); err != nil {
		t.Fatalf("connection closed after an unknown op: %v", err)
	}
}

func TestHeartbeatNeedsCapability(t *testing.T) {
	t.Parallel()
	sys := newFake(serialP)
	srv := startServer(t, acceptFake(sys, hal.Capabilities{}), ServerOptions{})
	c, ok, err := srv.connect(t, sampleHello, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ok.Capabilities.Heartbeat {
		t.Fatal("HelloOK advertises the heartbeat")
	}
	ctx := callCtx(t)
	for _, err := range []error{
		c.EnableHeartbeat(ctx, 1, sampleHB),
		c.Heartbeat(ctx, 1, "payroll"),
		c.DisableHeartbeat(ctx, 1, "payroll"),
	} {
		if !errors.Is(err, hal.ErrUnsupported) {
			t.Fatalf("error = %v, want unsupported", err)
		}
	}
	if err := c.Freeze(ctx, 1, []hal.LSSPair{lssPairA}); err != nil {
		t.Fatal(err)
	}
	if calls := sys.Calls(); len(calls) != 1 || calls[0].Method != "Freeze" {
		t.Fatalf("calls %v, want only the freeze", calls)
	}
}

// TestConnectionLoss: a Call in flight when the server goes away fails
// with hal.ErrUnreachable (and hal.ErrTimeout, since it was sent); later
// Calls fail with hal.ErrUnreachable only; Events is closed.
func TestConnectionLoss(t *testing.T) {
	t.Parallel()
	srv := startRaw(t, func(conn net.Conn, br *bufio.Reader) {
		ReadFrame(br, MaxFrameSize) // take one request, then hang up
	})
	c := srv.mustConnect(t, ClientOptions{})
	err := c.Freeze(callCtx(t), 1, []hal.LSSPair{lssPairA})
	if !errors.Is(err, hal.ErrUnreachable) || !errors.Is(err, hal.ErrTimeout) || !hal.Retryable(err) {
		t.Fatalf("in-flight call: %v, want unreachable and maybe-executed", err)
	}
	wait(t, c.Done(), "Done")
	if !errors.Is(c.Err(), ErrConnLost) || !errors.Is(c.Err(), hal.ErrUnreachable) {
		t.Fatalf("Err = %v", c.Err())
	}
	err = c.Freeze(callCtx(t), 1, []hal.LSSPair{lssPairA})
	if !errors.Is(err, hal.ErrUnreachable) || errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("call after the loss: %v, want unreachable, certainly not executed", err)
	}
	if _, open := <-c.Events(); open {
		t.Fatal("Events still open")
	}
}

func TestCloseFailsPendingCalls(t *testing.T) {
	t.Parallel()
	got := make(chan struct{})
	srv := startRaw(t, func(conn net.Conn, br *bufio.Reader) {
		ReadFrame(br, MaxFrameSize)
		close(got)
		io.Copy(io.Discard, br)
	})
	c := srv.mustConnect(t, ClientOptions{})
	errc := make(chan error, 1)
	go func() { errc <- c.Freeze(callCtx(t), 1, nil) }()
	wait(t, got, "the request")
	c.Close()
	if err := wait(t, errc, "the call"); !errors.Is(err, ErrClosed) || !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("error = %v, want closed", err)
	}
}

func TestServerStopClosesConnections(t *testing.T) {
	t.Parallel()
	srv := startServer(t, acceptFake(newFake(serialP), heartbeatCaps), ServerOptions{})
	c := srv.mustConnect(t, ClientOptions{})
	srv.stop()
	wait(t, c.Done(), "Done")
	if !errors.Is(c.Err(), hal.ErrUnreachable) {
		t.Fatalf("Err = %v", c.Err())
	}
	if err := wait(t, srv.results, "serve result"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve returned %v, want the cancellation", err)
	}
}

// TestClientClosesOnServerGarbage: a server that breaks the protocol after
// the handshake gets its connection closed by the client, with the reason
// in Err and pending Calls failed.
func TestClientClosesOnServerGarbage(t *testing.T) {
	t.Parallel()
	badEvent, _ := EncodeEvent(sampleEvents[0])
	badEvent = badEvent[:len(badEvent)-1]
	req, _ := EncodeRequest(Request{ID: 1, Timeout: time.Second, Op: OpPing})
	tests := []struct {
		name string
		send []byte
		want error
	}{
		{"unknown-type", hexBytes(t, "00000001 EE"), ErrUnknownType},
		{"oversized-length", hexBytes(t, "00500000 11"), ErrFrameTooLarge},
		{"malformed-response", frameBytes(t, MsgResponse, []byte{1, 2, 3}, nil), ErrMalformed},
		{"malformed-event", frameBytes(t, MsgEvent, badEvent, nil), ErrMalformed},
		{"request-from-server", frameBytes(t, MsgRequest, req, nil), ErrMalformed},
		{"hang-up", nil, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startRaw(t, func(conn net.Conn, br *bufio.Reader) {
				ReadFrame(br, MaxFrameSize) // the client's request
				if tc.send == nil {
					return // hang up
				}
				conn.Write(tc.send)
				io.Copy(io.Discard, br)
			})
			c := srv.mustConnect(t, ClientOptions{})
			err := c.Freeze(callCtx(t), 1, nil)
			if !errors.Is(err, hal.ErrUnreachable) {
				t.Fatalf("pending call: %v, want unreachable", err)
			}
			wait(t, c.Done(), "Done")
			if !errors.Is(c.Err(), tc.want) || !errors.Is(c.Err(), hal.ErrUnreachable) {
				t.Fatalf("Err = %v, want %v", c.Err(), tc.want)
			}
		})
	}
}

// TestClientHandshakeGarbage: NewClient refuses a server that answers the
// Hello with anything but a well-formed HelloOK or HelloReject.
func TestClientHandshakeGarbage(t *testing.T) {
	t.Parallel()
	okV1 := hexBytes(t, "0001 0153 00000001 0000000000000007")
	resp, _ := EncodeResponse(Response{ID: 1})
	tests := []struct {
		name  string
		reply []byte
		want  error
	}{
		{"response-instead", frameBytes(t, MsgResponse, resp, nil), ErrMalformed},
		{"hello-ok-version-1", frameBytes(t, MsgHelloOK, okV1, nil), ErrBadVersion},
		{"hello-ok-truncated", frameBytes(t, MsgHelloOK, hexBytes(t, "0003 0153 000000"), nil), ErrMalformed},
		{"reject-malformed", frameBytes(t, MsgHelloReject, []byte{1}, nil), ErrMalformed},
		{"reject-unknown-code", frameBytes(t, MsgHelloReject, []byte{99, 0, 1, 'x'}, nil), ErrRejected},
		{"over-hello-answer-limit", hexBytes(t, "00010001 02"), ErrFrameTooLarge},
		{"hang-up", nil, hal.ErrUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := listen(t, &syncBuffer{}, func(ctx context.Context, conn net.Conn) error {
				defer conn.Close()
				br := bufio.NewReader(conn)
				if _, err := ReadFrame(br, MaxHandshakeFrame); err != nil {
					return err
				}
				_, err := conn.Write(tc.reply)
				return err
			})
			_, _, err := srv.connect(t, sampleHello, ClientOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("NewClient error = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestClientHandshakeBoundedByContext: a server that never answers the
// Hello holds NewClient only until its ctx ends.
func TestClientHandshakeBoundedByContext(t *testing.T) {
	t.Parallel()
	srv := listen(t, &syncBuffer{}, func(ctx context.Context, conn net.Conn) error {
		defer conn.Close()
		io.Copy(io.Discard, conn)
		return nil
	})
	conn := srv.dialTLS(t)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := NewClient(ctx, conn, sampleHello, ClientOptions{HandshakeTimeout: time.Hour})
		errc <- err
	}()
	cancel()
	if err := wait(t, errc, "NewClient"); !errors.Is(err, context.Canceled) || !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("error = %v, want cancelled and unreachable", err)
	}
}

func (c *Client) pendingCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

func TestNewSelfSignedNeedsHosts(t *testing.T) {
	t.Parallel()
	if _, err := NewSelfSigned(time.Now(), time.Hour); err == nil {
		t.Fatal("no error for a certificate without names")
	}
}

// TestWriterFlushesPastAbandonedRequests: a request queued behind a live
// one whose Call gave up is skipped, and the live one is still flushed.
func TestWriterFlushesPastAbandonedRequests(t *testing.T) {
	t.Parallel()
	mine, peer := net.Pipe()
	defer peer.Close()
	c := &Client{conn: mine, opts: ClientOptions{}.withDefaults(), writeq: make(chan *call, 4), done: make(chan struct{})}
	frame := func(id uint64) []byte {
		b, err := requestFrame(Request{ID: id, Timeout: time.Second, Op: OpPing})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	live := &call{ctx: t.Context(), frame: frame(1)}
	dead := &call{ctx: gone, frame: frame(2)}
	c.writeq <- live
	c.writeq <- dead
	c.wg.Add(1)
	go c.writeLoop()
	defer func() {
		c.fail(ErrClosed)
		c.wg.Wait()
	}()
	peer.SetReadDeadline(time.Now().Add(guard))
	f, err := ReadFrame(peer, MaxFrameSize)
	if err != nil {
		t.Fatalf("the live request was not flushed: %v", err)
	}
	if r, err := DecodeRequest(f.Body); err != nil || r.ID != 1 {
		t.Fatalf("got request %+v (%v), want ID 1", r, err)
	}
	if dead.started.Load() {
		t.Fatal("the abandoned request was sent")
	}
}

// TestWriterEndsWithTheConnection: the write loop, which waits on its
// queue alone, returns when the connection ends, whether it was waiting
// on an empty queue (fail wakes it) or the queue was full when the
// connection ended (it looks at done before it waits again).
func TestWriterEndsWithTheConnection(t *testing.T) {
	// Not parallel: it waits for the only write loop of the process to
	// wait on its queue.
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("queue-full=%v", full), func(t *testing.T) {
			mine, peer := net.Pipe()
			defer peer.Close()
			c := &Client{conn: mine, opts: ClientOptions{}.withDefaults(), writeq: make(chan *call, 1), done: make(chan struct{})}
			if full { // a request whose Call gave up: skipped, it leaves the queue empty
				gone, cancel := context.WithCancel(t.Context())
				cancel()
				c.writeq <- &call{ctx: gone}
				c.fail(ErrClosed)
			}
			c.wg.Add(1)
			go c.writeLoop()
			if !full {
				waitWriterWaiting(t)
				c.fail(ErrClosed)
			}
			ended := make(chan struct{})
			go func() {
				c.wg.Wait()
				close(ended)
			}()
			wait(t, ended, "the write loop's return")
		})
	}
}

// waitWriterWaiting returns once a write loop waits on its queue.
func waitWriterWaiting(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for end := time.Now().Add(guard); time.Now().Before(end); time.Sleep(time.Millisecond) {
		for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "[chan receive") && strings.Contains(g, ").writeLoop(") {
				return
			}
		}
	}
	t.Fatal("no write loop waits on its queue")
}
