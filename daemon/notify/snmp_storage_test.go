package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
)

const (
	primary   hal.Serial = "LAB.2107-75P0001"
	secondary hal.Serial = "LAB.2107-75S0001"
)

func lssPair(l hal.LSS) hal.LSSPair {
	return hal.LSSPair{Source: hal.LSSRef{Serial: primary, LSS: l}, Target: hal.LSSRef{Serial: secondary, LSS: l}}
}

// storageRig is a primary mirroring LSS 10 and 11 (4 volumes each, CG
// option) to a secondary, every pair full-duplex, and a listener for the
// primary's traps.
type storageRig struct {
	clk    *clock.Fake
	fab    *emu.Fabric
	p      *emu.System
	pushed <-chan hal.Event // the primary's events as manager "mgr-a" gets them pushed
	traps  chan hal.Event   // what the listener decoded
	ln     *StorageTrapListener
}

func newStorageRig(t *testing.T, community string) *storageRig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &storageRig{clk: clock.NewFake(time.Date(2026, 11, 22, 1, 2, 3, 4, time.UTC)), traps: make(chan hal.Event, 16)}
	r.fab = emu.NewFabric(emu.Options{Clock: r.clk, CopyPerBlock: time.Millisecond})
	lsss := []emu.LSSConfig{{LSS: 0x10, Type: hal.FB, Volumes: 4}, {LSS: 0x11, Type: hal.FB, Volumes: 4}}
	var err error
	if r.p, err = r.fab.AddSystem(emu.SystemConfig{Serial: primary, LSSs: lsss}); err != nil {
		t.Fatal(err)
	}
	if _, err = r.fab.AddSystem(emu.SystemConfig{Serial: secondary, LSSs: lsss}); err != nil {
		t.Fatal(err)
	}
	conn := r.p.Connect("mgr-a")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(conn.EstablishPaths(ctx, 1, []hal.PathSpec{{LSSPair: lssPair(0x10), ConsistencyGroup: true},
		{LSSPair: lssPair(0x11), ConsistencyGroup: true}}))
	var pairs []hal.PairSpec
	for _, l := range []hal.LSS{0x10, 0x11} {
		for n := range uint8(4) {
			pairs = append(pairs, hal.PairSpec{VolumePair: hal.VolumePair{
				Source: hal.VolumeRef{Serial: primary, Volume: hal.NewVolume(l, n)},
				Target: hal.VolumeRef{Serial: secondary, Volume: hal.NewVolume(l, n)}}})
		}
	}
	must(conn.EstablishPairs(ctx, 1, pairs))
	r.clk.Advance(0) // empty volumes: the copy ends at once
	if r.pushed, err = conn.Events(ctx); err != nil {
		t.Fatal(err)
	}
	r.ln = NewStorageTrapListener(StorageTrapOptions{Addr: "127.0.0.1:0", Auth: TrapAuth{Community: community},
		Handle: func(ev hal.Event) { r.traps <- ev }})
	// The emulator's traps leave from 127.0.0.1 here.
	r.ln.SetSources(map[netip.Addr][]hal.Serial{netip.MustParseAddr("127.0.0.1"): {primary}})
	done := make(chan error, 1)
	go func() { done <- r.ln.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listener: %v", err)
		}
	})
	<-r.ln.Ready()
	return r
}

func (r *storageRig) register(t *testing.T, community string, up func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	err := r.p.RegisterTrapReceiver(ctx, emu.TrapReceiver{Addr: r.ln.Addr().String(), Community: community,
		Manager: "mgr-a", Up: up})
	if err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, c <-chan hal.Event, what string) hal.Event {
	t.Helper()
	select {
	case ev := <-c:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
	}
	return hal.Event{}
}

// sameEvent compares events, the time by instant (a decoded one has no
// monotonic reading and is in local time).
func sameEvent(a, b hal.Event) bool {
	if !a.At.Equal(b.At) {
		return false
	}
	a.At, b.At = time.Time{}, time.Time{}
	return a == b
}

func TestStorageTrapIsThePushedEvent(t *testing.T) {
	t.Parallel()
	r := newStorageRig(t, "lab")
	r.register(t, "lab", nil)
	r.clk.Advance(1500 * time.Millisecond)
	r.fab.SetPath(lssPair(0x11), false)
	pushed := next(t, r.pushed, "pushed event")
	trapped := next(t, r.traps, "trap")
	if pushed.Kind != hal.EventSuspend || pushed.Reason != hal.ReasonPath || pushed.Volumes.Len() != 4 {
		t.Fatalf("pushed %+v: not the path suspend of 4 volumes", pushed)
	}
	if !sameEvent(pushed, trapped) {
		t.Fatalf("trap decoded (-pushed +trap):\n-%+v\n+%+v", pushed, trapped)
	}
}

func TestStorageTrapsFollowTheManagersLink(t *testing.T) {
	t.Parallel()
	r := newStorageRig(t, "lab")
	r.register(t, "lab", nil)
	r.p.SetManagerLink("mgr-a", emu.LinkDown)
	r.fab.SetPath(lssPair(0x10), false) // lost for mgr-a: pushed and trapped alike
	r.p.SetManagerLink("mgr-a", emu.LinkUp)
	r.fab.SetPath(lssPair(0x11), false)
	pushed, trapped := next(t, r.pushed, "pushed event"), next(t, r.traps, "trap")
	if pushed.Seq != 2 || !sameEvent(pushed, trapped) {
		t.Fatalf("pushed %+v, trapped %+v: want both to be event 2 (event 1 raised while the link was down)", pushed, trapped)
	}
}

func TestStorageTrapWithWrongCommunityRefused(t *testing.T) {
	t.Parallel()
	r := newStorageRig(t, "lab")
	r.register(t, "not-lab", nil)
	r.fab.SetPath(lssPair(0x10), false)
	next(t, r.pushed, "pushed event")
	// Then one with the right community: only it is handed over.
	r.register(t, "lab", nil)
	r.fab.SetPath(lssPair(0x11), false)
	if ev := next(t, r.traps, "trap"); ev.Seq != 2 {
		t.Fatalf("event %d handed over, want only 2", ev.Seq)
	}
	// Three datagrams in all: events 1 and 2 with the wrong community,
	// event 2 with the right one, from two senders in no set order.
	eventually(t, "three datagrams", func() bool { return r.ln.Stats().Received == 3 })
	if st := r.ln.Stats(); st.Rejected != 2 || st.Accepted != 1 || len(r.traps) != 0 {
		t.Fatalf("stats %+v, %d more handed over: want the wrong community refused twice", st, len(r.traps))
	}
}

func TestHeartbeatExpiryTrapDecodes(t *testing.T) {
	t.Parallel()
	ev := hal.Event{Kind: hal.EventHeartbeatExpiry, Serial: primary, Seq: 9, At: time.Unix(1795000000, 5), Session: "prod"}
	vbs, ok := emu.TrapVarbinds(ev, 100)
	if !ok {
		t.Fatal("heartbeat expiry not trapped")
	}
	got, err := decodeStorageTrap(vbs)
	if err != nil || !sameEvent(got, ev) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, ev)
	}
	// A suspend trap's objects on a heartbeat expiry are not its own:
	// ignored, so the event encodes back the same.
	extra := append(vbs, gosnmp.SnmpPDU{Name: fmt.Sprintf("%s.1.%d.0", storageTrapPrefix, stSourceLSS), Type: gosnmp.Integer, Value: 5})
	if got, err := decodeStorageTrap(extra); err != nil || !sameEvent(got, ev) {
		t.Fatalf("with a suspend object: %+v, %v", got, err)
	}
	if _, ok := emu.TrapVarbinds(hal.Event{Kind: hal.EventFenced, Serial: primary}, 0); ok {
		t.Fatal("a fenced answer was trapped")
	}
}

// suspendTrap is a valid suspend trap's varbinds.
func suspendTrap() []gosnmp.SnmpPDU {
	ev := hal.Event{Kind: hal.EventSuspend, Serial: primary, Seq: 3, At: time.Unix(0, 42),
		LSSPair: lssPair(0x10), Reason: hal.ReasonFreeze}
	ev.Volumes.Add(0)
	ev.Volumes.Add(9)
	ev.Volumes.Add(255)
	vbs, _ := emu.TrapVarbinds(ev, 7)
	return vbs
}

func TestBadStorageTrapsRefused(t *testing.T) {
	t.Parallel()
	obj := func(arc int) string { return fmt.Sprintf("%s.1.%d.0", storageTrapPrefix, arc) }
	// set replaces the value of object arc.
	set := func(arc int, typ gosnmp.Asn1BER, v any) func([]gosnmp.SnmpPDU) []gosnmp.SnmpPDU {
		return func(vbs []gosnmp.SnmpPDU) []gosnmp.SnmpPDU {
			for i := range vbs {
				if vbs[i].Name == obj(arc) {
					vbs[i].Type, vbs[i].Value = typ, v
				}
			}
			return vbs
		}
	}
	for _, tc := range []struct {
		name   string
		change func([]gosnmp.SnmpPDU) []gosnmp.SnmpPDU
	}{
		{"empty", func([]gosnmp.SnmpPDU) []gosnmp.SnmpPDU { return nil }},
		{"no sysUpTime", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { return v[1:] }},
		{"another notification", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { v[1].Value = ".1.3.6.1.4.1.9.9.9"; return v }},
		{"missing serial", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { return append(v[:2], v[3:]...) }},
		{"serial twice", func(v []gosnmp.SnmpPDU) []gosnmp.SnmpPDU { return append(v, v[2]) }},
		{"empty serial", set(stSerial, gosnmp.OctetString, []byte{})},
		{"serial as integer", set(stSerial, gosnmp.Integer, 5)},
		{"seq 0", set(stSeq, gosnmp.Counter64, uint64(0))},
		{"seq as Counter32", set(stSeq, gosnmp.Counter32, uint(3))},
		{"time out of range", set(stTime, gosnmp.Counter64, uint64(1<<63))},
		{"LSS FF", set(stSourceLSS, gosnmp.Integer, 0xFF)},
		{"negative LSS", set(stTargetLSS, gosnmp.Integer, -1)},
		{"unknown reason", set(stReason, gosnmp.Integer, 99)},
		{"short bitmap", set(stVolumes, gosnmp.OctetString, make([]byte, 31))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if ev, err := decodeStorageTrap(tc.change(suspendTrap())); !errors.Is(err, ErrStorageTrap) {
				t.Fatalf("decoded %+v, %v; want ErrStorageTrap", ev, err)
			}
		})
	}
	// Unknown objects are skipped: a later version may add some.
	vbs := append(suspendTrap(), gosnmp.SnmpPDU{Name: obj(77), Type: gosnmp.Integer, Value: 1},
		gosnmp.SnmpPDU{Name: obj(1) + ".5", Type: gosnmp.Integer, Value: 1})
	ev, err := decodeStorageTrap(vbs)
	if err != nil || !ev.Volumes.Has(0) || !ev.Volumes.Has(9) || !ev.Volumes.Has(255) || ev.Volumes.Len() != 3 {
		t.Fatalf("with unknown objects: %+v, %v", ev, err)
	}
}

func TestListenerRefusesNonTraps(t *testing.T) {
	t.Parallel()
	r := newStorageRig(t, "x")
	c, err := net.Dial("udp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	get := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "x", PDUType: gosnmp.GetRequest,
		Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.1.0", Type: gosnmp.Null}}}
	inform := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "x", PDUType: gosnmp.InformRequest, Variables: suspendTrap()}
	good := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "x", PDUType: gosnmp.SNMPv2Trap, Variables: suspendTrap()}
	// The listener reads in order: once the good one is handed over, the
	// three before it have been counted.
	c.Write([]byte("not snmp at all"))
	for _, p := range []*gosnmp.SnmpPacket{get, inform, good} {
		b, err := p.MarshalMsg()
		if err != nil {
			t.Fatal(err)
		}
		c.Write(b)
	}
	if ev := next(t, r.traps, "trap"); ev.Seq != 3 {
		t.Fatalf("handed over %+v", ev)
	}
	if st := r.ln.Stats(); st.Accepted != 1 || st.Rejected != 3 {
		t.Fatalf("stats %+v, want 1 accepted, 3 rejected", st)
	}
}
