package link

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/persist"
)

// Sink is the standby's durable state, as the Receiver feeds it. Both
// writing methods return only once what they were given is durable
// (fsynced): the Receiver acknowledges right after.
type Sink interface {
	// Position is the last durable record and the SHA-256 of its payload
	// (zero Sum when none, or when only a snapshot covers it).
	Position(ctx context.Context) (Position, error)
	// InstallSnapshot replaces the whole state with state, the state
	// after the record at index (index 0 and no bytes: the empty state).
	InstallSnapshot(ctx context.Context, index uint64, state []byte) error
	// Append adds the records first, first+1, ... after the last one.
	Append(ctx context.Context, first uint64, payloads [][]byte) error
}

// Position is where a Sink stands.
type Position struct {
	Index uint64
	Sum   [32]byte
}

// JournalPosition is the Position of a persist journal: its last record
// and the SHA-256 of its payload.
func JournalPosition(ctx context.Context, j *persist.Journal) (Position, error) {
	last := j.LastIndex()
	if last == 0 {
		return Position{}, nil
	}
	r, err := j.ReadFrom(last)
	if errors.Is(err, persist.ErrCompacted) {
		return Position{Index: last}, nil // only a snapshot covers it
	}
	if err != nil {
		return Position{}, err
	}
	defer r.Close()
	e, err := r.Next(ctx)
	if err != nil {
		return Position{}, err
	}
	return Position{Index: last, Sum: sha256.Sum256(e.Payload)}, nil
}

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	// Link names the link in the events reported.
	Link ha.LinkID
	// Report receives SnapshotInstalled, StreamCaughtUp, HigherEpochSeen
	// (an EpochNotice from the active) and SyncFailed (the Sink failed):
	// the daemon passes ha.Loop.Post. Must not block.
	Report func(ha.Event)
}

// Receiver is the standby's side of a link: after RequestSync it installs
// the snapshot and appends the records the active sends, through the Sink,
// and acknowledges each only once the Sink has made it durable.
type Receiver struct {
	c    *Conn
	sink Sink
	opts ReceiverOptions

	mu        sync.Mutex
	requested bool
	index     uint64 // the last durable record (or snapshot) on the sink
	target    uint64 // the active's last record when the stream began
	targetSet bool
	caughtUp  bool
	snap      *Snapshot // a snapshot being assembled; Data grows
}

// NewReceiver returns the Receiver of link c feeding sink. Run it.
func NewReceiver(c *Conn, sink Sink, opts ReceiverOptions) *Receiver {
	return &Receiver{c: c, sink: sink, opts: opts}
}

// Index is the last index durable on the sink through this link.
func (r *Receiver) Index() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.index
}

func (r *Receiver) report(ev ha.Event) {
	if r.opts.Report != nil {
		r.opts.Report(ev)
	}
}

// RequestSync asks the active for a synchronization (the ha.RequestSync
// action, after the standby's backup): full, or a catch-up after the
// sink's last record. Nothing the active sends is applied before it.
func (r *Receiver) RequestSync(ctx context.Context, full bool) error {
	pos, err := r.sink.Position(ctx)
	if err != nil {
		return fmt.Errorf("%w: reading the position: %w", ErrSink, err)
	}
	r.mu.Lock()
	if r.requested {
		r.mu.Unlock()
		return fmt.Errorf("%w: a second sync request on one link", ErrProtocol)
	}
	r.requested, r.index = true, pos.Index
	r.mu.Unlock()
	return r.c.Send(ctx, SyncRequest{Full: full, Index: pos.Index, Sum: pos.Sum})
}

// Run serves the link until it ends or ctx does, then closes the link
// (with the reason as goodbye) and returns why. A Sink failure is also
// reported as ha.SyncFailed.
func (r *Receiver) Run(ctx context.Context) error {
	err := r.serve(ctx)
	r.c.Close(err)
	if errors.Is(err, ErrSink) {
		r.report(ha.SyncFailed{Link: r.opts.Link, Err: err})
	}
	return err
}

func (r *Receiver) serve(ctx context.Context) error {
	for {
		m, err := r.c.Recv(ctx)
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case Snapshot:
			err = r.snapshot(ctx, m)
		case Records:
			err = r.records(ctx, m)
		case EpochNotice:
			r.report(ha.HigherEpochSeen{Epoch: m.Epoch, From: "peer " + r.c.Peer().Name})
		default:
			err = fmt.Errorf("%w: %s from the active", ErrProtocol, m.Type())
		}
		if err != nil {
			return err
		}
	}
}

func (r *Receiver) snapshot(ctx context.Context, m Snapshot) error {
	r.mu.Lock()
	requested, cur := r.requested, r.snap
	r.mu.Unlock()
	if !requested {
		return fmt.Errorf("%w: a snapshot before the sync request", ErrProtocol)
	}
	if m.Offset == 0 {
		// A new snapshot; a partial one is dropped. Grow as data comes
		// rather than trusting Total for the allocation.
		cur = &Snapshot{Index: m.Index, Total: m.Total, Data: make([]byte, 0, min(m.Total, 64<<20))}
	} else if cur == nil || m.Index != cur.Index || m.Total != cur.Total || m.Offset != uint64(len(cur.Data)) {
		return fmt.Errorf("%w: snapshot chunk at %d out of sequence", ErrProtocol, m.Offset)
	}
	cur.Data = append(cur.Data, m.Data...)
	if uint64(len(cur.Data)) < cur.Total {
		r.mu.Lock()
		r.snap = cur
		r.mu.Unlock()
		return nil
	}
	if err := r.sink.InstallSnapshot(ctx, cur.Index, cur.Data); err != nil {
		return fmt.Errorf("%w: installing the snapshot at %d: %w", ErrSink, cur.Index, err)
	}
	r.mu.Lock()
	r.snap, r.index = nil, cur.Index
	caught := r.checkCaughtUp()
	r.mu.Unlock()
	if err := r.c.Send(ctx, Ack{Index: cur.Index}); err != nil {
		return err
	}
	r.report(ha.SnapshotInstalled{Link: r.opts.Link, Index: cur.Index})
	if caught {
		r.report(ha.StreamCaughtUp{Link: r.opts.Link, Index: cur.Index})
	}
	return nil
}

func (r *Receiver) records(ctx context.Context, m Records) error {
	r.mu.Lock()
	requested, index, partial := r.requested, r.index, r.snap != nil
	r.mu.Unlock()
	switch {
	case !requested:
		return fmt.Errorf("%w: records before the sync request", ErrProtocol)
	case partial:
		return fmt.Errorf("%w: records inside a snapshot", ErrProtocol)
	case m.First != index+1:
		return fmt.Errorf("%w: records from %d, the standby holds up to %d", ErrProtocol, m.First, index)
	}
	n := uint64(len(m.Payloads))
	if n > 0 {
		if err := r.sink.Append(ctx, m.First, m.Payloads); err != nil {
			return fmt.Errorf("%w: appending records %d-%d: %w", ErrSink, m.First, m.First+n-1, err)
		}
	}
	r.mu.Lock()
	r.index = index + n
	if !r.targetSet {
		r.target, r.targetSet = m.Durable, true
	}
	caught := r.checkCaughtUp()
	index = r.index
	r.mu.Unlock()
	if n > 0 {
		// Durable on the sink: only now acknowledged.
		if err := r.c.Send(ctx, Ack{Index: index}); err != nil {
			return err
		}
	}
	if caught {
		r.report(ha.StreamCaughtUp{Link: r.opts.Link, Index: index})
	}
	return nil
}

// checkCaughtUp reports, once, that the sink holds every record the
// active held when the stream began; r.mu is held.
func (r *Receiver) checkCaughtUp() bool {
	if !r.targetSet || r.caughtUp || r.index < r.target {
		return false
	}
	r.caughtUp = true
	return true
}
