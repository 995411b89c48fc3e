package transitions

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
)

// Kind is what sort of object a row is about.
type Kind uint8

const (
	// Server is the server itself (its role and HA state); its name is "".
	Server Kind = iota
	// Session is a session, by name.
	Session
	// Storage is a storage system, by serial.
	Storage
	// Group is a consistency group of the freeze core, by name.
	Group
)

// Row is what the tracker knows of one object.
type Row struct {
	// LastChange is when its state last changed; zero if it has not
	// changed since the daemon started.
	LastChange time.Time
	// Transitions counts its changes since the daemon started.
	Transitions uint64
	// LastFreeze is, for a group, when its last freeze began; zero if
	// none since the daemon started.
	LastFreeze time.Time
}

type key struct {
	kind Kind
	name string
}

type entry struct {
	state string
	Row
}

// Tracker is safe for concurrent use; a nil *Tracker records nothing and
// reads zero rows.
type Tracker struct {
	clock   clock.Clock
	started time.Time

	mu   sync.Mutex
	rows map[key]*entry
}

// New starts a tracker; now is the daemon's start.
func New(c clock.Clock) *Tracker {
	c = clock.OrReal(c)
	return &Tracker{clock: c, started: c.Now().UTC(), rows: map[key]*entry{}}
}

// Started is when the tracker (the daemon) started: every counter was
// zero then.
func (t *Tracker) Started() time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.started
}

// Observe records that the object is in state now. The first state seen
// of an object is its baseline, not a change; a state other than the last
// one seen is a change, at the tracker's clock. It reports a change.
func (t *Tracker) Observe(k Kind, name, state string) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.observe(k, name, state)
}

func (t *Tracker) observe(k Kind, name, state string) bool {
	e, ok := t.rows[key{k, name}]
	if !ok {
		t.rows[key{k, name}] = &entry{state: state}
		return false
	}
	if e.state == state {
		return false
	}
	e.state = state
	e.LastChange = t.clock.Now().UTC()
	e.Transitions++
	return true
}

// Changed records a change from one state to another, seen where it
// happened: from is the baseline if the object was not known yet (else
// the state last seen is), and nothing is counted twice if a read already
// saw to.
func (t *Tracker) Changed(k Kind, name, from, to string) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.rows[key{k, name}]; !ok {
		t.observe(k, name, from)
	}
	return t.observe(k, name, to)
}

// Froze records that a group's freeze began at at.
func (t *Tracker) Froze(group string, at time.Time) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.rows[key{Group, group}]
	if !ok {
		e = &entry{}
		t.rows[key{Group, group}] = e
	}
	if at.After(e.LastFreeze) {
		e.LastFreeze = at.UTC()
	}
}

// Row is what is known of one object (zero if nothing).
func (t *Tracker) Row(k Kind, name string) Row {
	if t == nil {
		return Row{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.rows[key{k, name}]; ok {
		return e.Row
	}
	return Row{}
}

// Retain forgets the objects of kind k not named in names (removed
// sessions, storage systems, groups): one created again later under the
// same name starts from zero.
func (t *Tracker) Retain(k Kind, names []string) {
	if t == nil {
		return
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	t.mu.Lock()
	defer t.mu.Unlock()
	for kk := range t.rows {
		if kk.kind != k {
			continue
		}
		if _, found := slices.BinarySearch(sorted, kk.name); !found {
			delete(t.rows, kk)
		}
	}
}

// SessionState is the state of a session the tracker compares: its
// State, Status and Recoverable, each of which an NMS alerts on.
func SessionState(state, status string, recoverable bool) string {
	return fmt.Sprintf("%s|%s|%t", state, status, recoverable)
}

// ServerState is the server's state the tracker compares: its role and
// HA state.
func ServerState(role, haState string) string { return role + "|" + haState }

// StorageState is a storage system's state the tracker compares: whether
// it is reachable.
func StorageState(reachable bool) string {
	if reachable {
		return "reachable"
	}
	return "unreachable"
}
