package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/daemon/config"
)

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		n       int
		want    time.Duration
	}{
		{"first failure waits the timeout", time.Second, 1, time.Second},
		{"second doubles", time.Second, 2, 2 * time.Second},
		{"fifth", time.Second, 5, 16 * time.Second},
		{"capped at a minute", time.Second, 7, time.Minute},
		{"stays capped", time.Second, 1000, time.Minute},
		{"long timeout capped at once", 50 * time.Second, 2, time.Minute},
		{"no timeout: the default", 0, 1, config.DefaultTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := retryDelay(tc.timeout, tc.n); got != tc.want {
				t.Fatalf("retryDelay(%v, %d) = %v, want %v", tc.timeout, tc.n, got, tc.want)
			}
		})
	}
}

func TestFormatFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		fields map[string]string
		want   string
	}{
		{"none", nil, ""},
		{"sorted", map[string]string{"serial": "P1", "group": "cg:prod"}, "group=cg:prod serial=P1"},
		{"quoted when spaced", map[string]string{"why": "no answer from P2"}, `why="no answer from P2"`},
		{"quoted when empty", map[string]string{"x": ""}, `x=""`},
		{"quotes escaped", map[string]string{"x": `a"b`}, `x="a\"b"`},
		{"equals quoted", map[string]string{"x": "a=b"}, `x="a=b"`},
		{"invalid utf-8 quoted", map[string]string{"x": "\xff"}, `x="\xff"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := formatFields(tc.fields); got != tc.want {
				t.Fatalf("formatFields = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200) // 400 bytes
	odd := "a" + long                // the cut at 252 falls inside a rune
	for _, tc := range []struct {
		name, in string
		wantLen  int
	}{
		{"short unchanged", "abc", 3},
		{"exactly 255", strings.Repeat("a", 255), 255},
		{"cut on a rune boundary", long, 255}, // 126 runes (252 bytes) + "..."
		{"cut before a split rune", odd, 254}, // "a" + 125 runes (251 bytes) + "..."
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := clip(tc.in)
			if len(got) != tc.wantLen || len(got) > maxText || !strings.HasPrefix(tc.in, strings.TrimSuffix(got, "...")) {
				t.Fatalf("clip: %d bytes %q", len(got), got)
			}
		})
	}
	if got := clip("a\xffb"); got != "a\uFFFDb" {
		t.Fatalf("invalid UTF-8 kept: %q", got)
	}
}

func TestNotificationOIDsAndNames(t *testing.T) {
	t.Parallel()
	prefix, _ := config.ParseOID(config.DefaultEnterpriseOID)
	if got := NotificationOID(prefix, GroupPartial); got != "1.3.6.1.4.1.61942.1.0.2103" {
		t.Errorf("GroupPartial OID %s", got)
	}
	if got := NotificationName(GroupPartial); got != "lockstepGroupPartial" {
		t.Errorf("GroupPartial name %s", got)
	}
	for _, e := range Notifications() {
		if !e.Trap {
			t.Errorf("%s is not a trap", e.Name)
		}
		if n := NotificationName(e); len(n) > 32 {
			t.Errorf("%s: descriptor longer than 32 characters", n)
		}
	}
	if slices.ContainsFunc(Notifications(), func(e Event) bool { return e == DaemonStarted }) {
		t.Error("daemonStarted is not a notification")
	}
}

func TestVarbinds(t *testing.T) {
	t.Parallel()
	prefix, _ := config.ParseOID("1.3.6.1.4.1.99")
	n := notification{event: GroupPartial, uptime: 1234, role: "active",
		fields: formatFields(map[string]string{"group": "g", "serial": "P2"}), serial: "P2"}
	got := n.varbinds(prefix, "lockstep-a", 7)
	want := []gosnmp.SnmpPDU{
		{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: uint32(1234)},
		{Name: ".1.3.6.1.6.3.1.1.4.1.0", Type: gosnmp.ObjectIdentifier, Value: ".1.3.6.1.4.1.99.1.0.2103"},
		{Name: ".1.3.6.1.4.1.99.1.1.1.0", Type: gosnmp.Gauge32, Value: uint(7)},
		{Name: ".1.3.6.1.4.1.99.1.1.2.0", Type: gosnmp.OctetString, Value: []byte("lockstep-a")},
		{Name: ".1.3.6.1.4.1.99.1.1.3.0", Type: gosnmp.OctetString, Value: []byte("active")},
		{Name: ".1.3.6.1.4.1.99.1.1.4.0", Type: gosnmp.OctetString, Value: []byte("LS2103E")},
		{Name: ".1.3.6.1.4.1.99.1.1.5.0", Type: gosnmp.OctetString, Value: []byte(GroupPartial.Summary)},
		{Name: ".1.3.6.1.4.1.99.1.1.6.0", Type: gosnmp.OctetString, Value: []byte("group=g serial=P2")},
		{Name: ".1.3.6.1.4.1.99.1.1.7.0", Type: gosnmp.OctetString, Value: []byte("P2")},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("varbinds (-want +got):\n-%v\n+%v", want, got)
	}
	n.serial = ""
	if got := n.varbinds(prefix, "x", 1); len(got) != 8 {
		t.Fatalf("without a serial: %d varbinds, want 8", len(got))
	}
}

// fakeTransport records what a manager's worker sends; the first fail
// attempts fail.
type fakeTransport struct {
	mu    sync.Mutex
	fail  int
	tries int
	sent  [][]gosnmp.SnmpPDU
	gate  chan struct{} // when set, each send waits for a value
}

func (f *fakeTransport) send(ctx context.Context, vbs []gosnmp.SnmpPDU) error {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.fail > 0 {
		f.fail--
		return errors.New("no answer")
	}
	f.sent = append(f.sent, vbs)
	return nil
}

func (f *fakeTransport) close() {}

// seqs are the sequence numbers sent, in order.
func (f *fakeTransport) seqs() []uint {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint
	for _, vbs := range f.sent {
		out = append(out, vbs[2].Value.(uint))
	}
	return out
}

// newFakeSNMP is an SNMP whose managers send through fake transports.
func newFakeSNMP(t *testing.T, managers ...config.Manager) (*SNMP, []*fakeTransport) {
	t.Helper()
	dir := t.TempDir()
	community := filepath.Join(dir, "community")
	if err := os.WriteFile(community, []byte("public\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().SNMP
	for i := range managers {
		managers[i].Version, managers[i].CommunityFile = config.V2c, community
		managers[i].Address = config.Addr{Scheme: config.UDP, Host: "127.0.0.1", Port: uint32(1000 + i)}
	}
	cfg.Managers = managers
	s, err := NewSNMP(cfg, "lockstep-a", func() string { return "active" }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var fakes []*fakeTransport
	for _, m := range s.managers {
		f := &fakeTransport{}
		m.tr = f
		fakes = append(fakes, f)
	}
	return s, fakes
}

func TestSendRunsInSequenceAndSkipsNonTraps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fakes := newFakeSNMP(t, config.Manager{Notification: config.Trap, Queue: 10})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go s.Run(ctx)
		time.Sleep(12340 * time.Millisecond) // sysUpTime counts from NewSNMP
		s.Send(GroupPartial, map[string]string{"group": "g"})
		s.Send(DaemonStarted, nil) // not a notification
		s.Send(GroupThawed, nil)
		synctest.Wait()
		if got := fakes[0].seqs(); !slices.Equal(got, []uint{1, 2}) {
			t.Fatalf("sequence numbers %v, want [1 2]", got)
		}
		first := fakes[0].sent[0]
		if first[0].Value != uint32(1234) || first[1].Value != "."+NotificationOID(s.prefix, GroupPartial) {
			t.Fatalf("sysUpTime %v, trap OID %v", first[0].Value, first[1].Value)
		}
		if st := s.Stats()[0]; st.Sent != 2 || st.Queued != 0 || st.LastSeq != 2 || !st.Reachable {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestFullQueueDropsOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fakes := newFakeSNMP(t, config.Manager{Notification: config.Inform, Queue: 3})
		fakes[0].gate = make(chan struct{})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go s.Run(ctx)
		s.Send(SessionPrepared, nil)
		synctest.Wait() // the worker holds seq 1 while it waits at the gate
		for range 5 {
			s.Send(SessionPrepared, nil)
		}
		if st := s.Stats()[0]; st.Dropped != 3 || st.Queued != 3 || st.LastSeq != 6 {
			t.Fatalf("stats %+v, want 3 dropped, 3 queued", st)
		}
		for range 4 {
			fakes[0].gate <- struct{}{}
			synctest.Wait()
		}
		// Seq 1 was in flight when the queue dropped it: its send still
		// counts, then 4 to 6 follow; 2 and 3 are the gap.
		if got := fakes[0].seqs(); !slices.Equal(got, []uint{1, 4, 5, 6}) {
			t.Fatalf("sent %v, want [1 4 5 6]", got)
		}
	})
}

func TestInformRetriedWithBackoffThenUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fakes := newFakeSNMP(t, config.Manager{Notification: config.Inform, Queue: 10, Retries: 2, Timeout: time.Second})
		f := fakes[0]
		f.fail = 5
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go s.Run(ctx)
		s.Send(Takeover, nil)
		start := time.Now()
		synctest.Wait()
		// Attempts at 0, 1, 3 (unreachable: 2 retries used), 7, 15, then
		// the sixth at 31 s succeeds.
		for _, want := range []struct {
			at        time.Duration
			tries     int
			reachable bool
		}{{0, 1, true}, {time.Second, 2, true}, {3 * time.Second, 3, false}, {7 * time.Second, 4, false},
			{15 * time.Second, 5, false}, {31 * time.Second, 6, true}} {
			time.Sleep(start.Add(want.at).Sub(time.Now()))
			synctest.Wait()
			f.mu.Lock()
			tries := f.tries
			f.mu.Unlock()
			st := s.Stats()[0]
			if tries != want.tries || st.Reachable != want.reachable {
				t.Fatalf("at %v: %d tries, reachable %v; want %d, %v", want.at, tries, st.Reachable, want.tries, want.reachable)
			}
		}
		if st := s.Stats()[0]; st.Sent != 1 || st.Failures != 5 || st.Queued != 0 {
			t.Fatalf("stats %+v", st)
		}
		// The retried inform is the original: same sequence number and
		// sysUpTime of the event.
		if vbs := f.sent[0]; vbs[0].Value != uint32(0) || vbs[2].Value != uint(1) {
			t.Fatalf("resent %v", vbs[:3])
		}
	})
}

func TestSlowManagerDelaysNoOther(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fakes := newFakeSNMP(t, config.Manager{Notification: config.Inform, Queue: 10},
			config.Manager{Notification: config.Trap, Queue: 10})
		fakes[0].gate = make(chan struct{}) // never answers
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go s.Run(ctx)
		for range 3 {
			s.Send(HAStateChanged, nil)
		}
		synctest.Wait()
		if got := fakes[1].seqs(); !slices.Equal(got, []uint{1, 2, 3}) {
			t.Fatalf("second manager got %v while the first hangs", got)
		}
	})
}

func TestCommFailureOncePerOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, fakes := newFakeSNMP(t, config.Manager{Notification: config.Trap, Queue: 10})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go s.Run(ctx)
		steps := []struct {
			name string
			do   func() bool
			sent bool
		}{
			{"recovered before any failure", func() bool { return s.CommRecovered("P1") }, false},
			{"first failure", func() bool { return s.CommFailure("P1", true, "no answer in 2s") }, true},
			{"same outage", func() bool { return s.CommFailure("P1", false, "connection refused") }, false},
			{"another system", func() bool { return s.CommFailure("P2", false, "refused") }, true},
			{"recovered", func() bool { return s.CommRecovered("P1") }, true},
			{"recovered twice", func() bool { return s.CommRecovered("P1") }, false},
			{"next outage", func() bool { return s.CommFailure("P1", false, "refused") }, true},
		}
		for _, st := range steps {
			if got := st.do(); got != st.sent {
				t.Fatalf("%s: sent %v, want %v", st.name, got, st.sent)
			}
		}
		synctest.Wait()
		var got []string
		for _, vbs := range fakes[0].sent {
			got = append(got, string(vbs[5].Value.([]byte))+" "+string(vbs[7].Value.([]byte)))
		}
		want := []string{
			`LS3001E cause=timeout detail="no answer in 2s" serial=P1`,
			`LS3001E cause=error detail=refused serial=P2`,
			`LS3002I serial=P1`,
			`LS3001E cause=error detail=refused serial=P1`,
		}
		if !slices.Equal(got, want) {
			t.Fatalf("sent (-want +got):\n-%q\n+%q", want, got)
		}
	})
}

func TestCredentialsAreCheckedButNeverShown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	writeMode := func(name, content string, mode os.FileMode) string {
		p := write(name, content)
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := write("short", "s3cr\n")
	good := write("good", "  long-enough-secret \n")
	addr := config.Addr{Scheme: config.UDP, Host: "127.0.0.1", Port: 162}
	for _, tc := range []struct {
		name string
		m    config.Manager
		want string
	}{
		{"missing community", config.Manager{Address: addr, Version: config.V2c, CommunityFile: filepath.Join(dir, "none")},
			"community_file"},
		{"empty community", config.Manager{Address: addr, Version: config.V2c, CommunityFile: write("empty", " \n")},
			"holds 0 characters"},
		{"short auth passphrase", config.Manager{Address: addr, Version: config.V3, User: "u", AuthKeyFile: short,
			PrivKeyFile: good, AuthProtocol: config.SHA256, PrivProtocol: config.AES}, "auth_key_file " + short + ": holds 4 characters"},
		{"short priv passphrase", config.Manager{Address: addr, Version: config.V3, User: "u", AuthKeyFile: good,
			PrivKeyFile: short, AuthProtocol: config.SHA256, PrivProtocol: config.AES}, "priv_key_file"},
		// docs/architecture.md (Trust): secret files readable by others are refused.
		{"community readable by others", config.Manager{Address: addr, Version: config.V2c, CommunityFile: writeMode("open-community", "public\n", 0o644)},
			filepath.Join(dir, "open-community") + " (owner"},
		{"auth key readable by others", config.Manager{Address: addr, Version: config.V3, User: "u", AuthKeyFile: writeMode("open-auth", "long-enough-secret\n", 0o604),
			PrivKeyFile: good, AuthProtocol: config.SHA256, PrivProtocol: config.AES}, "mode 0604"},
		{"priv key writable by others", config.Manager{Address: addr, Version: config.V3, User: "u", AuthKeyFile: good,
			PrivKeyFile: writeMode("open-priv", "long-enough-secret\n", 0o602), AuthProtocol: config.SHA256, PrivProtocol: config.AES}, "priv_key_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default().SNMP
			cfg.EngineIDFile = filepath.Join(t.TempDir(), "engine")
			cfg.Managers = []config.Manager{tc.m}
			_, err := NewSNMP(cfg, "x", nil, nil, nil)
			if !errors.Is(err, ErrSNMP) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrSNMP mentioning %q", err, tc.want)
			}
			for _, secret := range []string{"s3cr", "long-enough-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q shows a secret", err)
				}
			}
		})
	}
	c, err := readCredentials(config.Manager{Version: config.V3, AuthKeyFile: good, PrivKeyFile: good})
	if err != nil || c.auth != "long-enough-secret" || c.priv != "long-enough-secret" {
		t.Fatalf("credentials not trimmed: %v", err)
	}
}
