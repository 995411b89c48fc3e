package emu

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// System is one emulated storage system. Its state is guarded by the
// fabric's mutex held exclusively, or held shared with mu (Fabric.mu).
type System struct {
	fabric *Fabric
	serial hal.Serial
	mu     sync.Mutex // with Fabric.mu held shared: this system's state

	lss        map[hal.LSS]*lss
	volumes    map[hal.Volume]*volume
	paths      map[hal.LSSPair]*path // established paths whose source LSS is here
	heartbeats map[string]*heartbeat // by session
	managers   map[string]*manager   // by manager name
	// managerList is managers in the order they came: what an event is
	// sent to. Ranging over a map, per event and per manager, was half
	// the cost of raising the 16 events of a freeze.
	managerList []*manager
	epoch       hal.Epoch // highest seen; survives a crash (NVS)
	eventSeq    uint64
	crashed     bool
	stats       Stats
	attached    map[*attachment]struct{} // z/OS hosts' channels (zos.go)
	// The one ELB timer (armELBLocked): armed for elbNext, at or before
	// the earliest deadline of the inELB LSSs in ELB; elbGen tells a stale
	// callback.
	elbTimer clock.Timer
	elbNext  time.Time
	elbGen   uint64
	inELB    int
}

// Stats counts what a system did, for tests and benchmarks.
type Stats struct {
	HostWrites     uint64 // writes completed on this system's volumes
	MirroredWrites uint64 // of which also applied on a target
	CopiedBlocks   uint64 // blocks sent by establish, resync and failback copies
	EventsRaised   uint64
	EventsDropped  uint64 // lost because a subscriber's queue was full
}

type lss struct {
	id        hal.LSS
	typ       hal.LSSType
	cgTimeout time.Duration
	volumes   []*volume // in volume order: what a freeze of the LSS walks

	// ELB: while elb is set the LSS holds host writes until elbUntil (the
	// system's ELB timer ends it). elbRelease, closed when ELB ends, is
	// made by the first write held: a freeze puts 16 LSSs of every system
	// into ELB, and a channel for each, made whether a write waited or
	// not, was a tenth of what a loopback freeze bench allocated.
	elb        bool
	elbRelease chan struct{}
	elbUntil   time.Time
}

type volume struct {
	id     hal.Volume
	blocks map[uint32][]byte
	// A volume is the source of at most one pair (pair != nil), or the
	// target of one (target != nil: its source), or simplex.
	pair         *pair
	target       *hal.VolumeRef
	targetState  hal.PairState
	targetReason hal.SuspendReason
}

type pair struct {
	target    hal.VolumeRef
	state     hal.PairState // CopyPending, FullDuplex or Suspended
	reason    hal.SuspendReason
	outOfSync map[uint32]struct{}
	copyGen   uint64 // tells a stale copy-completion callback from the current one
}

func (p *pair) lssPair(serial hal.Serial, source hal.Volume) hal.LSSPair {
	return hal.LSSPair{
		Source: hal.LSSRef{Serial: serial, LSS: source.LSS()},
		Target: hal.LSSRef{Serial: p.target.Serial, LSS: p.target.Volume.LSS()},
	}
}

type path struct {
	consistencyGroup bool
	state            hal.PathState
}

type heartbeat struct {
	spec    hal.HeartbeatSpec
	timer   clock.Timer
	gen     uint64
	expired bool
}

// LinkMode is the state of one manager's connection to a system.
type LinkMode uint8

const (
	LinkUp        LinkMode = iota
	LinkDown               // commands fail at once with hal.ErrUnreachable
	LinkBlackhole          // commands hang until their deadline: hal.ErrTimeout
)

func (m LinkMode) String() string {
	return [...]string{"up", "down", "blackhole"}[m]
}

type manager struct {
	mode    LinkMode
	latency time.Duration
	subs    []*subscription // a slice, not a set: ranged over per event, changed per subscription
}

// Serial is the system's serial.
func (s *System) Serial() hal.Serial { return s.serial }

// Stats returns the system's counters.
func (s *System) Stats() Stats {
	s.fabric.mu.Lock()
	defer s.fabric.mu.Unlock()
	return s.stats
}

// Epoch is the highest epoch the system has seen.
func (s *System) Epoch() hal.Epoch {
	s.fabric.mu.Lock()
	defer s.fabric.mu.Unlock()
	return s.epoch
}

// Crashed reports whether the system is down.
func (s *System) Crashed() bool {
	s.fabric.mu.Lock()
	defer s.fabric.mu.Unlock()
	return s.crashed
}

// Heartbeat is a heartbeat a system holds, as its operator panel would
// show it: armed until DisableHeartbeat, Expired once it froze the
// system's pairs itself.
type Heartbeat struct {
	Spec    hal.HeartbeatSpec
	Expired bool
}

// Heartbeats lists the heartbeats the system holds, by session. It reads
// the system directly, not through a manager's connection: tests use it
// to tell whether a system is protected by the heartbeat.
func (s *System) Heartbeats() []Heartbeat {
	s.fabric.mu.Lock()
	defer s.fabric.mu.Unlock()
	out := make([]Heartbeat, 0, len(s.heartbeats))
	for _, session := range slices.Sorted(maps.Keys(s.heartbeats)) {
		hb := s.heartbeats[session]
		spec := hb.spec
		spec.Pairs = slices.Clone(spec.Pairs)
		out = append(out, Heartbeat{Spec: spec, Expired: hb.expired})
	}
	return out
}

func (s *System) managerLocked(name string) *manager {
	m := s.managers[name]
	if m == nil {
		m = &manager{}
		s.managers[name] = m
		s.managerList = append(s.managerList, m)
	}
	return m
}

// SetManagerLink sets a manager's connection to this system: up, down
// (refused at once) or black-holed (commands hang until their deadline).
// Events raised while it is not up are lost for that manager.
func (s *System) SetManagerLink(name string, mode LinkMode) {
	s.fabric.mu.Lock()
	defer s.fabric.mu.Unlock()
	s.managerLocked(name).mode = mode
}

// SetLatency delays every command of a manager by d before it executes.
func (s *System) SetLatency(name string, d time.Duration) {
	s.fabric.mu.Lock()
	defer s.fabric.mu.Unlock()
	s.managerLocked(name).latency = d
}

// Crash takes the system down: its endpoints stop answering, host I/O to
// it fails, and every path from or to it fails (the other systems suspend
// their pairs). Writes held in its ELB fail back to the host.
func (s *System) Crash() {
	f := s.fabric
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.crashed {
		return
	}
	s.crashed = true
	for _, l := range s.lss {
		s.endELBLocked(l)
	}
	for _, hb := range s.heartbeats {
		hb.gen++
		if hb.timer != nil {
			hb.timer.Stop()
		}
	}
	for _, v := range s.volumes {
		if v.pair != nil {
			v.pair.copyGen++ // a copy in progress dies with the system
		}
	}
	f.reconcilePathsLocked()
}

// Restart brings a crashed system back. Its mirroring pairs come back
// suspended (reason restart), in ELB where the path has the CG option, and
// its armed heartbeats restart with a full timeout.
func (s *System) Restart() {
	f := s.fabric
	f.mu.Lock()
	defer f.mu.Unlock()
	if !s.crashed {
		return
	}
	s.crashed = false
	for _, lp := range sortedPaths(s.paths) {
		s.paths[lp].state = hal.PathFailed // reconcile below brings live links up
	}
	var mirroring []*volume
	for _, v := range s.sortedVolumes() {
		if v.pair != nil && v.pair.state.Mirroring() {
			mirroring = append(mirroring, v)
		}
	}
	s.suspendLocked(mirroring, hal.ReasonRestart)
	for _, session := range slices.Sorted(maps.Keys(s.heartbeats)) {
		if hb := s.heartbeats[session]; !hb.expired {
			s.armHeartbeatLocked(hb)
		}
	}
	f.reconcilePathsLocked()
}

func (s *System) sortedVolumes() []*volume {
	ids := slices.Sorted(maps.Keys(s.volumes))
	out := make([]*volume, len(ids))
	for i, id := range ids {
		out[i] = s.volumes[id]
	}
	return out
}

// mirroringOn lists the volumes whose pair mirrors over the LSS pair.
func (s *System) mirroringOn(lp hal.LSSPair) []*volume {
	var out []*volume
	l := s.lss[lp.Source.LSS]
	if l == nil {
		return nil
	}
	for _, v := range l.volumes {
		if v.pair != nil && v.pair.state.Mirroring() && v.pair.lssPair(s.serial, v.id) == lp {
			out = append(out, v)
		}
	}
	return out
}

// suspendLocked suspends the mirroring pairs of the given source volumes,
// tells the targets it can still reach, raises one suspend event per LSS
// pair, and, for the reasons a storage system suspends on its own (path,
// target, restart), puts the source LSS in ELB where the path has the CG
// option. A freeze and a heartbeat expiry start their ELB themselves.
func (s *System) suspendLocked(vols []*volume, reason hal.SuspendReason) []hal.LSSPair {
	f := s.fabric
	// The LSS pairs in the order met, each with its volumes: a freeze
	// asks for one at a time, so a slice searched from its end, not a map
	// made per call.
	var order []hal.LSSPair
	var sets []hal.VolumeSet
	for _, v := range vols {
		p := v.pair
		if p == nil || !p.state.Mirroring() {
			continue
		}
		p.state, p.reason = hal.Suspended, reason
		p.copyGen++
		lp := p.lssPair(s.serial, v.id)
		if f.linkUpLocked(lp) {
			t := f.systems[p.target.Serial].volumes[p.target.Volume]
			t.targetState, t.targetReason = hal.TargetSuspended, reason
		}
		i := len(order) - 1
		for i >= 0 && order[i] != lp {
			i--
		}
		if i < 0 {
			order, sets = append(order, lp), append(sets, hal.VolumeSet{})
			i = len(order) - 1
		}
		sets[i].Add(v.id.Number())
	}
	selfSuspend := reason == hal.ReasonPath || reason == hal.ReasonTarget || reason == hal.ReasonRestart
	for i, lp := range order {
		vs := sets[i]
		s.interruptLocked(StateChange{Kind: PairSuspending, LSSPair: lp, Reason: reason, Volumes: vs})
		if path := s.paths[lp]; selfSuspend && path != nil && path.consistencyGroup {
			s.startELBLocked(s.lss[lp.Source.LSS], false)
		}
		s.emitLocked(hal.Event{Kind: hal.EventSuspend, LSSPair: lp, Reason: reason, Volumes: vs})
		s.interruptLocked(StateChange{Kind: PairSuspended, EventSeq: s.eventSeq, LSSPair: lp, Reason: reason, Volumes: vs})
	}
	return order
}

// startELBLocked puts an LSS into extended long busy for its CG timeout.
// An LSS already in ELB keeps its deadline, unless extend is set (a
// heartbeat expiry holds ELB for the full CG timeout from its instant).
func (s *System) startELBLocked(l *lss, extend bool) {
	until := s.fabric.clock.Now().Add(l.cgTimeout)
	if l.elb && (!extend || !until.After(l.elbUntil)) {
		return
	}
	if !l.elb {
		l.elb = true
		s.inELB++
	}
	l.elbUntil = until
	s.interruptLocked(StateChange{Kind: ExtendedLongBusy, LSSPair: hal.LSSPair{Source: hal.LSSRef{Serial: s.serial, LSS: l.id}}})
	if s.elbTimer == nil || until.Before(s.elbNext) {
		s.armELBLocked(until)
	}
}

// armELBLocked sets the system's one ELB timer for next: it ends the ELB
// of every LSS due by then and re-arms for the earliest deadline left.
// One timer per system rather than one per LSS: a freeze of 16 LSSs
// armed 16, the larger part of what the emulator spent on a freeze. Each
// LSS still leaves ELB at its own deadline; a timer that fires early
// (a deadline was extended, or ended by a thaw) just re-arms.
func (s *System) armELBLocked(next time.Time) {
	if s.elbTimer != nil {
		s.elbTimer.Stop()
	}
	s.elbNext = next
	s.elbGen++
	f, gen := s.fabric, s.elbGen
	s.elbTimer = f.clock.AfterFunc(next.Sub(f.clock.Now()), func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if s.elbGen != gen {
			return // re-armed or stopped since
		}
		s.elbTimer = nil
		now := f.clock.Now()
		var later time.Time
		for _, l := range s.lss {
			switch {
			case !l.elb:
			case !l.elbUntil.After(now):
				s.releaseELBLocked(l)
			case later.IsZero() || l.elbUntil.Before(later):
				later = l.elbUntil
			}
		}
		if !later.IsZero() {
			s.armELBLocked(later)
		}
	})
}

// endELBLocked releases the writes an LSS holds before its deadline (a
// thaw, a crash). The system's ELB timer is stopped once no LSS is in
// ELB: none is left armed for nothing.
func (s *System) endELBLocked(l *lss) {
	if !l.elb {
		return
	}
	s.releaseELBLocked(l)
	if s.inELB == 0 && s.elbTimer != nil {
		s.elbTimer.Stop()
		s.elbTimer = nil
		s.elbGen++
	}
}

// releaseELBLocked ends an LSS's ELB: the writes it held go on.
func (s *System) releaseELBLocked(l *lss) {
	if l.elbRelease != nil {
		close(l.elbRelease)
		l.elbRelease = nil
	}
	l.elb = false
	l.elbUntil = time.Time{}
	s.inELB--
}

// freezeLocked suspends the pairs of LSS pairs, removes their paths and
// starts ELB on the source LSSs.
func (s *System) freezeLocked(pairs []hal.LSSPair, reason hal.SuspendReason, extendELB bool) {
	for _, lp := range pairs {
		s.suspendLocked(s.mirroringOn(lp), reason)
		delete(s.paths, lp)
		s.startELBLocked(s.lss[lp.Source.LSS], extendELB)
	}
}

// armHeartbeatLocked (re)starts a session's heartbeat timer for a full H.
func (s *System) armHeartbeatLocked(hb *heartbeat) {
	f := s.fabric
	if hb.timer != nil {
		hb.timer.Stop()
	}
	hb.gen++
	gen := hb.gen
	hb.timer = f.clock.AfterFunc(hb.spec.Timeout, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if hb.gen == gen && !s.crashed {
			s.expireHeartbeatLocked(hb)
		}
	})
}

// expireHeartbeatLocked is the storage system's own freeze when the
// manager went silent: ELB for the full CG timeout from now.
func (s *System) expireHeartbeatLocked(hb *heartbeat) {
	hb.expired = true
	hb.timer = nil
	s.emitLocked(hal.Event{Kind: hal.EventHeartbeatExpiry, Session: hb.spec.Session})
	s.freezeLocked(hb.spec.Pairs, hal.ReasonHeartbeatExpiry, true)
}

// scheduleCopyLocked runs the copy of a copy-pending pair on the clock:
// after CopyPerBlock per out-of-sync block, the blocks are copied with
// their content at that instant and the pair becomes full-duplex. Writes
// meanwhile are mirrored and leave the out-of-sync set.
func (s *System) scheduleCopyLocked(v *volume) {
	f := s.fabric
	p := v.pair
	p.copyGen++
	gen := p.copyGen
	d := time.Duration(len(p.outOfSync)) * f.copyPerBlock
	f.clock.AfterFunc(d, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if v.pair != p || p.copyGen != gen || p.state != hal.CopyPending || s.crashed {
			return
		}
		lp := p.lssPair(s.serial, v.id)
		if path := s.paths[lp]; path == nil || path.state != hal.PathUp || !f.linkUpLocked(lp) {
			return // the path failure already suspended the pair
		}
		t := f.systems[p.target.Serial].volumes[p.target.Volume]
		for _, b := range slices.Sorted(maps.Keys(p.outOfSync)) {
			if data, ok := v.blocks[b]; ok {
				t.blocks[b] = slices.Clone(data)
			} else {
				delete(t.blocks, b)
			}
			s.stats.CopiedBlocks++
		}
		clear(p.outOfSync)
		p.state, p.reason = hal.FullDuplex, hal.ReasonNone
		t.targetState, t.targetReason = hal.TargetFullDuplex, hal.ReasonNone
		s.pairChangeLocked(PairFullDuplex, v, hal.ReasonNone)
	})
}

// emitLocked raises an event to every manager whose link is up.
func (s *System) emitLocked(ev hal.Event) {
	s.eventSeq++
	ev.Serial, ev.Seq, ev.At = s.serial, s.eventSeq, s.fabric.clock.Now()
	s.stats.EventsRaised++
	for _, m := range s.managerList {
		s.sendLocked(m, ev)
	}
}

func (s *System) sendLocked(m *manager, ev hal.Event) {
	if m.mode != LinkUp {
		return
	}
	for _, sub := range m.subs {
		if !sub.push(ev) {
			s.stats.EventsDropped++
		}
	}
}

// maxQueuedEvents bounds what a slow subscriber can make the system hold.
const maxQueuedEvents = 1 << 16

// subscription queues events for one Events channel without ever blocking
// the fabric: a pump goroutine moves them to the subscriber. While the
// pump holds nothing and nothing is queued, push puts an event straight
// into the channel if it has room: a freeze's 16 events are then in the
// subscriber's hands when the command returns (the lab's wire server
// sends them with its answer, in one write), without a hand-off to the
// pump. The order of events is the same either way.
type subscription struct {
	mu      sync.Mutex
	queue   []hal.Event
	out     chan hal.Event
	pumping bool // the pump holds events taken from queue, not yet in out
	wake    chan struct{}
}

func (sub *subscription) push(ev hal.Event) bool {
	sub.mu.Lock()
	// out is never closed under a push: push runs with the fabric lock
	// held, and the pump closes out only after it took the subscription
	// off its manager's list with that lock held alone.
	if !sub.pumping && len(sub.queue) == 0 {
		select {
		case sub.out <- ev:
			sub.mu.Unlock()
			return true
		default:
		}
	}
	full := len(sub.queue) >= maxQueuedEvents
	if !full {
		sub.queue = append(sub.queue, ev)
	}
	sub.mu.Unlock()
	select {
	case sub.wake <- struct{}{}:
	default:
	}
	return !full
}
