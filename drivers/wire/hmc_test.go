package wire

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// fakeHMC fronts two fake storage systems: requests are routed by their
// target, and its events are whatever the test pushes on events.
type fakeHMC struct {
	*fakeStorage // its Events are the HMC's; its other methods are never called
	systems      map[hal.Serial]*fakeStorage
}

func (h *fakeHMC) Route(serial hal.Serial) (hal.StorageSystem, error) {
	if s := h.systems[serial]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("%w: not attached: %q", hal.ErrUnreachable, serial)
}

func (h *fakeHMC) Attached() []AttachedSystem {
	return []AttachedSystem{{Serial: "A", LinkUp: true}, {Serial: "B"}}
}

func startHMC(t *testing.T) (*testServer, *fakeHMC, *atomic.Int32) {
	t.Helper()
	h := &fakeHMC{fakeStorage: newFake(""), systems: map[hal.Serial]*fakeStorage{"A": newFake("A"), "B": newFake("B")}}
	var hellos atomic.Int32
	srv := startServer(t, func(hello Hello) (HelloOK, hal.StorageSystem, error) {
		hellos.Add(1)
		if err := CheckCredentials(hello, "hmc", "secret"); err != nil {
			return HelloOK{}, nil, err
		}
		return HelloOK{HMC: "H1", Attached: []hal.Serial{"A", "B"}, Capabilities: heartbeatCaps}, h, nil
	}, ServerOptions{})
	return srv, h, &hellos
}

func TestHMCConnection(t *testing.T) {
	t.Parallel()
	srv, h, _ := startHMC(t)
	// The test PKI's certificate names no HMC: pinned.
	c, ok, err := srv.connect(t, Hello{ToHMC: true, Manager: "m", User: "hmc", Password: "secret"}, ClientOptions{Pin: srv.pin()})
	if err != nil {
		t.Fatal(err)
	}
	if ok.HMC != "H1" || c.HMC() != "H1" || !c.Fronts("A") || c.Fronts("Z") {
		t.Fatalf("HelloOK %+v", ok)
	}
	if err := c.To("B").Freeze(callCtx(t), 4, nil); err != nil {
		t.Fatal(err)
	}
	if calls := h.systems["B"].Calls(); len(calls) != 1 || calls[0].Method != "Freeze" || calls[0].Epoch != 4 {
		t.Fatalf("B's calls %+v", calls)
	}
	if calls := h.systems["A"].Calls(); len(calls) != 0 {
		t.Fatalf("A's calls %+v", calls)
	}
	if err := c.To("Z").Freeze(callCtx(t), 4, nil); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("freeze of a system the HMC does not front: %v", err)
	}
	att, err := c.Attached(callCtx(t))
	if err != nil || len(att) != 2 || !att[0].LinkUp || att[1].LinkUp {
		t.Fatalf("attached %+v, %v", att, err)
	}
	if err := c.Ping(callCtx(t)); err != nil {
		t.Fatal(err)
	}

	// Events: only those of attached systems, naming their own LSS pairs.
	lp := hal.LSSPair{Source: hal.LSSRef{Serial: "A", LSS: 1}, Target: hal.LSSRef{Serial: "X", LSS: 1}}
	forged := lp
	forged.Source.Serial = "B"
	h.push(hal.Event{Kind: hal.EventSuspend, Serial: "Z", Seq: 1, LSSPair: lp})
	h.push(hal.Event{Kind: hal.EventSuspend, Serial: "A", Seq: 2, LSSPair: forged})
	h.push(hal.Event{Kind: hal.EventSuspend, Serial: "A", Seq: 3, LSSPair: lp})
	h.push(hal.Event{Kind: hal.EventFenced, Serial: "B", Epoch: 9})
	if ev := wait(t, c.Events(), "event"); ev.Serial != "A" || ev.Seq != 3 {
		t.Fatalf("first event delivered %+v, want A's seq 3", ev)
	}
	if ev := wait(t, c.Events(), "event"); ev.Serial != "B" || ev.Kind != hal.EventFenced {
		t.Fatalf("second event delivered %+v, want B's fenced", ev)
	}
	if n := c.ForeignEvents(); n != 2 {
		t.Fatalf("%d foreign events dropped, want 2", n)
	}
}

func TestHMCHandshakeChecks(t *testing.T) {
	t.Parallel()
	srv, _, hellos := startHMC(t)
	storage := startServer(t, acceptFake(newFake(serialP), heartbeatCaps), ServerOptions{})
	tests := []struct {
		name       string
		srv        *testServer
		hello      Hello
		pin        []byte
		want       error
		sentHellos int32 // how many Hellos reached the HMC
	}{
		// The certificate names no HMC: without a pin the password is
		// never sent.
		{"unpinned-cert-naming-no-hmc", srv, Hello{ToHMC: true, User: "hmc", Password: "secret"}, nil, ErrIdentity, 0},
		{"storage-hello-at-an-hmc", srv, Hello{User: "hmc", Password: "secret"}, srv.pin(), ErrUnknownSerial, 1},
		{"other-hmc-name", srv, Hello{ToHMC: true, HMC: "H2", User: "hmc", Password: "secret"}, srv.pin(), ErrUnknownSerial, 1},
		{"hmc-hello-at-a-storage-endpoint", storage, Hello{ToHMC: true, User: "admin", Password: "secret"}, storage.pin(), ErrUnknownSerial, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: counts the HMC's Hellos.
			before := hellos.Load()
			_, _, err := tc.srv.connect(t, tc.hello, ClientOptions{Pin: tc.pin})
			if !errors.Is(err, tc.want) {
				t.Fatalf("handshake: %v, want %v", err, tc.want)
			}
			if got := hellos.Load() - before; got != tc.sentHellos {
				t.Fatalf("%d Hellos reached the HMC, want %d", got, tc.sentHellos)
			}
		})
	}
}

// TestVersion1PeerToldWhy: a version 1 client (before HMCs) is refused
// with code version and a text that says both versions.
func TestVersion1PeerToldWhy(t *testing.T) {
	t.Parallel()
	srv := startServer(t, acceptFake(newFake(serialP), heartbeatCaps), ServerOptions{})
	conn := srv.dialTLS(t)
	v1 := append([]byte(Magic), hexBytes(t, "0001 016D 0153 0175 0170")...)
	if _, err := conn.Write(frameBytes(t, MsgHello, v1, nil)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(guard))
	f, err := ReadFrame(bufio.NewReader(conn), MaxHelloAnswerFrame)
	if err != nil || f.Type != MsgHelloReject {
		t.Fatalf("answer %v, %v", f.Type, err)
	}
	rj, err := DecodeHelloReject(f.Body)
	if err != nil || rj.Code != RejectVersion ||
		!strings.Contains(rj.Text, "version 1 is not supported") || !strings.Contains(rj.Text, "speaks version 3") {
		t.Fatalf("reject %+v, %v", rj, err)
	}
	// And a version 2 client told off by a version 1 server sees why.
	err = rejectError(HelloReject{Code: RejectVersion, Text: "protocol version 2 is not supported; this server speaks version 1"})
	if !errors.Is(err, ErrBadVersion) || !strings.Contains(err.Error(), "speaks version 1") {
		t.Fatalf("client error %v", err)
	}
}
