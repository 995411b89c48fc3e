package wire

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
)

var sampleStateChanges = []StateChange{
	{Kind: StatePairSuspended, Host: "SYSA", Seq: 9, At: sampleT, Serial: serialP, EventSeq: 4, LSSPair: lssPairA,
		Reason: hal.ReasonFreeze, Volumes: hal.VolumeSet{3}, LPARs: []string{"LPAR1", "LPAR2"}},
	{Kind: StateExtendedLongBusy, Host: "SYSA", Seq: 10, Serial: serialP,
		LSSPair: hal.LSSPair{Source: hal.LSSRef{Serial: serialP, LSS: 0x10}}, LPARs: []string{"LPAR1"}},
}

func TestStateChangeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range sampleStateChanges {
		b, err := EncodeStateChange(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeStateChange(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: %v\n-%#v\n+%#v", err, m, got)
		}
	}
	if s := sampleStateChanges[0].String(); !strings.Contains(s, "IEA494I") || !strings.Contains(s, "PPRC PAIR SUSPENDED") ||
		!strings.Contains(s, "1000") || !strings.Contains(s, "1001") || !strings.Contains(s, "LPAR1,LPAR2") {
		t.Fatalf("console text %q", s)
	}
}

func TestStateChangeRefusals(t *testing.T) {
	t.Parallel()
	good, err := EncodeStateChange(sampleStateChanges[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body []byte
	}{
		{"unknown kind", append([]byte{0x77}, good[1:]...)},
		{"kind zero", append([]byte{0}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"lpar count beyond the bytes", append(append([]byte(nil), good[:len(good)-14]...), 0xFF, 0xFF, 0xFF, 0xFF)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := DecodeStateChange(tc.body); !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode: %v, want malformed", err)
			}
		})
	}
	if _, err := EncodeStateChange(StateChange{Kind: 0}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("encode of kind 0: %v", err)
	}
}

// TestHelloSysplexPlace pins where the sysplex sits in a version 2 Hello:
// always present, right after the HMC name; empty is "no sysplex". A
// byte after the password is left over, not a second encoding.
func TestHelloSysplexPlace(t *testing.T) {
	t.Parallel()
	h := Hello{Version: Version, Manager: "m", Serial: "S", Sysplex: "PLEX1", User: "u", Password: "p"}
	b, err := EncodeHello(h)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(Magic), 0, 3, 0, 1, 'm', 1, 'S', 0, 5, 'P', 'L', 'E', 'X', '1', 1, 'u', 1, 'p')
	if !bytes.Equal(b, want) {
		t.Fatalf("hello with sysplex:\n got %X\nwant %X", b, want)
	}
	if got, err := DecodeHello(b); err != nil || got != h {
		t.Fatalf("decode: %v, %#v", err, got)
	}
	plain, _ := EncodeHello(sampleHello)
	if got, err := DecodeHello(plain); err != nil || got.Sysplex != "" {
		t.Fatalf("hello without sysplex: %v, %#v", err, got)
	}
	// The largest legal Hello (serial or HMC, not both) fits the handshake
	// limit, as frame.go and the package comment say.
	n := strings.Repeat("n", MaxName)
	big, err := EncodeHello(Hello{Version: Version, Manager: n, Serial: hal.Serial(n), Sysplex: n, User: n, Password: n})
	if err != nil || len(big) != 1288 || 1+len(big) > MaxHandshakeFrame {
		t.Fatalf("largest hello: %d bytes, %v; want 1288, within %d", len(big), err, MaxHandshakeFrame)
	}
	// The version 1 trailing sysplex (after the password) is left over.
	if _, err := DecodeHello(append(plain, 5, 'P', 'L', 'E', 'X', '1')); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing sysplex: %v, want malformed", err)
	}
}

func FuzzDecodeStateChange(f *testing.F) {
	seed(f, encodeAll(f, EncodeStateChange, sampleStateChanges...)...)
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzCanonical(t, b, DecodeStateChange, EncodeStateChange)
	})
}

// zosFake is a storage system as a z/OS host serves it: it also sends
// state-change messages.
type zosFake struct {
	*fakeStorage
	msgs chan StateChange
}

func (z *zosFake) StateChanges(ctx context.Context) <-chan StateChange { return z.msgs }

// startZOS serves accept on loopback with a z/OS host certificate for
// host, issued by a fresh lab CA.
func startZOS(t *testing.T, host string, accept AcceptFunc) *testServer {
	t.Helper()
	pki := newPKI(t)
	cert, err := pki.IssueZOSHost(host, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pki.Server = cert
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, ServerTLSConfig(cert))
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{addr: ln.Addr().String(), pki: pki, logs: &syncBuffer{}, results: make(chan error, 100), stop: cancel}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := tl.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.results <- Serve(ctx, conn, accept, ServerOptions{}) })
		}
	})
	t.Cleanup(func() {
		cancel()
		tl.Close()
		wg.Wait()
	})
	return s
}

func parseLeaf(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func stateOf(leaf *x509.Certificate) tls.ConnectionState {
	return tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
}

// TestZOSConnection: a client verifies the host's certificate by its z/OS
// URI, states its sysplex, and hears state changes about its own storage
// system only; a manager of another sysplex is refused with ErrSysplex.
func TestZOSConnection(t *testing.T) {
	t.Parallel()
	msgs := make(chan StateChange, 4)
	sys := &zosFake{fakeStorage: newFake(serialP), msgs: msgs}
	srv := startZOS(t, "SYSA", func(h Hello) (HelloOK, hal.StorageSystem, error) {
		if h.Sysplex != "PLEX1" {
			return HelloOK{}, nil, fmt.Errorf("%w: manager in sysplex %q, host SYSA in PLEX1", ErrSysplex, h.Sysplex)
		}
		return HelloOK{Serial: serialP}, sys, nil
	})

	verify := func(host string) ClientOptions {
		return ClientOptions{StateChanges: 8, Identity: func(cs tls.ConnectionState) error { return VerifyZOSHost(cs, host, nil) }}
	}
	hello := Hello{Manager: "m", Serial: serialP, User: "admin", Password: "secret", Sysplex: "PLEX1"}

	if _, _, err := srv.connect(t, hello, verify("SYSB")); !errors.Is(err, ErrIdentity) {
		t.Fatalf("host SYSB: %v, want identity refused", err)
	}
	other := hello
	other.Sysplex = "PLEX2"
	if _, _, err := srv.connect(t, other, verify("SYSA")); !errors.Is(err, ErrSysplex) || !errors.Is(err, hal.ErrAuth) ||
		!strings.Contains(err.Error(), "PLEX2") {
		t.Fatalf("other sysplex: %v, want ErrSysplex naming it", err)
	}
	c, _, err := srv.connect(t, hello, verify("SYSA"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := sampleStateChanges[0]
	foreign.Serial, foreign.LSSPair.Source.Serial = serialS, serialS
	msgs <- foreign
	msgs <- sampleStateChanges[0]
	got := wait(t, c.StateChanges(), "state change")
	if got.Seq != sampleStateChanges[0].Seq || got.Serial != serialP {
		t.Fatalf("got %+v", got)
	}
	if c.ForeignEvents() != 1 {
		t.Fatalf("foreign dropped %d, want 1", c.ForeignEvents())
	}

	// A connection that did not ask for state changes is broken by one.
	c.Close() // its forwarder would take the message from the shared channel
	c2, _, err := srv.connect(t, hello, ClientOptions{Identity: verify("SYSA").Identity})
	if err != nil {
		t.Fatal(err)
	}
	msgs <- sampleStateChanges[1]
	wait(t, c2.Done(), "connection end")
	if !errors.Is(c2.Err(), ErrMalformed) {
		t.Fatalf("unasked state change: %v, want malformed", c2.Err())
	}
}

// TestStorageCertificateIsNoZOSHost: a storage system's certificate
// (serial URI and common name) never proves a z/OS host.
func TestStorageCertificateIsNoZOSHost(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	leaf := parseLeaf(t, pki.Server.Certificate[0])
	if err := VerifyZOSHost(stateOf(leaf), string(serialP), nil); !errors.Is(err, ErrIdentity) {
		t.Fatalf("storage certificate as z/OS host %s: %v", serialP, err)
	}
	cert, err := pki.IssueZOSHost("SYSA", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	host := parseLeaf(t, cert.Certificate[0])
	if err := VerifyZOSHost(stateOf(host), "SYSA", nil); err != nil {
		t.Fatal(err)
	}
	// Nor does a host's certificate prove a storage system of the same
	// name: its common name counts only in a certificate without
	// lockstep URIs.
	if err := VerifyIdentity(stateOf(host), "SYSA", nil); !errors.Is(err, ErrIdentity) {
		t.Fatalf("z/OS host certificate as storage system SYSA: %v", err)
	}
	fp := Fingerprint(cert.Certificate[0])
	if err := VerifyZOSHost(stateOf(leaf), "SYSA", fp[:]); !errors.Is(err, ErrIdentity) {
		t.Fatalf("wrong pin: %v", err)
	}
	if err := VerifyZOSHost(stateOf(host), "ANY", fp[:]); err != nil {
		t.Fatalf("right pin: %v", err)
	}
}
