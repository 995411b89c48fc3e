package adminsched

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/workload"
)

// A round is one stretch of the dependent-write workload over the pairs
// of one group that storage shows full-duplex when it starts, judged by
// the oracle when it ends. A round ends before a command that changes
// the group's pairs on purpose (start, recover, terminate: after them a
// secondary is not meant to be consistent until the copy completes), and
// at the end of the schedule. Faults, suspends, release-io, the
// heartbeat switch, reloads and restarts happen inside rounds: whatever
// they do, the image must stay consistent, unless the round is excused:
// a source system was blind (lockstepd stopped, or its connection to the
// system down or black-holed) while no heartbeat on that system covered
// the round's LSS pairs there. That is the documented price of running
// without the heartbeat (internal/scenario/doc.go, S1 and S2 with heartbeat off);
// whether lockstepd armed the heartbeat where it should have is checked
// separately (not-armed, heartbeat-too-long), so the excuse hides no
// fault of lockstepd's.
type round struct {
	label  string
	n      int
	base   uint32 // the round's chains write blocks base..base+chains-1
	pairs  []hal.VolumePair
	layout *workload.Layout
	run    *workload.Run
	step   int
	excuse string
}

const (
	roundChains = 6
	blockStride = 64 // blocks per round, more than roundChains
	think       = 200 * time.Millisecond
	retryDelay  = 200 * time.Millisecond
)

// offsetHost writes each round's chains to blocks of their own, so that
// a round never reads what an earlier one wrote.
type offsetHost struct {
	fab  *emu.Fabric
	base uint32
}

func (h offsetHost) Write(ctx context.Context, vol hal.VolumeRef, block uint32, data []byte) error {
	return h.fab.Write(ctx, vol, h.base+block, data)
}

type offsetReader struct {
	r    workload.Reader
	base uint32
}

func (o offsetReader) Read(vol hal.VolumeRef, block uint32) ([]byte, error) {
	return o.r.Read(vol, o.base+block)
}

// groupPairs are the pairs of a group's defined sessions as storage shows
// them; copying reports one still copy-pending.
func (r *runner) groupPairs(label string, st storage) (fd []hal.VolumePair, copying bool) {
	for _, sp := range r.plan.Sessions {
		if sp.Group != label || !r.defined[sp.Name] {
			continue
		}
		for _, cs := range sp.CopySets {
			p, ok := st.pairOf(cs.H1, cs.H2)
			switch {
			case !ok:
			case p.State == hal.CopyPending:
				copying = true
			case p.State == hal.FullDuplex:
				fd = append(fd, p.VolumePair)
			}
		}
	}
	return fd, copying
}

// maybeStartRound starts a round for a group whose pairs are all
// full-duplex or suspended (none copying), with sources on two systems
// at least.
func (r *runner) maybeStartRound(ctx context.Context, label string, st storage) {
	if r.rounds[label] != nil {
		return
	}
	fd, copying := r.groupPairs(label, st)
	if copying || len(fd) < 2 {
		return
	}
	var layout *workload.Layout
	for n := min(4, len(fd)); n >= 2 && layout == nil; n-- {
		layout, _ = workload.NewLayout(fd, roundChains, n)
	}
	if layout == nil {
		return // one source system only
	}
	r.res.Rounds++
	rd := &round{label: label, n: r.res.Rounds, base: r.nextBase, pairs: fd, layout: layout, step: r.step}
	r.nextBase += blockStride
	rd.run = workload.Start(ctx, offsetHost{r.w.fab, rd.base}, layout,
		workload.Options{Clock: r.w.clk, Think: think, RetryDelay: retryDelay})
	r.rounds[label] = rd
	r.logf("round %d of group %s: %d chains over %d full-duplex pairs", rd.n, label, layout.Chains(), len(fd))
}

// excuseRounds marks the rounds that a blind, unprotected source system
// excuses.
func (r *runner) excuseRounds(st storage) {
	for _, label := range slices.Sorted(maps.Keys(r.rounds)) {
		rd := r.rounds[label]
		if rd.excuse != "" {
			continue
		}
		mirroring := false
		bySource := map[hal.Serial][]hal.VolumePair{}
		for _, vp := range rd.pairs {
			bySource[vp.Source.Serial] = append(bySource[vp.Source.Serial], vp)
			if p, ok := st.pairs[vp.Source]; ok && p.Target == vp.Target && p.State.Mirroring() {
				mirroring = true
			}
		}
		if !mirroring {
			continue // nothing reaches the secondary any more
		}
		for _, serial := range slices.Sorted(maps.Keys(bySource)) {
			why := r.blind(serial, st)
			if why == "" {
				continue
			}
			vps := bySource[serial]
			var lps []hal.LSSPair
			frozen := true
			for _, vp := range vps {
				if !slices.Contains(lps, vp.LSSPair()) {
					lps = append(lps, vp.LSSPair())
				}
				p, ok := st.pairs[vp.Source]
				if !ok || p.Target != vp.Target || p.State != hal.Suspended ||
					(p.Reason != hal.ReasonFreeze && p.Reason != hal.ReasonHeartbeatExpiry) {
					frozen = false
				}
			}
			if frozen {
				continue // frozen before it went blind: nothing it does can reach the secondary
			}
			if _, ok := st.covering(serial, lps, false); ok {
				continue // its heartbeat will freeze it (or did)
			}
			rd.excuse = fmt.Sprintf("step %d: %s blind (%s) with no heartbeat covering %s", r.step, serial, why,
				lssPairsString(lps))
			r.logf("round %d of group %s excused: %s", rd.n, label, rd.excuse)
		}
	}
}

func lssPairsString(lps []hal.LSSPair) string {
	var s []string
	for _, lp := range lps {
		s = append(s, lp.String())
	}
	return strings.Join(s, " ")
}

// endRound stops a round and asks the oracle. A round whose writes are
// held (ELB) on one system while another still mirrors is given the time
// for the hold to end and for the chains to move on: that is when a
// missed freeze shows in the image.
func (r *runner) endRound(ctx context.Context, label, why string) {
	rd := r.rounds[label]
	if rd == nil {
		return
	}
	delete(r.rounds, label)
	deadline := r.w.clk.Now().Add(maxCG() + 2*time.Second)
	waited := false
	for r.w.clk.Now().Before(deadline) {
		st := readStorage(ctx, r.w.fab)
		held, mirroring := false, false
		for _, vp := range rd.pairs {
			if !st.elb[hal.LSSRef{Serial: vp.Source.Serial, LSS: vp.Source.Volume.LSS()}].IsZero() {
				held = true
			}
			if p, ok := st.pairs[vp.Source]; ok && p.Target == vp.Target && p.State.Mirroring() {
				mirroring = true
			}
		}
		if !held || !mirroring {
			break
		}
		waited = true
		if clock.Sleep(ctx, r.w.clk, 200*time.Millisecond) != nil {
			return
		}
	}
	if waited {
		_ = clock.Sleep(ctx, r.w.clk, 3*think)
	}
	rd.run.Stop()
	snap, err := r.w.fab.Snapshot(rd.layout.Targets())
	if err != nil {
		r.violate("oracle", label, err.Error())
		return
	}
	img, err := workload.Capture(offsetReader{snap, rd.base}, rd.layout)
	if err != nil {
		r.violate("oracle", label, err.Error())
		return
	}
	rep := workload.Check(rd.layout, img)
	st := rd.run.Status()
	// The sessions that say Recoverable and have pairs in the round: the
	// image of their chains is theirs to vouch for.
	var claims []string
	if v := readDaemon(ctx, r.w.client); v.ok {
		for _, d := range v.sessions {
			if d.Recoverable && slices.ContainsFunc(d.CopySets, func(cs api.CopySet) bool {
				return slices.ContainsFunc(rd.pairs, func(vp hal.VolumePair) bool {
					return vp.Source == cs.H1 || vp.Source == cs.H2
				})
			}) {
				claims = append(claims, d.Name)
			}
		}
	}
	verdict := "consistent"
	switch {
	case rep.Consistent:
		r.res.Consistent++
	case len(claims) > 0:
		verdict = "INCONSISTENT"
		r.res.Inconsistent++
		r.violate("recoverable-inconsistent", label, fmt.Sprintf("round %d (%s): sessions %s say Recoverable; %s",
			rd.n, why, strings.Join(claims, ", "), rep))
	case rd.excuse != "":
		verdict = "inconsistent, excused"
		r.res.Excused++
	default:
		verdict = "INCONSISTENT"
		r.res.Inconsistent++
		r.violate("inconsistent", label, fmt.Sprintf("round %d (%s), started after step %d: %s", rd.n, why, rd.step, rep))
	}
	r.logf("round %d of group %s ends (%s): %d writes, %s", rd.n, label, why, st.Writes, verdict)
}

// maxCG is the longest CG timeout an LSS may have.
func maxCG() time.Duration { return slices.Max(cgChoices) }
