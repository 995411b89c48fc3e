package wire

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// certFor is a certificate of pki's CA for 127.0.0.1 with the given
// common name and URI SANs.
func certFor(t *testing.T, pki *SelfSigned, cn string, uris ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pki.CA, &key.PublicKey, pki.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestCredentialsOnlyToTheNamedSystem: the client sends its Hello, and so
// its password, only to an endpoint whose certificate proves it is the
// storage system asked for (docs/architecture.md, Trust). The server here records every
// frame it receives: a refused endpoint must see none.
func TestCredentialsOnlyToTheNamedSystem(t *testing.T) {
	t.Parallel()
	pki := newPKI(t)
	const other hal.Serial = "LAB.2107-75P0002"
	pinOf := func(c tls.Certificate) []byte { fp := Fingerprint(c.Certificate[0]); return fp[:] }
	impostor := certFor(t, pki, string(serialP), SerialURI(other).String())
	tests := []struct {
		name   string
		cert   tls.Certificate
		serial hal.Serial
		pin    []byte
		ok     bool
	}{
		{"uri-names-the-serial", certFor(t, pki, "cluster0.example", SerialURI(serialP).String()), serialP, nil, true},
		{"uri-names-another", certFor(t, pki, "x", SerialURI(other).String()), serialP, nil, false},
		{"uri-wins-over-cn", impostor, serialP, nil, false},
		{"one-of-several-uris", certFor(t, pki, "x", "https://storage.example", SerialURI(serialP).String()), serialP, nil, true},
		{"cn-names-the-serial", certFor(t, pki, string(serialP)), serialP, nil, true},
		{"cn-names-another", certFor(t, pki, string(other)), serialP, nil, false},
		{"no-name-at-all", certFor(t, pki, ""), serialP, nil, false},
		{"pinned", impostor, serialP, pinOf(impostor), true},
		{"pin-of-another-certificate", certFor(t, pki, string(serialP)), serialP, pinOf(impostor), false},
		{"no-serial-no-pin", certFor(t, pki, string(serialP)), "", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			cfg := ServerTLSConfig(tc.cert)
			frames := make(chan MsgType, 4)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					return
				}
				conn := tls.Server(raw, cfg)
				defer conn.Close()
				defer close(frames)
				br := bufio.NewReader(conn)
				f, err := ReadFrame(br, MaxHandshakeFrame)
				if err != nil {
					return
				}
				frames <- f.Type
				body, _ := EncodeHelloOK(HelloOK{Version: Version, Serial: tc.serial})
				WriteFrame(conn, Frame{Type: MsgHelloOK, Body: body})
				br.ReadByte() // until the client hangs up
			}()
			d := tls.Dialer{Config: ClientTLSConfig(pki.Pool, "127.0.0.1")}
			conn, err := d.DialContext(callCtx(t), "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			hello := sampleHello
			hello.Serial = tc.serial
			c, _, err := NewClient(callCtx(t), conn, hello, ClientOptions{Pin: tc.pin})
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("the client accepted the endpoint")
			}
			if !errors.Is(err, ErrIdentity) || !errors.Is(err, hal.ErrAuth) || hal.Retryable(err) {
				t.Fatalf("error %v: want ErrIdentity, a non-retryable auth error", err)
			}
			if typ, sent := <-frames; sent {
				t.Fatalf("the endpoint received a %s: the credentials left before the identity was checked", typ)
			}
		})
	}
}

// TestPlainConnectionRefused: without TLS the password would travel in
// clear; NewClient refuses before writing anything.
func TestPlainConnectionRefused(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe()
	defer server.Close()
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := server.Read(buf)
		got <- n
	}()
	_, _, err := NewClient(callCtx(t), client, sampleHello, ClientOptions{})
	if !errors.Is(err, ErrIdentity) {
		t.Fatalf("NewClient over a plain connection: %v, want ErrIdentity", err)
	}
	if n := <-got; n != 0 {
		t.Fatalf("%d bytes were written over the plain connection", n)
	}
}

// TestForeignEventsDropped: an endpoint authenticated as one storage
// system cannot push events for another one: they are dropped and
// counted, and the connection's own events still flow.
func TestForeignEventsDropped(t *testing.T) {
	t.Parallel()
	foreign := []hal.Event{
		{Kind: hal.EventHeartbeatExpiry, Serial: "LAB.2107-75P0002", Seq: 1, Session: "prod"},
		{Kind: hal.EventSuspend, Serial: serialP, Seq: 2, LSSPair: hal.LSSPair{
			Source: hal.LSSRef{Serial: "LAB.2107-75P0002", LSS: 0x10}, Target: lssPairA.Target}},
		{Kind: hal.EventFenced, Serial: "", Seq: 3},
	}
	own := hal.Event{Kind: hal.EventSuspend, Serial: serialP, Seq: 4, LSSPair: lssPairA, Reason: hal.ReasonPath}
	srv := startRaw(t, func(conn net.Conn, br *bufio.Reader) {
		for _, ev := range append(foreign, own) {
			body, err := EncodeEvent(ev)
			if err != nil {
				return
			}
			if err := WriteFrame(conn, Frame{Type: MsgEvent, Body: body}); err != nil {
				return
			}
		}
		br.ReadByte()
	})
	c := srv.mustConnect(t, ClientOptions{})
	if got := wait(t, c.Events(), "an event"); got.Seq != own.Seq {
		t.Fatalf("first event delivered: %+v, want only the connection's own (seq %d)", got, own.Seq)
	}
	if n := c.ForeignEvents(); n != uint64(len(foreign)) {
		t.Fatalf("%d foreign events counted, want %d", n, len(foreign))
	}
}

func TestParseFingerprint(t *testing.T) {
	t.Parallel()
	const hexFP = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"plain", hexFP, true},
		{"openssl-colons", "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF", true},
		{"short", hexFP[:62], false},
		{"not-hex", "zz" + hexFP[2:], false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := ParseFingerprint(tc.in)
			if (err == nil) != tc.ok || (tc.ok && len(b) != 32) {
				t.Fatalf("ParseFingerprint(%q) = %x, %v", tc.in, b, err)
			}
		})
	}
}
