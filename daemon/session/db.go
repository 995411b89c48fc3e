package session

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lockstep-io/lockstep/hal"
)

// DB is the session database: every session by name, and an index from
// volume to the session whose copy set holds it. It changes only through
// Apply. The zero value is an empty database.
//
// A stored *Session is never modified: Apply replaces it with a new value.
// That makes Clone cheap for the sessions (it copies pointers) and lets a
// store publish a DB to readers while it builds the next one.
type DB struct {
	sessions map[string]*Session
	owner    map[hal.VolumeRef]string
	// ownerShared: owner is also the index of an older DB that must not
	// change; copy it before writing. Set only by derive.
	ownerShared bool
}

// NewDB returns an empty database.
func NewDB() *DB { return &DB{} }

// effect is what a valid record does to a DB, computed without changing it.
type effect struct {
	name    string
	session *Session // the session's new value; nil removes it
	claim   []hal.VolumeRef
	release []hal.VolumeRef
}

// Apply is the one function that changes the state (persist/doc.go). It
// validates r against the current state and either applies all of it or,
// returning an error, nothing. The result depends only on the DB and r, so
// the same records in the same order build the same DB on the active, on
// the standby and at every replay.
func (db *DB) Apply(r Record) error {
	e, err := db.plan(r)
	if err != nil {
		return err
	}
	db.commit(e)
	return nil
}

// Check reports the error Apply would return, without changing anything.
func (db *DB) Check(r Record) error {
	_, err := db.plan(r)
	return err
}

func (db *DB) commit(e effect) {
	if len(e.claim)+len(e.release) > 0 {
		if db.ownerShared {
			db.owner = maps.Clone(db.owner)
			db.ownerShared = false
		}
		if db.owner == nil {
			db.owner = make(map[hal.VolumeRef]string)
		}
		for _, v := range e.release {
			delete(db.owner, v)
		}
		for _, v := range e.claim {
			db.owner[v] = e.name
		}
	}
	if db.sessions == nil {
		db.sessions = make(map[string]*Session)
	}
	if e.session == nil {
		delete(db.sessions, e.name)
	} else {
		db.sessions[e.name] = e.session
	}
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// plan validates r and computes its effect. It only reads db.
func (db *DB) plan(r Record) (effect, error) {
	if r.Version != RecordVersion {
		return effect{}, invalid("record version %d, want %d", r.Version, RecordVersion)
	}
	if r.At.IsZero() {
		return effect{}, invalid("%s record for %q has no time", r.Kind, r.Session)
	}
	// Each kind carries its own fields and no others.
	var create, copySets, change bool
	switch r.Kind {
	case KindSessionCreated:
		create = true
	case KindSessionRemoved:
	case KindCopySetsAdded, KindCopySetsRemoved:
		copySets = true
	case KindStateChanged:
		change = true
	default:
		return effect{}, invalid("unknown record kind %q", r.Kind)
	}
	if (r.Create != nil) != create || (len(r.CopySets) > 0) != copySets || (r.Change != nil) != change {
		return effect{}, invalid("%s record for %q: wrong fields (create %t, copy sets %d, change %t)",
			r.Kind, r.Session, r.Create != nil, len(r.CopySets), r.Change != nil)
	}
	if r.Kind == KindSessionCreated {
		return db.planCreate(r)
	}
	old, ok := db.sessions[r.Session]
	if !ok {
		return effect{}, fmt.Errorf("%w: %q", ErrUnknownSession, r.Session)
	}
	if r.IfRev != 0 && r.IfRev != old.Rev {
		return effect{}, fmt.Errorf("%w: session %q is at revision %d, the %s record expects %d",
			ErrConflict, r.Session, old.Rev, r.Kind, r.IfRev)
	}
	// The new value starts as a shallow copy: CopySets is shared until a
	// record changes it, and then replaced, never written in place.
	s := *old
	s.Rev++
	switch r.Kind {
	case KindSessionRemoved:
		return db.planRemove(old)
	case KindCopySetsAdded:
		return db.planAdd(&s, r.CopySets)
	case KindCopySetsRemoved:
		return db.planRemoveCopySets(&s, r.CopySets)
	default:
		return planChange(&s, r)
	}
}

func (db *DB) planCreate(r Record) (effect, error) {
	c := r.Create
	switch {
	case r.IfRev != 0:
		return effect{}, invalid("session-created record for %q with if_rev", r.Session)
	case !validName(r.Session):
		return effect{}, invalid("session name %q: want 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit", r.Session)
	case c.CGName != "" && !validName(c.CGName):
		return effect{}, invalid("consistency group name %q: want 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit", c.CGName)
	case !c.Type.Valid():
		return effect{}, invalid("session %q: unknown type %q", r.Session, c.Type)
	case !c.Policy.Valid():
		return effect{}, invalid("session %q: unknown suspend policy %q", r.Session, c.Policy)
	}
	if _, ok := db.sessions[r.Session]; ok {
		return effect{}, fmt.Errorf("%w: %q", ErrExists, r.Session)
	}
	// A consistency group is one scope of the freeze core, and the
	// heartbeat arms or spares a scope as a whole: a HyperSwap session
	// (which the heartbeat must never cover, its z/OS host protects it)
	// shares a group only with other HyperSwap sessions.
	if c.CGName != "" {
		for _, name := range slices.Sorted(maps.Keys(db.sessions)) {
			o := db.sessions[name]
			if o.CGName == c.CGName && o.Type.HyperSwap() != c.Type.HyperSwap() {
				return effect{}, invalid("session %q: consistency group %s holds session %q of type %s: "+
					"a %s session shares a consistency group only with sessions of its own type "+
					"(the heartbeat covers a group as a whole, and never a HyperSwap session)",
					r.Session, c.CGName, o.Name, o.Type, MetroMirrorHyperSwap.Label())
			}
		}
	}
	s := &Session{
		Name:       r.Session,
		Type:       c.Type,
		CGName:     c.CGName,
		Policy:     c.Policy,
		ActiveSite: H1,
		Direction:  H1ToH2,
		State:      Defined,
		Status:     Inactive,
		LastChange: r.At.UTC(),
		Reason:     "created",
		Rev:        1,
	}
	return effect{name: s.Name, session: s}, nil
}

func (db *DB) planRemove(old *Session) (effect, error) {
	if old.State != Defined {
		return effect{}, fmt.Errorf("%w: cannot remove %q in state %s: terminate it first", ErrNotDefined, old.Name, old.State)
	}
	var release []hal.VolumeRef
	for _, c := range old.CopySets {
		release = append(release, c.H1, c.H2)
	}
	return effect{name: old.Name, release: release}, nil
}

// Copy sets change only in Defined: a copy set added to a running session
// would not be copying while the session says Prepared, and one removed
// would leave pairs on the hardware that nobody freezes.
func (db *DB) planAdd(s *Session, add []CopySet) (effect, error) {
	if s.State != Defined {
		return effect{}, fmt.Errorf("%w: cannot add copy sets to %q in state %s", ErrNotDefined, s.Name, s.State)
	}
	claim, err := db.claims(add)
	if err != nil {
		return effect{}, err
	}
	// Clip forces append to allocate: the old value keeps its slice.
	s.CopySets = append(slices.Clip(s.CopySets), add...)
	return effect{name: s.Name, session: s, claim: claim}, nil
}

// claims validates copy sets to be added and returns their volumes, none of
// which may be in a copy set already or appear twice.
func (db *DB) claims(add []CopySet) ([]hal.VolumeRef, error) {
	claim := make([]hal.VolumeRef, 0, 2*len(add))
	seen := make(map[hal.VolumeRef]bool, 2*len(add))
	for _, c := range add {
		if err := c.Validate(); err != nil {
			return nil, err
		}
		for _, v := range [2]hal.VolumeRef{c.H1, c.H2} {
			if owner, ok := db.owner[v]; ok {
				return nil, fmt.Errorf("%w: %s is in a copy set of session %q", ErrVolumeInUse, v, owner)
			}
			if seen[v] {
				return nil, fmt.Errorf("%w: %s appears twice in the copy sets to add", ErrVolumeInUse, v)
			}
			seen[v] = true
			claim = append(claim, v)
		}
	}
	return claim, nil
}

func (db *DB) planRemoveCopySets(s *Session, remove []CopySet) (effect, error) {
	if s.State != Defined {
		return effect{}, fmt.Errorf("%w: cannot remove copy sets from %q in state %s", ErrNotDefined, s.Name, s.State)
	}
	drop := make(map[CopySet]bool, len(remove))
	for _, c := range remove {
		// The volume index says whose the volumes are; the copy set must
		// also pair exactly these two, and be named once.
		if db.owner[c.H1] != s.Name || db.owner[c.H2] != s.Name || drop[c] {
			return effect{}, fmt.Errorf("%w: %s in session %q", ErrNoCopySet, c, s.Name)
		}
		drop[c] = true
	}
	var keep []CopySet
	var release []hal.VolumeRef
	for _, c := range s.CopySets {
		if drop[c] {
			release = append(release, c.H1, c.H2)
		} else {
			keep = append(keep, c)
		}
	}
	if len(release) != 2*len(drop) {
		// Both volumes are the session's but in two different copy sets.
		return effect{}, fmt.Errorf("%w: a copy set to remove from %q pairs volumes of two of its copy sets", ErrNoCopySet, s.Name)
	}
	s.CopySets = keep // nil when empty, as after creation: one spelling per state
	return effect{name: s.Name, session: s, release: release}, nil
}

func planChange(s *Session, r Record) (effect, error) {
	c := r.Change
	if c.Direction != "" && !c.Direction.Valid() {
		return effect{}, invalid("session %q: unknown direction %q", s.Name, c.Direction)
	}
	if c.ActiveSite != "" && !c.ActiveSite.Valid() {
		return effect{}, invalid("session %q: unknown active site %q", s.Name, c.ActiveSite)
	}
	s.State, s.Status = c.State, c.Status
	s.Recoverable, s.Copying, s.Error, s.IOHeld = c.Recoverable, c.Copying, c.Error, c.IOHeld
	s.FromPrepared = c.FromPrepared
	if c.Direction != "" {
		s.Direction = c.Direction
	}
	if c.ActiveSite != "" {
		s.ActiveSite = c.ActiveSite
	}
	s.Reason = c.Reason
	s.LastChange = r.At.UTC()
	if err := s.check(); err != nil {
		return effect{}, err
	}
	return effect{name: s.Name, session: s}, nil
}

// Clone returns an independent copy: applying records to either leaves
// the other as it was.
func (db *DB) Clone() *DB {
	return &DB{sessions: maps.Clone(db.sessions), owner: maps.Clone(db.owner)}
}

// derive is Clone for a DB that will never change again (a store's
// published one): the volume index is shared until the copy changes it.
func (db *DB) derive() *DB {
	return &DB{sessions: maps.Clone(db.sessions), owner: db.owner, ownerShared: true}
}

// Len is the number of sessions.
func (db *DB) Len() int { return len(db.sessions) }

// Session returns a copy of the named session.
func (db *DB) Session(name string) (*Session, bool) {
	s, ok := db.sessions[name]
	if !ok {
		return nil, false
	}
	return s.Clone(), true
}

// Sessions returns copies of every session, sorted by name.
func (db *DB) Sessions() []*Session {
	return db.collect(func(*Session) bool { return true })
}

// ByCGName returns copies of the sessions whose CGName is cg, sorted by
// name. An empty cg is no group: it returns nil (use Scope).
func (db *DB) ByCGName(cg string) []*Session {
	if cg == "" {
		return nil
	}
	return db.collect(func(s *Session) bool { return s.CGName == cg })
}

// Scope returns copies of the sessions frozen together with the named one,
// sorted by name: the sessions sharing its non-empty CGName, or the session
// alone. Nil if there is no such session.
func (db *DB) Scope(name string) []*Session {
	s, ok := db.sessions[name]
	if !ok {
		return nil
	}
	if s.CGName == "" {
		return []*Session{s.Clone()}
	}
	return db.ByCGName(s.CGName)
}

func (db *DB) collect(keep func(*Session) bool) []*Session {
	var out []*Session
	for _, s := range db.sessions {
		if keep(s) {
			out = append(out, s.Clone())
		}
	}
	slices.SortFunc(out, func(a, b *Session) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Owner returns the name of the session whose copy set holds v.
func (db *DB) Owner(v hal.VolumeRef) (string, bool) {
	name, ok := db.owner[v]
	return name, ok
}

// snapshotVersion versions the snapshot format (doc.go).
const snapshotVersion = 1

type snapshot struct {
	Version  int        `json:"v"`
	Sessions []*Session `json:"sessions"`
}

// Snapshot encodes the whole database as JSON, sessions sorted by name.
// Equal databases give equal bytes.
func (db *DB) Snapshot() ([]byte, error) {
	sessions := db.Sessions()
	if sessions == nil {
		sessions = []*Session{}
	}
	return json.Marshal(snapshot{Version: snapshotVersion, Sessions: sessions})
}

// Restore decodes a Snapshot. It checks everything Apply would have
// checked (names, types, copy sets, the one-copy-set-per-volume rule, the
// state invariants) and rebuilds the volume index, so a damaged snapshot
// is refused rather than loaded.
func Restore(b []byte) (*DB, error) {
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrInvalid, err)
	}
	if snap.Version != snapshotVersion {
		return nil, invalid("snapshot version %d, want %d", snap.Version, snapshotVersion)
	}
	db := NewDB()
	for _, s := range snap.Sessions {
		if s == nil {
			return nil, invalid("snapshot: null session")
		}
		if err := db.restoreOne(s); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	return db, nil
}

func (db *DB) restoreOne(s *Session) error {
	switch {
	case !validName(s.Name):
		return invalid("session name %q", s.Name)
	case s.CGName != "" && !validName(s.CGName):
		return invalid("session %q: consistency group name %q", s.Name, s.CGName)
	case !s.Type.Valid() || !s.Policy.Valid():
		return invalid("session %q: type %q, policy %q", s.Name, s.Type, s.Policy)
	case s.Rev == 0 || s.LastChange.IsZero():
		return invalid("session %q: no revision or no last change", s.Name)
	}
	if _, ok := db.sessions[s.Name]; ok {
		return fmt.Errorf("%w: %q twice", ErrExists, s.Name)
	}
	if err := s.check(); err != nil {
		return err
	}
	claim, err := db.claims(s.CopySets)
	if err != nil {
		return fmt.Errorf("session %q: %w", s.Name, err)
	}
	s.LastChange = s.LastChange.UTC()
	if len(s.CopySets) == 0 {
		s.CopySets = nil
	}
	db.commit(effect{name: s.Name, session: s, claim: claim})
	return nil
}
