package hapair

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/state/statetest"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/lab"
)

// bin holds the lockstepd that TestMain builds: the tests run real
// processes.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hapair-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "lockstepd"), "github.com/lockstep-io/lockstep/cmd/lockstepd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building lockstepd: %v\n%s", err, out)
		os.Exit(1)
	}
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newPair starts a lab and both servers, a with a session defined (and
// the heartbeat on when heartbeat), and pairs them.
func newPair(t *testing.T, opt Options, heartbeat bool) *Pair {
	t.Helper()
	ctx := context.Background()
	opt.Bin, opt.Dir = bin, t.TempDir()
	p, err := New(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []*Node{p.A, p.B} {
				t.Logf("---- log of %s (tail)\n%s", n.Name, tail(n.Log(), 80))
			}
		}
		p.Close()
	})
	for _, n := range []*Node{p.A, p.B} {
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.DefineSession(ctx, p.A, heartbeat); err != nil {
		t.Fatal(err)
	}
	return p
}

func haStatus(t *testing.T, n *Node) api.HADoc {
	t.Helper()
	doc, err := n.Client().HAStatus(context.Background())
	if err != nil {
		t.Fatalf("%s: ha status: %v", n.Name, err)
	}
	return doc
}

// propsMatch waits until n's D-Bus properties say what its HA status
// says (role, HA state, epoch), in HA state state ("": any).
func propsMatch(ctx context.Context, n *Node, state string) error {
	return Eventually(ctx, 10*time.Second, func() error {
		doc, err := n.Client().HAStatus(ctx)
		if err != nil {
			return err
		}
		p, err := n.Client().Properties(ctx)
		if err != nil {
			return err
		}
		if state != "" && doc.State != state || p.Role != doc.Role || p.HAState != doc.State || p.Epoch != doc.Epoch {
			return fmt.Errorf("%s: properties %s/%s epoch %d, HA status %s/%s epoch %d, want %s",
				n.Name, p.Role, p.HAState, p.Epoch, doc.Role, doc.State, doc.Epoch, state)
		}
		return nil
	})
}

func sessionNames(t *testing.T, n *Node) []string {
	t.Helper()
	list, err := n.Client().SessionList(context.Background())
	if err != nil {
		t.Fatalf("%s: session list: %v", n.Name, err)
	}
	var out []string
	for _, s := range list {
		out = append(out, s.Name+"/"+s.State.Label())
	}
	slices.Sort(out)
	return out
}

func backups(t *testing.T, n *Node) int {
	t.Helper()
	list, err := n.Client().BackupList(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// TestPairLifecycle walks ha/doc.go with two real processes: sync,
// stream (each answer waits for the standby's fsync), the standby
// refusing changes, disconnect to Disconnected Consistent, automatic
// reconnection with an autobackup, takeover (S4: no freeze, the new active
// keeps the heartbeat), and the old active demoting itself when it
// returns, then becoming the new active's standby.
func TestPairLifecycle(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, Options{}, true)
	bBackups := backups(t, p.B)
	if err := p.PairFromStandby(ctx); err != nil {
		t.Fatal(err)
	}
	if got := backups(t, p.B); got != bBackups+1 {
		t.Fatalf("the standby took %d backups before its first sync, want 1", got-bBackups)
	}
	a, b := haStatus(t, p.A), haStatus(t, p.B)
	if a.Role != "active" || b.Role != "standby" || !a.Acting || b.Acting {
		t.Fatalf("roles: a %s acting %t, b %s acting %t", a.Role, a.Acting, b.Role, b.Acting)
	}
	// Each knows its partner's role (issue 18 §3).
	if a.PartnerRole != "standby" || b.PartnerRole != "active" {
		t.Fatalf("partner roles: a says %q, b says %q; want standby, active", a.PartnerRole, b.PartnerRole)
	}
	if !slices.Equal(sessionNames(t, p.A), sessionNames(t, p.B)) {
		t.Fatalf("after the sync the standby differs: %v vs %v", sessionNames(t, p.B), sessionNames(t, p.A))
	}
	// The D-Bus properties follow the HA state (issue 14 §4).
	for _, n := range []*Node{p.A, p.B} {
		if err := propsMatch(ctx, n, "Synchronized"); err != nil {
			t.Fatal(err)
		}
	}

	// Stream: the answer comes after the standby's fsync, so the standby
	// shows the change the moment the active answered.
	for i := range 20 {
		name := fmt.Sprintf("stream-%d", i)
		if err := p.A.Client().SessionCreate(ctx, name, api.MetroMirrorFailoverFailback, "", api.HoldIO); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(sessionNames(t, p.B), name+"/Defined") {
			t.Fatalf("the active answered %s before the standby had it", name)
		}
	}
	if a, b := haStatus(t, p.A), haStatus(t, p.B); a.LastIndex != b.LastIndex || a.StandbyLag == nil || *a.StandbyLag != 0 {
		t.Fatalf("last index a %d b %d, lag %v", a.LastIndex, b.LastIndex, a.StandbyLag)
	}

	// Removing the active on a synchronized standby is refused: remove
	// the standby on the active instead.
	if err := p.B.Client().HARemoveActive(ctx); err == nil {
		t.Fatal("ha remove-active on a synchronized standby was accepted")
	}

	// The standby issues nothing.
	err := p.B.Client().SessionCreate(ctx, "on-standby", api.MetroMirrorFailoverFailback, "", api.HoldIO)
	if err == nil || !strings.Contains(err.Error(), "issues nothing") {
		t.Fatalf("a change on the standby: %v", err)
	}

	// Disconnect while synchronized: Disconnected Consistent on both.
	p.A.Relay.Cut()
	p.B.Relay.Cut()
	if err := p.WaitState(ctx, 10*time.Second, "Disconnected Consistent", p.A, p.B); err != nil {
		t.Fatal(err)
	}
	if err := propsMatch(ctx, p.B, "Disconnected Consistent"); err != nil {
		t.Fatal(err)
	}
	if a, b := haStatus(t, p.A), haStatus(t, p.B); a.PartnerRole != "standby" || b.PartnerRole != "active" {
		t.Fatalf("apart, partner roles as last heard: a says %q, b says %q; want standby, active", a.PartnerRole, b.PartnerRole)
	}
	// A change while disconnected is answered at once.
	if err := p.A.Client().SessionCreate(ctx, "while-apart", api.MetroMirrorFailoverFailback, "", api.HoldIO); err != nil {
		t.Fatal(err)
	}

	// Automatic reconnection, with an autobackup on the standby first.
	bBackups = backups(t, p.B)
	p.A.Relay.Heal()
	p.B.Relay.Heal()
	if err := p.WaitState(ctx, 10*time.Second, "Synchronized", p.A, p.B); err != nil {
		t.Fatal(err)
	}
	if got := backups(t, p.B); got <= bBackups {
		t.Fatalf("no autobackup before the resync (%d backups, %d before)", got, bBackups)
	}
	if !slices.Contains(sessionNames(t, p.B), "while-apart/Defined") {
		t.Fatal("the resync did not bring the change made while apart")
	}

	// S4: the active dies; takeover on the standby.
	before := haStatus(t, p.B)
	p.A.Kill()
	doc, err := p.B.Client().HATakeover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Epoch <= before.Epoch || len(doc.Unreachable) != 0 {
		t.Fatalf("takeover: epoch %d (was %d), unreachable %v", doc.Epoch, before.Epoch, doc.Unreachable)
	}
	if err := propsMatch(ctx, p.B, ""); err != nil {
		t.Fatal(err)
	}
	if props, err := p.B.Client().Properties(ctx); err != nil || props.Role != "active" || props.Epoch != doc.Epoch {
		t.Fatalf("properties after the takeover: %+v, %v; want active with epoch %d", props, err, doc.Epoch)
	}
	if err := Eventually(ctx, 5*time.Second, func() error {
		hb, err := p.B.Client().HeartbeatShow(ctx)
		if err != nil {
			return err
		}
		if len(hb.Groups) == 0 {
			return fmt.Errorf("no heartbeat group on the new active")
		}
		for _, g := range hb.Groups {
			for _, m := range g.Systems {
				if !m.Armed {
					return fmt.Errorf("group %s: %s not armed", g.Name, m.Serial)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Longer than the heartbeat timeout of the storage systems, had
	// nobody taken it over: still no freeze.
	time.Sleep(3 * time.Second)
	se, err := p.B.Client().SessionShow(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if se.State != api.StatePrepared {
		t.Fatalf("after the takeover the session is %s, want Prepared (no freeze)", se.State)
	}
	assertNoFreeze(t, p)

	// The old active comes back: it learns of the higher epoch (from the
	// storage systems or the new active) and stops acting at once, then
	// becomes the new active's standby.
	if err := p.A.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Eventually(ctx, 15*time.Second, func() error {
		a := haStatus(t, p.A)
		if a.Role == "active" || a.Acting {
			return fmt.Errorf("old active still %s (acting %t)", a.Role, a.Acting)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := Eventually(ctx, 20*time.Second, func() error {
		if haStatus(t, p.A).Role != "standby" {
			_ = p.B.Client().HAReconnect(ctx)
		}
		return p.WaitState(ctx, 2*time.Second, "Synchronized", p.A, p.B)
	}); err != nil {
		t.Fatal(err)
	}
	if a, b := haStatus(t, p.A), haStatus(t, p.B); a.Role != "standby" || b.Role != "active" || a.Epoch != b.Epoch {
		t.Fatalf("after the return: a %s epoch %d, b %s epoch %d", a.Role, a.Epoch, b.Role, b.Epoch)
	} else if a.PartnerRole != "active" || b.PartnerRole != "standby" {
		t.Fatalf("after the return, partner roles: a says %q, b says %q; want active, standby", a.PartnerRole, b.PartnerRole)
	}
	if !slices.Equal(sessionNames(t, p.A), sessionNames(t, p.B)) {
		t.Fatalf("the old active, now standby, differs: %v vs %v", sessionNames(t, p.A), sessionNames(t, p.B))
	}
}

// TestS4 is internal/scenario/doc.go's S4 with two real servers: the active dies
// while the workload writes; the administrator takes over on the standby
// within the heartbeat timeout H: nothing freezes, the new active keeps
// the heartbeat, and the oracle finds the secondary image consistent.
func TestS4(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, Options{}, true)
	if err := p.Pair(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Lab.Workload(ctx, lab.WorkloadParam{Action: "start", Chains: 8, VolumesPerChain: 4, Think: "5ms"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	p.A.Kill()
	time.Sleep(500 * time.Millisecond)
	if _, err := p.B.Client().HATakeover(ctx); err != nil {
		t.Fatal(err)
	}
	_, before, err := p.Lab.Check()
	if err != nil {
		t.Fatal(err)
	}
	// Longer than H (6.5 s for these 10 s CG timeouts would be too long
	// for a unit test; the storage systems' heartbeat expiry is what H
	// bounds, and the new active re-arms it within a tick).
	time.Sleep(3 * time.Second)
	if _, err := p.Lab.Workload(ctx, lab.WorkloadParam{Action: "stop"}); err != nil {
		t.Fatal(err)
	}
	rep, after, err := p.Lab.Check()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Consistent {
		t.Fatalf("S4: the oracle finds the secondary inconsistent: %s", rep)
	}
	if after.Writes <= before.Writes {
		t.Fatalf("S4: the workload stopped writing after the takeover (%d, then %d writes)", before.Writes, after.Writes)
	}
	assertNoFreeze(t, p)
	se, err := p.B.Client().SessionShow(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if se.State != api.StatePrepared {
		t.Fatalf("S4: the session is %s on the new active, want Prepared", se.State)
	}
	t.Logf("S4: %d acknowledged writes, %s", after.Writes, rep)
}

// assertNoFreeze checks that every pair of the lab still mirrors. It
// reads with each system's own epoch, as an observer the HA checks
// ignore.
func assertNoFreeze(t *testing.T, p *Pair) {
	t.Helper()
	for _, sys := range p.Lab.Fabric().Systems() {
		pairs, err := sys.Connect(observer).QueryPairs(context.Background(), sys.Epoch())
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range pairs {
			if pr.State == hal.Suspended || pr.State == hal.TargetSuspended {
				t.Fatalf("%s: pair %s is %s (%s): something froze", sys.Serial(), pr.VolumePair, pr.State, pr.Reason)
			}
		}
	}
}

// observer is the manager name of the test's own reads of the lab.
const observer = "hapair-observer"

// TestWrongCertificateRefused: a partner whose certificate another CA
// signed never links.
func TestWrongCertificateRefused(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, Options{Rogue: true}, false)
	if err := p.B.Client().HASetAsStandby(ctx, p.A.Addr(), p.A.Name); err != nil {
		t.Fatal(err)
	}
	if err := p.A.Client().HASetStandby(ctx, p.B.Addr(), p.B.Name); err != nil {
		t.Fatal(err)
	}
	err := p.WaitState(ctx, 3*time.Second, "Synchronized", p.A)
	if err == nil {
		t.Fatal("a pair with a certificate of another CA synchronized")
	}
	if !strings.Contains(p.A.Log()+p.B.Log(), "certificate") {
		t.Fatalf("no certificate error logged")
	}
	if a := haStatus(t, p.A); a.Role != "active" || !a.Acting {
		t.Fatalf("the active stopped acting: %s", a.Role)
	}
}

// TestSyncKilledMidway: the active dies while its standby installs the
// first snapshot (100 000 copy sets): the standby restores the backup it
// took before the sync, ends Disconnected, and holds exactly its state of
// before.
func TestSyncKilledMidway(t *testing.T) {
	ctx := context.Background()
	opt := Options{Bin: bin, Dir: t.TempDir()}
	p, err := New(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- log of b (tail)\n%s", tail(p.B.Log(), 60))
		}
		p.Close()
	})
	statetest.Fill100k(t, filepath.Join(p.A.Dir, "state"), statetest.Records-100)
	for _, n := range []*Node{p.A, p.B} {
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before, last, backupsBefore := sessionNames(t, p.B), haStatus(t, p.B).LastIndex, backups(t, p.B)
	if err := p.B.Client().HASetAsStandby(ctx, p.A.Addr(), p.A.Name); err != nil {
		t.Fatal(err)
	}
	// The backup is taken, the snapshot on its way: kill the active.
	if err := Eventually(ctx, 20*time.Second, func() error {
		if st := haStatus(t, p.B); st.SyncPhase != "snapshot" {
			return fmt.Errorf("standby %s, phase %q", st.State, st.SyncPhase)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if backups(t, p.B) != backupsBefore+1 {
		t.Fatal("the standby synchronizes without a backup")
	}
	p.A.Kill()
	if st := haStatus(t, p.B); st.State == "Synchronized" {
		t.Fatalf("the sync ended before the kill (%s): nothing was killed midway", st.State)
	}
	if err := p.WaitState(ctx, 15*time.Second, "Disconnected", p.B); err != nil {
		t.Fatal(err)
	}
	// The restore runs once the link is down; its log line says it ended.
	if err := Eventually(ctx, 20*time.Second, func() error {
		if !strings.Contains(p.B.Log(), "state restored from") {
			return fmt.Errorf("the standby did not log the restore of its backup")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after := haStatus(t, p.B)
	if after.LastIndex != last || !slices.Equal(sessionNames(t, p.B), before) {
		t.Fatalf("after the failed sync the standby is at record %d with %d sessions, want %d and %d (its backup)",
			after.LastIndex, len(sessionNames(t, p.B)), last, len(before))
	}
}

// TestPeerTimeoutHint: a standby address that swallows the connection (a
// firewall that drops it) makes the active log, once the handshake times
// out, the rule that would let the connection through (docs/operations.md).
func TestPeerTimeoutHint(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, Options{}, false)
	p.B.Relay.Blackhole()
	if err := p.A.Client().HASetStandby(ctx, p.B.Addr(), p.B.Name); err != nil {
		t.Fatal(err)
	}
	if err := Eventually(ctx, 25*time.Second, func() error {
		for _, line := range strings.Split(p.A.Log(), "\n") {
			if strings.Contains(line, "connection to the HA peer timed out") && strings.Contains(line, "rule=") {
				t.Logf("logged: %s", line)
				return nil
			}
		}
		return fmt.Errorf("no firewall hint logged")
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRestartRemembersTheHighestEpoch: a server that learned of a higher
// epoch (its former standby took over while it was down), and that is
// killed again before it could synchronize, must not forget that epoch:
// a takeover on it afterwards goes above the epoch the other server acts
// with. Storage accepts a command whose epoch equals the highest it has
// seen, so two servers with one epoch would both act (seen under load:
// "both acting: a epoch 102, b epoch 102").
func TestRestartRemembersTheHighestEpoch(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, Options{}, false)
	if err := p.Pair(ctx); err != nil {
		t.Fatal(err)
	}
	// The partition keeps a from synchronizing with b until the end.
	p.A.Relay.Cut()
	p.B.Relay.Cut()
	p.A.Kill()
	took, err := p.B.Client().HATakeover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bEpoch := haStatus(t, p.B).Epoch
	// a comes back as the active of its old epoch; storage refuses its
	// fence: it is demoted, having seen b's epoch.
	if err := p.A.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitState(ctx, 20*time.Second, "Disconnected", p.A); err != nil {
		t.Fatal(err)
	}
	if st := haStatus(t, p.A); st.Role != "disconnected-standby" || st.Acting {
		t.Fatalf("a after its restart: %s, acting %v; want a disconnected standby", st.Role, st.Acting)
	}
	p.A.Kill()
	if err := p.A.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.A.Client().HATakeover(ctx); err != nil {
		t.Fatal(err)
	}
	a := haStatus(t, p.A)
	if a.Epoch <= bEpoch {
		t.Fatalf("a took over with epoch %d; b acts with %d (its takeover: %+v)", a.Epoch, bEpoch, took)
	}
	// b is fenced by a's epoch at its next command, and stops acting.
	if err := Eventually(ctx, 20*time.Second, func() error {
		if b := haStatus(t, p.B); b.Acting {
			return fmt.Errorf("b still acts with epoch %d", b.Epoch)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	recs, _ := p.Lab.Fabric().Commands(0)
	if _, err := checkCommands(recs); err != nil {
		t.Fatal(err)
	}
}
