package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/privbus"
	"github.com/lockstep-io/lockstep/internal/smalldisk"
	"github.com/lockstep-io/lockstep/internal/snmpagent"
	"github.com/lockstep-io/lockstep/persist"
)

// TestJournalWatchProbesUntilSpaceReturns: a store opened on a full disk
// is reported unwritable at once (the probe at start), and writable again
// by the periodic probe once space returns, with nobody proposing
// anything. The probe runs on the injected clock (here synctest's).
func TestJournalWatchProbesUntilSpaceReturns(t *testing.T) {
	disk := smalldisk.Mount(t, 1<<20)
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(disk, "state")
		store, err := state.Open(dir, persist.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Propose(t.Context(), sessionRecord("s0")); err != nil {
			t.Fatal(err)
		}
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
		free := smalldisk.Fill(t, disk)
		// A restart on the full disk.
		if store, err = state.Open(dir, persist.Options{}); err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		type report struct {
			unwritable bool
			err        error
		}
		reports := make(chan report, 4)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		w := journalWatch{store: store, clock: clock.OrReal(nil),
			report: func(u bool, err error) { reports <- report{u, err} }}
		go func() { done <- w.run(ctx) }()

		synctest.Wait()
		select {
		case r := <-reports:
			if !r.unwritable || !errors.Is(r.err, persist.ErrNoSpace) {
				t.Fatalf("first report %+v, want unwritable with ErrNoSpace", r)
			}
		default:
			t.Fatal("a store on a full disk was not reported at start")
		}
		start := time.Now()
		time.Sleep(3 * JournalProbeInterval) // still full: probes fail, no new report
		synctest.Wait()
		if len(reports) != 0 {
			t.Fatalf("reported %+v while the disk stayed full", <-reports)
		}
		free()
		time.Sleep(JournalProbeInterval)
		synctest.Wait()
		select {
		case r := <-reports:
			if r.unwritable || r.err != nil {
				t.Fatalf("report after space returned %+v, want writable", r)
			}
		default:
			t.Fatalf("not reported writable %v after space returned", time.Since(start))
		}
		if err := store.Propose(ctx, sessionRecord("s1")); err != nil {
			t.Fatalf("proposal once reported writable: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// sessionRecord creates a session: a record any empty state takes.
func sessionRecord(name string) session.Record {
	return session.Record{Version: session.RecordVersion, Kind: session.KindSessionCreated, Session: name,
		At:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Create: &session.Create{Type: session.MetroMirrorSingleDirection, Policy: session.HoldIO}}
}

// recordingNotifier keeps every state sent to systemd.
type recordingNotifier struct {
	mu     sync.Mutex
	states []string
}

func (r *recordingNotifier) Notify(state string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, state)
	return nil
}

// last is the latest state that starts with prefix ("" if none).
func (r *recordingNotifier) last(prefix string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.states) - 1; i >= 0; i-- {
		if strings.HasPrefix(r.states[i], prefix) {
			return r.states[i]
		}
	}
	return ""
}

// trapSink is a real snmptrapd that the notifications go to.
type trapSink struct{ d *snmpagent.Trapd }

func newTrapSink(t *testing.T) *trapSink { return &trapSink{d: snmpagent.StartTrapd(t)} }

// addr is its loopback UDP address.
func (s *trapSink) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.d.Port) }

// await waits (up to 20 s) until snmptrapd received the notification of e.
func (s *trapSink) await(t *testing.T, e notify.Event) {
	t.Helper()
	want := fmt.Sprintf("OID: .%s.1.0.%d", config.DefaultEnterpriseOID, e.Code)
	err := s.d.Wait(context.Background(), 20*time.Second, func(l string) bool {
		i := strings.Index(l, want)
		return i >= 0 && (len(l) == i+len(want) || l[i+len(want)] == '\t')
	})
	if err != nil {
		t.Fatalf("no %s notification (%s) received by snmptrapd: %v", e.Name, want, err)
	}
}

// TestDaemonOnAFullDisk: issue 13 §3. lockstepd restarted while its
// disk is full starts (READY=1), says the journal cannot write in
// STATUS=, in a trap and in lockstepctl status, refuses changes with a
// clear error that moves nothing, and takes them again when space
// returns, with a trap; no acknowledged record is lost across it all.
func TestDaemonOnAFullDisk(t *testing.T) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dbus-daemon missing (make deps installs it)")
		}
		t.Skip("dbus-daemon missing")
	}
	disk := smalldisk.Mount(t, 4<<20)
	busDir := t.TempDir()
	addr, stopBus, err := privbus.Start(busDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopBus)
	traps := newTrapSink(t)
	community := filepath.Join(busDir, "community")
	if err := os.WriteFile(community, []byte("public\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Sprintf("[server]\nname = \"t\"\nstate_dir = %q\n[control]\nbus = %q\n"+
		"[[snmp.manager]]\naddress = \"udp://%s\"\nversion = \"v2c\"\ncommunity_file = %q\n",
		filepath.Join(disk, "state"), addr, traps.addr(), community))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// start runs a lockstepd until the returned stop.
	start := func(n Notifier) (*client.Client, func()) {
		t.Helper()
		srv, err := New(Options{Config: cfg, Notifier: n, Drivers: testDrivers()})
		if err != nil {
			t.Fatalf("lockstepd did not start: %v", err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- srv.Run(runCtx) }()
		conn, err := client.Connect(addr)
		if err != nil {
			t.Fatal(err)
		}
		c := client.New(conn)
		if err := eventually(func() bool { d, err := c.HAStatus(ctx); return err == nil && d.Acting }); err != nil {
			t.Fatal("lockstepd does not act")
		}
		return c, func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("lockstepd stopped with %v", err)
			}
			conn.Close()
		}
	}

	c, stop := start(&recordingNotifier{})
	if err := c.SessionCreate(ctx, "s1", api.MetroMirrorSingleDirection, "", api.HoldIO); err != nil {
		t.Fatal(err)
	}
	stop()

	free := smalldisk.Fill(t, disk)
	sd := &recordingNotifier{}
	c, stop = start(sd)
	defer func() { stop() }()
	if err := eventually(func() bool { return sd.last("READY=1") != "" }); err != nil {
		t.Fatal("no READY=1 on a full disk")
	}
	traps.await(t, notify.StateUnwritable)
	if err := eventually(func() bool { return strings.Contains(sd.last("STATUS="), "JOURNAL CANNOT WRITE") }); err != nil {
		t.Fatalf("STATUS= does not say the journal cannot write: %q", sd.last("STATUS="))
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Journal.Writable || !strings.Contains(st.Journal.Error, "no space left") {
		t.Fatalf("status journal %+v, want not writable, saying why", st.Journal)
	}
	events, err := c.Events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events, func(e api.EventDoc) bool { return e.ID == notify.StateUnwritable.ID() }) {
		t.Fatalf("no %s event: %+v", notify.StateUnwritable.ID(), events)
	}
	before, err := c.HAStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.HeartbeatSet(ctx, true)
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "journal cannot write") {
		t.Fatalf("heartbeat on with a full disk: %v, want refused, saying the journal cannot write", err)
	}
	if err := c.SessionCreate(ctx, "s2", api.MetroMirrorSingleDirection, "", api.HoldIO); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("session create with a full disk: %v", err)
	}
	after, err := c.HAStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hb, _ := c.HeartbeatShow(ctx); hb.Enabled || after.LastIndex != before.LastIndex {
		t.Fatalf("refused changes moved something: heartbeat %v, last index %d -> %d", hb.Enabled, before.LastIndex, after.LastIndex)
	}

	free()
	// The next change finds the space itself; no need to wait for the probe.
	if _, err := c.HeartbeatSet(ctx, true); err != nil {
		t.Fatalf("heartbeat on once space returned: %v", err)
	}
	traps.await(t, notify.StateWritable)
	if st, err := c.Status(ctx); err != nil || !st.Journal.Writable {
		t.Fatalf("status once space returned: %+v, %v", st.Journal, err)
	}
	if err := eventually(func() bool { return !strings.Contains(sd.last("STATUS="), "CANNOT") }); err != nil {
		t.Fatalf("STATUS= still says the journal cannot write: %q", sd.last("STATUS="))
	}
	stop()

	c, stop = start(&recordingNotifier{})
	list, err := c.SessionList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := c.HeartbeatShow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "s1" || !hb.Enabled {
		t.Fatalf("after a restart: sessions %+v, heartbeat %v; want s1 and the heartbeat on", list, hb.Enabled)
	}
}
