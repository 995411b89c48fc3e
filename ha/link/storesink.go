package link

import (
	"context"

	"github.com/lockstep-io/lockstep/persist"
)

// Replica is the standby's side of a persist.Store, whatever state its
// records build: the link ships bytes (a snapshot's state, records'
// payloads) and never reads them.
type Replica interface {
	// Journal is the store's journal (persist.Store.Journal).
	Journal() *persist.Journal
	// InstallSnapshot is persist.Store.InstallSnapshot.
	InstallSnapshot(ctx context.Context, index uint64, state []byte) error
	// AppendReplicated is persist.Store.AppendReplicated.
	AppendReplicated(ctx context.Context, first uint64, payloads [][]byte) error
}

// StoreSink is the Sink of a standby whose state is a persist.Store: the
// snapshot replaces the store's state and journal, the records are
// appended at the active's indexes with the active's payloads, so that
// both journals hold the same records. Store.InstallSnapshot and
// Store.AppendReplicated return only once durable, as a Sink must.
type StoreSink struct{ Store Replica }

var _ Sink = StoreSink{}

// Position is JournalPosition of the store's journal. Right after a
// snapshot was installed (and until the next record), it is the
// snapshot's index with a zero Sum: the store keeps no payload for that
// index, so a catch-up from there cannot be checked against the active's
// record and gets a snapshot again.
func (s StoreSink) Position(ctx context.Context) (Position, error) {
	return JournalPosition(ctx, s.Store.Journal())
}

// InstallSnapshot installs the active's state (Store.InstallSnapshot:
// checked first, nothing changed if it does not load).
func (s StoreSink) InstallSnapshot(ctx context.Context, index uint64, state []byte) error {
	return s.Store.InstallSnapshot(ctx, index, state)
}

// Append appends the active's records (Store.AppendReplicated: all in
// one fsync; a record the store refuses ends the call, those before it
// kept).
func (s StoreSink) Append(ctx context.Context, first uint64, payloads [][]byte) error {
	return s.Store.AppendReplicated(ctx, first, payloads)
}
