package notify

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// The addresses of the tests below: the primary's two clusters, the
// secondary's, and one no storage system has.
var (
	addrP1      = netip.MustParseAddr("127.0.0.111")
	addrP2      = netip.MustParseAddr("127.0.0.112")
	addrS       = netip.MustParseAddr("127.0.0.121")
	addrUnknown = netip.MustParseAddr("127.0.0.131")
)

// trustRig is a listener that knows the primary (two addresses) and the
// secondary, accepts community "lab" and SNMPv3 user "storage", and logs
// into a buffer.
type trustRig struct {
	ln    *StorageTrapListener
	clk   *clock.Fake
	traps chan hal.Event
	logs  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newTrustRig(t *testing.T) *trustRig {
	t.Helper()
	r := &trustRig{clk: clock.NewFake(time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)), traps: make(chan hal.Event, 64),
		logs: &lockedBuffer{}}
	r.ln = NewStorageTrapListener(StorageTrapOptions{Addr: "127.0.0.1:0", Auth: fuzzAuth, Clock: r.clk,
		Handle: func(ev hal.Event) { r.traps <- ev },
		Logger: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	r.ln.SetSources(map[netip.Addr][]hal.Serial{addrP1: {primary}, addrP2: {primary}, addrS: {secondary}})
	ctx, cancel := context.WithCancel(context.Background())
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

// send sends a datagram to the listener from address from.
func (r *trustRig) send(t *testing.T, from netip.Addr, b []byte) {
	t.Helper()
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), r.ln.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// sentinel sends a good trap of event seq from the primary and waits for
// it: the listener reads in order, so every datagram sent before it has
// been judged. It returns the events handed over before it.
func (r *trustRig) sentinel(t *testing.T, seq uint64) []hal.Event {
	t.Helper()
	r.send(t, addrP1, v2c(t, "lab", trapWith(primary, seq)))
	var before []hal.Event
	for {
		ev := next(t, r.traps, "the sentinel trap")
		if ev.Seq == seq {
			return before
		}
		before = append(before, ev)
	}
}

// noneBefore is sentinel for tests in which nothing else may be handed
// over.
func (r *trustRig) noneBefore(t *testing.T, seq uint64) {
	t.Helper()
	if got := r.sentinel(t, seq); len(got) != 0 {
		t.Fatalf("handed over %+v: it should have been dropped", got)
	}
}

// trapWith is a suspend trap of serial's event seq.
func trapWith(serial hal.Serial, seq uint64) []gosnmp.SnmpPDU {
	vbs := suspendTrap()
	for i := range vbs {
		switch vbs[i].Name {
		case storageTrapPrefix + ".1.1.0":
			vbs[i].Value = []byte(serial)
		case storageTrapPrefix + ".1.2.0":
			vbs[i].Value = seq
		}
	}
	return vbs
}

func v2c(t *testing.T, community string, vbs []gosnmp.SnmpPDU) []byte {
	t.Helper()
	p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: community, PDUType: gosnmp.SNMPv2Trap, Variables: vbs}
	b, err := p.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTrapsOnlyFromTheirStorageSystems: a trap is handed over only from
// an address of a defined storage system, with the right credentials,
// for a serial that address serves (docs/architecture.md, Trust); everything else is
// dropped and counted by reason.
func TestTrapsOnlyFromTheirStorageSystems(t *testing.T) {
	t.Parallel()
	wrongUser := fuzzAuth
	wrongUser.PrivPassphrase = "not-the-priv-pass"
	for _, tc := range []struct {
		name string
		from netip.Addr
		data func(t *testing.T) []byte
		want func(ListenerStats) uint64 // the counter it must land in
	}{
		{"registered address, right community", addrP1, func(t *testing.T) []byte { return v2c(t, "lab", trapWith(primary, 7)) },
			func(s ListenerStats) uint64 { return s.Accepted }},
		{"the system's other cluster", addrP2, func(t *testing.T) []byte { return v2c(t, "lab", trapWith(primary, 7)) },
			func(s ListenerStats) uint64 { return s.Accepted }},
		{"SNMPv3 of the user", addrP1, func(t *testing.T) []byte { return marshalV3(t, trapWith(primary, 7), fuzzAuth) },
			func(s ListenerStats) uint64 { return s.Accepted }},
		{"unregistered address, right community", addrUnknown, func(t *testing.T) []byte { return v2c(t, "lab", trapWith(primary, 7)) },
			func(s ListenerStats) uint64 { return s.UnknownSource }},
		{"registered address, wrong community", addrP1, func(t *testing.T) []byte { return v2c(t, "public", trapWith(primary, 7)) },
			func(s ListenerStats) uint64 { return s.BadAuth }},
		{"SNMPv3 with a wrong passphrase", addrP1, func(t *testing.T) []byte { return marshalV3(t, trapWith(primary, 7), wrongUser) },
			func(s ListenerStats) uint64 { return s.BadAuth }},
		{"another system's serial", addrS, func(t *testing.T) []byte { return v2c(t, "lab", trapWith(primary, 7)) },
			func(s ListenerStats) uint64 { return s.ForeignSerial }},
		{"garbage from a registered address", addrP1, func(t *testing.T) []byte { return []byte("\x30\x03\x02\x01\x01") },
			func(s ListenerStats) uint64 { return s.Malformed }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newTrustRig(t)
			r.send(t, tc.from, tc.data(t))
			before := r.sentinel(t, 99)
			st := r.ln.Stats()
			st.Accepted-- // the sentinel
			if tc.want(st) != 1 || st.Received != 2 || st.Accepted+st.Rejected != 1 {
				t.Fatalf("stats %+v (sentinel left out): the datagram did not land where it should", st)
			}
			if len(before) != int(st.Accepted) || (len(before) == 1 && before[0].Seq != 7) {
				t.Fatalf("handed over %+v", before)
			}
		})
	}
}

// TestTrapSourcesFollowTheStorageSystems: SetSources takes effect at once:
// a removed system's address is a stranger's.
func TestTrapSourcesFollowTheStorageSystems(t *testing.T) {
	t.Parallel()
	r := newTrustRig(t)
	r.send(t, addrS, v2c(t, "lab", trapWith(secondary, 1)))
	if ev := next(t, r.traps, "the secondary's trap"); ev.Serial != secondary {
		t.Fatalf("handed over %+v", ev)
	}
	r.ln.SetSources(map[netip.Addr][]hal.Serial{addrP1: {primary}})
	r.send(t, addrS, v2c(t, "lab", trapWith(secondary, 2)))
	r.noneBefore(t, 3)
	if st := r.ln.Stats(); st.UnknownSource != 1 {
		t.Fatalf("stats %+v: the removed system's trap was not dropped as from an unknown source", st)
	}
}

// TestTrapDropsLoggedAtARateLimit: a flood of bad datagrams costs one log
// line per reason per minute, with the count, and never stops the
// listener.
func TestTrapDropsLoggedAtARateLimit(t *testing.T) {
	t.Parallel()
	r := newTrustRig(t)
	for range 50 {
		r.send(t, addrUnknown, v2c(t, "lab", trapWith(primary, 1)))
		r.send(t, addrP1, v2c(t, "guess", trapWith(primary, 1)))
	}
	r.noneBefore(t, 2)
	lines := func() []string {
		var out []string
		for l := range strings.Lines(r.logs.String()) {
			if strings.Contains(l, "storage trap dropped") {
				out = append(out, l)
			}
		}
		return out
	}
	if got := lines(); len(got) != 2 || !strings.Contains(got[0], "LS3004W") {
		t.Fatalf("%d drop lines for 100 drops of two reasons, want 2 with id LS3004W:\n%s", len(got), strings.Join(got, ""))
	}
	r.clk.Advance(dropLogEvery)
	r.send(t, addrUnknown, v2c(t, "lab", trapWith(primary, 1)))
	r.noneBefore(t, 3)
	got := lines()
	if len(got) != 3 || !strings.Contains(got[2], "dropped_since_last_log=50") || !strings.Contains(got[2], "dropped_total=51") {
		t.Fatalf("after a minute, want one more line counting the 49 suppressed and this one:\n%s", strings.Join(got, ""))
	}
	if st := r.ln.Stats(); st.UnknownSource != 51 || st.BadAuth != 50 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSNMPv3Decoding: only the configured user's authPriv traps open.
func TestSNMPv3Decoding(t *testing.T) {
	t.Parallel()
	other := fuzzAuth
	other.User = "intruder"
	for _, tc := range []struct {
		name string
		auth TrapAuth // the listener's
		data []byte
		ok   bool
	}{
		{"the user", fuzzAuth, marshalV3(t, suspendTrap(), fuzzAuth), true},
		{"another user", fuzzAuth, marshalV3(t, suspendTrap(), other), false},
		{"no v3 user configured", TrapAuth{Community: "lab"}, marshalV3(t, suspendTrap(), fuzzAuth), false},
		{"v2c while only v3 is configured", TrapAuth{User: fuzzAuth.User, AuthProtocol: fuzzAuth.AuthProtocol,
			AuthPassphrase: fuzzAuth.AuthPassphrase, PrivProtocol: fuzzAuth.PrivProtocol, PrivPassphrase: fuzzAuth.PrivPassphrase},
			v2c(t, "", suspendTrap()), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := NewStorageTrapListener(StorageTrapOptions{Auth: tc.auth})
			ev, err := l.decode(tc.data)
			if tc.ok != (err == nil) {
				t.Fatalf("decode = %+v, %v", ev, err)
			}
			if !tc.ok && !errors.Is(err, errTrapAuth) {
				t.Fatalf("refused as %v, want wrong credentials", err)
			}
		})
	}
}

// TestSNMPv3TrapFromNetSNMP: a storage system that sends SNMPv3 authPriv
// traps with net-snmp's snmptrap is understood; with another passphrase
// it is dropped.
func TestSNMPv3TrapFromNetSNMP(t *testing.T) {
	t.Parallel()
	snmptrap := needTool(t, "snmptrap")
	r := newTrustRig(t)
	port := strconv.Itoa(r.ln.Addr().(*net.UDPAddr).Port)
	send := func(priv string, seq int) {
		t.Helper()
		S := storageTrapPrefix
		args := []string{"-v3", "-u", "storage", "-l", "authPriv", "-a", "SHA-256", "-A", fuzzAuth.AuthPassphrase,
			"-x", "AES", "-X", priv, "-e", "0x80001f8804736e6d7074726170", "--clientaddr=" + addrP2.String(),
			"127.0.0.1:" + port, "", S + ".0.2",
			S + ".1.1.0", "s", string(primary), S + ".1.2.0", "C", strconv.Itoa(seq), S + ".1.3.0", "C", "1000",
			S + ".1.9.0", "s", "prod"}
		if out, err := exec.Command(snmptrap, args...).CombinedOutput(); err != nil {
			t.Fatalf("snmptrap: %v\n%s", err, out)
		}
	}
	send(fuzzAuth.PrivPassphrase, 5)
	ev := next(t, r.traps, "the SNMPv3 trap")
	if ev.Kind != hal.EventHeartbeatExpiry || ev.Serial != primary || ev.Seq != 5 || ev.Session != "prod" {
		t.Fatalf("decoded %+v", ev)
	}
	send("another-priv-pass", 6)
	r.noneBefore(t, 7)
	if st := r.ln.Stats(); st.BadAuth != 1 {
		t.Fatalf("stats %+v: the trap with another passphrase was not dropped for its credentials", st)
	}
}
