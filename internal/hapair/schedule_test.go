package hapair

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/emu"
)

// envInt reads a count from the environment (make soak raises them).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// sample is one observation of a server's role, on the test's monotonic
// clock.
type sample struct {
	at     time.Time
	node   string
	role   string
	epoch  hal.Epoch
	acting bool
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
				doc, err := n.Client().HAStatus(cctx)
				ccancel()
				if err == nil {
					r.mu.Lock()
					r.samples = append(r.samples, sample{at: time.Now(), node: n.Name, role: doc.Role,
						epoch: doc.Epoch, acting: doc.Acting})
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

// actingOverlaps checks the role samples: two servers must never report
// acting with the same epoch at once (the storage systems could not tell
// their commands apart). It returns the longest time both reported acting
// with different epochs (a former active that had not yet heard of the
// takeover: harmless once storage is fenced, checked by checkCommands).
func actingOverlaps(samples []sample) (worst time.Duration, err error) {
	type span struct {
		from, to time.Time
		epoch    hal.Epoch
	}
	spans := map[string][]span{}
	last := map[string]*sample{}
	for i := range samples {
		s := &samples[i]
		prev := last[s.node]
		last[s.node] = s
		if prev == nil || !prev.acting || !s.acting || prev.epoch != s.epoch {
			continue
		}
		// Acting with the same epoch at both samples: assume it held in
		// between (the conservative reading).
		spans[s.node] = append(spans[s.node], span{prev.at, s.at, s.epoch})
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
			from, to := x.from, x.to
			if y.from.After(from) {
				from = y.from
			}
			if y.to.Before(to) {
				to = y.to
			}
			if !to.After(from) {
				continue
			}
			if x.epoch == y.epoch {
				return worst, fmt.Errorf("%s and %s both acting with epoch %d from %s to %s", nodes[0], nodes[1], x.epoch,
					from.Format("15:04:05.000"), to.Format("15:04:05.000"))
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
	if se.State == session.Prepared {
		return false, nil
	}
	return true, Eventually(ctx, 30*time.Second, func() error {
		doc, err := active.Client().SessionCommand(ctx, "prod", session.CmdStartH1H2)
		if err == nil && doc.State == session.Prepared {
			return nil
		}
		if doc, err = active.Client().SessionCommand(ctx, "prod", session.CmdRefresh); err != nil {
			return err
		}
		if doc.State != session.Prepared {
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
// server's role and epoch are sampled on the test's monotonic clock, and
// whose every command the lab's storage systems judged is logged. Zero
// intervals with two servers acting under one epoch, zero commands
// accepted from a stale epoch once a higher one acted.
func TestRandomSchedules(t *testing.T) {
	ctx := context.Background()
	n := envInt("LOCKSTEP_HA_SCHEDULES", 10)
	base := uint64(envInt("LOCKSTEP_HA_SEED", 1))
	p := newPair(t, Options{}, true)
	if err := p.Pair(ctx); err != nil {
		t.Fatal(err)
	}
	rec := recordRoles(p)
	defer rec.close()
	var seq uint64
	var worst time.Duration
	totalAccepted, takeovers, refrozen := 0, 0, 0
	byOp := map[string]int{}
	for i := range n {
		seed := base + uint64(i)
		steps, took := runSchedule(ctx, t, p, seed)
		takeovers += took
		if err := converge(ctx, p); err != nil {
			t.Fatalf("seed %d (%v): the pair did not converge: %v", seed, steps, err)
		}
		if again, err := remirror(ctx, p); err != nil {
			t.Fatalf("seed %d (%v): the session does not mirror again: %v", seed, steps, err)
		} else if again {
			refrozen++
		}
		w, err := actingOverlaps(rec.take())
		if err != nil {
			t.Fatalf("seed %d (%v): %v", seed, steps, err)
		}
		worst = max(worst, w)
		recs, dropped := p.Lab.Fabric().Commands(seq)
		if dropped > 0 {
			t.Fatalf("seed %d: the command log dropped %d records", seed, dropped)
		}
		if len(recs) > 0 {
			seq = recs[len(recs)-1].Seq
		}
		for _, r := range recs {
			if r.Manager != observer {
				byOp[r.Op+"/"+r.Outcome]++
			}
		}
		acc, err := checkCommands(recs)
		if err != nil {
			t.Fatalf("seed %d (%v): %v", seed, steps, err)
		}
		totalAccepted += acc
	}
	t.Logf("%d schedules (seeds %d-%d), %d takeovers accepted, %d storage commands accepted, %d freezes on doubt (session started again): 0 intervals with two actives under one epoch, 0 stale-epoch commands after a higher epoch acted; a former active's own view lagged by at most %v",
		n, base, base+uint64(n)-1, takeovers, totalAccepted, refrozen, worst.Round(time.Millisecond))
	t.Logf("storage commands by operation/outcome: %v", byOp)
}

// runSchedule runs the seeded schedule and returns its steps and the
// takeovers accepted.
func runSchedule(ctx context.Context, t *testing.T, p *Pair, seed uint64) (steps []string, takeovers int) {
	rng := rand.New(rand.NewPCG(seed, 0x10c5))
	pause := func(lo, hi int) { time.Sleep(time.Duration(lo+rng.IntN(hi-lo+1)) * time.Millisecond) }
	takeover := func(n *Node) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := n.Client().HATakeover(cctx); err == nil {
			takeovers++
			steps = append(steps, "takeover "+n.Name)
		} else {
			steps = append(steps, "takeover "+n.Name+" refused")
		}
	}
	for range 2 + rng.IntN(3) {
		active, standby := roles(ctx, p)
		switch rng.IntN(7) {
		case 0: // partition, maybe a takeover while apart
			steps = append(steps, "cut")
			p.A.Relay.Cut()
			p.B.Relay.Cut()
			pause(0, 600)
			if rng.IntN(2) == 0 {
				takeover(standby)
			}
			pause(0, 600)
			p.A.Relay.Heal()
			p.B.Relay.Heal()
		case 1: // silent partition
			steps = append(steps, "blackhole")
			p.A.Relay.Blackhole()
			p.B.Relay.Blackhole()
			pause(0, 1500)
			if rng.IntN(2) == 0 {
				takeover(standby)
			}
			p.A.Relay.Heal()
			p.B.Relay.Heal()
		case 2: // the active pauses; the standby takes over meanwhile
			steps = append(steps, "stop "+active.Name)
			active.Signal(syscall.SIGSTOP)
			pause(0, 400)
			takeover(standby)
			pause(0, 800)
			active.Signal(syscall.SIGCONT)
		case 3: // the active dies; takeover; it comes back
			steps = append(steps, "kill "+active.Name)
			active.Kill()
			pause(0, 300)
			takeover(standby)
			pause(0, 500)
			if err := active.Start(ctx); err != nil {
				t.Fatalf("seed %d: restart: %v", seed, err)
			}
		case 4: // the standby dies and comes back
			steps = append(steps, "kill "+standby.Name)
			standby.Kill()
			pause(0, 500)
			if err := standby.Start(ctx); err != nil {
				t.Fatalf("seed %d: restart: %v", seed, err)
			}
		case 5: // the standby pauses
			steps = append(steps, "stop "+standby.Name)
			standby.Signal(syscall.SIGSTOP)
			pause(0, 1500)
			standby.Signal(syscall.SIGCONT)
		case 6: // a planned switchover, or a change
			if rng.IntN(2) == 0 {
				takeover(standby)
			} else {
				steps = append(steps, "change")
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				_ = active.Client().SessionCreate(cctx, fmt.Sprintf("s%d-%d", seed, rng.IntN(1000)), session.MetroMirrorFailoverFailback, "", session.HoldIO)
				cancel()
			}
		}
		pause(0, 300)
	}
	return steps, takeovers
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
				err := active.Client().SessionCreate(cctx, name, session.MetroMirrorFailoverFailback, "", session.HoldIO)
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
	t.Logf("%d kill -9 of the active while appending: %d records acknowledged, %d on the new active after takeover, %d lost",
		rounds, acked, acked-lost, lost)
}
