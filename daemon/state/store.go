package state

import (
	"context"
	"slices"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/tasks"
	"github.com/lockstep-io/lockstep/persist"
)

// Store is the daemon's durable state: a persist.Store of State, with
// the typed API the daemon proposes to and reads from. It is a
// session.Store. What persist does (journal, group commit, snapshots,
// backups, the standby's side, a full disk) is persist's; this type only
// says which family a record belongs to and reads the state it builds.
type Store struct {
	p *persist.Store[*State, Record]
}

var _ session.Store = (*Store)(nil)

// Open opens the state directory dir (persist.OpenStore): the journal
// replayed into the State.
func Open(dir string, opts persist.Options) (*Store, error) {
	p, err := persist.OpenStore(dir, codec, opts)
	if err != nil {
		return nil, err
	}
	return &Store{p: p}, nil
}

// RestoreBackup restores the backup at path into the state directory
// dir with no daemon running on it (persist.RestoreBackup, the state
// checked to load as a State first).
func RestoreBackup(dir, path string, opts persist.Options) (persist.BackupInfo, error) {
	return persist.RestoreBackup(dir, path, codec, opts)
}

// Propose implements session.Store: r is checked against the state with
// every record proposed before it, journaled, fsynced and applied
// (persist.Store.Propose). A record the state refuses is not journaled
// and its error is returned.
func (s *Store) Propose(ctx context.Context, r session.Record) error {
	r = r.Clone() // shares nothing with the proposer's
	return s.p.Propose(ctx, Record{Session: &r})
}

// ProposeRegistry is Propose for the registry family (storage systems,
// heartbeat switch, epoch).
func (s *Store) ProposeRegistry(ctx context.Context, r registry.Record) error {
	return s.p.Propose(ctx, Record{Registry: &r})
}

// ProposeTask is Propose for the task family (scheduled tasks and their
// occurrences).
func (s *Store) ProposeTask(ctx context.Context, r tasks.Record) error {
	r.Steps = slices.Clone(r.Steps)
	return s.p.Propose(ctx, Record{Task: &r})
}

// Tasks are the scheduled tasks after the last durable record, as a copy.
func (s *Store) Tasks() *tasks.DB {
	var db *tasks.DB
	s.p.View(func(st *State) { db = st.tasks.Clone() })
	return db
}

// DB implements session.Store: the sessions after the last durable
// record, as a copy of the caller's own. It costs a copy of the volume
// index (O(copy sets)): session.DB offers no cheaper copy outside its
// package.
func (s *Store) DB() *session.DB {
	var db *session.DB
	s.p.View(func(st *State) { db = st.sessions.Clone() })
	return db
}

// Registry is the registry after the last durable record, as a copy.
func (s *Store) Registry() *registry.DB {
	var db *registry.DB
	s.p.View(func(st *State) { db = st.registry.Clone() })
	return db
}

// Snapshot writes a snapshot of the state now (persist.Store.Snapshot).
func (s *Store) Snapshot(ctx context.Context) error { return s.p.Snapshot(ctx) }

// Dir is the state directory.
func (s *Store) Dir() string { return s.p.Dir() }

// Journal is the store's journal, for readers such as the shipping of
// records to a standby (persist.Store.Journal).
func (s *Store) Journal() *persist.Journal { return s.p.Journal() }

// LastIndex is the index of the last record applied to the state.
func (s *Store) LastIndex() uint64 { return s.p.LastIndex() }

// WriteHealth is the store's current ability to write
// (persist.Store.WriteHealth).
func (s *Store) WriteHealth() persist.WriteHealth { return s.p.WriteHealth() }

// Probe finds out whether the state directory takes writes again
// (persist.Store.Probe).
func (s *Store) Probe() error { return s.p.Probe() }

// CreateBackup writes a backup of the state (persist.Store.CreateBackup).
func (s *Store) CreateBackup(ctx context.Context, epoch uint64) (persist.BackupInfo, error) {
	return s.p.CreateBackup(ctx, epoch)
}

// RestoreBackup replaces the state with the backup at path, verified
// first (persist.Store.RestoreBackup).
func (s *Store) RestoreBackup(ctx context.Context, path string) (persist.BackupInfo, error) {
	return s.p.RestoreBackup(ctx, path)
}

// InstallSnapshot replaces the state with the active's, the State
// encoding of doc.go (persist.Store.InstallSnapshot): a standby's side
// of journal shipping.
func (s *Store) InstallSnapshot(ctx context.Context, index uint64, state []byte) error {
	return s.p.InstallSnapshot(ctx, index, state)
}

// AppendReplicated appends the active's records, their payloads as its
// journal holds them (persist.Store.AppendReplicated).
func (s *Store) AppendReplicated(ctx context.Context, first uint64, payloads [][]byte) error {
	return s.p.AppendReplicated(ctx, first, payloads)
}

// Close waits for the proposals under way, closes the journal and
// releases the state directory.
func (s *Store) Close() error { return s.p.Close() }
