package hal

import (
	"fmt"
	"time"
)

// PairState is the state of one side of a Metro Mirror pair.
type PairState uint8

const (
	Simplex           PairState = iota // not in a relationship
	CopyPending                        // source: initial copy or resync running
	FullDuplex                         // source: every write mirrored
	Suspended                          // source: writes local, tracked out-of-sync
	TargetCopyPending                  // target of a copy-pending pair
	TargetFullDuplex                   // target of a full-duplex pair
	TargetSuspended                    // target of a suspended pair
)

var pairStateNames = [...]string{"simplex", "copy-pending", "full-duplex", "suspended",
	"target-copy-pending", "target-full-duplex", "target-suspended"}

func (s PairState) String() string {
	if int(s) < len(pairStateNames) {
		return pairStateNames[s]
	}
	return fmt.Sprintf("pair-state(%d)", uint8(s))
}

// Mirroring reports whether writes to a source in this state reach the target.
func (s PairState) Mirroring() bool { return s == CopyPending || s == FullDuplex }

// IsTarget reports whether the state is one of a target volume.
func (s PairState) IsTarget() bool { return s >= TargetCopyPending && s <= TargetSuspended }

// SuspendReason says why a pair stopped mirroring.
type SuspendReason uint8

const (
	ReasonNone            SuspendReason = iota
	ReasonPath                          // the path to the target failed
	ReasonFreeze                        // a manager froze the LSS pair
	ReasonHeartbeatExpiry               // no heartbeat for H: the storage system froze itself
	ReasonCommand                       // a manager suspended the pair
	ReasonFailover                      // recover made the target a suspended source
	ReasonRestart                       // the storage system restarted after a crash
	ReasonTarget                        // the target refused the write (not a target any more)
)

var reasonNames = [...]string{"none", "path", "freeze", "heartbeat-expiry", "command",
	"failover", "restart", "target"}

func (r SuspendReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// PathState is the state of a path between two LSSs.
type PathState uint8

const (
	PathUp     PathState = iota // established and working
	PathFailed                  // established, link down
)

func (s PathState) String() string {
	if s == PathUp {
		return "up"
	}
	if s == PathFailed {
		return "failed"
	}
	return fmt.Sprintf("path-state(%d)", uint8(s))
}

// LSSType is the kind of volumes an LSS holds.
type LSSType uint8

const (
	FB  LSSType = iota // fixed block, open systems
	CKD                // count key data, mainframe
)

func (t LSSType) String() string {
	if t == CKD {
		return "CKD"
	}
	return "FB"
}

// DefaultCGTimeout is the storage system's default consistency-group
// timeout (the longest ELB) for an LSS type: 120 s for CKD, 60 s for FB.
func DefaultCGTimeout(t LSSType) time.Duration {
	if t == CKD {
		return 120 * time.Second
	}
	return 60 * time.Second
}

// Capabilities are what a connection to a storage system can do.
type Capabilities struct {
	// Heartbeat is false for connections that cannot carry the Metro
	// Mirror heartbeat (z/OS in-band).
	Heartbeat bool
}

// CopyMode says what an establish copies.
type CopyMode uint8

const (
	// FullCopy copies every block of the source.
	FullCopy CopyMode = iota
	// Resync copies only the out-of-sync blocks of a suspended pair.
	Resync
)

func (m CopyMode) String() string {
	if m == Resync {
		return "resync"
	}
	return "full-copy"
}
