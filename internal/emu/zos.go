package emu

import (
	"context"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// StateChangeKind says what a state-change interrupt reports: the pair
// and device states a z/OS host hears of over its channels and logs as
// IEA494I (pair pending, suspending, suspended, full duplex) or as an
// extended long busy state.
type StateChangeKind uint8

const (
	// PairPending: the pairs began copying (establish, resync, failback).
	PairPending StateChangeKind = iota + 1
	// PairSuspending: the pairs are leaving full duplex; a PairSuspended
	// for the same pairs follows at once.
	PairSuspending
	// PairSuspended: the pairs stopped mirroring, with a reason.
	PairSuspended
	// PairFullDuplex: the copy ended; the pairs mirror every write.
	PairFullDuplex
	// ExtendedLongBusy: the source LSS holds host writes (ELB) until a
	// thaw or its CG timeout.
	ExtendedLongBusy
)

func (k StateChangeKind) String() string {
	switch k {
	case PairPending:
		return "pair-pending"
	case PairSuspending:
		return "pair-suspending"
	case PairSuspended:
		return "pair-suspended"
	case PairFullDuplex:
		return "pair-full-duplex"
	case ExtendedLongBusy:
		return "extended-long-busy"
	}
	return "unknown"
}

// StateChange is one state-change interrupt a storage system raises to the
// hosts that have its devices online: the pairs of one LSS pair whose
// state changed together, as the host's channel subsystem reports them.
type StateChange struct {
	Kind   StateChangeKind
	Serial hal.Serial
	At     time.Time
	// EventSeq is the number of the system's own event (a suspend event)
	// raised for the same change, so that a manager hearing of it both
	// pushed and through z/OS can tell it is one; 0 when the change raised
	// no event (pending, full duplex, extended long busy).
	EventSeq uint64
	// LSSPair: the pairs' LSS pair; for ExtendedLongBusy only its Source
	// (the LSS holding writes) is set.
	LSSPair hal.LSSPair
	Reason  hal.SuspendReason // PairSuspending, PairSuspended
	Volumes hal.VolumeSet     // volume numbers of the source LSS; empty for ExtendedLongBusy
}

// StateChanges attaches a host's channels to the system: every state
// change of its pairs and LSSs that hears accepts is delivered on the
// returned channel, in the order raised, until ctx is done (the channel is
// closed then). hears (nil: every change) runs under the fabric's lock at
// the instant the change is raised, so that a host whose channel is down
// at that instant never hears of it, however late its reader runs; it
// must not call back into the fabric. The
// system never waits for the host: a host that falls more than
// maxQueuedEvents behind loses changes, as an interrupt is lost to a
// channel that is not there. A crashed system raises none.
func (s *System) StateChanges(ctx context.Context, hears func(StateChange) bool) <-chan StateChange {
	f := s.fabric
	a := &attachment{wake: make(chan struct{}, 1), hears: hears}
	f.mu.Lock()
	if s.attached == nil {
		s.attached = map[*attachment]struct{}{}
	}
	s.attached[a] = struct{}{}
	f.mu.Unlock()
	out := make(chan StateChange, 64)
	go func() {
		defer close(out)
		defer func() {
			f.mu.Lock()
			delete(s.attached, a)
			f.mu.Unlock()
		}()
		for {
			a.mu.Lock()
			batch := a.queue
			a.queue = nil
			a.mu.Unlock()
			for _, sc := range batch {
				select {
				case out <- sc:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-a.wake:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// attachment queues state changes for one host without blocking the
// fabric.
type attachment struct {
	hears func(StateChange) bool // nil: every change; called under the fabric's lock
	mu    sync.Mutex
	queue []StateChange
	wake  chan struct{}
}

// interruptLocked raises a state change to every attached host.
func (s *System) interruptLocked(sc StateChange) {
	if len(s.attached) == 0 || s.crashed {
		return
	}
	sc.Serial, sc.At = s.serial, s.fabric.clock.Now()
	for a := range s.attached {
		if a.hears != nil && !a.hears(sc) {
			continue
		}
		a.mu.Lock()
		if len(a.queue) < maxQueuedEvents {
			a.queue = append(a.queue, sc)
		}
		a.mu.Unlock()
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// pairChangeLocked raises a state change for one volume's pair.
func (s *System) pairChangeLocked(kind StateChangeKind, v *volume, reason hal.SuspendReason) {
	if v.pair == nil || len(s.attached) == 0 {
		return
	}
	var vs hal.VolumeSet
	vs.Add(v.id.Number())
	s.interruptLocked(StateChange{Kind: kind, LSSPair: v.pair.lssPair(s.serial, v.id), Reason: reason, Volumes: vs})
}
