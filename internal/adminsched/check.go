package adminsched

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
)

// The checks run after every step and every checkpointEvery of storage
// time while the schedule waits. Each compares what lockstepd says (its
// admin API) with what storage shows (read from the emulator, never from
// lockstepd). A check that fails is confirmed only once it has failed at
// every checkpoint for its bound, time for lockstepd to have seen the
// change (bounds are in storage time, for the slow timings: poll 2 s,
// request timeout 1 s, detection window 2 s):
//
//   - orphan (3 s): a pair storage shows copy-pending or full-duplex is in
//     no group of the freeze core that would freeze it on a sign of
//     trouble: a group holding its LSS pair that is mirroring, or that
//     is freezing, partial or frozen and whose freeze that system has not
//     acknowledged (the core retries it until it does; a system that
//     acknowledged is not sent it again). The core's table is heartbeat
//     show's, per system (lss_pairs).
//   - terminated-paired (3 s): a session lockstepd shows Defined (never
//     started, or terminated) has a copy-set volume that a system storage
//     shows in a pair, either side: terminate leaves every volume of the
//     session simplex, and is recorded only once it has.
//   - status-suspended (6 s): a session in Preparing or Prepared, without
//     its Error flag or with status Normal, has a source pair that
//     storage shows suspended on a system lockstepd reaches.
//   - status-unreachable (6 s): a session in Prepared with status Normal
//     has a source system lockstepd cannot reach (its connection down or
//     black-holed on both clusters, or crashed): it cannot know it is
//     mirroring. Not while reconnecting (reconnectGrace after the
//     connection comes back): lockstepd may or may not have reached the
//     system again by then, and a refresh that did reach it rightly says
//     Normal (seed 102 flagged one that had).
//   - recoverable-mirroring (6 s): a session says Recoverable while
//     storage shows one of its pairs mirroring.
//   - io-released (6 s): a session that is not Defined says I/O is not
//     held while storage holds writes (ELB) on one of its source LSSs, on
//     a system lockstepd reaches.
//   - not-armed (8 s): the heartbeat is on, a group's pairs mirror on a
//     system lockstepd reaches, the group's core entry is mirroring, and
//     the group's timings are safe (the plan's lowest CG timeout of the
//     group, both sites, leaves an H under the timings lockstepd runs
//     with), yet storage holds no live heartbeat covering the pair's LSS
//     pair.
//   - heartbeat-too-long (8 s): storage holds a live heartbeat whose H
//     plus the margin of the running timings exceeds the CG timeout of a
//     source LSS of the same group that storage shows mirroring: that
//     system would freeze itself only after a silent suspension elsewhere
//     released its held writes.
//
// And, not bounded: the oracle's verdict on each round (inconsistent,
// recoverable-inconsistent; see round), lockstepd stopping on its own
// (daemon-exited) or not answering its admin API (api).
var bounds = map[string]time.Duration{
	"orphan":                3 * time.Second,
	"terminated-paired":     3 * time.Second,
	"status-suspended":      6 * time.Second,
	"status-unreachable":    6 * time.Second,
	"recoverable-mirroring": 6 * time.Second,
	"io-released":           6 * time.Second,
	"not-armed":             8 * time.Second,
	"heartbeat-too-long":    8 * time.Second,
}

const checkpointEvery = 250 * time.Millisecond

type pendingCheck struct {
	first  time.Time
	step   int
	n      int
	detail string
}

// check evaluates every bounded check once.
func (r *runner) check(st storage, v daemonView) map[string]string {
	out := map[string]string{}
	if !v.ok {
		return out // lockstepd is down: nothing to compare (rounds judge what storage did meanwhile)
	}
	// orphan
	for _, src := range slices.SortedFunc(maps.Keys(st.pairs), compareRef) {
		p := st.pairs[src]
		if !p.State.Mirroring() || v.protects(p.LSSPair()) {
			continue
		}
		out["orphan "+p.VolumePair.String()] = fmt.Sprintf("storage shows %s %s; its LSS pair %s is %s",
			p.VolumePair, p.State, p.LSSPair(), v.describeScope(p.LSSPair()))
	}
	// terminated-paired
	for _, d := range v.sessions {
		if d.State != api.StateDefined {
			continue
		}
		var paired []string
		for _, cs := range d.CopySets {
			for _, ref := range []hal.VolumeRef{cs.H1, cs.H2} {
				if p, ok := st.paired[ref]; ok {
					paired = append(paired, fmt.Sprintf("%s in %s %s", ref, p.VolumePair, p.State))
				}
			}
		}
		if len(paired) > 0 {
			out["terminated-paired "+d.Name] = fmt.Sprintf("session %s is Defined (%q), storage shows %s",
				d.Name, d.Reason, strings.Join(paired, ", "))
		}
	}
	// status-*, recoverable-mirroring, io-released
	for _, d := range v.sessions {
		if d.State == api.StateDefined {
			continue
		}
		var suspended, mirroring []string
		var held []hal.LSSRef
		unreachable := map[hal.Serial]string{}
		for _, cs := range d.CopySets {
			src, tgt := cs.H1, cs.H2
			if d.Direction == api.H2ToH1 {
				src, tgt = tgt, src
			}
			if why := r.cut(src.Serial, st); why != "" {
				unreachable[src.Serial] = why
			}
			if ref := (hal.LSSRef{Serial: src.Serial, LSS: src.Volume.LSS()}); !st.elb[ref].IsZero() &&
				!slices.Contains(held, ref) && r.unreachable(src.Serial, st) == "" {
				held = append(held, ref)
			}
			p, ok := st.pairOf(cs.H1, cs.H2)
			if !ok {
				continue
			}
			if p.State.Mirroring() {
				mirroring = append(mirroring, p.VolumePair.String()+" "+p.State.String())
			}
			if p.Source == src && p.Target == tgt && p.State == hal.Suspended && r.unreachable(src.Serial, st) == "" {
				suspended = append(suspended, fmt.Sprintf("%s (%s)", p.VolumePair, p.Reason))
			}
		}
		who := fmt.Sprintf("session %s is %s/%s (error %v, recoverable %v, I/O held %v, reason %q)",
			d.Name, d.State.Label(), d.Status.Label(), d.Error, d.Recoverable, d.IOHeld, d.Reason)
		early := d.State == api.StatePreparing || d.State == api.StatePrepared
		if early && len(suspended) > 0 && (d.Status == api.StatusNormal || !d.Error) {
			out["status-suspended "+d.Name] = who + "; storage shows suspended: " + strings.Join(suspended, ", ")
		}
		if d.State == api.StatePrepared && d.Status == api.StatusNormal && len(unreachable) > 0 {
			var s []string
			for _, serial := range slices.Sorted(maps.Keys(unreachable)) {
				s = append(s, fmt.Sprintf("%s (%s)", serial, unreachable[serial]))
			}
			out["status-unreachable "+d.Name] = who + "; lockstepd cannot reach " + strings.Join(s, ", ")
		}
		if d.Recoverable && len(mirroring) > 0 {
			out["recoverable-mirroring "+d.Name] = who + "; storage shows mirroring: " + strings.Join(mirroring, ", ")
		}
		if !d.IOHeld && len(held) > 0 {
			var hs []string
			for _, ref := range held {
				hs = append(hs, st.describeHold(ref, r.w.clk.Now()))
			}
			out["io-released "+d.Name] = who + "; storage holds writes: " + strings.Join(hs, "; ")
		}
	}
	t, ok := Timings[v.running()]
	if !ok {
		return out
	}
	// not-armed
	if v.hb.Enabled {
		for _, src := range slices.SortedFunc(maps.Keys(st.pairs), compareRef) {
			p := st.pairs[src]
			label := r.volGroup[p.Source]
			if !p.State.Mirroring() || label == "" || r.unreachable(src.Serial, st) != "" || !v.mirroringInCore(p.LSSPair()) {
				continue
			}
			if _, err := freeze.DeriveH(r.lowestCG(label, v), t); err != nil {
				continue // unsafe: lockstepd must not arm it
			}
			if _, ok := st.covering(src.Serial, []hal.LSSPair{p.LSSPair()}, true); !ok {
				out["not-armed "+p.LSSPair().String()] = fmt.Sprintf("the heartbeat is on and group %s is safe "+
					"(lowest CG timeout %v, timings %s), storage shows %s %s, but %s holds no live heartbeat for %s",
					label, r.lowestCG(label, v), v.running(), p.VolumePair, p.State, src.Serial, p.LSSPair())
			}
		}
	}
	// heartbeat-too-long
	cgMin := map[string]time.Duration{} // per group: lowest CG timeout of a mirroring source LSS
	for _, p := range st.pairs {
		label := r.volGroup[p.Source]
		if !p.State.Mirroring() || label == "" {
			continue
		}
		cg := r.plan.CG[hal.LSSRef{Serial: p.Source.Serial, LSS: p.Source.Volume.LSS()}]
		if low, ok := cgMin[label]; !ok || cg < low {
			cgMin[label] = cg
		}
	}
	for _, serial := range Systems() {
		for _, hb := range st.hbs[serial] {
			if hb.Expired || len(hb.Spec.Pairs) == 0 {
				continue
			}
			label := r.lssGroup[hb.Spec.Pairs[0].Source]
			low, ok := cgMin[label]
			if !ok || hb.Spec.Timeout+t.Margin() <= low {
				continue
			}
			out["heartbeat-too-long "+string(serial)+" "+hb.Spec.Session] = fmt.Sprintf(
				"%s holds heartbeat %s with H %v; H + margin %v (timings %s) exceeds %v, the lowest CG timeout "+
					"of a source LSS of group %s that storage shows mirroring", serial, hb.Spec.Session, hb.Spec.Timeout,
				t.Margin(), v.running(), low, label)
		}
	}
	return out
}

// track confirms the checks that kept failing for their bound.
func (r *runner) track(now time.Time, current map[string]string) {
	for k := range r.pending {
		if _, ok := current[k]; !ok {
			delete(r.pending, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(current)) {
		p := r.pending[k]
		if p == nil {
			r.pending[k] = &pendingCheck{first: now, step: r.step, n: 1, detail: current[k]}
			continue
		}
		p.n++
		p.detail = current[k]
		kind, subject, _ := strings.Cut(k, " ")
		if r.confirmed[k] || p.n < 2 || now.Sub(p.first) < bounds[kind] || now.Before(r.graceUntil) {
			continue
		}
		r.confirmed[k] = true
		if kind == "orphan" {
			r.res.Orphans++
		}
		r.violateAt(kind, subject, p.step, fmt.Sprintf("%s (failing since step %d, for %v)", p.detail, p.step,
			now.Sub(p.first).Round(time.Millisecond)))
	}
}

// reconnectGrace is how long after its connection comes back (or after
// it starts again) lockstepd is given to reach a system: the direct
// driver retries with a backoff of up to 10 s, then the poll (2 s) and a
// request timeout follow.
const reconnectGrace = 14 * time.Second

// cut says why lockstepd certainly cannot reach a system now, or "": it
// is crashed, or its connection is down or black-holed on both clusters.
func (r *runner) cut(serial hal.Serial, st storage) string {
	if st.crashed[serial] {
		return "crashed"
	}
	if l := r.links[serial]; l[0] != "up" && l[1] != "up" {
		return "connection " + l[0] + "/" + l[1]
	}
	return ""
}

// unreachable says why lockstepd may not reach a system, or "": it is
// cut off, or reconnecting.
func (r *runner) unreachable(serial hal.Serial, st storage) string {
	if why := r.cut(serial, st); why != "" {
		return why
	}
	if since, ok := r.back[serial]; ok && r.w.clk.Since(since) < reconnectGrace {
		return "reconnecting"
	}
	return ""
}

// blind says why lockstepd may not hear a system at once, or "": it is
// stopped, or its connection is down or black-holed on both clusters, or
// black-holed on one (its commands there hang until they time out), or
// it is reconnecting. One cluster down is not blind: the driver uses the
// other.
func (r *runner) blind(serial hal.Serial, st storage) string {
	if !r.w.running() {
		return "lockstepd stopped"
	}
	l := r.links[serial]
	if l[0] == "blackhole" || l[1] == "blackhole" {
		return "connection " + l[0] + "/" + l[1]
	}
	return r.unreachable(serial, st)
}

// lowestCG is the lowest CG timeout of the source LSSs, in the
// direction lockstepd gives each session, of the copy sets of a group's
// defined sessions: never above the one lockstepd derives H from (it
// counts the sessions that are not Defined), so a group this calls safe
// is safe for lockstepd too.
func (r *runner) lowestCG(label string, v daemonView) time.Duration {
	var low time.Duration
	for _, sp := range r.plan.Sessions {
		if sp.Group != label || !r.defined[sp.Name] {
			continue
		}
		dir := api.H1ToH2
		for _, d := range v.sessions {
			if d.Name == sp.Name {
				dir = d.Direction
			}
		}
		for _, cs := range sp.CopySets {
			src := cs.H1
			if dir == api.H2ToH1 {
				src = cs.H2
			}
			cg := r.plan.CG[hal.LSSRef{Serial: src.Serial, LSS: src.Volume.LSS()}]
			if low == 0 || cg < low {
				low = cg
			}
		}
	}
	return low
}

func compareRef(a, b hal.VolumeRef) int {
	return strings.Compare(a.String(), b.String())
}
