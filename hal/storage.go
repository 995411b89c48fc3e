package hal

import (
	"context"
	"time"
)

// PathSpec asks for a path from a source LSS to a target LSS.
type PathSpec struct {
	LSSPair
	// ConsistencyGroup makes a suspended pair of this LSS pair put its
	// source LSS into extended long busy (ELB) for the CG timeout.
	ConsistencyGroup bool
}

// PairSpec asks for a Metro Mirror pair.
type PairSpec struct {
	VolumePair
	Mode CopyMode
}

// HeartbeatSpec arms the Metro Mirror heartbeat for a session on one
// storage system: if no Heartbeat for Session arrives for Timeout, the
// storage system freezes Pairs itself.
type HeartbeatSpec struct {
	Session string
	Pairs   []LSSPair
	Timeout time.Duration
}

// PathStatus is one path as a storage system reports it.
type PathStatus struct {
	LSSPair
	ConsistencyGroup bool
	State            PathState
}

// PairStatus is one side of a pair as the queried storage system sees it.
// The target side can be stale while the path is down: only the source
// knows a path failure happened.
type PairStatus struct {
	VolumePair
	State     PairState
	Reason    SuspendReason
	OutOfSync int // blocks to copy before the pair is full-duplex again
}

// LSSStatus is one logical subsystem.
type LSSStatus struct {
	LSS       LSS
	Type      LSSType
	CGTimeout time.Duration
	// ELBUntil is when extended long busy ends on its own; zero if the
	// LSS is not holding writes.
	ELBUntil time.Time
}

// StorageSystem is one storage system as a manager sees it, through one
// or more connections. Every command carries the sender's epoch and is
// bounded by ctx. Every command is idempotent: sending it again after a
// lost answer (a connection failover, a timeout) leaves the same state, so
// drivers and the core may retry any of them.
type StorageSystem interface {
	Serial() Serial
	Capabilities() Capabilities

	// EstablishPaths creates (or restores) paths from LSSs of this system.
	EstablishPaths(ctx context.Context, epoch Epoch, paths []PathSpec) error
	// EstablishPairs starts pairs whose source is on this system; they are
	// copy-pending until the copy ends, then full-duplex.
	EstablishPairs(ctx context.Context, epoch Epoch, pairs []PairSpec) error
	// Freeze suspends every pair of the LSS pairs (reason freeze), removes
	// their paths and starts ELB on the source LSSs. Idempotent.
	Freeze(ctx context.Context, epoch Epoch, pairs []LSSPair) error
	// Thaw ends ELB on source LSSs of this system; held writes complete
	// locally. Idempotent.
	Thaw(ctx context.Context, epoch Epoch, lsss []LSS) error
	// Suspend stops mirroring of pairs whose source is on this system,
	// without ELB.
	Suspend(ctx context.Context, epoch Epoch, pairs []VolumePair) error
	// Recover (failover) runs on the target's system: the target volumes
	// become suspended sources, writable at this site.
	Recover(ctx context.Context, epoch Epoch, pairs []VolumePair) error
	// Failback runs where Recover ran: it resyncs the recovered volumes
	// back to the original sources, which become targets.
	Failback(ctx context.Context, epoch Epoch, pairs []VolumePair) error
	// RemovePairs ends pairs (terminate): on this system, each volume of
	// a listed pair that is here leaves its relationship with the pair's
	// other volume, whichever of the two is the source now (after a
	// recover both may be), and becomes simplex. Where this system holds
	// the source and its link to the other system works, the other side
	// becomes simplex too; otherwise that side is left until RemovePairs
	// reaches the other system. A pair that does not exist (any more) is
	// no error: removing is idempotent. Removing raises no suspend event:
	// the pair did not stop mirroring, it ended. A pair with no volume on
	// this system is refused.
	RemovePairs(ctx context.Context, epoch Epoch, pairs []VolumePair) error
	// RemovePaths removes paths from LSSs of this system. A path that
	// does not exist is no error; one still used by a pair of this system
	// (a source volume of its LSS pair, in any pair state) is refused,
	// and then none of the listed paths is removed.
	RemovePaths(ctx context.Context, epoch Epoch, paths []LSSPair) error

	EnableHeartbeat(ctx context.Context, epoch Epoch, hb HeartbeatSpec) error
	Heartbeat(ctx context.Context, epoch Epoch, session string) error
	DisableHeartbeat(ctx context.Context, epoch Epoch, session string) error

	QueryPairs(ctx context.Context, epoch Epoch) ([]PairStatus, error)
	QueryPaths(ctx context.Context, epoch Epoch) ([]PathStatus, error)
	QueryLSSs(ctx context.Context, epoch Epoch) ([]LSSStatus, error)

	// Events subscribes to the system's pushed events until ctx is done;
	// the channel is closed then. Events raised while the connection is
	// down are lost, as on real hardware: polling is the backstop.
	Events(ctx context.Context) (<-chan Event, error)
}

// EventKind says what an event reports.
type EventKind uint8

const (
	// EventSuspend: pairs of an LSS pair stopped mirroring.
	EventSuspend EventKind = iota + 1
	// EventHeartbeatExpiry: a session's heartbeat timed out and the
	// storage system froze its LSS pairs.
	EventHeartbeatExpiry
	// EventFenced: a command of this manager carried a stale epoch.
	EventFenced
)

func (k EventKind) String() string {
	switch k {
	case EventSuspend:
		return "suspend"
	case EventHeartbeatExpiry:
		return "heartbeat-expiry"
	case EventFenced:
		return "fenced"
	}
	return "unknown"
}

// Event is something a storage system tells its managers without being
// asked.
type Event struct {
	Kind   EventKind
	Serial Serial
	// Seq numbers the system's events; with Serial it identifies an event
	// across the push, trap and poll sources.
	Seq     uint64
	At      time.Time
	LSSPair LSSPair       // EventSuspend
	Reason  SuspendReason // EventSuspend
	Volumes VolumeSet     // EventSuspend: volume numbers of the source LSS
	Session string        // EventHeartbeatExpiry
	Epoch   Epoch         // EventFenced: the highest epoch the system knows
}
