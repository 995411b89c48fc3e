package hapair

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/lab"
)

// community is what the trap tests configure as [snmp] trap_community_file.
const community = "lab-traps"

// trapNode starts a lab and server a alone, with a storage trap listener
// on a free port accepting community, a session defined over every pair
// (the heartbeat on when heartbeat); it returns the pair and the
// listener's address.
func trapNode(t *testing.T, heartbeat bool) (*Pair, *net.UDPAddr) {
	t.Helper()
	dir := t.TempDir()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr)
	pc.Close()
	cf := filepath.Join(dir, "trap.community")
	if err := os.WriteFile(cf, []byte(community+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := New(ctx, Options{Bin: bin, Dir: dir,
		Extra: fmt.Sprintf("\n[snmp]\ntrap_listen = \"udp://%s\"\ntrap_community_file = %q\n", addr, cf)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- log of a (tail)\n%s", tail(p.A.Log(), 80))
		}
		p.Close()
	})
	if err := p.A.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.DefineSession(ctx, p.A, heartbeat); err != nil {
		t.Fatal(err)
	}
	return p, addr
}

// systemIP is the address a lab system's traps leave from (its cluster 0).
func systemIP(t *testing.T, p *Pair, serial hal.Serial) string {
	t.Helper()
	for _, st := range p.Lab.Status() {
		if st.Serial == string(serial) {
			host, _, err := net.SplitHostPort(st.Endpoints[0])
			if err != nil {
				t.Fatal(err)
			}
			return host
		}
	}
	t.Fatalf("no system %s", serial)
	return ""
}

// sendTrap sends ev as an SNMPv2c storage trap with comm, from address
// from, to the listener at to.
func sendTrap(t *testing.T, from string, to *net.UDPAddr, comm string, ev hal.Event) {
	t.Helper()
	vbs, ok := emu.TrapVarbinds(ev, 1)
	if !ok {
		t.Fatalf("%v is not trapped", ev.Kind)
	}
	b, err := (&gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: comm, PDUType: gosnmp.SNMPv2Trap, Variables: vbs}).MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, to)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// mirrored is an LSS pair of the session: the first path of the lab.
func mirrored(p *Pair) hal.LSSPair { return p.Lab.Topology().Paths[0].LSSPair }

// waitLog waits until the node's log holds every one of want.
func waitLog(t *testing.T, n *Node, within time.Duration, want ...string) {
	t.Helper()
	err := Eventually(context.Background(), within, func() error {
		log := n.Log()
		for _, w := range want {
			if !strings.Contains(log, w) {
				return fmt.Errorf("%s has not logged %q", n.Name, w)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStorageTrapsFromRegisteredAddressesOnly: a suspend trap for a
// mirrored LSS pair from an address no storage system has, or from the
// storage system's own address with the wrong community, is dropped and
// logged (LS3004W) and freezes nothing; the same trap from the storage
// system's address with the configured community reaches the freeze core,
// which freezes the session's consistency group because of it.
func TestStorageTrapsFromRegisteredAddressesOnly(t *testing.T) {
	p, to := trapNode(t, false)
	lp := mirrored(p)
	ev := hal.Event{Kind: hal.EventSuspend, Serial: lp.Source.Serial, Seq: 1 << 40, At: time.Now(), LSSPair: lp,
		Reason: hal.ReasonPath}
	ev.Volumes.Add(0)
	sendTrap(t, "127.0.0.9", to, community, ev) // no storage system has 127.0.0.9
	sendTrap(t, systemIP(t, p, lp.Source.Serial), to, "public", ev)
	// The listener judges datagrams in order; both lines prove both were
	// dropped, not handed to the core.
	waitLog(t, p.A, 10*time.Second, "LS3004W", `reason="unknown source"`, `reason="wrong credentials"`)
	if strings.Contains(p.A.Log(), "freezing consistency group") {
		t.Fatal("a dropped trap froze the consistency group")
	}
	se, err := p.A.Client().SessionShow(context.Background(), "prod")
	if err != nil || se.State != api.StatePrepared {
		t.Fatalf("session %v, %v: want still Prepared", se.State, err)
	}

	sendTrap(t, systemIP(t, p, lp.Source.Serial), to, community, ev)
	waitLog(t, p.A, 10*time.Second, "freezing consistency group", "snmp trap suspend event from "+string(lp.Source.Serial))
}

// TestForgedTrapStillFreezesEverySystemOnTime: an insider (or a spoofed
// source) sends traps from a registered address with the right community
// (docs/architecture.md (Trust): an event can make the core freeze sooner, never skip or
// delay a freeze, never mark a system frozen that did not answer one).
//
//   - A forged heartbeat expiry for a primary makes the core freeze the
//     group: the freeze must still be sent to, and acknowledged by, every
//     primary, that one included, and the group must end frozen.
//   - A forged suspend event for an LSS pair of no session, with the
//     sequence number the next real event of that system will carry,
//     must not make the real event look like a duplicate: the freeze
//     that follows a real path failure comes from the real event, not
//     from the next poll.
//
// Both depend on the freeze core's handling of events (daemon/freeze),
// not on the listener, which rightly accepts these traps.
func TestForgedTrapStillFreezesEverySystemOnTime(t *testing.T) {
	t.Run("forged heartbeat expiry", func(t *testing.T) {
		p, to := trapNode(t, true)
		lp := mirrored(p)
		victim := lp.Source.Serial
		next := p.Lab.Fabric().System(victim).Stats().EventsRaised + 1
		start := time.Now()
		sendTrap(t, systemIP(t, p, victim), to, community, hal.Event{Kind: hal.EventHeartbeatExpiry, Serial: victim,
			Seq: next, At: time.Now(), Session: "cg:prod-cg"})
		// Every primary receives (and acknowledges) the freeze.
		primaries := p.Lab.Topology().Sources()
		frozen := map[hal.Serial]time.Duration{}
		err := Eventually(context.Background(), 10*time.Second, func() error {
			recs, _, err := lab.FetchCommands(context.Background(), p.Lab.ControlAddr(), 0)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Op == "freeze" && r.Outcome == emu.OutcomeOK && r.At.After(start) {
					if _, ok := frozen[r.Serial]; !ok {
						frozen[r.Serial] = r.At.Sub(start)
					}
				}
			}
			for _, s := range primaries {
				if _, ok := frozen[s]; !ok {
					return fmt.Errorf("no freeze reached %s (frozen so far: %v)", s, frozen)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("freeze reached every primary: %v after the forged trap", frozen)
		// And the group does not stay freezing: the session is suspended.
		if err := Eventually(context.Background(), 10*time.Second, func() error {
			se, err := p.A.Client().SessionShow(context.Background(), "prod")
			if err != nil {
				return err
			}
			if se.State != api.StateSuspended {
				return fmt.Errorf("session is %s", se.State)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("forged sequence number", func(t *testing.T) {
		p, to := trapNode(t, false)
		lp := mirrored(p)
		victim := lp.Source.Serial
		next := p.Lab.Fabric().System(victim).Stats().EventsRaised + 1
		unrelated := hal.LSSPair{Source: hal.LSSRef{Serial: victim, LSS: 0xFE}, Target: hal.LSSRef{Serial: lp.Target.Serial, LSS: 0xFE}}
		forged := hal.Event{Kind: hal.EventSuspend, Serial: victim, Seq: next, At: time.Now(), LSSPair: unrelated, Reason: hal.ReasonPath}
		sendTrap(t, systemIP(t, p, victim), to, community, forged)
		// Once logged, the forged event is queued in the core ahead of
		// anything the fault below raises.
		waitLog(t, p.A, 10*time.Second, fmt.Sprintf(`storage trap handed to the freeze core" serial=%s seq=%d`, victim, next))
		if err := p.Lab.Inject(lab.Fault{Kind: "lss-path", Source: lp.Source.String(), Target: lp.Target.String(), Up: false}); err != nil {
			t.Fatal(err)
		}
		waitLog(t, p.A, 10*time.Second, "freezing consistency group")
		log := p.A.Log()
		i := strings.Index(log, "freezing consistency group")
		line := log[i:]
		line, _, _ = strings.Cut(line, "\n")
		if !strings.Contains(line, "pushed suspend event from "+string(victim)) {
			t.Fatalf("the freeze was not triggered by the real pushed event (the forged sequence number suppressed it):\n%s", line)
		}
	})
}
