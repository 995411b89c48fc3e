package notify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// These tests talk to a real snmptrapd (net-snmp 5.9), started per test
// on a free loopback port with its own config and persistent directory.

var t0 = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// runSNMP runs s until the test ends.
func runSNMP(t testing.TB, s *SNMP) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-s.Ready()
}

const (
	authPass = "auth-passphrase-1"
	privPass = "priv-passphrase-1"
)

func TestNotificationsReachSnmptrapd(t *testing.T) {
	t.Parallel()
	needTool(t, "snmptrapd")
	for _, tc := range []struct {
		name    string
		manager func(t *testing.T, r *snmpRig, port int) config.Manager
		conf    func(engine string) string
		header  string
	}{
		{"v2c trap",
			func(t *testing.T, r *snmpRig, port int) config.Manager { return r.v2c(t, port, config.Trap, "public") },
			func(string) string { return "disableAuthorization yes\n" },
			"TRAP2, SNMP v2c, community public"},
		{"v2c inform",
			func(t *testing.T, r *snmpRig, port int) config.Manager {
				return r.v2c(t, port, config.Inform, "public")
			},
			func(string) string { return "disableAuthorization yes\n" },
			"INFORM, SNMP v2c, community public"},
		{"v3 authPriv trap SHA-256 AES",
			func(t *testing.T, r *snmpRig, port int) config.Manager {
				return r.v3(t, port, config.Trap, "lsuser", config.SHA256, config.AES, authPass, privPass)
			},
			func(engine string) string {
				return fmt.Sprintf("createUser -e %s lsuser SHA-256 %s AES %s\nauthUser log lsuser priv\n", engine, authPass, privPass)
			},
			"TRAP2, SNMP v3, user lsuser"},
		{"v3 authPriv trap SHA-512 AES-256",
			func(t *testing.T, r *snmpRig, port int) config.Manager {
				return r.v3(t, port, config.Trap, "ls512", config.SHA512, config.AES256, authPass, privPass)
			},
			func(engine string) string {
				return fmt.Sprintf("createUser -e %s ls512 SHA-512 %s AES-256 %s\nauthUser log ls512 priv\n", engine, authPass, privPass)
			},
			"TRAP2, SNMP v3, user ls512"},
		{"v3 authPriv inform SHA-256 AES",
			func(t *testing.T, r *snmpRig, port int) config.Manager {
				return r.v3(t, port, config.Inform, "lsuser", config.SHA256, config.AES, authPass, privPass)
			},
			// An inform's receiver is the authoritative engine: the user
			// belongs to snmptrapd's own engine, no -e.
			func(string) string {
				return fmt.Sprintf("createUser lsuser SHA-256 %s AES %s\nauthUser log lsuser priv\n", authPass, privPass)
			},
			"INFORM, SNMP v3, user lsuser"},
		{"v3 authPriv inform SHA-384 AES-192",
			func(t *testing.T, r *snmpRig, port int) config.Manager {
				return r.v3(t, port, config.Inform, "ls384", config.SHA384, config.AES192, authPass, privPass)
			},
			func(string) string {
				return fmt.Sprintf("createUser ls384 SHA-384 %s AES-192 %s\nauthUser log ls384 priv\n", authPass, privPass)
			},
			"INFORM, SNMP v3, user ls384"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newSNMPRig(t)
			port := freeUDPPort(t)
			r.cfg.Managers = []config.Manager{tc.manager(t, r, port)}
			clk := clock.NewFake(t0)
			s, err := NewSNMP(r.cfg, "lockstep-a", func() string { return "active" }, clk, nil)
			if err != nil {
				t.Fatal(err)
			}
			engine := ""
			if r.cfg.Managers[0].Version == config.V3 {
				engine = r.engineHex(t)
			}
			d := startTrapd(t, port, tc.conf(engine))
			runSNMP(t, s)
			clk.Advance(12340 * time.Millisecond)
			s.Send(GroupPartial, map[string]string{"group": "cg:prod", "serial": "LAB.2107-75P0002", "why": "no answer"})
			got := d.waitNotifications(t, 1)[0]
			if !strings.HasPrefix(got.header, tc.header) {
				t.Errorf("header %q, want %q", got.header, tc.header)
			}
			p := r.prefix
			for _, c := range []struct{ name, got, want string }{
				{"sysUpTime.0", got.vars[oidSysUpTime], "1234"},
				{"snmpTrapOID.0", got.trapOID(), NotificationOID(p, GroupPartial)},
				{"sequence", got.obj(p, objSequence), "1"},
				{"server", got.obj(p, objServerName), "lockstep-a"},
				{"role", got.obj(p, objRole), "active"},
				{"event id", got.obj(p, objEventID), "LS2103E"},
				{"text", got.obj(p, objEventText), GroupPartial.Summary},
				{"fields", got.obj(p, objEventFields), `group=cg:prod serial=LAB.2107-75P0002 why="no answer"`},
				{"storage serial", got.obj(p, objStorageSerial), "LAB.2107-75P0002"},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
				}
			}
			if len(got.vars) != 9 {
				t.Errorf("%d varbinds, want 9: %v", len(got.vars), got.vars)
			}
			eventually(t, "the notification counted as sent", func() bool { return s.Stats()[0].Sent == 1 })
		})
	}
}

func TestWrongV3PassphraseIsNotReceived(t *testing.T) {
	t.Parallel()
	needTool(t, "snmptrapd")
	r := newSNMPRig(t)
	port := freeUDPPort(t)
	newSender := func(server, auth string, note config.Notification) *SNMP {
		cfg := r.cfg
		cfg.Managers = []config.Manager{r.v3(t, port, note, "lsuser", config.SHA256, config.AES, auth, privPass)}
		s, err := NewSNMP(cfg, server, nil, clock.NewFake(t0), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The same engine ID for all three (one file): only the passphrase
	// differs.
	good := newSender("good-server", authPass, config.Trap)
	badTrap := newSender("bad-trap", "not-the-passphrase", config.Trap)
	badInform := newSender("bad-inform", "not-the-passphrase", config.Inform)
	d := startTrapd(t, port, fmt.Sprintf("createUser -e %s lsuser SHA-256 %s AES %s\n"+
		"createUser lsuser SHA-256 %s AES %s\nauthUser log lsuser priv\n", r.engineHex(t), authPass, privPass, authPass, privPass))
	for _, s := range []*SNMP{good, badTrap, badInform} {
		runSNMP(t, s)
	}
	badTrap.Send(Takeover, nil)
	d.waitLine(t, func(l string) bool { return strings.Contains(l, "Authentication failed for lsuser") }, "the refused trap")
	badInform.Send(Takeover, nil)
	eventually(t, "the refused inform", func() bool { return badInform.Stats()[0].Failures >= 1 })
	good.Send(Takeover, nil)
	got := d.waitNotifications(t, 1)
	for _, n := range got {
		if server := n.obj(r.prefix, objServerName); server != "good-server" {
			t.Errorf("a notification with a wrong passphrase was received from %s", server)
		}
	}
	if st := badInform.Stats()[0]; st.Sent != 0 || st.Queued != 1 {
		t.Errorf("refused inform: %+v, want it unsent and still queued", st)
	}
}

func TestEveryNotificationArrivesGapFree(t *testing.T) {
	t.Parallel()
	d := startTrapd(t, 0, "disableAuthorization yes\n")
	r := newSNMPRig(t)
	r.cfg.Managers = []config.Manager{r.v2c(t, d.port, config.Inform, "public")}
	s, err := NewSNMP(r.cfg, "lockstep-a", func() string { return "standalone" }, clock.NewFake(t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	runSNMP(t, s)
	for _, e := range Catalog {
		s.Send(e, map[string]string{"event": e.Name}) // the non-trap ones are skipped
	}
	want := Notifications()
	got := d.waitNotifications(t, len(want))
	for i, n := range got {
		if seq := n.obj(r.prefix, objSequence); seq != fmt.Sprint(i+1) {
			t.Errorf("notification %d has sequence %s", i+1, seq)
		}
		if i < len(want) && n.trapOID() != NotificationOID(r.prefix, want[i]) {
			t.Errorf("notification %d is %s, want %s (%s)", i+1, n.trapOID(), NotificationOID(r.prefix, want[i]), want[i].Name)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d notifications, want %d", len(got), len(want))
	}
}

func TestCommFailureSentOncePerOutage(t *testing.T) {
	t.Parallel()
	d := startTrapd(t, 0, "disableAuthorization yes\n")
	r := newSNMPRig(t)
	r.cfg.Managers = []config.Manager{r.v2c(t, d.port, config.Inform, "public")}
	s, err := NewSNMP(r.cfg, "lockstep-a", nil, clock.NewFake(t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	runSNMP(t, s)
	for range 3 {
		s.CommFailure("LAB.2107-75P0001", false, "connection refused")
	}
	s.CommRecovered("LAB.2107-75P0001")
	s.CommRecovered("LAB.2107-75P0001")
	s.CommFailure("LAB.2107-75P0001", true, "no answer")
	s.CommFailure("LAB.2107-75P0001", true, "no answer")
	s.Send(ConfigChanged, nil) // a marker: nothing was sent between it and the rest
	got := d.waitNotifications(t, 4)
	var ids []string
	for _, n := range got {
		ids = append(ids, n.obj(r.prefix, objSequence)+" "+n.obj(r.prefix, objEventID)+" "+n.obj(r.prefix, objEventFields))
	}
	want := []string{
		`1 LS3001E cause=error detail="connection refused" serial=LAB.2107-75P0001`,
		`2 LS3002I serial=LAB.2107-75P0001`,
		`3 LS3001E cause=timeout detail="no answer" serial=LAB.2107-75P0001`,
		`4 LS6001I `,
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("received (-want +got):\n-%q\n+%q", want, ids)
	}
}

func TestInformsWaitForAReceiverThatComesUpLate(t *testing.T) {
	t.Parallel()
	needTool(t, "snmptrapd")
	r := newSNMPRig(t)
	port := freeUDPPort(t) // nobody listens yet
	r.cfg.Managers = []config.Manager{r.v2c(t, port, config.Inform, "public")}
	r.cfg.Managers[0].Retries = 1
	clk := clock.NewFake(t0)
	s, err := NewSNMP(r.cfg, "lockstep-a", nil, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	runSNMP(t, s)
	s.Send(Takeover, nil)
	s.Send(HAStateChanged, map[string]string{"state": "Synchronized"})
	eventually(t, "the manager counted unreachable", func() bool {
		if st := s.Stats()[0]; !st.Reachable {
			return true
		}
		if clk.Pending() > 0 { // the worker waits for its next attempt
			clk.Advance(maxRetryDelay)
		}
		return false
	})
	if st := s.Stats()[0]; st.Sent != 0 || st.Queued != 2 || st.Failures < 2 {
		t.Fatalf("while down: %+v", st)
	}
	d := startTrapd(t, port, "disableAuthorization yes\n")
	// The worker waits up to a minute between attempts, on the fake clock.
	eventually(t, "the queued informs", func() bool {
		if clk.Pending() > 0 {
			clk.Advance(maxRetryDelay)
		}
		return len(d.notifications()) >= 2
	})
	got := d.notifications()
	for i, want := range []Event{Takeover, HAStateChanged} {
		n := got[i]
		if n.trapOID() != NotificationOID(r.prefix, want) || n.obj(r.prefix, objSequence) != fmt.Sprint(i+1) ||
			!strings.HasPrefix(n.header, "INFORM") || n.vars[oidSysUpTime] != "0" {
			t.Errorf("notification %d: %s seq %s %q uptime %s, want %s seq %d, sent at 0", i+1, n.trapOID(),
				n.obj(r.prefix, objSequence), n.header, n.vars[oidSysUpTime], want.Name, i+1)
		}
	}
	eventually(t, "both acknowledged", func() bool { st := s.Stats()[0]; return st.Sent == 2 && st.Queued == 0 && st.Reachable })
}

func TestReloadKeepsUnchangedManagers(t *testing.T) {
	t.Parallel()
	a := startTrapd(t, 0, "disableAuthorization yes\n")
	b := startTrapd(t, 0, "disableAuthorization yes\n")
	r := newSNMPRig(t)
	ma, mb := r.v2c(t, a.port, config.Inform, "public"), r.v2c(t, b.port, config.Trap, "public")
	r.cfg.Managers = []config.Manager{ma}
	s, err := NewSNMP(r.cfg, "lockstep-a", nil, clock.NewFake(t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	runSNMP(t, s)
	seqs := func(d *trapd, n int) []string {
		var out []string
		for _, got := range d.waitNotifications(t, n) {
			out = append(out, got.obj(r.prefix, objSequence)+" "+got.obj(r.prefix, objEventID))
		}
		return out
	}
	s.Send(ConfigChanged, nil)
	seqs(a, 1)
	if err := s.SetManagers([]config.Manager{ma, mb}); err != nil {
		t.Fatal(err)
	}
	s.Send(HeartbeatSwitched, nil)
	if got := seqs(a, 2); !slices.Equal(got, []string{"1 LS6001I", "2 LS4002I"}) {
		t.Errorf("kept manager: %q, want its sequence to go on", got)
	}
	if got := seqs(b, 1); !slices.Equal(got, []string{"1 LS4002I"}) {
		t.Errorf("new manager: %q, want it to start at 1", got)
	}
	if err := s.SetManagers([]config.Manager{mb}); err != nil {
		t.Fatal(err)
	}
	s.Send(Takeover, nil)
	if got := seqs(b, 2); !slices.Equal(got, []string{"1 LS4002I", "2 LS5002W"}) {
		t.Errorf("kept manager: %q", got)
	}
	broken := mb
	broken.CommunityFile = r.dir + "/no-such-file"
	if err := s.SetManagers([]config.Manager{ma, broken}); err == nil {
		t.Fatal("a manager without its community file was accepted")
	}
	if st := s.Stats(); len(st) != 1 || st[0].Address != managerAddr(mb) || st[0].LastSeq != 2 {
		t.Fatalf("after a refused reload: %+v, want manager b alone, unchanged", st)
	}
	if n := len(a.notifications()); n != 2 {
		t.Fatalf("the removed manager got %d notifications, want 2", n)
	}
}
