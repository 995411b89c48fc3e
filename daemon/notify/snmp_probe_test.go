package notify

import (
	"context"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// TestTestNotificationPerManager: lockstepctl snmp test's notification
// reaches a real snmptrapd as an inform (acknowledged) and as a trap
// (sent), is numbered in each manager's sequence, and an inform to a
// port nobody answers is reported failed once its retries are used up.
func TestTestNotificationPerManager(t *testing.T) {
	t.Parallel()
	needTool(t, "snmptrapd")
	r := newSNMPRig(t)
	informs, traps := freeUDPPort(t), freeUDPPort(t)
	d1 := startTrapd(t, informs, "disableAuthorization yes\n")
	d2 := startTrapd(t, traps, "disableAuthorization yes\n")
	dead := r.v2c(t, freeUDPPort(t), config.Inform, "public")
	dead.Retries, dead.Timeout = 1, 100*time.Millisecond
	r.cfg.Managers = []config.Manager{r.v2c(t, informs, config.Inform, "public"), r.v2c(t, traps, config.Trap, "public"), dead}
	clk := clock.NewFake(t0)
	s, err := NewSNMP(r.cfg, "lockstep-a", nil, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	runSNMP(t, s)
	s.Send(Takeover, nil) // the test notification is the second of each stream
	done := make(chan []TestResult, 1)
	go func() { done <- s.Test(context.Background(), map[string]string{"by": "uid 0"}) }()
	var got []TestResult
	eventually(t, "every manager's outcome", func() bool {
		select {
		case got = <-done:
			return true
		default:
		}
		if clk.Pending() > 0 { // the dead manager's worker waits to retry
			clk.Advance(maxRetryDelay)
		}
		return false
	})
	want := []string{TestAcknowledged, TestSent, TestFailed}
	for i, res := range got {
		if res.Outcome != want[i] || res.Seq != 2 || (res.Err != nil) != (want[i] == TestFailed) {
			t.Errorf("manager %d (%s %s): %s seq %d err %v, want %s seq 2", i, res.Version, res.Notification,
				res.Outcome, res.Seq, res.Err, want[i])
		}
	}
	for _, d := range []*trapd{d1, d2} {
		ns := d.waitNotifications(t, 2)
		if n := ns[1]; n.trapOID() != NotificationOID(r.prefix, SNMPTest) || n.obj(r.prefix, objSequence) != "2" {
			t.Errorf("snmptrapd got %s seq %s, want snmpTest seq 2", n.trapOID(), n.obj(r.prefix, objSequence))
		}
	}
}

// TestTestNotificationPendingWhenTheCallerStops: a test that cannot be
// delivered before the caller's deadline says pending, not failed.
func TestTestNotificationPendingWhenTheCallerStops(t *testing.T) {
	t.Parallel()
	r := newSNMPRig(t)
	dead := r.v2c(t, freeUDPPort(t), config.Inform, "public")
	dead.Retries = 5
	r.cfg.Managers = []config.Manager{dead}
	s, err := NewSNMP(r.cfg, "lockstep-a", nil, clock.NewFake(t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	runSNMP(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := s.Test(ctx, nil); len(got) != 1 || got[0].Outcome != TestPending {
		t.Fatalf("%+v", got)
	}
}
