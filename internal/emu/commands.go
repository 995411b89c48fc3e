package emu

import (
	"math"
	"slices"
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
//
// The ring holds no pointer (storedCommand), so that the garbage
// collector never scans it: with a CommandRecord per slot, strings and
// a slice in each, a full ring of 65 536 records was half the live heap
// of a loopback freeze bench, marked at every cycle, in the process
// whose freezes the bench times (docs/performance.md, sixth round).
type commandLog struct {
	mu    sync.Mutex
	size  int
	recs  []storedCommand  // the record of Seq n is at (n-1) % size
	last  uint64           // Seq of the newest record
	names nameTable        // serials, managers, operations, outcomes, sessions
	zones []*time.Location // the locations of the records' instants: one, in practice
	// pairs holds the LSS pairs of the records in the ring that have
	// some (enable-heartbeat), by Seq: few, and dropped with their
	// record.
	pairs map[uint64][]hal.LSSPair
}

// storedCommand is a CommandRecord as the ring keeps it: the instant as
// nanoseconds since 1970 and its location's number in the log's zones
// (its monotonic reading is not kept: records compare by instant),
// names as numbers in the log's nameTable.
type storedCommand struct {
	seq, epoch, systemEpoch uint64
	at                      int64 // noTime for the zero time
	zone                    uint32
	serial, manager, op     uint32
	outcome, session        uint32
}

// noTime stands for the zero time.Time, whose UnixNano is undefined.
const noTime = math.MinInt64

// nameTable numbers the strings of the records: few distinct ones (the
// systems, the managers, the sessions, the operations), each stored once.
type nameTable struct {
	ids   map[string]uint32
	names []string
}

func (t *nameTable) id(s string) uint32 {
	if id, ok := t.ids[s]; ok {
		return id
	}
	if t.ids == nil {
		t.ids = map[string]uint32{}
	}
	id := uint32(len(t.names))
	t.ids[s] = id
	t.names = append(t.names, s)
	return id
}

// add appends a record and numbers it. No allocation (but for a
// record's LSS pairs, and the first use of a name) up to the default
// size, made at once, and once the ring is full; amortized growth
// between.
func (l *commandLog) add(r CommandRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last++
	at, zone := int64(noTime), 0
	if !r.At.IsZero() {
		at = r.At.UnixNano()
		zone = slices.Index(l.zones, r.At.Location())
		if zone < 0 {
			zone = len(l.zones)
			l.zones = append(l.zones, r.At.Location())
		}
	}
	c := storedCommand{seq: l.last, epoch: uint64(r.Epoch), systemEpoch: uint64(r.SystemEpoch), at: at, zone: uint32(zone),
		serial: l.names.id(string(r.Serial)), manager: l.names.id(r.Manager), op: l.names.id(r.Op),
		outcome: l.names.id(r.Outcome), session: l.names.id(r.Session)}
	if len(l.recs) < l.size {
		l.recs = append(l.recs, c)
	} else {
		slot := &l.recs[(l.last-1)%uint64(l.size)]
		delete(l.pairs, slot.seq)
		*slot = c
	}
	if r.LSSPairs != nil {
		if l.pairs == nil {
			l.pairs = map[uint64][]hal.LSSPair{}
		}
		l.pairs[l.last] = r.LSSPairs
	}
}

// record is the CommandRecord a stored one was made from.
func (l *commandLog) record(c storedCommand) CommandRecord {
	r := CommandRecord{Seq: c.seq, Serial: hal.Serial(l.names.names[c.serial]), Manager: l.names.names[c.manager],
		Epoch: hal.Epoch(c.epoch), SystemEpoch: hal.Epoch(c.systemEpoch), Op: l.names.names[c.op],
		Outcome: l.names.names[c.outcome], Session: l.names.names[c.session], LSSPairs: slices.Clone(l.pairs[c.seq])}
	if c.at != noTime {
		r.At = time.Unix(0, c.at).In(l.zones[c.zone])
	}
	return r
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
		out = append(out, l.record(l.recs[(seq-1)%uint64(l.size)]))
	}
	return out, dropped
}

// LastCommand is the Seq of the newest command record (0 before the
// first): a reader that wants only the commands to come starts there,
// without copying the records held.
func (f *Fabric) LastCommand() uint64 {
	f.commands.mu.Lock()
	defer f.commands.mu.Unlock()
	return f.commands.last
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
