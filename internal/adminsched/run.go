package adminsched

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/lab"
)

// Options shape a run.
type Options struct {
	Seed uint64
	// Dir is the run's working folder: lockstepd's journal and log
	// (lockstepd.log), the bus, the lab's control socket.
	Dir string
	// Speed: storage time (and lockstepd's clock) runs this many times
	// faster than real time (default DefaultSpeed).
	Speed float64
}

// DefaultSpeed keeps lockstepd's shortest timer, the 500 ms request
// timeout of the fast timings, at 50 ms of real time: ample for a
// loopback TLS round trip on a loaded machine, while a schedule of a
// minute of storage time runs in seconds.
const DefaultSpeed = 10

// Result is what a run found.
type Result struct {
	Plan       *Plan
	Violations []Violation
	Timeline   []string
	// Figures.
	Commands, Refused, Faults          int
	Rounds, Consistent, Excused        int
	Inconsistent, Orphans, Checkpoints int
}

// Failed reports whether any check failed.
func (r *Result) Failed() bool { return len(r.Violations) > 0 }

// Violation is one check that failed.
type Violation struct {
	Kind    string
	Subject string
	Step    int // the step after which it was first seen (0: the end)
	Detail  string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s %s (after step %d): %s", v.Kind, v.Subject, v.Step, v.Detail)
}

// Report is a failing run as its file records it: the violations, the
// plan (seed and steps) and the timeline.
func (r *Result) Report() string {
	var b strings.Builder
	b.WriteString("violations:\n")
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	b.WriteString(r.Plan.String())
	b.WriteString("timeline:\n")
	for _, l := range r.Timeline {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	return b.String()
}

type runner struct {
	w     *world
	plan  *Plan
	res   *Result
	start time.Time
	step  int

	defined    map[string]bool          // sessions lockstepd created (and did not remove)
	links      map[hal.Serial][2]string // the manager's connection per cluster: up, down, blackhole
	back       map[hal.Serial]time.Time // when a system became reachable again (see reconnectGrace)
	volGroup   map[hal.VolumeRef]string // plan group of each volume of a copy set
	lssGroup   map[hal.LSSRef]string    // plan group of each LSS (slots are never shared)
	rounds     map[string]*round        // by plan group
	pending    map[string]*pendingCheck // failing checks not yet confirmed
	confirmed  map[string]bool
	graceUntil time.Time // no confirmation before: lockstepd just started
	nextBase   uint32
}

// Run plays the schedule of a seed against an in-process lockstepd and
// lab and checks it; the error is for a run that could not be carried
// out, the Result's violations for what the checks found.
func Run(ctx context.Context, opt Options) (*Result, error) {
	if opt.Speed == 0 {
		opt.Speed = DefaultSpeed
	}
	plan := Generate(opt.Seed)
	res := &Result{Plan: plan}
	w, err := startWorld(ctx, opt.Dir, plan, opt.Speed)
	if err != nil {
		return res, err
	}
	defer w.close()
	r := &runner{w: w, plan: plan, res: res, start: w.clk.Now(), defined: map[string]bool{},
		links: map[hal.Serial][2]string{}, back: map[hal.Serial]time.Time{}, volGroup: map[hal.VolumeRef]string{}, lssGroup: map[hal.LSSRef]string{},
		rounds: map[string]*round{}, pending: map[string]*pendingCheck{}, confirmed: map[string]bool{}}
	for _, serial := range Systems() {
		r.links[serial] = [2]string{"up", "up"}
	}
	for _, sp := range plan.Sessions {
		for _, cs := range sp.CopySets {
			r.volGroup[cs.H1], r.volGroup[cs.H2] = sp.Group, sp.Group
			r.lssGroup[hal.LSSRef{Serial: cs.H1.Serial, LSS: cs.H1.Volume.LSS()}] = sp.Group
			r.lssGroup[hal.LSSRef{Serial: cs.H2.Serial, LSS: cs.H2.Volume.LSS()}] = sp.Group
		}
	}
	r.graceUntil = w.clk.Now().Add(3 * time.Second)
	defer func() {
		for _, rd := range r.rounds {
			rd.run.Stop()
		}
	}()
	for i, s := range plan.Steps {
		r.step = i + 1
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := r.apply(ctx, s); err != nil {
			return res, fmt.Errorf("step %d (%s): %w", r.step, s, err)
		}
		r.checkpoint(ctx)
	}
	// Let every bounded check run to its bound on the final state, then
	// judge the last rounds.
	r.step = len(plan.Steps)
	if err := r.settle(ctx); err != nil {
		return res, err
	}
	for _, label := range slices.Sorted(maps.Keys(r.rounds)) {
		r.endRound(ctx, label, "end of the schedule")
	}
	return res, nil
}

func (r *runner) logf(format string, args ...any) {
	r.res.Timeline = append(r.res.Timeline, fmt.Sprintf("t=%7.3fs  %s",
		r.w.clk.Since(r.start).Seconds(), fmt.Sprintf(format, args...)))
}

func (r *runner) violate(kind, subject, detail string) { r.violateAt(kind, subject, r.step, detail) }

func (r *runner) violateAt(kind, subject string, step int, detail string) {
	v := Violation{Kind: kind, Subject: subject, Step: step, Detail: detail}
	r.res.Violations = append(r.res.Violations, v)
	r.logf("VIOLATION %s", v)
}

// checkpoint runs the checks once and starts the rounds that can start.
func (r *runner) checkpoint(ctx context.Context) {
	r.res.Checkpoints++
	if !r.w.running() {
		// lockstepd is down; the rounds still watch what storage does.
		r.excuseRounds(readStorage(ctx, r.w.fab))
		return
	}
	select {
	case err := <-r.w.srvDone:
		r.violate("daemon-exited", Manager, fmt.Sprintf("lockstepd stopped on its own: %v", err))
		r.w.mu.Lock()
		r.w.srv = nil
		r.w.mu.Unlock()
		return
	default:
	}
	v := readDaemon(ctx, r.w.client)
	st := readStorage(ctx, r.w.fab)
	if !v.ok && !r.confirmed["api"] {
		r.confirmed["api"] = true
		r.violate("api", Manager, "lockstepd did not answer heartbeat show or session list within 30 s")
	}
	r.track(r.w.clk.Now(), r.check(st, v))
	r.excuseRounds(st)
	for _, label := range r.groupLabels() {
		r.maybeStartRound(ctx, label, st)
	}
}

func (r *runner) groupLabels() []string {
	var out []string
	for _, sp := range r.plan.Sessions {
		if len(out) == 0 || out[len(out)-1] != sp.Group {
			out = append(out, sp.Group)
		}
	}
	return out
}

// sleep lets storage time pass, with a checkpoint every checkpointEvery.
func (r *runner) sleep(ctx context.Context, d time.Duration) error {
	end := r.w.clk.Now().Add(d)
	for {
		left := end.Sub(r.w.clk.Now())
		if left <= 0 {
			return nil
		}
		if err := clock.Sleep(ctx, r.w.clk, min(left, checkpointEvery)); err != nil {
			return err
		}
		r.checkpoint(ctx)
	}
}

// settle lets the checks that are failing reach their bound (or
// recover) on the final state: storage time passes until none is
// pending and every system is past its reconnectGrace, for a second at
// least.
func (r *runner) settle(ctx context.Context) error {
	start := r.w.clk.Now()
	longest := reconnectGrace + slices.Max(slices.Collect(maps.Values(bounds))) + time.Second
	for {
		waited := r.w.clk.Since(start)
		reconnecting := false
		for _, since := range r.back {
			reconnecting = reconnecting || r.w.clk.Since(since) < reconnectGrace
		}
		if waited >= longest || waited >= time.Second && len(r.pending) == 0 && !reconnecting {
			return nil
		}
		if err := clock.Sleep(ctx, r.w.clk, checkpointEvery); err != nil {
			return err
		}
		r.checkpoint(ctx)
	}
}

// apply carries out one step. Admin steps go through the D-Bus API; a
// refusal is an answer like any other (the checks judge what it left
// behind). The error is for a step that could not be carried out at all.
func (r *runner) apply(ctx context.Context, s Step) error {
	if s.Kind == StepCommand {
		switch s.Command {
		case session.CmdStartH1H2, session.CmdStartH2H1, session.CmdRecover, session.CmdTerminate:
			if sp, ok := r.plan.Session(s.Session); ok {
				r.endRound(ctx, sp.Group, fmt.Sprintf("before step %d, %s", r.step, s))
			}
		}
	}
	if s.Admin() {
		r.res.Commands++
	}
	if s.Fault() {
		r.res.Faults++
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c := r.w.client
	var err error
	outcome := ""
	switch s.Kind {
	case StepStorageAdd:
		var eps [2]string
		for _, st := range r.w.lab.Status() {
			if hal.Serial(st.Serial) == s.Serial {
				eps = st.Endpoints
			}
		}
		var ws []string
		ws, err = c.StorageAdd(cctx, api.StorageSpec{Serial: s.Serial, Connections: []api.ConnectionSpec{{
			Name: "direct", Kind: api.Direct, Addresses: eps[:], User: "lockstep",
			PasswordFile: r.w.passwordFile(s.Serial)}}})
		if len(ws) > 0 {
			outcome = "warnings: " + strings.Join(ws, "; ")
		}
	case StepStorageRemove:
		_, err = c.StorageRemove(cctx, s.Serial, "", false)
	case StepDefine:
		sp, _ := r.plan.Session(s.Session)
		if err = c.SessionCreate(cctx, sp.Name, api.SessionType(sp.Type), sp.CG, api.SuspendPolicy(sp.Policy)); err == nil {
			r.defined[sp.Name] = true
			var failed []string
			for _, cs := range sp.CopySets {
				if e := c.SessionAddCopySet(cctx, sp.Name, api.CopySet{H1: cs.H1, H2: cs.H2}); e != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", cs, e))
				}
			}
			if len(failed) > 0 {
				outcome = "copy sets refused: " + strings.Join(failed, "; ")
			}
		}
	case StepCommand:
		var doc api.SessionDoc
		doc, err = c.SessionCommand(cctx, s.Session, api.SessionCommand(s.Command))
		if doc.Name != "" {
			outcome = fmt.Sprintf("%s/%s recoverable %v io-held %v", doc.State.Label(), doc.Status.Label(), doc.Recoverable, doc.IOHeld)
		}
	case StepRemove:
		if err = c.SessionRemove(cctx, s.Session); err == nil {
			delete(r.defined, s.Session)
		}
	case StepHeartbeat:
		var ws []string
		ws, err = c.HeartbeatSet(cctx, s.On)
		if len(ws) > 0 {
			outcome = "warnings: " + strings.Join(ws, "; ")
		}
	case StepReload:
		err = r.w.reload(cctx, s.Timings)
	case StepRestart:
		r.w.stopDaemon()
		r.logf("step %d: lockstepd stopped", r.step)
		if e := r.sleep(ctx, s.Wait); e != nil {
			return e
		}
		if e := r.w.startDaemon(ctx); e != nil {
			return e
		}
		if e := r.w.waitAnswers(ctx); e != nil {
			r.violate("api", Manager, "lockstepd did not answer after a restart: "+e.Error())
			return e
		}
		r.graceUntil = r.w.clk.Now().Add(3 * time.Second)
	case StepPaths:
		err = r.w.lab.Inject(lab.Fault{Kind: "paths", System: string(s.Serial), Up: s.On})
	case StepLSSPath:
		other := partner(s.Serial)
		err = r.w.lab.Inject(lab.Fault{Kind: "lss-path", Up: s.On,
			Source: fmt.Sprintf("%s/%s", s.Serial, s.LSS), Target: fmt.Sprintf("%s/%s", other, s.LSS)})
	case StepManager:
		err = r.w.lab.Inject(lab.Fault{Kind: "manager", System: string(s.Serial), Mode: s.Mode,
			Endpoint: s.Endpoint, Manager: Manager})
		if err == nil {
			l := r.links[s.Serial]
			was := l[0] == "up" || l[1] == "up"
			for i := range l {
				if s.Endpoint < 0 || s.Endpoint == i {
					l[i] = s.Mode
				}
			}
			r.links[s.Serial] = l
			if !was && (l[0] == "up" || l[1] == "up") {
				r.back[s.Serial] = r.w.clk.Now()
			}
		}
	case StepCrash:
		err = r.w.lab.Inject(lab.Fault{Kind: "crash", System: string(s.Serial)})
	case StepStart:
		err = r.w.lab.Inject(lab.Fault{Kind: "restart", System: string(s.Serial)})
		r.back[s.Serial] = r.w.clk.Now()
	case StepWait:
		r.logf("step %d: %s", r.step, s)
		return r.sleep(ctx, s.Wait)
	default:
		return fmt.Errorf("unknown step kind %q", s.Kind)
	}
	switch {
	case err == nil:
		r.logf("step %d: %s: ok %s", r.step, s, outcome)
	case s.Admin() && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded):
		r.res.Refused++
		r.logf("step %d: %s: refused: %v %s", r.step, s, err, outcome)
	case s.Admin():
		r.violate("api", Manager, fmt.Sprintf("step %d (%s) got no answer: %v", r.step, s, err))
	default:
		return err // a fault the lab could not inject: the schedule is wrong
	}
	return nil
}

// SaveFailure writes a failing run's report to dir/seed-N.txt and returns
// the path.
func SaveFailure(dir string, res *Result) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("seed-%d.txt", res.Plan.Seed))
	return path, os.WriteFile(path, []byte(res.Report()), 0o644)
}
