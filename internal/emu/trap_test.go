package emu

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/hal"
)

// trapSink is a UDP socket that decodes what arrives as SNMP packets.
func trapSink(t *testing.T) (string, <-chan *gosnmp.SnmpPacket) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	out := make(chan *gosnmp.SnmpPacket, 16)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			g := &gosnmp.GoSNMP{Version: gosnmp.Version2c}
			if p, err := g.UnmarshalTrap(buf[:n], false); err == nil {
				out <- p
			}
		}
	}()
	return pc.LocalAddr().String(), out
}

func nextTrap(t *testing.T, c <-chan *gosnmp.SnmpPacket) *gosnmp.SnmpPacket {
	t.Helper()
	select {
	case p := <-c:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no trap within 10s")
	}
	return nil
}

func TestSuspendEventSentAsTrap(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	addr, traps := trapSink(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Up is asked once per event, in order: no for the first, yes for
	// the second.
	decisions := make(chan bool, 2)
	decisions <- false
	decisions <- true
	up := func() bool { return <-decisions }
	err := r.p.RegisterTrapReceiver(ctx, TrapReceiver{Addr: addr, Community: "lab", Manager: mgr, Up: up})
	if err != nil {
		t.Fatal(err)
	}
	r.fab.SetPath(lssPair(fbL), false) // Up says no: lost
	r.clk.Advance(2500 * time.Millisecond)
	r.fab.SetPath(lssPair(ckdL), false)
	p := nextTrap(t, traps)
	if p.Version != gosnmp.Version2c || p.Community != "lab" || p.PDUType != gosnmp.SNMPv2Trap {
		t.Fatalf("packet %v %q %v", p.Version, p.Community, p.PDUType)
	}
	want := map[string]any{
		".1.3.6.1.2.1.1.3.0":                uint32(250),
		".1.3.6.1.6.3.1.1.4.1.0":            ".1.3.6.1.4.1.61942.2.0.1",
		".1.3.6.1.4.1.61942.2.1.1.0":        string(prim),
		".1.3.6.1.4.1.61942.2.1.2.0":        uint64(2), // event 1 was not trapped
		".1.3.6.1.4.1.61942.2.1.4.0":        int(ckdL),
		".1.3.6.1.4.1.61942.2.1.5.0":        string(sec),
		".1.3.6.1.4.1.61942.2.1.7.0":        int(hal.ReasonPath),
		".1.3.6.1.4.1.61942.2.1.8.0" + "/0": byte(0xf0), // volumes 0-3
	}
	got := map[string]any{}
	for _, vb := range p.Variables {
		switch v := vb.Value.(type) {
		case []byte:
			got[vb.Name] = string(v)
			if len(v) == 32 {
				got[vb.Name+"/0"] = v[0]
			}
		default:
			got[vb.Name] = v
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v (%T), want %v (%T)", k, got[k], got[k], w, w)
		}
	}
}

func TestTrapReceiverAddressChecked(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	for _, addr := range []string{"", "localhost", "127.0.0.1:0", "127.0.0.1:99999"} {
		if err := r.p.RegisterTrapReceiver(context.Background(), TrapReceiver{Addr: addr}); !errors.Is(err, ErrConfig) {
			t.Errorf("address %q: %v, want ErrConfig", addr, err)
		}
	}
}
