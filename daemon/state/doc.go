// Package state owns the manager's database (persist/doc.go): the record
// families the daemon journals (sessions, registry), the envelope that
// names them in the journal, the combined state they build (the
// session DB, the registry DB and the tasks DB) with its one pure apply, and Store,
// the typed store the daemon proposes to and reads from.
//
// Storage is package persist's: the journal, group commit, snapshots,
// backups, a full disk, the standby's side. persist holds bytes and
// knows nothing of sessions; this package is the persist.StateMachine
// (State) and persist.Codec that give the bytes their meaning, the way
// an application's state machine gives meaning to a raft log's
// commands. The active and the standby apply the very same records
// through State.Apply, which is what makes them identical.
//
// The Go API: Open a state directory (a Store over persist.OpenStore);
// Propose a session.Record, ProposeRegistry a registry.Record or
// ProposeTask a tasks.Record (each
// checked, journaled, fsynced, then applied; a refused one is never
// journaled); read DB and Registry (copies of the state after the last
// durable record), and Tasks. Store is a session.Store. The rest (snapshots,
// backups, WriteHealth and Probe, the standby's InstallSnapshot and
// AppendReplicated, Journal for the sender) is persist.Store's, passed
// through. Package statetest builds large stores for tests and
// benchmarks.
//
// # Payloads: the envelope
//
// Every payload the Store journals is a JSON object:
//
//	{"type": "session", "v": 1, "record": {...}}
//
// type names the record family, v the version of that family's encoding,
// record the family's record:
//
//	type        v  record
//	"session"   1  a session.Record (its format is in package session's doc)
//	"registry"  1  a registry.Record: storage systems and their
//	               connections, the heartbeat switch, the epoch
//	"task"      1  a tasks.Record: scheduled tasks and their
//	               occurrences (package tasks' doc)
//
// Later families (the HA relationship, ...) take new type names; a
// changed encoding of a family takes a new v, and both are read by the
// builds that know them. An unknown type or v or an unknown envelope
// field refuses the replay (ErrUnknownRecord): a journal written by a
// newer lockstep is not half read. A known family's record that does
// not decode is persist.ErrCorrupt.
//
// # State
//
// The state the Store snapshots, backs up and ships to a standby is the
// JSON object
//
//	{"v": 1, "session": <session.DB.Snapshot()>, "registry": <registry.DB.Snapshot()>,
//	 "task": <tasks.DB.Snapshot()>}
//
// with one field per family ("registry" is absent from states written
// before the family existed: an empty registry; "task" is absent when
// there is no task, so a state without tasks is the bytes it was before
// the family existed); unknown fields refuse to load. Loading it checks everything applying records would
// (session.Restore, registry.Restore).
//
// These formats are on disk in every installation: testdata/v1 holds a
// journal and a backup written by an earlier build, testdata/tasks-v1 a
// journal with the task family, which every build must open and replay
// to the same state.
package state
