package adminsched

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
)

// observer is the name the schedule's own reads of storage carry: a
// connection no fault ever cuts, which lockstepd never uses.
const observer = "lab-observer"

// storage is what the emulated systems say, read directly: the truth
// every check compares lockstepd with.
type storage struct {
	// pairs are the source sides of every pair, by source volume.
	pairs map[hal.VolumeRef]hal.PairStatus
	// paired are the volumes some system shows in a pair, either side,
	// each as its own system shows it.
	paired  map[hal.VolumeRef]hal.PairStatus
	elb     map[hal.LSSRef]time.Time // when the hold ends on its own; absent: not holding
	crashed map[hal.Serial]bool
	hbs     map[hal.Serial][]emu.Heartbeat
}

func readStorage(ctx context.Context, fab *emu.Fabric) storage {
	st := storage{pairs: map[hal.VolumeRef]hal.PairStatus{}, paired: map[hal.VolumeRef]hal.PairStatus{}, elb: map[hal.LSSRef]time.Time{},
		crashed: map[hal.Serial]bool{}, hbs: map[hal.Serial][]emu.Heartbeat{}}
	for _, s := range fab.Systems() {
		serial := s.Serial()
		st.hbs[serial] = s.Heartbeats()
		if s.Crashed() {
			st.crashed[serial] = true
			continue // it mirrors nothing and holds nothing while down
		}
		c := s.Connect(observer)
		ps, err := c.QueryPairs(ctx, s.Epoch())
		if err != nil {
			st.crashed[serial] = true // crashed between the two reads
			continue
		}
		for _, p := range ps {
			if p.Source.Serial == serial {
				st.pairs[p.Source] = p
				st.paired[p.Source] = p
			}
			if p.Target.Serial == serial {
				st.paired[p.Target] = p
			}
		}
		ls, err := c.QueryLSSs(ctx, s.Epoch())
		if err == nil {
			for _, l := range ls {
				if !l.ELBUntil.IsZero() {
					st.elb[hal.LSSRef{Serial: serial, LSS: l.LSS}] = l.ELBUntil
				}
			}
		}
	}
	return st
}

// pairOf finds a copy set's pair on storage in whichever direction it
// runs: H1->H2, or H2->H1 after a failback.
func (st storage) pairOf(h1, h2 hal.VolumeRef) (hal.PairStatus, bool) {
	if p, ok := st.pairs[h1]; ok && p.Target == h2 {
		return p, true
	}
	if p, ok := st.pairs[h2]; ok && p.Target == h1 {
		return p, true
	}
	return hal.PairStatus{}, false
}

// covering reports whether a heartbeat on the system covers every LSS
// pair given; live asks for one that has not expired.
func (st storage) covering(serial hal.Serial, lps []hal.LSSPair, live bool) (emu.Heartbeat, bool) {
	for _, hb := range st.hbs[serial] {
		if live && hb.Expired {
			continue
		}
		all := true
		for _, lp := range lps {
			found := false
			for _, x := range hb.Spec.Pairs {
				if x == lp {
					found = true
					break
				}
			}
			all = all && found
		}
		if all {
			return hb, true
		}
	}
	return emu.Heartbeat{}, false
}

// daemonView is what lockstepd says through its admin API: its sessions
// and the freeze core's group table (heartbeat show).
type daemonView struct {
	ok       bool // it answered
	sessions []api.SessionDoc
	hb       api.HeartbeatDoc
	// scope maps an LSS pair ("SOURCE/LSS->TARGET/LSS") to the core's
	// groups that hold it, with the phase and the member's state.
	scope map[string][]scopeEntry
}

type scopeEntry struct {
	group string
	phase string
	acked bool
	armed bool
}

func readDaemon(ctx context.Context, c *client.Client) daemonView {
	v := daemonView{scope: map[string][]scopeEntry{}}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hb, err := c.HeartbeatShow(cctx)
	if err != nil {
		return v
	}
	ss, err := c.SessionList(cctx)
	if err != nil {
		return v
	}
	v.ok, v.hb, v.sessions = true, hb, ss
	for _, g := range hb.Groups {
		for _, m := range g.Systems {
			for _, lp := range m.LSSPairs {
				v.scope[lp] = append(v.scope[lp], scopeEntry{group: g.Name, phase: g.Phase, acked: m.Acked, armed: m.Armed})
			}
		}
	}
	return v
}

// protects reports whether the core will freeze an LSS pair on a sign
// of trouble: a group holds it that is mirroring, or whose freeze has
// not yet been acknowledged by this system (the core retries it until it
// is). A system that acknowledged is not sent the freeze again: a pair
// mirroring there now was established after it, and nothing covers it.
func (v daemonView) protects(lp hal.LSSPair) bool {
	for _, e := range v.scope[lp.String()] {
		switch e.phase {
		case "mirroring":
			return true
		case "freezing", "partial", "frozen":
			if !e.acked {
				return true
			}
		}
	}
	return false
}

func (v daemonView) describeScope(lp hal.LSSPair) string {
	es := v.scope[lp.String()]
	if len(es) == 0 {
		return "in no group of the core"
	}
	var parts []string
	for _, e := range es {
		s := e.group + " " + e.phase
		if e.acked {
			s += " (this system acknowledged the freeze)"
		}
		parts = append(parts, s)
	}
	return "in core group " + strings.Join(parts, ", ")
}

// mirroringInCore reports whether a core group holding the LSS pair is
// mirroring: its heartbeat runs.
func (v daemonView) mirroringInCore(lp hal.LSSPair) bool {
	for _, e := range v.scope[lp.String()] {
		if e.phase == "mirroring" {
			return true
		}
	}
	return false
}

// running is the name of the timings lockstepd runs with, read from
// heartbeat show ("" if none matches).
func (v daemonView) running() string {
	for name, t := range Timings {
		if time.Duration(v.hb.Interval) == t.Interval {
			return name
		}
	}
	return ""
}

// describeHold says what storage shows of a held LSS: until when, the
// states of its source pairs, and the system's heartbeats.
func (st storage) describeHold(ref hal.LSSRef, now time.Time) string {
	var pairs []string
	for src, p := range st.pairs {
		if src.Serial == ref.Serial && src.Volume.LSS() == ref.LSS {
			pairs = append(pairs, fmt.Sprintf("%s %s", src.Volume, p.State)+
				map[bool]string{true: " (" + p.Reason.String() + ")", false: ""}[p.State == hal.Suspended])
		}
	}
	slices.Sort(pairs)
	var hbs []string
	for _, hb := range st.hbs[ref.Serial] {
		state := "armed"
		if hb.Expired {
			state = "expired"
		}
		hbs = append(hbs, fmt.Sprintf("%s %s H %v", hb.Spec.Session, state, hb.Spec.Timeout))
	}
	return fmt.Sprintf("%s held for %v more, pairs [%s], heartbeats [%s]", ref,
		st.elb[ref].Sub(now).Round(time.Millisecond), strings.Join(pairs, ", "), strings.Join(hbs, ", "))
}
