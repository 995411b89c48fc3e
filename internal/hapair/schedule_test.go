package hapair

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
)

// envInt reads a count from the environment (make soak raises them).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// sample is one view a server took of itself: role, epoch and whether
// it acts, one snapshot stamped by the server's own clock while it
// answered (HADoc.At). sent and recv bracket the call on the test's
// clock.
type sample struct {
	at         time.Time
	sent, recv time.Time
	node       string
	role       string
	epoch      hal.Epoch
	acting     bool
}

func (s sample) String() string {
	act := "not acting"
	if s.acting {
		act = "acting"
	}
	return fmt.Sprintf("%s %s (%s, epoch %d) at %s", s.node, act, s.role, s.epoch, s.at.Format("15:04:05.000000"))
}

// roleRecorder polls both servers' HA status, each on its own goroutine
// (a paused server does not answer, which must not stop the other's
// samples).
type roleRecorder struct {
	mu      sync.Mutex
	samples []sample
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

func recordRoles(p *Pair) *roleRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &roleRecorder{stop: cancel}
	for _, n := range []*Node{p.A, p.B} {
		r.wg.Go(func() {
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
				sent := time.Now()
				doc, err := n.Client().HAStatus(cctx)
				recv := time.Now()
				ccancel()
				if err == nil {
					r.mu.Lock()
					r.samples = append(r.samples, sample{at: doc.At, sent: sent, recv: recv, node: n.Name,
						role: doc.Role, epoch: doc.Epoch, acting: doc.Acting})
					r.mu.Unlock()
				}
				select {
				case <-ctx.Done():
				case <-time.After(15 * time.Millisecond):
				}
			}
		})
	}
	return r
}

// take returns the samples since the last take.
func (r *roleRecorder) take() []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.samples
	r.samples = nil
	return out
}

func (r *roleRecorder) close() {
	r.stop()
	r.wg.Wait()
}

// actingOverlaps checks the servers' views of themselves: no view shows
// a server acting in a role that does not act, and two servers never
// acted with the same epoch at once (the storage systems could not tell
// their commands apart). It returns the longest time both acted with
// different epochs (a former active that had not yet heard of the
// takeover: harmless once storage is fenced, checked by checkCommands).
//
// Times are the servers' own stamps, not the moment the test read the
// answer (a reply delayed by a loaded machine would stretch an interval
// by its delay): both servers run on this host and stamp with the same
// CLOCK_REALTIME, which the test reads too, so each stamp must lie
// within its call; a stamp outside it (the clock stepped) fails the
// check rather than passing or failing it silently.
func actingOverlaps(samples []sample) (worst time.Duration, err error) {
	type span struct{ from, to sample }
	for _, s := range samples {
		switch {
		case s.at.IsZero():
			return 0, fmt.Errorf("%s: a view without the server's time", s.node)
		case s.at.Before(s.sent) || s.at.After(s.recv):
			return 0, fmt.Errorf("%s: view stamped %s, outside its call (%s to %s): was the clock stepped?", s.node,
				s.at.Format("15:04:05.000000"), s.sent.Format("15:04:05.000000"), s.recv.Format("15:04:05.000000"))
		case s.acting && s.role != "active" && s.role != "standalone":
			return 0, fmt.Errorf("ha status shows a server acting in a role that does not act: %v", s)
		}
	}
	samples = slices.Clone(samples)
	slices.SortStableFunc(samples, func(x, y sample) int { return x.at.Compare(y.at) })
	spans := map[string][]span{}
	last := map[string]*sample{}
	for i := range samples {
		s := &samples[i]
		prev := last[s.node]
		last[s.node] = s
		if prev == nil || !prev.acting || !s.acting || prev.epoch != s.epoch {
			continue
		}
		// Acting with the same epoch at both views: assume it held in
		// between (the conservative reading).
		spans[s.node] = append(spans[s.node], span{*prev, *s})
	}
	var nodes []string
	for n := range spans {
		nodes = append(nodes, n)
	}
	if len(nodes) < 2 {
		return 0, nil
	}
	for _, x := range spans[nodes[0]] {
		for _, y := range spans[nodes[1]] {
			from, to := x.from.at, x.to.at
			if y.from.at.After(from) {
				from = y.from.at
			}
			if y.to.at.Before(to) {
				to = y.to.at
			}
			if !to.After(from) {
				continue
			}
			if x.from.epoch == y.from.epoch {
				return worst, fmt.Errorf("%s and %s both acting with epoch %d from %s to %s (server stamps): %v .. %v; %v .. %v",
					nodes[0], nodes[1], x.from.epoch, from.Format("15:04:05.000000"), to.Format("15:04:05.000000"),
					x.from, x.to, y.from, y.to)
			}
			worst = max(worst, to.Sub(from))
		}
	}
	return worst, nil
}

// checkCommands checks what the storage systems accepted: per system the
// epochs never go down; one epoch is one server's; and the acting
// periods never overlap: every command of an epoch was judged before the
// first command of any higher epoch other than its fence (query-paths,
// which the new active sends to every system before it issues anything
// else).
func checkCommands(recs []emu.CommandRecord) (accepted int, err error) {
	lastEpoch := map[hal.Serial]hal.Epoch{}
	owner := map[hal.Epoch]string{}
	lastSeq := map[hal.Epoch]uint64{}
	firstAct := map[hal.Epoch]uint64{}
	for _, r := range recs {
		if r.Manager == observer || r.Outcome == emu.OutcomeFenced {
			continue
		}
		accepted++
		if r.Epoch < lastEpoch[r.Serial] {
			return accepted, fmt.Errorf("%s accepted %s of epoch %d after epoch %d (seq %d)", r.Serial, r.Op, r.Epoch,
				lastEpoch[r.Serial], r.Seq)
		}
		lastEpoch[r.Serial] = r.Epoch
		if o, ok := owner[r.Epoch]; ok && o != r.Manager {
			return accepted, fmt.Errorf("epoch %d used by %s and %s (seq %d)", r.Epoch, o, r.Manager, r.Seq)
		}
		owner[r.Epoch] = r.Manager
		lastSeq[r.Epoch] = r.Seq
		if _, ok := firstAct[r.Epoch]; !ok && r.Op != emu.OpQueryPaths {
			firstAct[r.Epoch] = r.Seq
		}
	}
	for lo, last := range lastSeq {
		for hi, first := range firstAct {
			if hi > lo && first < last {
				return accepted, fmt.Errorf("two actives: epoch %d (%s) acted at seq %d, and epoch %d (%s) still had a command accepted at seq %d",
					hi, owner[hi], first, lo, owner[lo], last)
			}
		}
	}
	return accepted, nil
}

// converge heals everything and waits until one server is the active and
// the other its synchronized standby, reconnecting from the active.
func converge(ctx context.Context, p *Pair) error {
	for _, n := range []*Node{p.A, p.B} {
		n.Relay.Heal()
		if n.Running() {
			n.Signal(syscall.SIGCONT)
		} else if err := n.Start(ctx); err != nil {
			return err
		}
	}
	lastKick := time.Time{}
	return Eventually(ctx, 30*time.Second, func() error {
		a, errA := p.A.Client().HAStatus(ctx)
		b, errB := p.B.Client().HAStatus(ctx)
		if errA != nil || errB != nil {
			return fmt.Errorf("status: %v %v", errA, errB)
		}
		if a.State == "Synchronized" && b.State == "Synchronized" && a.Acting != b.Acting {
			return nil
		}
		active := p.A
		switch {
		case a.Acting && b.Acting:
			return fmt.Errorf("both acting: a epoch %d, b epoch %d", a.Epoch, b.Epoch)
		case b.Acting:
			active = p.B
		case !a.Acting:
			return fmt.Errorf("nobody acts: a %s/%s, b %s/%s", a.Role, a.State, b.Role, b.State)
		}
		if time.Since(lastKick) > 1500*time.Millisecond {
			lastKick = time.Now()
			_ = active.Client().HAReconnect(ctx)
		}
		return fmt.Errorf("a %s/%s, b %s/%s", a.Role, a.State, b.Role, b.State)
	})
}

// remirror starts the session again on the active if a schedule froze it
// (a paused active freezes on doubt when it resumes), so that the next
// schedule runs with the heartbeat armed; it reports whether it had to.
func remirror(ctx context.Context, p *Pair) (bool, error) {
	active, _ := roles(ctx, p)
	se, err := active.Client().SessionShow(ctx, "prod")
	if err != nil {
		return false, err
	}
	if se.State == api.StatePrepared {
		return false, nil
	}
	return true, Eventually(ctx, 30*time.Second, func() error {
		doc, err := active.Client().SessionCommand(ctx, "prod", api.CmdStartH1H2)
		if err == nil && doc.State == api.StatePrepared {
			return nil
		}
		if doc, err = active.Client().SessionCommand(ctx, "prod", api.CmdRefresh); err != nil {
			return err
		}
		if doc.State != api.StatePrepared {
			return fmt.Errorf("session %s", doc.State)
		}
		return nil
	})
}

// roles returns the acting server and the other one.
func roles(ctx context.Context, p *Pair) (active, standby *Node) {
	if doc, err := p.B.Client().HAStatus(ctx); err == nil && doc.Acting {
		return p.B, p.A
	}
	return p.A, p.B
}

// TestRandomSchedules: seeded schedules of partitions (relay cut or
// black hole), pauses (SIGSTOP/SIGCONT), kills (SIGKILL and restart),
// takeovers and changes, at random times, on one pair whose every
// server's view of itself (role, epoch, acting: one snapshot stamped by
// the server's clock) is sampled, and whose every command the lab's
// storage systems judged is logged. Zero views of a standby acting, zero
// intervals with two servers acting under one epoch, zero commands
// accepted from a stale epoch once a higher one acted.
//
// LOCKSTEP_HA_SCHEDULES (default 10) schedules run from seed
// LOCKSTEP_HA_SEED (default 1); with LOCKSTEP_HA_FOR (a duration, make
// soak) no new schedule starts once it has passed. They all run on one
// pair, one after the other, so a failing seed cannot be replayed
// alone: every operation (with its node and its pause) is written as it
// runs, one JSON line each, to schedules.jsonl in the test's artifact
// directory, whose path the test prints (go test -artifacts keeps it,
// under -outputdir; make test passes both). LOCKSTEP_HA_REPLAY=FILE
// replays such a file on a fresh pair, operation by operation, with the
// same checks after each schedule, and stops after its last one (timing
// still differs: a takeover accepted then may be refused now).
func TestRandomSchedules(t *testing.T) {
	ctx := context.Background()
	plan, err := schedulePlan()
	if err != nil {
		t.Fatal(err)
	}
	oplog, err := newOpLog(filepath.Join(t.ArtifactDir(), "schedules.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer oplog.close()
	t.Logf("operations run: %s (LOCKSTEP_HA_REPLAY=%s replays them; %s)", oplog.path, oplog.path, loadAvg())
	p := newPair(t, Options{}, true)
	if err := p.Pair(ctx); err != nil {
		t.Fatal(err)
	}
	rec := recordRoles(p)
	defer rec.close()
	var seq uint64
	var worst time.Duration
	totalAccepted, takeovers, refrozen, fencedRefused := 0, 0, 0, 0
	byOp := map[string]int{}
	var deadline time.Time
	if d, err := time.ParseDuration(os.Getenv("LOCKSTEP_HA_FOR")); err == nil && d > 0 {
		deadline = time.Now().Add(d)
	}
	ran := 0
	for i, sch := range plan {
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		ran++
		r := &runner{ctx: ctx, t: t, p: p, log: oplog, schedule: i, seed: sch.seed}
		if sch.ops != nil {
			for _, op := range sch.ops {
				r.do(op)
			}
		} else {
			r.random()
		}
		takeovers += r.takeovers
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d (%v): %s\nthe operations so far: %s (LOCKSTEP_HA_REPLAY=%s replays them)",
				sch.seed, r.steps, fmt.Sprintf(format, args...), oplog.path, oplog.path)
		}
		if err := converge(ctx, p); err != nil {
			fail("the pair did not converge: %v", err)
		}
		if again, err := remirror(ctx, p); err != nil {
			fail("the session does not mirror again: %v", err)
		} else if again {
			refrozen++
		}
		// The storage systems' command log first: it cannot lie, and it
		// says whether a view that looks wrong did any harm.
		recs, dropped := p.Lab.Fabric().Commands(seq)
		if dropped > 0 {
			fail("the command log dropped %d records", dropped)
		}
		if len(recs) > 0 {
			seq = recs[len(recs)-1].Seq
		}
		for _, r := range recs {
			if r.Manager != observer {
				byOp[r.Op+"/"+r.Outcome]++
				if r.Outcome == emu.OutcomeFenced {
					fencedRefused++
				}
			}
		}
		acc, cmdErr := checkCommands(recs)
		totalAccepted += acc
		w, viewErr := actingOverlaps(rec.take())
		switch {
		case viewErr != nil && cmdErr == nil:
			fail("%v\nthe storage command log of the schedule is sound (%d commands accepted, none of a stale epoch)", viewErr, acc)
		case viewErr != nil || cmdErr != nil:
			fail("views: %v; storage command log: %v", viewErr, cmdErr)
		}
		worst = max(worst, w)
	}
	n := ran
	t.Logf("%d schedules (seeds %d-%d), %d takeovers accepted, %d storage commands accepted, %d refused as fenced, %d freezes on doubt (session started again): 0 views of a standby acting, 0 intervals with two actives under one epoch, 0 stale-epoch commands accepted after a higher epoch acted; a former active's own view lagged by at most %v; %s",
		n, plan[0].seed, plan[n-1].seed, takeovers, totalAccepted, fencedRefused, refrozen, worst.Round(time.Millisecond), loadAvg())
	t.Logf("storage commands by operation/outcome: %v", byOp)
}

// plannedSchedule is one schedule to run: generated from its seed, or
// the operations of a replayed file.
type plannedSchedule struct {
	seed uint64
	ops  []string
}

// schedulePlan is what TestRandomSchedules runs: LOCKSTEP_HA_REPLAY's
// file, or the seeds.
func schedulePlan() ([]plannedSchedule, error) {
	if path := os.Getenv("LOCKSTEP_HA_REPLAY"); path != "" {
		return readOpLog(path)
	}
	n := envInt("LOCKSTEP_HA_SCHEDULES", 10)
	base := uint64(envInt("LOCKSTEP_HA_SEED", 1))
	plan := make([]plannedSchedule, n)
	for i := range plan {
		plan[i].seed = base + uint64(i)
	}
	return plan, nil
}

// opLine is one line of the operations file.
type opLine struct {
	Schedule int    `json:"schedule"` // its index in the run, from 0
	Seed     uint64 `json:"seed"`
	Op       string `json:"op"`
}

// opLog writes the operations as they run: a run that hangs or is
// killed by the test timeout leaves them all, the one in progress last.
type opLog struct {
	path string
	f    *os.File
	enc  *json.Encoder
}

func newOpLog(path string) (*opLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &opLog{path: path, f: f, enc: json.NewEncoder(f)}, nil
}

func (l *opLog) write(line opLine) error { return l.enc.Encode(line) }
func (l *opLog) close()                  { l.f.Close() }

// readOpLog reads an operations file into schedules, in order.
func readOpLog(path string) ([]plannedSchedule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var plan []plannedSchedule
	for i, text := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var l opLine
		if err := json.Unmarshal([]byte(text), &l); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		if err := checkOp(l.Op); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		switch {
		case len(plan) > 0 && l.Schedule == len(plan)-1:
		case l.Schedule == len(plan):
			plan = append(plan, plannedSchedule{seed: l.Seed, ops: []string{}})
		default:
			return nil, fmt.Errorf("%s:%d: schedule %d out of order", path, i+1, l.Schedule)
		}
		plan[l.Schedule].ops = append(plan[l.Schedule].ops, l.Op)
	}
	if len(plan) == 0 {
		return nil, fmt.Errorf("%s: no operations", path)
	}
	return plan, nil
}

// checkOp validates an operation of a file.
func checkOp(op string) error {
	f := strings.Fields(op)
	want := map[string]int{"cut": 1, "blackhole": 1, "heal": 1, "sleep": 2, "stop": 2, "cont": 2, "kill": 2,
		"start": 2, "takeover": 2, "change": 3}
	if len(f) == 0 || want[f[0]] != len(f) {
		return fmt.Errorf("unknown operation %q", op)
	}
	if f[0] == "sleep" {
		if ms, err := strconv.Atoi(f[1]); err != nil || ms < 0 {
			return fmt.Errorf("bad pause in %q", op)
		}
	}
	return nil
}

// runner runs one schedule's operations on the pair, each written to the
// operations file before it runs.
type runner struct {
	ctx      context.Context
	t        *testing.T
	p        *Pair
	log      *opLog
	schedule int
	seed     uint64

	steps     []string // what a failure message shows
	takeovers int
}

func (r *runner) node(name string) *Node {
	if name == r.p.A.Name {
		return r.p.A
	}
	return r.p.B
}

// do runs one operation (see checkOp for the forms).
func (r *runner) do(op string) {
	r.t.Helper()
	if err := r.log.write(opLine{Schedule: r.schedule, Seed: r.seed, Op: op}); err != nil {
		r.t.Fatal(err)
	}
	f := strings.Fields(op)
	var n *Node
	if len(f) > 1 && f[0] != "sleep" {
		n = r.node(f[1])
	}
	switch f[0] {
	case "cut":
		r.steps = append(r.steps, op)
		r.p.A.Relay.Cut()
		r.p.B.Relay.Cut()
	case "blackhole":
		r.steps = append(r.steps, op)
		r.p.A.Relay.Blackhole()
		r.p.B.Relay.Blackhole()
	case "heal":
		r.p.A.Relay.Heal()
		r.p.B.Relay.Heal()
	case "sleep":
		ms, _ := strconv.Atoi(f[1])
		time.Sleep(time.Duration(ms) * time.Millisecond)
	case "stop":
		r.steps = append(r.steps, op)
		n.Signal(syscall.SIGSTOP)
	case "cont":
		n.Signal(syscall.SIGCONT)
	case "kill":
		r.steps = append(r.steps, op)
		n.Kill()
	case "start":
		if err := n.Start(r.ctx); err != nil {
			r.t.Fatalf("seed %d: restart of %s: %v", r.seed, n.Name, err)
		}
	case "takeover":
		cctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
		defer cancel()
		if _, err := n.Client().HATakeover(cctx); err == nil {
			r.takeovers++
			r.steps = append(r.steps, op)
		} else {
			r.steps = append(r.steps, op+" refused")
		}
	case "change":
		r.steps = append(r.steps, "change")
		cctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
		defer cancel()
		_ = n.Client().SessionCreate(cctx, f[2], api.MetroMirrorFailoverFailback, "", api.HoldIO)
	default:
		r.t.Fatalf("unknown operation %q", op)
	}
}

// random runs the seeded schedule: its operations depend on the seed and
// on which server acts when each step begins.
func (r *runner) random() {
	rng := rand.New(rand.NewPCG(r.seed, 0x10c5))
	pause := func(lo, hi int) { r.do(fmt.Sprintf("sleep %d", lo+rng.IntN(hi-lo+1))) }
	for range 2 + rng.IntN(3) {
		active, standby := roles(r.ctx, r.p)
		switch rng.IntN(7) {
		case 0: // partition, maybe a takeover while apart
			r.do("cut")
			pause(0, 600)
			if rng.IntN(2) == 0 {
				r.do("takeover " + standby.Name)
			}
			pause(0, 600)
			r.do("heal")
		case 1: // silent partition
			r.do("blackhole")
			pause(0, 1500)
			if rng.IntN(2) == 0 {
				r.do("takeover " + standby.Name)
			}
			r.do("heal")
		case 2: // the active pauses; the standby takes over meanwhile
			r.do("stop " + active.Name)
			pause(0, 400)
			r.do("takeover " + standby.Name)
			pause(0, 800)
			r.do("cont " + active.Name)
		case 3: // the active dies; takeover; it comes back
			r.do("kill " + active.Name)
			pause(0, 300)
			r.do("takeover " + standby.Name)
			pause(0, 500)
			r.do("start " + active.Name)
		case 4: // the standby dies and comes back
			r.do("kill " + standby.Name)
			pause(0, 500)
			r.do("start " + standby.Name)
		case 5: // the standby pauses
			r.do("stop " + standby.Name)
			pause(0, 1500)
			r.do("cont " + standby.Name)
		case 6: // a planned switchover, or a change
			if rng.IntN(2) == 0 {
				r.do("takeover " + standby.Name)
			} else {
				r.do(fmt.Sprintf("change %s s%d-%d", active.Name, r.seed, rng.IntN(1000)))
			}
		}
		pause(0, 300)
	}
}

// loadAvg is the host's load average, for the log: the schedules must
// hold under CPU load, and the log says how loaded the run was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average " + strings.Join(f[:3], " ")
}

// TestKillLoop: kill -9 the active while a client appends; after the
// takeover every record acknowledged to the client is on the new active.
// Then the killed server returns as the standby, and the roles swap.
func TestKillLoop(t *testing.T) {
	ctx := context.Background()
	rounds := envInt("LOCKSTEP_HA_KILLS", 4)
	p := newPair(t, Options{}, false)
	if err := p.Pair(ctx); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	acked, lost := 0, 0
	for round := range rounds {
		active, standby := roles(ctx, p)
		var mu sync.Mutex
		var names []string
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("k%d-%d", round, i)
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				err := active.Client().SessionCreate(cctx, name, api.MetroMirrorFailoverFailback, "", api.HoldIO)
				cancel()
				if err == nil {
					mu.Lock()
					names = append(names, name)
					mu.Unlock()
				}
			}
		})
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		active.Kill()
		close(stop)
		wg.Wait()
		if _, err := standby.Client().HATakeover(ctx); err != nil {
			t.Fatalf("round %d: takeover: %v", round, err)
		}
		have := sessionNames(t, standby)
		for _, name := range names {
			if !slices.Contains(have, name+"/Defined") {
				lost++
				t.Errorf("round %d: %s was acknowledged by %s, and is not on the new active %s", round, name, active.Name, standby.Name)
			}
		}
		acked += len(names)
		if err := converge(ctx, p); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	t.Logf("%d kill -9 of the active while appending: %d records acknowledged, %d on the new active after takeover, %d lost; %s",
		rounds, acked, acked-lost, lost, loadAvg())
}

// TestActingOverlaps: the check of the servers' views, on made-up
// samples. A reply the test read late must not make two views overlap
// that the servers' own stamps keep apart (the recorder once stamped the
// reply's arrival).
func TestActingOverlaps(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	// v is a view stamped by its server at at, read between sent and recv.
	v := func(node, role string, epoch hal.Epoch, acting bool, sent, at, recv int) sample {
		return sample{node: node, role: role, epoch: epoch, acting: acting, sent: ms(sent), at: ms(at), recv: ms(recv)}
	}
	for _, tc := range []struct {
		name    string
		samples []sample
		worst   time.Duration
		err     string
	}{
		{"one active", []sample{
			v("a", "active", 5, true, 0, 1, 2), v("b", "standby", 5, false, 0, 1, 2),
			v("a", "active", 5, true, 20, 21, 22), v("b", "standby", 5, false, 20, 21, 22),
		}, 0, ""},
		{"a takeover: the former active's view lags, with its own epoch", []sample{
			v("a", "active", 5, true, 0, 1, 2), v("b", "active", 6, true, 0, 1, 2),
			v("a", "active", 5, true, 20, 21, 22), v("b", "active", 6, true, 20, 21, 22),
			v("a", "standby", 6, false, 40, 41, 42),
		}, 20 * time.Millisecond, ""},
		{"two actives with one epoch", []sample{
			v("a", "active", 6, true, 0, 1, 2), v("b", "active", 6, true, 0, 1, 2),
			v("a", "active", 6, true, 20, 21, 22), v("b", "active", 6, true, 20, 21, 22),
		}, 0, "both acting with epoch 6"},
		{"a standby acting", []sample{v("b", "standby", 6, true, 0, 1, 2)}, 0, "a role that does not act"},
		{"a disconnected standby acting", []sample{v("b", "disconnected-standby", 6, true, 0, 1, 2)}, 0, "a role that does not act"},
		{"a stamp outside its call", []sample{v("a", "active", 6, true, 10, 5, 12)}, 0, "outside its call"},
		{"no stamp", []sample{{node: "a", role: "active", epoch: 6, acting: true, sent: ms(0), recv: ms(1)}}, 0, "without the server's time"},
		{"a late reply", []sample{
			// a acts until its view at 21, whose reply reaches the test
			// only at 38 (a loaded machine); b acts from 30. Stamped at
			// arrival, the two would overlap from 31 to 38; by the
			// servers' own stamps they do not.
			v("a", "active", 6, true, 0, 1, 2), v("a", "active", 6, true, 20, 21, 38),
			v("a", "standby", 7, false, 40, 41, 42),
			v("b", "active", 6, true, 29, 30, 31), v("b", "active", 6, true, 39, 40, 41),
		}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			worst, err := actingOverlaps(tc.samples)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one with %q", err, tc.err)
			case worst != tc.worst:
				t.Fatalf("worst %v, want %v", worst, tc.worst)
			}
		})
	}
}

// FuzzReadOpLog: an operations file is read without panic; what it reads
// is valid operations, written back the same.
func FuzzReadOpLog(f *testing.F) {
	f.Add([]byte(`{"schedule":0,"seed":71,"op":"kill a"}` + "\n" + `{"schedule":0,"seed":71,"op":"sleep 120"}` + "\n" +
		`{"schedule":1,"seed":72,"op":"change b s72-5"}` + "\n"))
	f.Add([]byte(`{"schedule":1,"seed":1,"op":"cut"}`))
	f.Add([]byte(`{"schedule":0,"seed":1,"op":"sleep -1"}`))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "in.jsonl")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		plan, err := readOpLog(path)
		if err != nil {
			return
		}
		out, err := newOpLog(filepath.Join(dir, "out.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for i, sch := range plan {
			if len(sch.ops) == 0 {
				t.Fatalf("schedule %d without operations", i)
			}
			for _, op := range sch.ops {
				if err := checkOp(op); err != nil {
					t.Fatalf("read an invalid operation: %v", err)
				}
				if err := out.write(opLine{Schedule: i, Seed: sch.seed, Op: op}); err != nil {
					t.Fatal(err)
				}
			}
		}
		out.close()
		again, err := readOpLog(out.path)
		if err != nil || !slices.EqualFunc(plan, again, func(x, y plannedSchedule) bool {
			return x.seed == y.seed && slices.Equal(x.ops, y.ops)
		}) {
			t.Fatalf("written back: %v, %v; want %v", again, err, plan)
		}
	})
}
