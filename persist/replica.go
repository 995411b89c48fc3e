package persist

import (
	"context"
	"fmt"
)

// The standby's side of journal shipping (ha/doc.go): the active
// sends its latest snapshot's state and then its journal's records, as
// its own journal holds them; the standby installs the one and appends
// the others at the same indexes, so that both journals hold the same
// records and build the same state. Either returns only once what it was
// given is durable: the standby acknowledges right after.

// InstallSnapshot replaces the whole state with state, the state after
// the record at index as the active's snapshots and backups hold it
// (StateMachine.Snapshot's bytes); index 0 with no bytes is the empty
// state. It checks that state loads (Codec.Load) first and changes
// nothing if it does not (ErrBadState). Then, like RestoreBackup, it
// waits for the proposals under way and swaps in a journal made of that
// state as its snapshot at index, crash-safely; it is durable when
// InstallSnapshot returns, and the next record is index+1. Readers of
// View and Journal see the old state until then, the new one after; the
// old Journal answers ErrClosed.
func (s *Store[S, R]) InstallSnapshot(ctx context.Context, index uint64, state []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := loadInstalled(s.codec, index, state)
	if err != nil {
		return err
	}
	if err := s.replaceJournal(index, state, st); err != nil {
		return err
	}
	s.log.Warn("state installed from the active", "msg_id", MsgStateInstalled,
		"dir", s.dir, "last_index", index, "bytes", len(state))
	return nil
}

// loadInstalled checks a state to install and decodes it.
func loadInstalled[S StateMachine[S, R], R any](codec Codec[S, R], index uint64, b []byte) (S, error) {
	var none S
	if len(b) == 0 {
		if index != 0 {
			return none, fmt.Errorf("%w: no state at index %d (only the state at 0 may be empty)", ErrBadState, index)
		}
		return codec.Empty(), nil
	}
	if len(b) > maxSnapshotState {
		return none, fmt.Errorf("%w: %d bytes at index %d, more than a snapshot holds (%d)", ErrBadState, len(b), index, maxSnapshotState)
	}
	st, err := codec.Load(b)
	if err != nil {
		return none, fmt.Errorf("%w: at index %d: %w", ErrBadState, index, err)
	}
	return st, nil
}

// AppendReplicated appends records that the active journaled, their
// payloads exactly as its journal holds them, at indexes first,
// first+1, ...; first must follow the store's last record, with none of
// the store's own queued (ErrNotNext otherwise, and nothing changes).
//
// Each payload is decoded (Codec.Decode) and checked against the state
// with the ones before it applied, as Propose checks a record. The first one that does
// not decode or that the state refuses stops the call with an error
// naming its index: the records before it are journaled and published,
// it and those after it are not, and the store goes on (the next call
// must start at that index). A refused record means the two servers'
// states differ: the standby must be synchronized anew.
//
// The records the call journals share one write and one fsync (one
// journal batch, queued under one lock). AppendReplicated returns once
// they are durable and applied to the published state (View). Like Propose, ctx
// counts only until they are queued.
func (s *Store[S, R]) AppendReplicated(ctx context.Context, first uint64, payloads [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.gate.RLock()
	defer s.gate.RUnlock()

	s.mu.Lock()
	s.resumeLocked()
	if s.err != nil {
		s.mu.Unlock()
		return s.err
	}
	if len(s.queue) > 0 || first != s.index+1 {
		err := fmt.Errorf("%w: records from %d, the store holds up to %d with %d more of its own queued",
			ErrNotNext, first, s.index, len(s.queue))
		s.mu.Unlock()
		return err
	}
	// Check and apply to the look-ahead state in order, before queueing
	// anything: a check cannot be undone, but the records that passed
	// are a valid prefix and are kept.
	ops := make([]queued[R], 0, len(payloads))
	var refused error
	for i, p := range payloads {
		index := first + uint64(i)
		if len(p) > MaxPayload {
			refused = fmt.Errorf("persist: replicated record %d: %w: %d bytes (at most %d)", index, ErrTooLarge, len(p), MaxPayload)
			break
		}
		rec, err := s.codec.Decode(p)
		if err == nil {
			err = s.ahead.Check(rec)
		}
		if err != nil {
			refused = fmt.Errorf("persist: replicated record %d: %w", index, err)
			break
		}
		if err := s.ahead.Apply(rec); err != nil {
			// Check just passed: Apply cannot refuse. If it does, ahead
			// holds records the journal lacks: stop.
			s.err = fmt.Errorf("persist: replicated record %d: checked, then refused: %w", index, err)
			s.mu.Unlock()
			return s.err
		}
		ops = append(ops, queued[R]{index: index, rec: rec})
	}
	if len(ops) == 0 {
		s.mu.Unlock()
		return refused
	}
	// One enqueue for all: one batch, one fsync.
	_, b, err := s.j.enqueueAt(first, payloads[:len(ops)])
	if err != nil {
		// ahead already holds them: the store cannot go on from it.
		// Only a failed or closed journal gets here (s.mu held, queue
		// empty: the journal's next index is first).
		s.err = fmt.Errorf("persist: replicated records %d-%d checked, then not journaled: %w",
			first, first+uint64(len(ops))-1, err)
		s.mu.Unlock()
		return s.err
	}
	s.queue = append(s.queue, ops...)
	s.mu.Unlock()
	if err := s.await(b, ops[len(ops)-1].index); err != nil {
		return err
	}
	return refused
}
