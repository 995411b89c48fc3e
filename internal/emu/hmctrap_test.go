package emu

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/hal"
)

// sourcedTrap is a trap with the address it came from.
type sourcedTrap struct {
	from   string
	serial string
	lss    int
	kind   string
}

// sourcedTrapSink is a UDP socket that decodes what arrives as SNMP
// traps and keeps the source IP of each.
func sourcedTrapSink(t *testing.T) (string, <-chan sourcedTrap) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	out := make(chan sourcedTrap, 16)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			g := &gosnmp.GoSNMP{Version: gosnmp.Version2c}
			p, err := g.UnmarshalTrap(buf[:n], false)
			if err != nil {
				continue
			}
			st := sourcedTrap{from: from.(*net.UDPAddr).IP.String(), lss: -1}
			for _, vb := range p.Variables {
				switch vb.Name {
				case ".1.3.6.1.6.3.1.1.4.1.0":
					st.kind = vb.Value.(string)
				case "." + trapPrefix + ".1.1.0":
					st.serial = string(vb.Value.([]byte))
				case "." + trapPrefix + ".1.4.0":
					st.lss = vb.Value.(int)
				}
			}
			out <- st
		}
	}()
	return pc.LocalAddr().String(), out
}

func noTrap(t *testing.T, c <-chan sourcedTrap, what string) {
	t.Helper()
	// A trap, when one leaves, leaves at once on the fake clock: the wait
	// only gives a wrong one the time to arrive.
	select {
	case p := <-c:
		t.Fatalf("%s: trap %+v, want none", what, p)
	case <-time.After(300 * time.Millisecond):
	}
}

func nextSourcedTrap(t *testing.T, c <-chan sourcedTrap) sourcedTrap {
	t.Helper()
	select {
	case p := <-c:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no trap within 10s")
	}
	return sourcedTrap{}
}

// TestHMCSendsItsSystemsTraps (issue 15): an HMC sends its attached
// systems' suspend events as traps from its own address, only while it
// is up and reaches the system over its private link.
func TestHMCSendsItsSystemsTraps(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	h, err := NewHMC(r.fab, HMCConfig{Name: "HMC1", Systems: []hal.Serial{prim}})
	if err != nil {
		t.Fatal(err)
	}
	addr, traps := sourcedTrapSink(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := h.RegisterTrapReceiver(ctx, TrapReceiver{Addr: addr, Community: "lab", LocalAddr: "127.0.0.93:0"}); err != nil {
		t.Fatal(err)
	}
	r.fab.SetPath(lssPair(fbL), false)
	got := nextSourcedTrap(t, traps)
	if got.from != "127.0.0.93" || got.serial != string(prim) || got.lss != int(fbL) || got.kind != "."+trapPrefix+".0.1" {
		t.Fatalf("trap %+v: want a suspend of %s LSS %02X from 127.0.0.93 (the HMC)", got, prim, fbL)
	}
	if err := h.SetLink(prim, false); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(TrapInterval)
	r.fab.SetPath(lssPair(ckdL), false)
	noTrap(t, traps, "private link down")
	r.fab.SetPath(lssPair(ckdL), true)
	if err := h.SetLink(prim, true); err != nil {
		t.Fatal(err)
	}
	h.SetMode(LinkDown)
	r.fab.SetPath(lssPair(fbL), true)
	noTrap(t, traps, "HMC down")
}

// TestTrapsAtMostOncePerLSSPerInterval: as a real array's Copy Services
// traps, one suspend trap per LSS per TrapInterval (judged at the
// events' time); other LSSs, other systems and heartbeat expiries are not
// held back by it.
func TestTrapsAtMostOncePerLSSPerInterval(t *testing.T) {
	t.Parallel()
	addr, traps := sourcedTrapSink(t)
	g, err := dialTrapReceiver(TrapReceiver{Addr: addr, Community: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	suspend := func(serial hal.Serial, l hal.LSS, at time.Duration) hal.Event {
		return hal.Event{Kind: hal.EventSuspend, Serial: serial, At: t0.Add(at),
			LSSPair: hal.LSSPair{Source: hal.LSSRef{Serial: serial, LSS: l}, Target: hal.LSSRef{Serial: sec, LSS: l}}}
	}
	events := make(chan hal.Event, 16)
	for _, ev := range []hal.Event{
		suspend(prim, fbL, 0),            // sent
		suspend(prim, fbL, time.Second),  // held back
		suspend(prim, ckdL, time.Second), // another LSS: sent
		suspend(sec, fbL, time.Second),   // another system: sent
		{Kind: hal.EventHeartbeatExpiry, Serial: prim, At: t0.Add(2 * time.Second), Session: "s"}, // sent
		suspend(prim, fbL, TrapInterval-time.Nanosecond),                                          // held back
		suspend(prim, fbL, TrapInterval),                                                          // sent
	} {
		events <- ev
	}
	close(events)
	sendTraps(g, events, t0, nil)
	want := []string{"P 16", "P 32", "S 16", "P -1", "P 16"}
	for i, w := range want {
		got := nextSourcedTrap(t, traps)
		name := map[string]string{string(prim): "P", string(sec): "S"}[got.serial]
		if s := fmt.Sprintf("%s %d", name, got.lss); s != w {
			t.Fatalf("trap %d: %s, want %s", i, s, w)
		}
	}
	noTrap(t, traps, "after the last")
}
