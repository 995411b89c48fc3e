package lab

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

func TestTrapRegisterOverTheControlAPI(t *testing.T) {
	t.Parallel()
	second := strings.NewReplacer(`serial = "A"`, `serial = "B"`).Replace(goodSystem)
	cfg, err := ParseConfig(goodSystem + second + "[[mirror]]\nsource = \"A\"\ntarget = \"B\"\n")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	srv, err := Start(ctx, cfg, Options{Clock: clk, ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	// Mirror A/10 to B/10.
	lp := hal.LSSPair{Source: hal.LSSRef{Serial: "A", LSS: 0x10}, Target: hal.LSSRef{Serial: "B", LSS: 0x10}}
	a := srv.Fabric().System("A").Connect("setup")
	if err := a.EstablishPaths(ctx, 1, []hal.PathSpec{{LSSPair: lp}}); err != nil {
		t.Fatal(err)
	}
	var pairs []hal.PairSpec
	for n := range uint8(2) {
		pairs = append(pairs, hal.PairSpec{VolumePair: hal.VolumePair{
			Source: hal.VolumeRef{Serial: "A", Volume: hal.NewVolume(0x10, n)},
			Target: hal.VolumeRef{Serial: "B", Volume: hal.NewVolume(0x10, n)}}})
	}
	if err := a.EstablishPairs(ctx, 1, pairs); err != nil {
		t.Fatal(err)
	}
	clk.Advance(0)

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	call := func(req Request) {
		t.Helper()
		if _, err := Call(ctx, srv.ControlAddr(), req); err != nil {
			t.Fatal(err)
		}
	}
	call(Request{Op: "trap-register", Trap: &TrapParam{Addr: pc.LocalAddr().String(), Community: "lab", Manager: "lockstep-a"}})
	if _, err := Call(ctx, srv.ControlAddr(), Request{Op: "trap-register", Trap: &TrapParam{Addr: "x", System: "Z"}}); err == nil {
		t.Fatal("an unknown system was accepted")
	}

	// Both endpoints down for the manager: the suspend event's trap is
	// lost, as a pushed event would be.
	call(Request{Op: "fault", Fault: &Fault{Kind: "manager", System: "A", Manager: "lockstep-a", Mode: "down", Endpoint: -1}})
	call(Request{Op: "fault", Fault: &Fault{Kind: "lss-path", Source: "A/10", Target: "B/10", Up: false}})
	// One endpoint back: the next event is trapped.
	call(Request{Op: "fault", Fault: &Fault{Kind: "manager", System: "A", Manager: "lockstep-a", Mode: "up", Endpoint: 1}})
	call(Request{Op: "fault", Fault: &Fault{Kind: "lss-path", Source: "A/10", Target: "B/10", Up: true}})
	if err := a.EstablishPairs(ctx, 2, []hal.PairSpec{{VolumePair: pairs[0].VolumePair, Mode: hal.Resync}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(0)
	call(Request{Op: "fault", Fault: &Fault{Kind: "paths", System: "A", Up: false}})

	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 65536)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no trap: %v", err)
	}
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c}
	p, err := g.UnmarshalTrap(buf[:n], false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, vb := range p.Variables {
		got[vb.Name] = vb.Value
	}
	if p.Community != "lab" || got[".1.3.6.1.6.3.1.1.4.1.0"] != ".1.3.6.1.4.1.61942.2.0.1" ||
		got[".1.3.6.1.4.1.61942.2.1.2.0"] != uint64(2) {
		t.Fatalf("trap %q %v: want the suspend event 2 (event 1 was raised while the manager's link was down)", p.Community, got)
	}
}

// TestTrapsLeaveFromTheSystemsAddress: each system's traps come from the
// address its cluster 0 listens on, so that a manager can accept a trap
// only from the addresses of the storage system it names.
func TestTrapsLeaveFromTheSystemsAddress(t *testing.T) {
	t.Parallel()
	text := strings.NewReplacer(`"127.0.0.1:0", "127.0.0.1:0"`, `"127.0.0.51:0", "127.0.0.52:0"`).Replace(goodSystem) +
		strings.NewReplacer(`serial = "A"`, `serial = "B"`, `"127.0.0.1:0", "127.0.0.1:0"`, `"127.0.0.61:0", "127.0.0.62:0"`).Replace(goodSystem)
	cfg, err := ParseConfig(text)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	srv, err := Start(ctx, cfg, Options{Clock: clk, ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := srv.RegisterTrapReceiver(ctx, TrapParam{Addr: pc.LocalAddr().String(), Community: "lab"}); err != nil {
		t.Fatal(err)
	}
	for _, serial := range []hal.Serial{"A", "B"} {
		// A heartbeat that expires raises an event on that system alone.
		sys := srv.Fabric().System(serial).Connect("setup")
		if err := sys.EnableHeartbeat(ctx, 1, hal.HeartbeatSpec{Session: "s", Timeout: time.Second}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Second)
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 65536)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no trap from %s: %v", serial, err)
		}
		p, err := (&gosnmp.GoSNMP{Version: gosnmp.Version2c}).UnmarshalTrap(buf[:n], false)
		if err != nil {
			t.Fatal(err)
		}
		want := srv.SourceIP(serial)
		if got := from.(*net.UDPAddr).IP; !got.Equal(want) || want == nil {
			t.Fatalf("trap from %s came from %v, want %v (its cluster 0)", serial, got, want)
		}
		if got := string(p.Variables[2].Value.([]byte)); got != string(serial) {
			t.Fatalf("trap from %v names %s, want %s", from, got, serial)
		}
	}
}

// TestHMCTrapsLeaveFromTheHMCsAddress (issue 15): registered at an HMC,
// the traps of the systems it fronts leave from the HMC's address; an
// unknown HMC, or an HMC and a system at once, is refused.
func TestHMCTrapsLeaveFromTheHMCsAddress(t *testing.T) {
	t.Parallel()
	text := strings.NewReplacer(`"127.0.0.1:0", "127.0.0.1:0"`, `"127.0.0.53:0", "127.0.0.54:0"`).Replace(goodSystem) +
		strings.Replace(goodHMC, `"127.0.0.1:0"`, `"127.0.0.95:0"`, 1) +
		"processing = \"0s\"\nlink_latency = \"0s\"\n" // the relay takes no time on the fake clock
	cfg, err := ParseConfig(text)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock.NewFake(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	srv, err := Start(ctx, cfg, Options{Clock: clk, ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, bad := range []TrapParam{{Addr: pc.LocalAddr().String(), HMC: "NOPE"}, {Addr: pc.LocalAddr().String(), HMC: "H", System: "A"}} {
		if _, err := Call(ctx, srv.ControlAddr(), Request{Op: "trap-register", Trap: &bad}); err == nil {
			t.Errorf("trap-register %+v: accepted", bad)
		}
	}
	if _, err := Call(ctx, srv.ControlAddr(), Request{Op: "trap-register", Trap: &TrapParam{Addr: pc.LocalAddr().String(),
		Community: "lab", HMC: "H"}}); err != nil {
		t.Fatal(err)
	}
	sys := srv.Fabric().System("A").Connect("setup")
	if err := sys.EnableHeartbeat(ctx, 1, hal.HeartbeatSpec{Session: "s", Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 65536)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no trap through HMC H: %v", err)
	}
	p, err := (&gosnmp.GoSNMP{Version: gosnmp.Version2c}).UnmarshalTrap(buf[:n], false)
	if err != nil {
		t.Fatal(err)
	}
	if got := from.(*net.UDPAddr).IP.String(); got != "127.0.0.95" {
		t.Fatalf("trap of A through HMC H came from %s, want 127.0.0.95 (the HMC)", got)
	}
	if got := string(p.Variables[2].Value.([]byte)); got != "A" {
		t.Fatalf("trap names %s, want A", got)
	}
}
