package emu

import (
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// DefaultCommandLogSize is how many command records a fabric keeps when
// Options.CommandLogSize is zero.
const DefaultCommandLogSize = 1 << 16

// The operations of a CommandRecord, one per hal.StorageSystem command.
const (
	OpEstablishPaths   = "establish-paths"
	OpEstablishPairs   = "establish-pairs"
	OpFreeze           = "freeze"
	OpThaw             = "thaw"
	OpSuspend          = "suspend"
	OpRecover          = "recover"
	OpFailback         = "failback"
	OpRemovePairs      = "remove-pairs"
	OpRemovePaths      = "remove-paths"
	OpEnableHeartbeat  = "enable-heartbeat"
	OpHeartbeat        = "heartbeat"
	OpDisableHeartbeat = "disable-heartbeat"
	OpQueryPairs       = "query-pairs"
	OpQueryPaths       = "query-paths"
	OpQueryLSSs        = "query-lsss"
)

// The outcomes of a CommandRecord.
const (
	// OutcomeOK: the command passed the epoch check and was carried out.
	OutcomeOK = "ok"
	// OutcomeRefused: the command passed the epoch check (so it raised the
	// system's epoch to its own), then the system refused it for another
	// reason (hal.ErrRefused, hal.ErrHeartbeatExpired).
	OutcomeRefused = "refused"
	// OutcomeFenced: the command's epoch was below the system's; nothing
	// was done (hal.ErrFenced).
	OutcomeFenced = "fenced"
)

// CommandRecord is one command a storage system of the fabric received
// and judged: every command that reached the epoch check, whether it
// passed it or not. Commands that never reached the system (manager link
// down or black-holed, system crashed) are not recorded: the system never
// saw them.
type CommandRecord struct {
	// Seq numbers the records of a fabric from 1, without gaps, in the
	// order the systems judged the commands.
	Seq     uint64     `json:"seq"`
	At      time.Time  `json:"at"` // on the fabric's clock
	Serial  hal.Serial `json:"serial"`
	Manager string     `json:"manager"` // the name the connection was opened with
	// Epoch is the command's; SystemEpoch is the system's just before it
	// (the highest it had seen). A command is accepted iff Epoch >=
	// SystemEpoch.
	Epoch       hal.Epoch `json:"epoch"`
	SystemEpoch hal.Epoch `json:"system_epoch"`
	Op          string    `json:"op"`      // one of the Op constants
	Outcome     string    `json:"outcome"` // OutcomeOK, OutcomeRefused or OutcomeFenced
	// Session is the heartbeat session a heartbeat command names (its
	// consistency group), and LSSPairs the LSS pairs an enable-heartbeat
	// arms: what tells which pairs a heartbeat covers (a storage system
	// may hold pairs of sessions the heartbeat must leave out).
	Session  string        `json:"session,omitempty"`
	LSSPairs []hal.LSSPair `json:"lss_pairs,omitempty"`
}

// Accepted reports whether the system accepted the command's epoch
// (outcome ok or refused).
func (r CommandRecord) Accepted() bool { return r.Outcome != OutcomeFenced }

// commandLog is the fabric's bounded record of commands: a ring that grows
// up to size, then overwrites its oldest record. It has its own mutex:
// commands on different systems record concurrently (see Fabric.mu).
type commandLog struct {
	mu   sync.Mutex
	size int
	recs []CommandRecord // the record of Seq n is at (n-1) % size
	last uint64          // Seq of the newest record
}

// add appends a record and numbers it. No allocation once the ring
// is full; amortized growth until then.
func (l *commandLog) add(r CommandRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last++
	r.Seq = l.last
	if len(l.recs) < l.size {
		l.recs = append(l.recs, r)
		return
	}
	l.recs[(r.Seq-1)%uint64(l.size)] = r
}

// after copies the records with Seq > afterSeq, and counts those of them
// the ring has already overwritten.
func (l *commandLog) after(afterSeq uint64) ([]CommandRecord, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	oldest := l.last - uint64(len(l.recs)) + 1 // == last+1 when empty
	from, dropped := afterSeq+1, uint64(0)
	if from < oldest {
		from, dropped = oldest, oldest-from
	}
	if from > l.last {
		return nil, dropped
	}
	out := make([]CommandRecord, 0, l.last-from+1)
	for seq := from; seq <= l.last; seq++ {
		out = append(out, l.recs[(seq-1)%uint64(l.size)])
	}
	return out, dropped
}

// Commands returns the command records with Seq > afterSeq, oldest first,
// and how many records after afterSeq the bounded log no longer holds
// (overwritten by newer ones). Commands(0) returns everything held, with
// the total dropped so far; a reader that pages with the last Seq it saw
// learns exactly how many records it missed.
func (f *Fabric) Commands(afterSeq uint64) (recs []CommandRecord, dropped uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commands.after(afterSeq)
}
