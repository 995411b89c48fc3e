package link

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/persist"
)

// testPKI is a CA for a test: the certificates it issues are valid now on
// the wall clock (TLS checks them against it).
type testPKI struct {
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Real().Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lockstep HA test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{ca: ca, key: key, pool: pool}
}

// issue signs a certificate for name with the given extended usages
// (both by default).
func (p *testPKI) issue(t testing.TB, name string, usages ...x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	if len(usages) == 0 {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	now := clock.Real().Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{name},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (p *testPKI) creds(t testing.TB, name string) Credentials {
	return Credentials{Cert: p.issue(t, name), CA: p.pool}
}

func testOptions(creds Credentials, h Hello, clk clock.Clock) Options {
	return Options{Credentials: creds, Hello: func() Hello { return h }, Clock: clk}
}

// linkPair is a live link over loopback tcp: the active dialed the
// standby's listener.
type linkPair struct {
	active, standby *Conn
}

func dialPair(t testing.TB, aopts, sopts Options) linkPair {
	t.Helper()
	l, err := Listen("tcp://127.0.0.1:0", sopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return dialPairTo(t, l, l.Addr().String(), aopts)
}

func dialPairTo(t testing.TB, l *Listener, addr string, aopts Options) linkPair {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept(ctx)
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	a, err := Dial(ctx, addr, aopts)
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.FailNow()
	}
	t.Cleanup(func() { a.Close(nil); s.Close(nil) })
	return linkPair{active: a, standby: s}
}

// memSink is an in-memory Sink.
type memSink struct {
	mu        sync.Mutex
	snapIndex uint64
	state     []byte
	records   map[uint64][]byte
	last      uint64
	installs  int
	fail      error // Append fails with it when set
}

var _ Sink = (*memSink)(nil)

func newMemSink() *memSink { return &memSink{records: map[uint64][]byte{}} }

func (m *memSink) Position(context.Context) (Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := Position{Index: m.last}
	if r, ok := m.records[m.last]; ok {
		p.Sum = sha256.Sum256(r)
	}
	return p, nil
}

func (m *memSink) InstallSnapshot(_ context.Context, index uint64, state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snapIndex, m.state, m.last = index, append([]byte(nil), state...), index
	m.records = map[uint64][]byte{}
	m.installs++
	return nil
}

func (m *memSink) Append(_ context.Context, first uint64, payloads [][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if first != m.last+1 {
		return fmt.Errorf("memSink: records from %d after %d", first, m.last)
	}
	for i, p := range payloads {
		m.records[first+uint64(i)] = append([]byte(nil), p...)
	}
	m.last += uint64(len(payloads))
	return nil
}

func (m *memSink) snapshot() (index uint64, state []byte, installs int, last uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapIndex, m.state, m.installs, m.last
}

func (m *memSink) record(i uint64) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[i]
	return r, ok
}

// journalSink is a Sink on a persist journal that starts empty: it
// installs only the empty state, and appends each record with its own
// fsync (persist has no append at a given index).
type journalSink struct{ j *persist.Journal }

func (s journalSink) Position(ctx context.Context) (Position, error) {
	return JournalPosition(ctx, s.j)
}

func (s journalSink) InstallSnapshot(_ context.Context, index uint64, state []byte) error {
	if index != 0 || len(state) != 0 || s.j.LastIndex() != 0 {
		return errors.New("journalSink: only the empty state of an empty journal")
	}
	return nil
}

func (s journalSink) Append(ctx context.Context, first uint64, payloads [][]byte) error {
	if last := s.j.LastIndex(); first != last+1 {
		return fmt.Errorf("journalSink: records from %d after %d", first, last)
	}
	for i, p := range payloads {
		got, err := s.j.Append(ctx, p)
		if err != nil {
			return err
		}
		if want := first + uint64(i); got != want {
			return fmt.Errorf("journalSink: record %d written at %d", want, got)
		}
	}
	return nil
}

// events collects the ha events a Sender or Receiver reports.
type events struct {
	mu  sync.Mutex
	evs []ha.Event
	ch  chan ha.Event
}

func newEvents() *events { return &events{ch: make(chan ha.Event, 1024)} }

func (e *events) report(ev ha.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
	select {
	case e.ch <- ev:
	default:
	}
}

// wait returns the next event of type T, failing after a generous real
// time bound (a hang, not a timing assertion).
func waitEvent[T ha.Event](t testing.TB, e *events) T {
	t.Helper()
	timeout := clock.Real().NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev := <-e.ch:
			if v, ok := ev.(T); ok {
				return v
			}
		case <-timeout.C():
			var zero T
			t.Fatalf("no %T reported", zero)
			return zero
		}
	}
}

func (e *events) all() []ha.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]ha.Event(nil), e.evs...)
}

// relay forwards tcp connections to target until blackholed: then it
// keeps the sockets open and forwards nothing.
type relay struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	holed bool
	conns []net.Conn
	wake  chan struct{}
}

func newRelay(t testing.TB, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, wake: make(chan struct{})}
	t.Cleanup(r.close)
	go r.serve()
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, u)
		r.mu.Unlock()
		go r.pipe(c, u)
		go r.pipe(u, c)
	}
}

// pipe copies until the relay is blackholed, then reads nothing more.
func (r *relay) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		r.mu.Lock()
		holed, wake := r.holed, r.wake
		r.mu.Unlock()
		if holed {
			<-wake // until close: the peer's data sits in the socket buffers
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

func (r *relay) blackhole() {
	r.mu.Lock()
	r.holed = true
	r.mu.Unlock()
}

func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.wake:
	default:
		close(r.wake)
	}
	for _, c := range r.conns {
		c.Close()
	}
}
