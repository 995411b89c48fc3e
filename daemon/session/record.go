package session

import (
	"slices"
	"time"
)

// RecordVersion is the version of the record format described in doc.go.
// Apply refuses any other: a format change bumps it and teaches Apply the
// old one explicitly.
const RecordVersion = 1

// Kind says what a record does.
type Kind string

const (
	KindSessionCreated  Kind = "session-created"
	KindSessionRemoved  Kind = "session-removed"
	KindCopySetsAdded   Kind = "copyset-added"
	KindCopySetsRemoved Kind = "copyset-removed"
	KindStateChanged    Kind = "state-changed"
)

// Record is one change of the session database. Records are what the
// journal stores and what the standby replays; DB.Apply is the only code
// that turns them into state. Each kind uses the fields named in its
// comment and leaves the others empty.
type Record struct {
	Version int  `json:"v"`
	Kind    Kind `json:"kind"`
	// Session names the session the record is about (every kind).
	Session string `json:"session"`
	// At is when the change happened, on the proposer's clock (every
	// kind); it becomes the session's LastChange.
	At time.Time `json:"at"`
	// IfRev, when not zero, makes the record apply only while the session
	// is at that revision (any kind but session-created): a proposer that
	// decided from a state that has since changed gets ErrConflict instead
	// of overwriting newer truth.
	IfRev uint64 `json:"if_rev,omitempty"`

	// Create: session-created.
	Create *Create `json:"create,omitempty"`
	// CopySets: copyset-added, copyset-removed (one or more).
	CopySets []CopySet `json:"copy_sets,omitempty"`
	// Change: state-changed.
	Change *Change `json:"change,omitempty"`
}

// Create holds what a session is created with. A new session is Defined,
// Inactive, with production at H1 and direction H1->H2.
type Create struct {
	Type   Type   `json:"type"`
	CGName string `json:"cg_name"`
	Policy Policy `json:"policy"`
}

// Change is the new state of a session: every field is written, except
// Direction and ActiveSite, which an empty value leaves as they are.
type Change struct {
	State        State     `json:"state"`
	Status       Status    `json:"status"`
	Recoverable  bool      `json:"recoverable"`
	Copying      bool      `json:"copying"`
	Error        bool      `json:"error"`
	IOHeld       bool      `json:"io_held"`
	FromPrepared bool      `json:"from_prepared"`
	Direction    Direction `json:"direction,omitempty"`
	ActiveSite   Site      `json:"active_site,omitempty"`
	Reason       string    `json:"reason"`
}

// Clone is a deep copy, so that a stored record shares nothing with the
// proposer's.
func (r Record) Clone() Record {
	if r.Create != nil {
		c := *r.Create
		r.Create = &c
	}
	if r.Change != nil {
		c := *r.Change
		r.Change = &c
	}
	r.CopySets = slices.Clone(r.CopySets)
	return r
}

// changeFrom is a Change that leaves s as it is, the base the manager's
// decisions start from.
func changeFrom(s *Session) Change {
	return Change{
		State:        s.State,
		Status:       s.Status,
		Recoverable:  s.Recoverable,
		Copying:      s.Copying,
		Error:        s.Error,
		IOHeld:       s.IOHeld,
		FromPrepared: s.FromPrepared,
		Reason:       s.Reason,
	}
}
