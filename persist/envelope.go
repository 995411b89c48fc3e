package persist

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
)

// The store's payloads and state (doc.go has the formats). The journal
// itself only sees bytes; these are what the Store puts in them.
//
// Every journal payload is an envelope naming its record family and the
// family's encoding version, so that later issues add families (storage
// systems, heartbeat switch, HA relationship, epoch) beside "session"
// without touching the journal or reinterpreting old records:
//
//	{"type":"session","v":1,"record":{...session.Record...}}
//
// A family is added by (1) a const name below, (2) a field of state and
// of stateJSON, (3) a case in state.apply. A payload of a family or
// version this build does not know refuses the replay (ErrUnknownRecord):
// a journal written by a newer lockstep is never half understood.

// Record families and the version of their encoding in the envelope.
const (
	FamilySession       = "session"
	sessionRecordFormat = 1
	// FamilyRegistry: storage systems, the heartbeat switch, the epoch.
	FamilyRegistry       = "registry"
	registryRecordFormat = 1
)

type envelope struct {
	Type   string          `json:"type"`
	V      int             `json:"v"`
	Record json.RawMessage `json:"record"`
}

// encode wraps a record of a family in its envelope.
func encode(family string, version int, r any) ([]byte, error) {
	rec, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("persist: encoding record: %w", err)
	}
	return json.Marshal(envelope{Type: family, V: version, Record: rec})
}

// decodeStrict decodes one JSON value into v, refusing unknown fields
// and trailing data: a field this build does not know belongs to a newer
// format, which must not be silently dropped.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// stateVersion versions the store's state encoding (snapshots, backups).
const stateVersion = 1

// state is everything the journal's records build: one field per record
// family. It changes only through apply (and session.DB.Apply), so the
// same records give the same state on the active, the standby and at
// every replay.
type state struct {
	sessions *session.DB
	registry *registry.DB
}

func newState() *state { return &state{sessions: session.NewDB(), registry: registry.NewDB()} }

// clone is an independent copy.
func (s *state) clone() *state {
	return &state{sessions: s.sessions.Clone(), registry: s.registry.Clone()}
}

// apply decodes a journal payload and applies it.
func (s *state) apply(payload []byte) error {
	op, err := decodePayload(payload)
	if err != nil {
		return err
	}
	return op.apply(s)
}

// op is a decoded journal payload: what it would do to a state. check
// says whether apply would accept it, changing nothing; apply is the
// change. Decoding once serves the look-ahead state and the published
// one alike (Store.AppendReplicated).
type op struct {
	check, apply func(*state) error
}

// decodePayload decodes a journal payload of a family and version this
// build knows.
func decodePayload(payload []byte) (op, error) {
	var e envelope
	if err := decodeStrict(payload, &e); err != nil {
		return op{}, fmt.Errorf("%w: envelope: %v", ErrUnknownRecord, err)
	}
	switch {
	case e.Type == FamilySession && e.V == sessionRecordFormat:
		var r session.Record
		if err := json.Unmarshal(e.Record, &r); err != nil {
			return op{}, fmt.Errorf("%w: session record: %v", ErrCorrupt, err)
		}
		return op{
			check: func(s *state) error { return s.sessions.Check(r) },
			apply: func(s *state) error { return s.sessions.Apply(r) },
		}, nil
	case e.Type == FamilyRegistry && e.V == registryRecordFormat:
		var r registry.Record
		if err := json.Unmarshal(e.Record, &r); err != nil {
			return op{}, fmt.Errorf("%w: registry record: %v", ErrCorrupt, err)
		}
		return op{
			check: func(s *state) error { return s.registry.Check(r) },
			apply: func(s *state) error { return s.registry.Apply(r) },
		}, nil
	}
	return op{}, fmt.Errorf("%w: family %q version %d", ErrUnknownRecord, e.Type, e.V)
}

// stateJSON is the encoding of state: {"v":1,"session":<session.DB
// snapshot>}; a new family adds a field.
type stateJSON struct {
	V       int             `json:"v"`
	Session json.RawMessage `json:"session"`
	// Registry is absent from states written before the family existed.
	Registry json.RawMessage `json:"registry,omitempty"`
}

// marshal encodes the state; equal states give equal bytes.
func (s *state) marshal() ([]byte, error) {
	sess, err := s.sessions.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("persist: encoding state: %w", err)
	}
	reg, err := s.registry.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("persist: encoding state: %w", err)
	}
	return json.Marshal(stateJSON{V: stateVersion, Session: sess, Registry: reg})
}

// unmarshalState decodes and checks a state (session.Restore checks
// everything Apply would have).
func unmarshalState(b []byte) (*state, error) {
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
	return &state{sessions: db, registry: reg}, nil
}
