package adminsched

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// The lab of every schedule: Primaries primaries, primary i mirroring to
// secondary i, each with the LSSs below (Volumes volumes each); only the
// CG timeouts change from seed to seed.
const (
	Primaries = 4
	Volumes   = 4
)

// LSSs of every system: two FB, two CKD.
var LSSs = []struct {
	ID   hal.LSS
	Type hal.LSSType
}{{0x10, hal.FB}, {0x11, hal.FB}, {0x20, hal.CKD}, {0x21, hal.CKD}}

// cgChoices are the CG timeouts an LSS may get (storage time). Under the
// fast timings a group needs 4.5 s, under the slow ones 9 s: each seed
// has groups that one or both make unsafe for the heartbeat.
var cgChoices = []time.Duration{4 * time.Second, 6 * time.Second, 9 * time.Second, 12 * time.Second}

// cgWeights are the cumulative percentages of cgChoices but the last.
var cgWeights = []int{8, 35, 75}

// Timing sets a schedule switches between by reload (storage time).
var Timings = map[string]freeze.Timings{
	// margin 2.5 s, H floor 2 s: safe from a 4.5 s CG timeout on.
	"fast": {Interval: 500 * time.Millisecond, DetectionWindow: time.Second, RequestTimeout: 500 * time.Millisecond,
		PollInterval: 2 * time.Second, RetryInterval: 250 * time.Millisecond},
	// margin 5 s, H floor 4 s: safe from a 9 s CG timeout on.
	"slow": {Interval: time.Second, DetectionWindow: 2 * time.Second, RequestTimeout: time.Second,
		PollInterval: 2 * time.Second, RetryInterval: 250 * time.Millisecond},
}

// Step kinds.
const (
	StepStorageAdd    = "storage-add"    // Serial
	StepStorageRemove = "storage-remove" // Serial
	StepDefine        = "define"         // Session: create it and add its copy sets
	StepCommand       = "command"        // Session, Command
	StepRemove        = "session-remove" // Session
	StepHeartbeat     = "heartbeat"      // On
	StepReload        = "reload"         // Timings
	StepRestart       = "restart"        // lockstepd stops and starts again on its journal
	StepPaths         = "paths"          // Serial, On: every path from the system
	StepLSSPath       = "lss-path"       // Serial, LSS, On: the path of one LSS pair
	StepManager       = "manager"        // Serial, Mode, Endpoint: the manager's connection
	StepCrash         = "crash"          // Serial
	StepStart         = "start"          // Serial: a crashed system starts again
	StepWait          = "wait"           // Wait
)

// Step is one step of a schedule: an admin command through the D-Bus
// API, a fault, or a pause.
type Step struct {
	Kind     string
	Session  string
	Command  session.Command
	Serial   hal.Serial
	LSS      hal.LSS
	On       bool
	Mode     string // manager: up, down, blackhole
	Endpoint int    // manager: 0, 1, or -1 for both
	Timings  string
	Wait     time.Duration
}

// Admin reports whether the step goes through lockstepd's admin API.
func (s Step) Admin() bool {
	switch s.Kind {
	case StepStorageAdd, StepStorageRemove, StepDefine, StepCommand, StepRemove, StepHeartbeat, StepReload, StepRestart:
		return true
	}
	return false
}

// Fault reports whether the step is a fault (or its repair).
func (s Step) Fault() bool {
	switch s.Kind {
	case StepPaths, StepLSSPath, StepManager, StepCrash, StepStart:
		return true
	}
	return false
}

func upDown(on bool) string {
	if on {
		return "up"
	}
	return "down"
}

func (s Step) String() string {
	switch s.Kind {
	case StepStorageAdd, StepStorageRemove, StepCrash, StepStart:
		return fmt.Sprintf("%s %s", s.Kind, s.Serial)
	case StepDefine, StepRemove:
		return fmt.Sprintf("%s %s", s.Kind, s.Session)
	case StepCommand:
		return fmt.Sprintf("session %s %s", s.Session, s.Command)
	case StepHeartbeat:
		return "heartbeat " + map[bool]string{true: "on", false: "off"}[s.On]
	case StepReload:
		return "reload " + s.Timings
	case StepRestart:
		return fmt.Sprintf("restart lockstepd (down %v)", s.Wait)
	case StepPaths:
		return fmt.Sprintf("paths %s %s", s.Serial, upDown(s.On))
	case StepLSSPath:
		return fmt.Sprintf("lss-path %s/%s %s", s.Serial, s.LSS, upDown(s.On))
	case StepManager:
		ep := "both endpoints"
		if s.Endpoint >= 0 {
			ep = fmt.Sprintf("endpoint %d", s.Endpoint)
		}
		return fmt.Sprintf("manager %s %s (%s)", s.Serial, s.Mode, ep)
	case StepWait:
		return fmt.Sprintf("wait %v", s.Wait)
	}
	return s.Kind
}

// SessionPlan is a session a schedule may define.
type SessionPlan struct {
	Name     string
	Group    string // the plan's group label: the CG name, or the session's own name
	CG       string // "" for a session that is its own consistency group
	Type     session.Type
	Policy   session.Policy
	CopySets []session.CopySet
}

// Plan is everything a seed decides: the lab's CG timeouts, the
// sessions, the first timings and the steps. It depends on the seed
// alone, so that a failing seed replays the same steps.
type Plan struct {
	Seed     uint64
	CG       map[hal.LSSRef]time.Duration
	Sessions []SessionPlan
	Timings  string // at start
	Steps    []Step
}

// Session returns the plan of the named session.
func (p *Plan) Session(name string) (SessionPlan, bool) {
	i := slices.IndexFunc(p.Sessions, func(s SessionPlan) bool { return s.Name == name })
	if i < 0 {
		return SessionPlan{}, false
	}
	return p.Sessions[i], true
}

// Systems lists every system of the lab, primaries first.
func Systems() []hal.Serial {
	var out []hal.Serial
	for i := range Primaries {
		out = append(out, topology.PrimarySerial(i))
	}
	for i := range Primaries {
		out = append(out, topology.SecondarySerial(i))
	}
	return out
}

// String is the plan as a failing seed's file records it.
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d\ntimings at start: %s\ncg timeouts:", p.Seed, p.Timings)
	for _, serial := range Systems() {
		fmt.Fprintf(&b, "\n  %s:", serial)
		for _, l := range LSSs {
			fmt.Fprintf(&b, " %s=%v", l.ID, p.CG[hal.LSSRef{Serial: serial, LSS: l.ID}])
		}
	}
	b.WriteString("\nsessions:")
	for _, s := range p.Sessions {
		cg := s.CG
		if cg == "" {
			cg = "(own group)"
		}
		fmt.Fprintf(&b, "\n  %s: %s, cg %s, %s, copy sets", s.Name, s.Type, cg, s.Policy)
		for _, cs := range s.CopySets {
			fmt.Fprintf(&b, " %s->%s", cs.H1, cs.H2)
		}
	}
	b.WriteString("\nsteps:")
	for i, st := range p.Steps {
		fmt.Fprintf(&b, "\n  %3d  %s", i+1, st)
	}
	b.WriteString("\n")
	return b.String()
}

// slot is one LSS of one primary (and the same LSS of its secondary):
// the unit the plan gives to a group, so that two groups never share an
// LSS (a thaw of one would end the other's hold).
type slot struct {
	primary int
	lss     hal.LSS
}

// Generate draws the plan of a seed.
func Generate(seed uint64) *Plan {
	rng := rand.New(rand.NewPCG(seed, 0x61646d696e736368))
	p := &Plan{Seed: seed, CG: map[hal.LSSRef]time.Duration{}, Timings: "fast"}
	if rng.IntN(3) == 0 {
		p.Timings = "slow"
	}
	for _, serial := range Systems() {
		for _, l := range LSSs {
			// A short CG timeout now and then: one LSS is enough to make
			// its whole group unsafe for the heartbeat.
			w := rng.IntN(100)
			i := 0
			for _, c := range cgWeights {
				if w < c {
					break
				}
				i++
			}
			p.CG[hal.LSSRef{Serial: serial, LSS: l.ID}] = cgChoices[i]
		}
	}
	p.Sessions = planSessions(rng)
	g := &generator{rng: rng, plan: p, state: map[string]*shadow{}, faults: map[string]Step{}}
	g.steps()
	return p
}

// planSessions shares the slots among groups alpha and beta (shared
// consistency groups) and a session of its own, then draws each
// session's copy sets from its group's slots.
func planSessions(rng *rand.Rand) []SessionPlan {
	var slots []slot
	for i := range Primaries {
		for _, l := range LSSs {
			slots = append(slots, slot{i, l.ID})
		}
	}
	rng.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
	type group struct {
		label, cg string
		members   []string
	}
	groups := []group{{label: "alpha", cg: "alpha", members: []string{"alpha1", "alpha2"}}}
	if rng.IntN(3) > 0 {
		groups = append(groups, group{label: "beta", cg: "beta", members: []string{"beta1", "beta2"}[:1+rng.IntN(2)]})
	}
	if rng.IntN(2) == 0 {
		groups = append(groups, group{label: "solo", members: []string{"solo"}})
	}
	if rng.IntN(3) == 0 {
		groups[0].members = append(groups[0].members, "alpha3")
	}
	// Deal the slots round-robin; each group ends with slots on several
	// primaries (16 slots, at most 3 groups).
	owned := make([][]slot, len(groups))
	for i, s := range slots {
		owned[i%len(groups)] = append(owned[i%len(groups)], s)
	}
	var out []SessionPlan
	for gi, g := range groups {
		used := map[slot]int{} // volumes handed out per slot
		for _, name := range g.members {
			sp := SessionPlan{Name: name, Group: g.label, CG: g.cg, Type: session.MetroMirrorFailoverFailback,
				Policy: session.HoldIO}
			if rng.IntN(3) == 0 {
				sp.Type = session.MetroMirrorSingleDirection
			}
			if rng.IntN(2) == 0 {
				sp.Policy = session.ReleaseIO
			}
			mine := slices.Clone(owned[gi])
			rng.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			primaries := map[int]bool{}
			for _, s := range mine {
				if len(primaries) >= 2+rng.IntN(2) && !primaries[s.primary] {
					continue
				}
				if len(sp.CopySets) >= 4 {
					break
				}
				for range 1 + rng.IntN(2) {
					if used[s] >= Volumes {
						break
					}
					v := hal.NewVolume(s.lss, uint8(used[s]))
					used[s]++
					primaries[s.primary] = true
					sp.CopySets = append(sp.CopySets, session.CopySet{
						H1: hal.VolumeRef{Serial: topology.PrimarySerial(s.primary), Volume: v},
						H2: hal.VolumeRef{Serial: topology.SecondarySerial(s.primary), Volume: v}})
				}
			}
			if len(sp.CopySets) > 0 {
				out = append(out, sp)
			}
		}
	}
	return out
}

// shadow is what the generator expects of a session if every command it
// issued worked: it steers the schedule towards commands the session's
// state allows, while faults and refusals still make some of them
// refused (which the schedule then checks changes nothing it must not).
type shadow struct {
	defined bool
	state   session.State
	site    session.Site
	// held: a suspend of a hold-io session holds its I/O until a
	// release-io or a start; terminate is refused meanwhile.
	held bool
}

type generator struct {
	rng       *rand.Rand
	plan      *Plan
	state     map[string]*shadow
	faults    map[string]Step // active faults by key, to repair later
	heartbeat bool
	absent    map[hal.Serial]bool // systems not added to lockstepd
}

func (g *generator) add(s Step) { g.plan.Steps = append(g.plan.Steps, s) }

func (g *generator) wait(lo, hi time.Duration) {
	d := lo + time.Duration(g.rng.Int64N(int64(hi-lo)+1))
	g.add(Step{Kind: StepWait, Wait: d.Round(10 * time.Millisecond)})
}

func (g *generator) steps() {
	g.absent = map[hal.Serial]bool{}
	// The last primary and its secondary join later in some seeds:
	// copy sets there are refused until then.
	late := g.rng.IntN(3) == 0
	for _, serial := range Systems() {
		if late && (serial == topology.PrimarySerial(Primaries-1) || serial == topology.SecondarySerial(Primaries-1)) {
			g.absent[serial] = true
			continue
		}
		g.add(Step{Kind: StepStorageAdd, Serial: serial})
	}
	if g.rng.IntN(2) == 0 {
		g.heartbeat = true
		g.add(Step{Kind: StepHeartbeat, On: true})
	}
	// Define and start a first session or two, so that most schedules
	// have mirroring pairs early.
	for _, sp := range g.plan.Sessions[:min(len(g.plan.Sessions), 1+g.rng.IntN(2))] {
		g.define(sp.Name)
		g.command(sp.Name, session.CmdStartH1H2)
	}
	g.wait(500*time.Millisecond, 2*time.Second)
	for _, sp := range g.plan.Sessions { // plan order: a map's would differ from run to run
		if sh := g.state[sp.Name]; sh != nil && sh.state == session.Preparing {
			g.command(sp.Name, session.CmdRefresh)
		}
	}
	for range 18 + g.rng.IntN(14) {
		switch r := g.rng.IntN(100); {
		case r < 55:
			g.adminStep()
		case r < 80:
			g.faultStep()
		default:
			g.wait(200*time.Millisecond, 4*time.Second)
		}
	}
	// Repair every fault, then let the core see the result: the last
	// checks judge sessions against a storage they can reach.
	for _, key := range slices.Sorted(maps.Keys(g.faults)) {
		g.add(g.repair(g.faults[key]))
	}
	g.wait(2*time.Second, 3*time.Second)
}

func (g *generator) pick(names []string) string { return names[g.rng.IntN(len(names))] }

func (g *generator) define(name string) {
	g.add(Step{Kind: StepDefine, Session: name})
	g.state[name] = &shadow{defined: true, state: session.Defined, site: session.H1}
}

func (g *generator) command(name string, cmd session.Command) {
	g.add(Step{Kind: StepCommand, Session: name, Command: cmd})
	sh := g.state[name]
	if sh == nil {
		return
	}
	sp, _ := g.plan.Session(name)
	switch cmd {
	case session.CmdStartH1H2, session.CmdStartH2H1:
		sh.state = session.Preparing
		sh.held = false
	case session.CmdReleaseIO:
		sh.held = false
	case session.CmdRefresh:
		if sh.state == session.Preparing {
			sh.state = session.Prepared
		}
	case session.CmdSuspend:
		sh.state = session.Suspended
		sh.held = sp.Policy == session.HoldIO
	case session.CmdRecover:
		sh.state = session.TargetAvailable
		sh.site = session.H2
	case session.CmdTerminate:
		if sh.held {
			return // refused: release-io first
		}
		sh.state = session.Defined
		if sp.Type == session.MetroMirrorSingleDirection {
			sh.site = session.H1
		}
	}
}

// adminStep draws an admin command: mostly one the session's expected
// state allows, sometimes any.
func (g *generator) adminStep() {
	r := g.rng.IntN(100)
	var undefined []string
	for _, sp := range g.plan.Sessions {
		if g.state[sp.Name] == nil {
			undefined = append(undefined, sp.Name)
		}
	}
	switch {
	case r < 22 && len(undefined) > 0:
		name := g.pick(undefined)
		g.define(name)
		if g.rng.IntN(3) > 0 {
			g.command(name, session.CmdStartH1H2)
		}
		return
	case r < 20:
		g.heartbeat = !g.heartbeat
		if g.rng.IntN(4) == 0 {
			g.heartbeat = !g.heartbeat // the same again: idempotent
		}
		g.add(Step{Kind: StepHeartbeat, On: g.heartbeat})
		return
	case r < 28:
		t := "fast"
		if g.rng.IntN(2) == 0 {
			t = "slow"
		}
		g.add(Step{Kind: StepReload, Timings: t})
		return
	case r < 33:
		serial := Systems()[g.rng.IntN(2*Primaries)]
		if g.absent[serial] {
			delete(g.absent, serial)
			g.add(Step{Kind: StepStorageAdd, Serial: serial})
			if g.rng.IntN(2) == 0 { // its partner too
				other := partner(serial)
				if g.absent[other] {
					delete(g.absent, other)
					g.add(Step{Kind: StepStorageAdd, Serial: other})
				}
			}
		} else {
			g.add(Step{Kind: StepStorageRemove, Serial: serial}) // refused while a session uses it
		}
		return
	case r < 36:
		// Down for up to a few seconds: longer than H, the storage
		// systems freeze themselves (internal/scenario/doc.go, S3).
		g.add(Step{Kind: StepRestart, Wait: time.Duration(g.rng.IntN(30)) * 100 * time.Millisecond})
		return
	}
	var defined []string
	for _, sp := range g.plan.Sessions {
		if g.state[sp.Name] != nil {
			defined = append(defined, sp.Name)
		}
	}
	if len(defined) == 0 {
		g.define(g.pick(undefined))
		return
	}
	name := g.pick(defined)
	sh := g.state[name]
	if g.rng.IntN(7) == 0 {
		all := session.Commands()
		g.command(name, all[g.rng.IntN(len(all))])
		return
	}
	start := session.CmdStartH1H2
	if sh.site == session.H2 {
		start = session.CmdStartH2H1
	}
	var choices []session.Command
	switch sh.state {
	case session.Defined:
		if g.rng.IntN(6) == 0 {
			g.add(Step{Kind: StepRemove, Session: name})
			delete(g.state, name)
			return
		}
		choices = []session.Command{start, start, start}
	case session.Preparing:
		choices = []session.Command{session.CmdRefresh, session.CmdRefresh, session.CmdSuspend, session.CmdTerminate}
	case session.Prepared:
		choices = []session.Command{session.CmdSuspend, session.CmdSuspend, session.CmdRefresh, session.CmdTerminate, start}
	case session.Suspended, session.SuspendedPartial:
		choices = []session.Command{session.CmdReleaseIO, session.CmdRecover, start, start, session.CmdTerminate, session.CmdRefresh}
	case session.TargetAvailable:
		choices = []session.Command{start, session.CmdReleaseIO, session.CmdTerminate, session.CmdRefresh}
	default:
		choices = []session.Command{session.CmdRefresh}
	}
	cmd := choices[g.rng.IntN(len(choices))]
	g.command(name, cmd)
	if cmd == session.CmdStartH1H2 || cmd == session.CmdStartH2H1 {
		// Let the copy run, then see it: Prepared comes from a refresh.
		if g.rng.IntN(2) == 0 {
			g.wait(300*time.Millisecond, 1500*time.Millisecond)
			g.command(name, session.CmdRefresh)
		}
	}
}

func partner(serial hal.Serial) hal.Serial {
	for i := range Primaries {
		switch serial {
		case topology.PrimarySerial(i):
			return topology.SecondarySerial(i)
		case topology.SecondarySerial(i):
			return topology.PrimarySerial(i)
		}
	}
	return serial
}

// faultStep injects a fault on a system (a primary three times out of
// four), or repairs one that is active.
func (g *generator) faultStep() {
	if len(g.faults) > 0 && g.rng.IntN(100) < 40 {
		keys := slices.Sorted(maps.Keys(g.faults))
		key := keys[g.rng.IntN(len(keys))]
		g.add(g.repair(g.faults[key]))
		delete(g.faults, key)
		return
	}
	var serial hal.Serial
	if g.rng.IntN(4) == 0 {
		serial = topology.SecondarySerial(g.rng.IntN(Primaries))
	} else {
		serial = topology.PrimarySerial(g.rng.IntN(Primaries))
	}
	var s Step
	switch r := g.rng.IntN(100); {
	case r < 35:
		s = Step{Kind: StepPaths, Serial: serial}
	case r < 50:
		s = Step{Kind: StepLSSPath, Serial: serial, LSS: LSSs[g.rng.IntN(len(LSSs))].ID}
	case r < 88:
		s = Step{Kind: StepManager, Serial: serial, Mode: "down", Endpoint: -1}
		switch x := g.rng.IntN(10); {
		case x < 3:
			s.Mode = "blackhole"
		case x < 5:
			s.Endpoint = g.rng.IntN(2) // one cluster: the driver must use the other
		}
	default:
		s = Step{Kind: StepCrash, Serial: serial}
	}
	key := faultKey(s)
	if _, dup := g.faults[key]; dup {
		g.wait(100*time.Millisecond, time.Second)
		return
	}
	g.faults[key] = s
	g.add(s)
}

func faultKey(s Step) string {
	switch s.Kind {
	case StepLSSPath:
		return fmt.Sprintf("%s %s/%s", s.Kind, s.Serial, s.LSS)
	case StepManager:
		return fmt.Sprintf("%s %s", s.Kind, s.Serial)
	}
	return fmt.Sprintf("%s %s", s.Kind, s.Serial)
}

// repair is the step that undoes a fault.
func (g *generator) repair(s Step) Step {
	switch s.Kind {
	case StepCrash:
		return Step{Kind: StepStart, Serial: s.Serial}
	case StepManager:
		return Step{Kind: StepManager, Serial: s.Serial, Mode: "up", Endpoint: -1}
	}
	s.On = true
	return s
}
