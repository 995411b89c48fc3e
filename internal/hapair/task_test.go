package hapair

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
)

// occurrence is one run of a task as a server's journal showed it.
type occurrence struct {
	scheduled time.Time
	epoch     hal.Epoch
	started   time.Time
	finished  time.Time // zero: not seen finished
	result    string
	seenOn    map[string]bool
}

// occurrenceWatch polls task show on both servers and keeps every
// occurrence either showed, running or last: one task every few
// seconds, polled every 50 ms, so none passes unseen while a server
// answers (a killed one's last occurrence is in its partner's journal,
// replicated before it ran).
type occurrenceWatch struct {
	mu   sync.Mutex
	seen map[[2]int64]*occurrence // scheduled, epoch
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func watchOccurrences(p *Pair, task string) *occurrenceWatch {
	w := &occurrenceWatch{seen: map[[2]int64]*occurrence{}, stop: make(chan struct{})}
	w.wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, n := range []*Node{p.A, p.B} {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				doc, err := n.Client().TaskShow(ctx, task)
				cancel()
				if err == nil {
					w.add(n.Name, doc.Running)
					w.add(n.Name, doc.Last)
				}
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	})
	return w
}

func (w *occurrenceWatch) add(node string, o *api.OccurrenceDoc) {
	if o == nil || o.Epoch == 0 { // missed: never run
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	k := [2]int64{o.Scheduled.UnixNano(), int64(o.Epoch)}
	cur := w.seen[k]
	if cur == nil {
		cur = &occurrence{scheduled: o.Scheduled, epoch: o.Epoch, started: o.Started, seenOn: map[string]bool{}}
		w.seen[k] = cur
	}
	cur.seenOn[node] = true
	if !o.Finished.IsZero() && cur.finished.IsZero() {
		cur.finished, cur.result = o.Finished, o.Result
	}
}

func (w *occurrenceWatch) close() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

func (w *occurrenceWatch) all() []occurrence {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []occurrence
	for _, k := range slices.SortedFunc(maps.Keys(w.seen), func(a, b [2]int64) int {
		if a[0] != b[0] {
			return int(max(-1, min(1, a[0]-b[0])))
		}
		return int(a[1] - b[1])
	}) {
		out = append(out, *w.seen[k])
	}
	return out
}

// ranAt waits until n occurrences ran to their end at epoch.
func (w *occurrenceWatch) ranAt(ctx context.Context, epoch hal.Epoch, n int) error {
	return Eventually(ctx, 60*time.Second, func() error {
		got := 0
		for _, o := range w.all() {
			if o.epoch == epoch && (o.result == "success" || o.result == "failed") {
				got++
			}
		}
		if got < n {
			return fmt.Errorf("%d occurrences ran at epoch %d, want %d", got, epoch, n)
		}
		return nil
	})
}

// taskOps are the storage operations a session command issues (reads and
// the heartbeat are the core's own, all the time).
var taskOps = map[string]bool{emu.OpEstablishPaths: true, emu.OpEstablishPairs: true, emu.OpFreeze: true, emu.OpThaw: true,
	emu.OpSuspend: true, emu.OpRecover: true, emu.OpFailback: true}

// checkOccurrences attributes every session command the storage systems
// accepted after the task was created (seq above base) to the occurrence
// that issued it: the one of the command's epoch running at the time
// (an occurrence whose end is unknown, its server killed, runs until
// that epoch's next one starts). A command no occurrence issued is the
// freeze core's own (a new active that finds a pair suspended under a
// session the kill left half-way freezes its group): counted in other.
// It fails on an occurrence (a scheduled instant) whose accepted commands
// came from two epochs, and returns how many commands each epoch's
// occurrences had accepted, by occurrence. A partitioned former active may journal an
// occurrence started that the new active runs too: its commands are
// fenced, never accepted, and it counts for nothing.
func checkOccurrences(occs []occurrence, recs []emu.CommandRecord, base uint64) (commands map[hal.Epoch][]int, other []string, err error) {
	end := func(o occurrence) time.Time {
		if !o.finished.IsZero() {
			return o.finished
		}
		e := time.Unix(1<<40, 0)
		for _, n := range occs {
			if n.epoch == o.epoch && n.started.After(o.started) && n.started.Before(e) {
				e = n.started
			}
		}
		return e
	}
	epochsOf := map[int64]map[hal.Epoch]int{}
	byOcc := map[int]int{}
	for _, r := range recs {
		if r.Seq <= base || r.Manager == observer || !r.Accepted() || !taskOps[r.Op] {
			continue
		}
		i := slices.IndexFunc(occs, func(o occurrence) bool {
			return o.epoch == r.Epoch && !r.At.Before(o.started) && !r.At.After(end(o))
		})
		if i < 0 {
			other = append(other, fmt.Sprintf("%s %s epoch %d seq %d", r.Serial, r.Op, r.Epoch, r.Seq))
			continue
		}
		o := occs[i]
		k := o.scheduled.UnixNano()
		if epochsOf[k] == nil {
			epochsOf[k] = map[hal.Epoch]int{}
		}
		epochsOf[k][o.epoch]++
		byOcc[i]++
	}
	for k, es := range epochsOf {
		if len(es) > 1 {
			return nil, other, fmt.Errorf("the occurrence of %s has commands accepted under epochs %v", time.Unix(0, k).UTC().Format(time.RFC3339Nano), es)
		}
	}
	commands = map[hal.Epoch][]int{}
	for i, n := range byOcc {
		commands[occs[i].epoch] = append(commands[occs[i].epoch], n)
	}
	return commands, other, nil
}

// runningOn waits until n shows an occurrence of task running, and
// returns the task as it showed it.
func runningOn(ctx context.Context, n *Node, task string) (api.TaskDoc, error) {
	var doc api.TaskDoc
	err := Eventually(ctx, 60*time.Second, func() error {
		var err error
		if doc, err = n.Client().TaskShow(ctx, task); err != nil {
			return err
		}
		if doc.Running == nil {
			return fmt.Errorf("no occurrence running on %s", n.Name)
		}
		return nil
	})
	return doc, err
}

// TestTaskRunsOnceAcrossTakeovers: a task every 4 s (start the session,
// suspend it, then a wait for a state this test never reaches, which
// keeps each occurrence running 2 s and ends it failed) runs on the active of a pair
// through a kill -9 of the active in the middle of an occurrence and a
// takeover after the next occurrence came due, then a partition and a
// takeover on the other side while the partitioned active runs an
// occurrence the standby cannot know of; storage fences that former
// active and it is demoted. The storage systems' command log shows
// each occurrence's commands from exactly one epoch, never two; the
// killed occurrence is reported interrupted and the one due while no
// server acted missed, neither run by the new active.
func TestTaskRunsOnceAcrossTakeovers(t *testing.T) {
	ctx := context.Background()
	p := newPair(t, Options{}, false)
	if err := p.Pair(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := p.Lab.Fabric().Commands(0)
	var base uint64
	if len(before) > 0 {
		base = before[len(before)-1].Seq
	}
	if _, err := p.A.Client().TaskCreate(ctx, api.TaskSpec{Name: "cycle", Schedule: "every 4s", Zone: "UTC",
		Steps: []string{"start-h1-h2 prod", "suspend prod", "wait prod target-available timeout 2s"}}); err != nil {
		t.Fatal(err)
	}
	w := watchOccurrences(p, "cycle")
	defer w.close()

	e1 := haStatus(t, p.A).Epoch
	if err := w.ranAt(ctx, e1, 2); err != nil {
		t.Fatal(err)
	}

	// kill -9 of the active while an occurrence runs; the takeover only
	// once the next occurrence came due.
	doc, err := runningOn(ctx, p.A, "cycle")
	if err != nil {
		t.Fatal(err)
	}
	p.A.Kill()
	killed := doc.Running.Scheduled
	for time.Now().Before(doc.Next.Add(500 * time.Millisecond)) {
		time.Sleep(50 * time.Millisecond)
	}
	tk, err := p.B.Client().HATakeover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e2 := tk.Epoch
	if err := Eventually(ctx, 20*time.Second, func() error {
		d, err := p.B.Client().TaskShow(ctx, "cycle")
		if err != nil {
			return err
		}
		if d.Missed < 1 {
			return fmt.Errorf("nothing reported missed: %+v", d)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.ranAt(ctx, e2, 2); err != nil {
		t.Fatal(err)
	}
	// The new active's report of the killed occurrence (its event: the
	// journal's last occurrence moves on to the missed one at once).
	wantText := fmt.Sprintf("task cycle: interrupted: the server acting at epoch %d stopped", e1)
	evs, err := p.B.Client().Events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs, func(e api.EventDoc) bool { return e.ID == "LS7002E" && strings.Contains(e.Text, wantText) }) {
		t.Fatalf("the occurrence of %s killed at epoch %d was not reported interrupted (%q)", killed.UTC().Format(time.RFC3339), e1, wantText)
	}

	// The killed server comes back as the standby.
	if err := converge(ctx, p); err != nil {
		t.Fatal(err)
	}
	if a, b := haStatus(t, p.A), haStatus(t, p.B); !b.Acting || a.Acting {
		t.Fatalf("after the restart: a %s acting %t, b %s acting %t", a.Role, a.Acting, b.Role, b.Acting)
	}

	// A partition; the standby takes over; the former active goes on
	// acting until a storage system fences it, and is demoted.
	p.A.Relay.Cut()
	p.B.Relay.Cut()
	if err := p.WaitState(ctx, 20*time.Second, "Disconnected Consistent", p.A); err != nil {
		t.Fatal(err)
	}
	// The takeover comes while the partitioned active runs an occurrence
	// the standby cannot know of: the new active must not run it again.
	apart := time.Now()
	if err := Eventually(ctx, 30*time.Second, func() error {
		d, err := p.B.Client().TaskShow(ctx, "cycle")
		if err != nil {
			return err
		}
		if d.Running == nil || d.Running.Scheduled.Before(apart) {
			return fmt.Errorf("the partitioned active runs no occurrence of its own yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tk, err = p.A.Client().HATakeover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e3 := tk.Epoch
	if err := Eventually(ctx, 30*time.Second, func() error {
		if d := haStatus(t, p.B); d.Acting || d.Role != "disconnected-standby" {
			return fmt.Errorf("the former active is %s, acting %t", d.Role, d.Acting)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.ranAt(ctx, e3, 2); err != nil {
		t.Fatal(err)
	}
	w.close()
	occs := w.all()
	recs, dropped := p.Lab.Fabric().Commands(0)
	if dropped > 0 {
		t.Fatalf("the command log dropped %d records", dropped)
	}
	cmds, other, err := checkOccurrences(occs, recs, base)
	if err != nil {
		for _, o := range occs {
			t.Logf("occurrence %s epoch %d %s..%s %s on %v", o.scheduled.UTC().Format(time.RFC3339), o.epoch,
				o.started.Format(time.StampMilli), o.finished.Format(time.StampMilli), o.result, slices.Sorted(maps.Keys(o.seenOn)))
		}
		t.Fatal(err)
	}
	for _, e := range []hal.Epoch{e1, e2, e3} {
		if len(cmds[e]) < 2 {
			t.Errorf("epoch %d: %d occurrences had storage commands accepted, want at least 2", e, len(cmds[e]))
		}
	}
	byEpoch := map[hal.Epoch]int{}
	results := map[string]int{}
	for _, o := range occs {
		byEpoch[o.epoch]++
		results[o.result]++
	}
	ta, _ := p.A.Client().TaskShow(ctx, "cycle")
	t.Logf("epochs %d, %d, %d: %d occurrences journaled (by epoch %v; results %v); storage commands accepted per occurrence, by epoch: %v, each occurrence's under one epoch; %d reported missed; the freeze core's own: %v",
		e1, e2, e3, len(occs), byEpoch, results, cmds, ta.Missed, other)
}
