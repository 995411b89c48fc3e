package session

import (
	"context"
	"sync"
)

// Store makes records durable and applies them.
type Store interface {
	// Propose checks r against the current state, makes it durable, then
	// applies it. A record that Apply refuses is not stored and its error
	// is returned; a stored record is applied before Propose returns.
	Propose(ctx context.Context, r Record) error
	// DB returns the state after the last applied record, as a DB of the
	// caller's own: applying records to it does not change the store.
	DB() *DB
}

// MemoryStore is a Store that keeps records in memory: the durable step
// of the journal-backed store (persist) is missing, nothing else.
//
// Propose applies each record to a private copy of the current DB and
// publishes the copy only once the record is accepted (and, in a durable
// store, written), so a reader never sees a half-applied record and a
// refused one leaves no trace. A published DB is never modified again;
// DB hands out copies that share its sessions and volume index until they
// change them, which costs O(number of sessions), not O(copy sets).
type MemoryStore struct {
	mu      sync.Mutex
	db      *DB
	records []Record
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{db: NewDB()} }

// Propose implements Store. Proposals are applied one at a time, in the
// order they take the store's lock.
func (m *MemoryStore) Propose(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r = r.Clone()
	m.mu.Lock()
	defer m.mu.Unlock()
	next := m.db.derive()
	if err := next.Apply(r); err != nil {
		return err
	}
	// A durable store appends r to its journal and fsyncs here, before
	// publishing: a reader must never see state that a crash could lose.
	m.records = append(m.records, r)
	m.db = next
	return nil
}

// DB implements Store.
func (m *MemoryStore) DB() *DB {
	m.mu.Lock()
	db := m.db
	m.mu.Unlock()
	return db.derive()
}

// Records returns a copy of every accepted record, in order: replaying
// them into NewDB gives DB() again, which is what a standby does.
func (m *MemoryStore) Records() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Record, len(m.records))
	for i, r := range m.records {
		out[i] = r.Clone()
	}
	return out
}
