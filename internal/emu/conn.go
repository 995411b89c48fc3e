package emu

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Connect returns the system as the named manager sees it. Connection
// faults and latency are injected per manager name.
func (s *System) Connect(manager string) hal.StorageSystem {
	return &conn{s: s, manager: manager}
}

type conn struct {
	s       *System
	manager string
	// link names the link state (mode, latency, event subscriptions) the
	// connection goes through; "" is the manager's own. An HMC's relay
	// goes through the HMC's private link but records the manager.
	link string
}

// linkName is the key of the connection's link state.
func (c *conn) linkName() string {
	if c.link != "" {
		return c.link
	}
	return c.manager
}

var _ hal.StorageSystem = (*conn)(nil)

func (c *conn) Serial() hal.Serial             { return c.s.serial }
func (c *conn) Capabilities() hal.Capabilities { return hal.Capabilities{Heartbeat: true} }

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", hal.ErrRefused, fmt.Sprintf(format, args...))
}

// do runs a command as the storage system would: through the manager's
// link (down, black-holed, slow), then the epoch check, then fn, all of it
// atomic with respect to host writes and faults. Every command that
// reaches the epoch check is recorded in the fabric's command log under
// op, with its outcome. fn runs under the fabric's lock held exclusively.
func (c *conn) do(ctx context.Context, epoch hal.Epoch, op string, fn func() error) error {
	return c.run(ctx, epoch, CommandRecord{Op: op}, false, nil, fn)
}

// doShared is do for a command that touches only this system and the
// systems in others (the targets of the LSS pairs it names): fn runs
// under the fabric's lock held shared and those systems' own mutexes
// (Fabric.mu), so that commands on different systems (a freeze fan-out)
// do not wait for one another, and each is still atomic with respect to
// host writes, mirrors and faults.
func (c *conn) doShared(ctx context.Context, epoch hal.Epoch, op string, others []hal.Serial, fn func() error) error {
	return c.run(ctx, epoch, CommandRecord{Op: op}, true, others, fn)
}

// run carries out a command; rec is its record as far as the caller
// knows it (the operation, and for a heartbeat command what it names).
func (c *conn) run(ctx context.Context, epoch hal.Epoch, rec CommandRecord, shared bool, others []hal.Serial, fn func() error) error {
	s, f := c.s, c.s.fabric
	unlock := f.lockShared(s, nil)
	m := s.managerLocked(c.linkName())
	mode, latency := m.mode, m.latency
	unlock()
	switch mode {
	case LinkDown:
		return fmt.Errorf("%w: %s: connection from %s is down", hal.ErrUnreachable, s.serial, c.manager)
	case LinkBlackhole:
		<-ctx.Done()
		return fmt.Errorf("%w: %s: no answer: %v", hal.ErrTimeout, s.serial, ctx.Err())
	}
	if latency > 0 {
		if err := clock.Sleep(ctx, f.clock, latency); err != nil {
			return fmt.Errorf("%w: %s: %v", hal.ErrTimeout, s.serial, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %s: %v", hal.ErrTimeout, s.serial, err)
	}
	if shared {
		unlock = f.lockShared(s, others)
	} else {
		f.mu.Lock()
		unlock = f.mu.Unlock
	}
	defer unlock()
	if s.crashed || s.managerLocked(c.linkName()).mode != LinkUp {
		return fmt.Errorf("%w: %s: not answering", hal.ErrUnreachable, s.serial)
	}
	rec.At, rec.Serial, rec.Manager, rec.Epoch, rec.SystemEpoch = f.clock.Now(), s.serial, c.manager, epoch, s.epoch
	if epoch < s.epoch {
		rec.Outcome = OutcomeFenced
		f.commands.add(rec)
		s.sendLocked(s.managerLocked(c.linkName()), hal.Event{
			Kind: hal.EventFenced, Serial: s.serial, At: rec.At, Epoch: s.epoch,
		})
		return fmt.Errorf("%w: %s: epoch %d is below %d", hal.ErrFenced, s.serial, epoch, s.epoch)
	}
	s.epoch = epoch
	err := fn()
	rec.Outcome = OutcomeOK
	if err != nil {
		rec.Outcome = OutcomeRefused
	}
	f.commands.add(rec)
	return err
}

// sourceLSS checks that an LSS pair starts on this system at a known LSS.
func (s *System) sourceLSS(lp hal.LSSPair) (*lss, error) {
	if lp.Source.Serial != s.serial {
		return nil, refused("%s: LSS pair %s does not start on this system", s.serial, lp)
	}
	l := s.lss[lp.Source.LSS]
	if l == nil {
		return nil, refused("%s: no LSS %s", s.serial, lp.Source.LSS)
	}
	return l, nil
}

func (c *conn) EstablishPaths(ctx context.Context, epoch hal.Epoch, paths []hal.PathSpec) error {
	return c.do(ctx, epoch, OpEstablishPaths, func() error {
		s, f := c.s, c.s.fabric
		for _, ps := range paths {
			if _, err := s.sourceLSS(ps.LSSPair); err != nil {
				return err
			}
			t := f.systems[ps.Target.Serial]
			if t == nil || t.lss[ps.Target.LSS] == nil || t == s {
				return refused("%s: path target %s unknown", s.serial, ps.Target)
			}
			if !f.linkUpLocked(ps.LSSPair) {
				return refused("%s: no link to %s", s.serial, ps.Target)
			}
		}
		for _, ps := range paths {
			s.paths[ps.LSSPair] = &path{consistencyGroup: ps.ConsistencyGroup, state: hal.PathUp}
		}
		return nil
	})
}

func (c *conn) EstablishPairs(ctx context.Context, epoch hal.Epoch, pairs []hal.PairSpec) error {
	return c.do(ctx, epoch, OpEstablishPairs, func() error {
		s := c.s
		for _, ps := range pairs {
			if err := s.checkEstablishLocked(ps); err != nil {
				return err
			}
		}
		for _, ps := range pairs {
			s.establishLocked(ps)
		}
		return nil
	})
}

func (s *System) checkEstablishLocked(ps hal.PairSpec) error {
	f := s.fabric
	if ps.Source.Serial != s.serial {
		return refused("%s: pair %s does not start on this system", s.serial, ps.VolumePair)
	}
	v := s.volumes[ps.Source.Volume]
	t, err := f.targetVolumeLocked(ps.Target)
	if v == nil || err != nil {
		return refused("%s: pair %s: unknown volume", s.serial, ps.VolumePair)
	}
	lp := ps.LSSPair()
	if path := s.paths[lp]; path == nil || path.state != hal.PathUp {
		return refused("%s: pair %s: no working path %s", s.serial, ps.VolumePair, lp)
	}
	self := hal.VolumeRef{Serial: s.serial, Volume: v.id}
	switch ps.Mode {
	case hal.FullCopy:
		if v.target != nil || (v.pair != nil && v.pair.target != ps.Target) {
			return refused("%s: pair %s: source volume is in another relationship", s.serial, ps.VolumePair)
		}
		if t.pair != nil || (t.target != nil && *t.target != self) {
			return refused("%s: pair %s: target volume is in another relationship", s.serial, ps.VolumePair)
		}
	case hal.Resync:
		if v.pair == nil || v.pair.target != ps.Target {
			return refused("%s: pair %s: nothing to resync", s.serial, ps.VolumePair)
		}
		if t.target == nil || *t.target != self {
			return refused("%s: pair %s: target is no longer a target of this source (use failback)", s.serial, ps.VolumePair)
		}
	default:
		return refused("%s: pair %s: unknown copy mode", s.serial, ps.VolumePair)
	}
	return nil
}

func (f *Fabric) targetVolumeLocked(ref hal.VolumeRef) (*volume, error) {
	_, v, err := f.volumeLocked(ref)
	return v, err
}

// establishLocked starts (or restarts) the copy of a checked pair. A pair
// that is already mirroring is left alone: establish is idempotent.
func (s *System) establishLocked(ps hal.PairSpec) {
	f := s.fabric
	v := s.volumes[ps.Source.Volume]
	t, _ := f.targetVolumeLocked(ps.Target)
	if v.pair != nil && v.pair.state.Mirroring() {
		return
	}
	if ps.Mode == hal.FullCopy || v.pair == nil {
		v.pair = &pair{target: ps.Target, outOfSync: map[uint32]struct{}{}}
		clear(t.blocks) // a full copy overwrites every track of the target
		for b := range v.blocks {
			v.pair.outOfSync[b] = struct{}{}
		}
	}
	v.pair.state, v.pair.reason = hal.CopyPending, hal.ReasonNone
	self := hal.VolumeRef{Serial: s.serial, Volume: v.id}
	t.target, t.targetState, t.targetReason = &self, hal.TargetCopyPending, hal.ReasonNone
	s.pairChangeLocked(PairPending, v, hal.ReasonNone)
	s.scheduleCopyLocked(v)
}

func (c *conn) Freeze(ctx context.Context, epoch hal.Epoch, pairs []hal.LSSPair) error {
	// It suspends pairs here and tells their targets, on the target
	// systems of the LSS pairs named.
	targets := make([]hal.Serial, 0, 1)
	for _, lp := range pairs {
		if !slices.Contains(targets, lp.Target.Serial) {
			targets = append(targets, lp.Target.Serial)
		}
	}
	return c.doShared(ctx, epoch, OpFreeze, targets, func() error {
		for _, lp := range pairs {
			if _, err := c.s.sourceLSS(lp); err != nil {
				return err
			}
		}
		c.s.freezeLocked(pairs, hal.ReasonFreeze, false)
		return nil
	})
}

func (c *conn) Thaw(ctx context.Context, epoch hal.Epoch, lsss []hal.LSS) error {
	return c.doShared(ctx, epoch, OpThaw, nil, func() error {
		for _, id := range lsss {
			if c.s.lss[id] == nil {
				return refused("%s: no LSS %s", c.s.serial, id)
			}
		}
		for _, id := range lsss {
			c.s.endELBLocked(c.s.lss[id])
		}
		return nil
	})
}

func (c *conn) Suspend(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return c.do(ctx, epoch, OpSuspend, func() error {
		s := c.s
		var vols []*volume
		for _, vp := range pairs {
			v := s.volumes[vp.Source.Volume]
			if vp.Source.Serial != s.serial || v == nil || v.pair == nil || v.pair.target != vp.Target {
				return refused("%s: no pair %s here", s.serial, vp)
			}
			vols = append(vols, v)
		}
		s.suspendLocked(vols, hal.ReasonCommand)
		return nil
	})
}

// Recover is the failover: each target volume here becomes the suspended
// source of a pair back to its original source, writable at this site and
// tracking its changes for the failback.
func (c *conn) Recover(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return c.do(ctx, epoch, OpRecover, func() error { return c.s.recoverLocked(pairs) })
}

// recoverLocked is the body of Recover, shared with a z/OS host's
// HyperSwap (swap.go): it checks every pair before it changes any.
func (s *System) recoverLocked(pairs []hal.VolumePair) error {
	for _, vp := range pairs {
		v := s.volumes[vp.Target.Volume]
		if vp.Target.Serial != s.serial || v == nil {
			return refused("%s: pair %s: target is not on this system", s.serial, vp)
		}
		recovered := v.pair != nil && v.pair.target == vp.Source && v.pair.reason == hal.ReasonFailover
		if !recovered && (v.target == nil || *v.target != vp.Source) {
			return refused("%s: pair %s: volume is not its target", s.serial, vp)
		}
	}
	for _, vp := range pairs {
		v := s.volumes[vp.Target.Volume]
		if v.target == nil {
			continue // already recovered: idempotent
		}
		v.target, v.targetState, v.targetReason = nil, hal.Simplex, hal.ReasonNone
		v.pair = &pair{target: vp.Source, state: hal.Suspended, reason: hal.ReasonFailover,
			outOfSync: map[uint32]struct{}{}}
		s.pairChangeLocked(PairSuspended, v, hal.ReasonFailover)
	}
	return nil
}

// Failback resyncs recovered volumes back to their original sources: the
// original source becomes the target, and the blocks changed on either
// side since the failover are copied from here.
func (c *conn) Failback(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return c.do(ctx, epoch, OpFailback, func() error {
		s, f := c.s, c.s.fabric
		for _, vp := range pairs {
			v := s.volumes[vp.Target.Volume]
			if vp.Target.Serial != s.serial || v == nil || v.pair == nil || v.pair.target != vp.Source {
				return refused("%s: pair %s: not recovered on this system", s.serial, vp)
			}
			back := hal.VolumePair{Source: vp.Target, Target: vp.Source}
			if path := s.paths[back.LSSPair()]; path == nil || path.state != hal.PathUp {
				return refused("%s: pair %s: no working path %s", s.serial, vp, back.LSSPair())
			}
			if _, err := f.targetVolumeLocked(vp.Source); err != nil {
				return refused("%s: pair %s: unknown volume", s.serial, vp)
			}
		}
		for _, vp := range pairs {
			v := s.volumes[vp.Target.Volume]
			if v.pair.state.Mirroring() {
				continue
			}
			orig := f.systems[vp.Source.Serial]
			o := orig.volumes[vp.Source.Volume]
			if o.pair != nil { // changes made at the old site count too
				for b := range o.pair.outOfSync {
					v.pair.outOfSync[b] = struct{}{}
				}
				o.pair = nil
			}
			self := hal.VolumeRef{Serial: s.serial, Volume: v.id}
			o.target, o.targetState, o.targetReason = &self, hal.TargetCopyPending, hal.ReasonNone
			v.pair.state, v.pair.reason = hal.CopyPending, hal.ReasonNone
			s.pairChangeLocked(PairPending, v, hal.ReasonNone)
			s.scheduleCopyLocked(v)
		}
		return nil
	})
}

// RemovePairs ends pairs on this system (hal.StorageSystem.RemovePairs):
// each listed pair's volume here leaves its relationship with the pair's
// other volume, as source or as target, and becomes simplex; where the
// volume here was the source and the link to the other system is up,
// the other side (a target of this volume) becomes simplex too. A copy
// in progress ends with the pair. No suspend event: nothing stopped
// mirroring unexpectedly.
func (c *conn) RemovePairs(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return c.do(ctx, epoch, OpRemovePairs, func() error {
		s := c.s
		for _, vp := range pairs {
			here := 0
			for _, ref := range []hal.VolumeRef{vp.Source, vp.Target} {
				if ref.Serial != s.serial {
					continue
				}
				if s.volumes[ref.Volume] == nil {
					return refused("%s: pair %s: no volume %s here", s.serial, vp, ref.Volume)
				}
				here++
			}
			if here == 0 {
				return refused("%s: pair %s has no volume on this system", s.serial, vp)
			}
		}
		for _, vp := range pairs {
			for _, ends := range [][2]hal.VolumeRef{{vp.Source, vp.Target}, {vp.Target, vp.Source}} {
				if ends[0].Serial == s.serial {
					s.removePairLocked(s.volumes[ends[0].Volume], ends[1])
				}
			}
		}
		return nil
	})
}

// removePairLocked ends v's relationship with other, if it has one.
func (s *System) removePairLocked(v *volume, other hal.VolumeRef) {
	f := s.fabric
	self := hal.VolumeRef{Serial: s.serial, Volume: v.id}
	if p := v.pair; p != nil && p.target == other {
		p.copyGen++ // a copy in progress ends with the pair
		v.pair = nil
		lp := p.lssPair(s.serial, v.id)
		if t := f.systems[other.Serial]; t != nil && !t.crashed && f.linkUpLocked(lp) {
			if tv := t.volumes[other.Volume]; tv != nil && tv.target != nil && *tv.target == self {
				tv.target, tv.targetState, tv.targetReason = nil, hal.Simplex, hal.ReasonNone
			}
		}
	}
	if v.target != nil && *v.target == other {
		v.target, v.targetState, v.targetReason = nil, hal.Simplex, hal.ReasonNone
	}
}

// RemovePaths removes paths from this system's LSSs
// (hal.StorageSystem.RemovePaths). A path still used by a pair, in any
// state, is refused (as a real array refuses to remove the paths of
// existing pairs), and nothing is removed; a path that does not exist is
// no error.
func (c *conn) RemovePaths(ctx context.Context, epoch hal.Epoch, paths []hal.LSSPair) error {
	return c.do(ctx, epoch, OpRemovePaths, func() error {
		s := c.s
		for _, lp := range paths {
			l, err := s.sourceLSS(lp)
			if err != nil {
				return err
			}
			for _, v := range l.volumes {
				if v.pair != nil && v.pair.lssPair(s.serial, v.id) == lp {
					return refused("%s: path %s is used by pair %s", s.serial, lp,
						hal.VolumePair{Source: hal.VolumeRef{Serial: s.serial, Volume: v.id}, Target: v.pair.target})
				}
			}
		}
		for _, lp := range paths {
			delete(s.paths, lp)
		}
		return nil
	})
}

func (c *conn) EnableHeartbeat(ctx context.Context, epoch hal.Epoch, spec hal.HeartbeatSpec) error {
	rec := CommandRecord{Op: OpEnableHeartbeat, Session: spec.Session, LSSPairs: slices.Clone(spec.Pairs)}
	return c.run(ctx, epoch, rec, false, nil, func() error {
		s := c.s
		if spec.Session == "" || spec.Timeout <= 0 {
			return refused("%s: heartbeat needs a session and a positive timeout", s.serial)
		}
		for _, lp := range spec.Pairs {
			if _, err := s.sourceLSS(lp); err != nil {
				return err
			}
		}
		if old := s.heartbeats[spec.Session]; old != nil && old.timer != nil {
			old.gen++
			old.timer.Stop()
		}
		hb := &heartbeat{spec: hal.HeartbeatSpec{Session: spec.Session, Timeout: spec.Timeout,
			Pairs: slices.Clone(spec.Pairs)}}
		s.heartbeats[spec.Session] = hb
		s.armHeartbeatLocked(hb)
		return nil
	})
}

func (c *conn) Heartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return c.run(ctx, epoch, CommandRecord{Op: OpHeartbeat, Session: session}, true, nil, func() error {
		hb := c.s.heartbeats[session]
		switch {
		case hb == nil:
			return refused("%s: no heartbeat armed for session %q", c.s.serial, session)
		case hb.expired:
			return fmt.Errorf("%w: %s: session %q", hal.ErrHeartbeatExpired, c.s.serial, session)
		}
		c.s.armHeartbeatLocked(hb)
		return nil
	})
}

func (c *conn) DisableHeartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return c.run(ctx, epoch, CommandRecord{Op: OpDisableHeartbeat, Session: session}, false, nil, func() error {
		if hb := c.s.heartbeats[session]; hb != nil {
			hb.gen++
			if hb.timer != nil {
				hb.timer.Stop()
			}
			delete(c.s.heartbeats, session)
		}
		return nil
	})
}

func (c *conn) QueryPairs(ctx context.Context, epoch hal.Epoch) ([]hal.PairStatus, error) {
	var out []hal.PairStatus
	err := c.doShared(ctx, epoch, OpQueryPairs, nil, func() error {
		s := c.s
		for _, v := range s.sortedVolumes() {
			self := hal.VolumeRef{Serial: s.serial, Volume: v.id}
			switch {
			case v.pair != nil:
				out = append(out, hal.PairStatus{
					VolumePair: hal.VolumePair{Source: self, Target: v.pair.target},
					State:      v.pair.state, Reason: v.pair.reason, OutOfSync: len(v.pair.outOfSync),
				})
			case v.target != nil:
				out = append(out, hal.PairStatus{
					VolumePair: hal.VolumePair{Source: *v.target, Target: self},
					State:      v.targetState, Reason: v.targetReason,
				})
			}
		}
		return nil
	})
	return out, err
}

func (c *conn) QueryPaths(ctx context.Context, epoch hal.Epoch) ([]hal.PathStatus, error) {
	var out []hal.PathStatus
	err := c.doShared(ctx, epoch, OpQueryPaths, nil, func() error {
		for _, lp := range sortedPaths(c.s.paths) {
			p := c.s.paths[lp]
			out = append(out, hal.PathStatus{LSSPair: lp, ConsistencyGroup: p.consistencyGroup, State: p.state})
		}
		return nil
	})
	return out, err
}

func (c *conn) QueryLSSs(ctx context.Context, epoch hal.Epoch) ([]hal.LSSStatus, error) {
	var out []hal.LSSStatus
	err := c.doShared(ctx, epoch, OpQueryLSSs, nil, func() error {
		for _, id := range slices.Sorted(maps.Keys(c.s.lss)) {
			l := c.s.lss[id]
			out = append(out, hal.LSSStatus{LSS: id, Type: l.typ, CGTimeout: l.cgTimeout, ELBUntil: l.elbUntil})
		}
		return nil
	})
	return out, err
}

// maxSpareEvents bounds the queue a subscription keeps for reuse: a burst
// of events beyond it (a slow subscriber) is not held after it drained.
const maxSpareEvents = 1024

// Events subscribes this manager to the system's events. Subscribing
// works whatever the link state; delivery happens only while it is up.
func (c *conn) Events(ctx context.Context) (<-chan hal.Event, error) {
	s, f := c.s, c.s.fabric
	out := make(chan hal.Event, 64)
	sub := &subscription{out: out, wake: make(chan struct{}, 1)}
	f.mu.Lock()
	m := s.managerLocked(c.linkName())
	m.subs = append(m.subs, sub)
	f.mu.Unlock()
	go func() {
		defer func() {
			f.mu.Lock()
			m := s.managerLocked(c.linkName())
			m.subs = slices.DeleteFunc(m.subs, func(o *subscription) bool { return o == sub })
			f.mu.Unlock()
			close(out) // no push reaches sub any more (see push)
		}()
		// The pump takes the queue and leaves its spare, emptied, in its
		// place: a freeze raises one event per LSS pair, and a queue
		// started afresh each time was grown anew by every one of them
		// (a fifth of the freeze bench's allocations).
		var spare []hal.Event
		for {
			sub.mu.Lock()
			batch := sub.queue
			sub.queue = spare
			sub.pumping = len(batch) > 0
			sub.mu.Unlock()
			if len(batch) == 0 {
				spare = batch
				select {
				case <-sub.wake:
					continue
				case <-ctx.Done():
					return
				}
			}
			for _, ev := range batch {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
			clear(batch) // the events' strings are the subscriber's now
			spare = nil
			if cap(batch) <= maxSpareEvents {
				spare = batch[:0]
			}
		}
	}()
	return out, nil
}
