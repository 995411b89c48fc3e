package state

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/tasks"
	"github.com/lockstep-io/lockstep/persist"
)

// stateVersion versions the state's encoding (snapshots, backups).
const stateVersion = 1

// State is everything the journal's records build: one field per record
// family. It changes only through Apply (session.DB.Apply,
// registry.DB.Apply), so the same records give the same state on the
// active, the standby and at every replay. It is the persist.StateMachine
// of the Store; the daemon reads it through Store.DB and Store.Registry.
type State struct {
	sessions *session.DB
	registry *registry.DB
	tasks    *tasks.DB
}

var _ persist.StateMachine[*State, Record] = (*State)(nil)

// codec is how the Store's records and states are written (doc.go).
var codec = persist.Codec[*State, Record]{
	Empty:  Empty,
	Load:   Load,
	Encode: encodeRecord,
	Decode: decodeRecord,
}

// Empty is the state before any record.
func Empty() *State {
	return &State{sessions: session.NewDB(), registry: registry.NewDB(), tasks: tasks.NewDB()}
}

// Clone is an independent copy.
func (s *State) Clone() *State {
	return &State{sessions: s.sessions.Clone(), registry: s.registry.Clone(), tasks: s.tasks.Clone()}
}

// errNoFamily: a Record with no field set, or two.
var errNoFamily = errors.New("state: a record of no family or of two")

// Check says whether Apply would accept r, changing nothing.
func (s *State) Check(r Record) error {
	switch r.family() {
	case FamilySession:
		return s.sessions.Check(*r.Session)
	case FamilyRegistry:
		return s.registry.Check(*r.Registry)
	case FamilyTask:
		return s.tasks.Check(*r.Task)
	}
	return errNoFamily
}

// Apply applies r: the one pure change of the state. It refuses what
// Check refuses, changing nothing.
func (s *State) Apply(r Record) error {
	switch r.family() {
	case FamilySession:
		return s.sessions.Apply(*r.Session)
	case FamilyRegistry:
		return s.registry.Apply(*r.Registry)
	case FamilyTask:
		return s.tasks.Apply(*r.Task)
	}
	return errNoFamily
}

// stateJSON is the encoding of State: {"v":1,"session":<session.DB
// snapshot>,"registry":<registry.DB snapshot>,"task":<tasks.DB
// snapshot>}; a new family adds a field.
type stateJSON struct {
	V       int             `json:"v"`
	Session json.RawMessage `json:"session"`
	// Registry is absent from states written before the family existed.
	Registry json.RawMessage `json:"registry,omitempty"`
	// Task is absent from states written before the family existed, and
	// from states with no task: a state without tasks is the same bytes
	// as before the family existed.
	Task json.RawMessage `json:"task,omitempty"`
}

// Snapshot encodes the state; equal states give equal bytes.
func (s *State) Snapshot() ([]byte, error) {
	sess, err := s.sessions.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("state: encoding state: %w", err)
	}
	reg, err := s.registry.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("state: encoding state: %w", err)
	}
	j := stateJSON{V: stateVersion, Session: sess, Registry: reg}
	if s.tasks.Len() > 0 {
		if j.Task, err = s.tasks.Snapshot(); err != nil {
			return nil, fmt.Errorf("state: encoding state: %w", err)
		}
	}
	return json.Marshal(j)
}

// Load decodes and checks a state Snapshot encoded (session.Restore and
// registry.Restore check everything Apply would have).
func Load(b []byte) (*State, error) {
	var j stateJSON
	if err := decodeStrict(b, &j); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if j.V != stateVersion {
		return nil, fmt.Errorf("state version %d, this build reads %d", j.V, stateVersion)
	}
	if j.Session == nil {
		return nil, fmt.Errorf("state without sessions")
	}
	db, err := session.Restore(j.Session)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	reg := registry.NewDB()
	if j.Registry != nil {
		if reg, err = registry.Restore(j.Registry); err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
	}
	tdb := tasks.NewDB()
	if j.Task != nil {
		if tdb, err = tasks.Restore(j.Task); err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
	}
	return &State{sessions: db, registry: reg, tasks: tdb}, nil
}
