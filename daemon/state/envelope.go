package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/tasks"
	"github.com/lockstep-io/lockstep/persist"
)

// The journal's payloads (doc.go has the format). The journal itself
// only sees bytes; these are what the Store puts in them.
//
// Every journal payload is an envelope naming its record family and the
// family's encoding version, so that later issues add families (storage
// systems, heartbeat switch, HA relationship, epoch) beside "session"
// without touching the journal or reinterpreting old records:
//
//	{"type":"session","v":1,"record":{...session.Record...}}
//
// A family is added by (1) a const name below, (2) a field of Record,
// (3) a case in encodeRecord and decodeRecord, (4) a field of State and
// of stateJSON and a case in State.Check and State.Apply. A payload of a
// family or version this build does not know refuses the replay
// (ErrUnknownRecord): a journal written by a newer lockstep is never half
// understood.

// Record families and the version of their encoding in the envelope.
const (
	FamilySession       = "session"
	sessionRecordFormat = 1
	// FamilyRegistry: storage systems, the heartbeat switch, the epoch.
	FamilyRegistry       = "registry"
	registryRecordFormat = 1
	// FamilyTask: scheduled tasks and their occurrences.
	FamilyTask       = "task"
	taskRecordFormat = 1
)

// ErrUnknownRecord: a payload whose envelope names a record family or
// version this build does not know (written by a newer lockstep), or
// that is no envelope at all.
var ErrUnknownRecord = errors.New("state: unknown record type")

// Record is one journal record as the state reads it: a record of one
// family, exactly one field set. It is what the Store journals (Encode)
// and replays (Decode).
type Record struct {
	Session  *session.Record
	Registry *registry.Record
	Task     *tasks.Record
}

// family is the one family r is of ("" for none or several).
func (r Record) family() string {
	var f []string
	if r.Session != nil {
		f = append(f, FamilySession)
	}
	if r.Registry != nil {
		f = append(f, FamilyRegistry)
	}
	if r.Task != nil {
		f = append(f, FamilyTask)
	}
	if len(f) != 1 {
		return ""
	}
	return f[0]
}

type envelope struct {
	Type   string          `json:"type"`
	V      int             `json:"v"`
	Record json.RawMessage `json:"record"`
}

// encodeRecord wraps a record in the envelope of its family.
func encodeRecord(r Record) ([]byte, error) {
	switch r.family() {
	case FamilySession:
		return encode(FamilySession, sessionRecordFormat, r.Session)
	case FamilyRegistry:
		return encode(FamilyRegistry, registryRecordFormat, r.Registry)
	case FamilyTask:
		return encode(FamilyTask, taskRecordFormat, r.Task)
	}
	return nil, errNoFamily
}

// encode wraps a record of a family in its envelope (persist.Store
// names the failure: "persist: encoding record: ...").
func encode(family string, version int, r any) ([]byte, error) {
	rec, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("%s record: %w", family, err)
	}
	return json.Marshal(envelope{Type: family, V: version, Record: rec})
}

// decodeRecord decodes a journal payload of a family and version this
// build knows. A family's record that does not decode is
// persist.ErrCorrupt: its envelope was written by a build that knew it.
func decodeRecord(payload []byte) (Record, error) {
	var e envelope
	if err := decodeStrict(payload, &e); err != nil {
		return Record{}, fmt.Errorf("%w: envelope: %w", ErrUnknownRecord, err)
	}
	switch {
	case e.Type == FamilySession && e.V == sessionRecordFormat:
		var r session.Record
		if err := json.Unmarshal(e.Record, &r); err != nil {
			return Record{}, fmt.Errorf("%w: session record: %w", persist.ErrCorrupt, err)
		}
		return Record{Session: &r}, nil
	case e.Type == FamilyRegistry && e.V == registryRecordFormat:
		var r registry.Record
		if err := json.Unmarshal(e.Record, &r); err != nil {
			return Record{}, fmt.Errorf("%w: registry record: %w", persist.ErrCorrupt, err)
		}
		return Record{Registry: &r}, nil
	case e.Type == FamilyTask && e.V == taskRecordFormat:
		var r tasks.Record
		if err := json.Unmarshal(e.Record, &r); err != nil {
			return Record{}, fmt.Errorf("%w: task record: %w", persist.ErrCorrupt, err)
		}
		return Record{Task: &r}, nil
	}
	return Record{}, fmt.Errorf("%w: family %q version %d", ErrUnknownRecord, e.Type, e.V)
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
