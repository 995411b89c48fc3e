package persist

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"
)

// The state directory (/var/lib/lockstep when packaged) as the Store lays
// it out:
//
//	LOCK       the lock (lock.go)
//	journal/   the journal: segments and snapshots
//	backups/   backup zips (backup.go)
//
// plus, only while a restore runs or after a crash in one,
// journal.restore.tmp/, journal.restore/ and journal.old/ (backup.go).
const (
	journalDirName = "journal"
	backupsDirName = "backups"
)

// Store is the durable state store: a state machine S of the
// application's whose records R are journaled before they are applied,
// rebuilt by OpenStore from the latest snapshot and the records after
// it. The store sees records only as the bytes codec.Encode makes of
// them, and the state only through StateMachine.
//
// Proposals are grouped like appends: Propose checks a record against the
// state with every record already queued applied ("ahead"), queues it to
// the journal and applies it to ahead under one lock, so the journal's
// order is the order of the checks; then, once its record is fsynced, it
// applies every durable record to the published state in index order.
// Many proposals thus share one fsync, and a reader of View never sees a
// record that a crash could lose.
//
// On a standby, the active's records arrive through AppendReplicated and
// its state through InstallSnapshot (replica.go) instead of proposals.
type Store[S StateMachine[S, R], R any] struct {
	codec   Codec[S, R]
	dir     string
	rawOpts Options // as given: the journal normalizes its own
	opts    Options
	log     *slog.Logger
	lock    *dirLock

	// gate is held shared by Propose, AppendReplicated, snapshots and
	// backups, exclusively by RestoreBackup, InstallSnapshot and Close,
	// which replace or end the journal.
	gate     sync.RWMutex
	backupMu sync.Mutex // one CreateBackup at a time

	mu     sync.Mutex
	j      *Journal
	ahead  S           // every queued record applied
	cur    S           // every durable record applied: what View shows
	index  uint64      // the last record applied to cur
	queue  []queued[R] // records in ahead and not yet in cur, in index order
	snapAt uint64      // the index of the latest snapshot
	err    error       // once set, Propose fails with it
	closed bool
	health health // whether the last write worked: WriteHealth

	kick     chan struct{} // wakes the snapshot goroutine
	stop     chan struct{}
	stopOnce sync.Once
	snapDone chan struct{}
}

// health is the store's ability to write, as WriteHealth reports it.
type health struct {
	err     error
	since   time.Time
	changed chan struct{}
}

// WriteHealth says whether the store can write. Err is nil while the
// last journal write (or Probe) worked; otherwise it says why the last
// one failed, since Since: ErrNoSpace (changes are refused until space
// returns: the next proposal or Probe tries again) or ErrWriteFailed (the
// store must be reopened). Changed is closed when Err next turns from nil
// to an error or back.
type WriteHealth struct {
	Err     error
	Since   time.Time
	Changed <-chan struct{}
}

// WriteHealth is the store's current ability to write.
func (s *Store[S, R]) WriteHealth() WriteHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	return WriteHealth{Err: s.health.err, Since: s.health.since, Changed: s.health.changed}
}

// setHealthLocked records the outcome of a write; s.mu is held.
func (s *Store[S, R]) setHealthLocked(err error) {
	if (err == nil) == (s.health.err == nil) {
		if err != nil {
			s.health.err = err // the latest reason
		}
		return
	}
	if err == nil {
		s.log.Warn("the state directory takes writes again", "msg_id", MsgWritable,
			"dir", s.dir, "unwritable_for", s.opts.Clock.Since(s.health.since).String())
	}
	s.health.err, s.health.since = err, s.opts.Clock.Now()
	close(s.health.changed)
	s.health.changed = make(chan struct{})
}

// ProbeSize is the free space Probe asks for before it calls the state
// directory writable again: more than a usual batch of records.
const ProbeSize = 64 << 10

// Probe finds out whether the journal's file system has room: it writes
// ProbeSize bytes to a temp file in the journal's directory, fsyncs and
// deletes it. The daemon probes at start (a full disk is reported before
// the first change fails) and, while WriteHealth reports ErrNoSpace, to
// tell when space has returned. If the probe works, the store takes
// changes again (WriteHealth turns nil) and Probe returns nil; otherwise
// WriteHealth turns to the failure, which Probe returns. After a failure
// that only reopening fixes, it returns that failure.
func (s *Store[S, R]) Probe() error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	dir := s.j.Dir()
	s.mu.Unlock()
	err := probeWrite(dir, ProbeSize)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if noSpace(err) {
			err = fmt.Errorf("%w: %s still has no room for %d bytes: %w", ErrNoSpace, dir, ProbeSize, err)
		}
		s.setHealthLocked(err)
		return err
	}
	s.resumeLocked()
	if s.err != nil {
		return s.err
	}
	s.setHealthLocked(nil)
	return nil
}

// resumeLocked, after a journal write undone for lack of space, drops
// the records that were not written from the look-ahead state and lets
// the journal take appends again (Journal.resume); s.mu is held. The
// records written before the failure are published first: their
// waiters may not have run yet.
func (s *Store[S, R]) resumeLocked() {
	if !s.j.undone() {
		return
	}
	durable := s.j.LastIndex()
	for len(s.queue) > 0 && s.queue[0].index <= durable {
		q := s.queue[0]
		if err := s.cur.Apply(q.rec); err != nil {
			s.err = fmt.Errorf("persist: record %d: accepted, then refused on replay: %w", q.index, err)
			return
		}
		s.index = q.index
		s.queue = s.queue[1:]
	}
	s.queue = nil
	s.ahead = s.cur.Clone()
	s.j.resume()
}

// queued is a record in ahead and not yet in cur: applying it to cur
// publishes it.
type queued[R any] struct {
	index uint64
	rec   R
}

// OpenStore opens the state directory dir (creating it if needed): takes
// its lock, finishes a restore a crash interrupted, opens the journal
// (running its recovery) and replays the latest snapshot and the records
// after it into the state, which codec makes and reads (a Codec's
// functions must all be set).
func OpenStore[S StateMachine[S, R], R any](dir string, codec Codec[S, R], opts Options) (*Store[S, R], error) {
	if codec.Empty == nil || codec.Load == nil || codec.Encode == nil || codec.Decode == nil {
		return nil, errors.New("persist: OpenStore: a Codec function is not set")
	}
	if err := mkdirDurable(dir, opts.withDefaults().syncDir); err != nil {
		return nil, fmt.Errorf("persist: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := openStore(dir, codec, opts, lock)
	if err != nil {
		lock.unlock()
		return nil, err
	}
	return s, nil
}

func openStore[S StateMachine[S, R], R any](dir string, codec Codec[S, R], opts Options, lock *dirLock) (*Store[S, R], error) {
	norm := opts.withDefaults()
	if finished, err := finishRestore(dir); err != nil {
		return nil, err
	} else if finished {
		norm.Logger.Warn("finished a restore that a crash interrupted", "msg_id", MsgRestoreFinished, "dir", dir)
	}
	// Backups interrupted by a crash leave temp files behind.
	if err := removeTemps(backupsDir(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("persist: %w", err)
	}
	j, err := openJournal(filepath.Join(dir, journalDirName), opts, nil)
	if err != nil {
		return nil, err
	}
	st, index, snapAt, err := replay(j, codec)
	if err != nil {
		j.Close()
		return nil, err
	}
	s := &Store[S, R]{
		codec:    codec,
		dir:      dir,
		rawOpts:  opts,
		opts:     norm,
		log:      norm.Logger,
		lock:     lock,
		j:        j,
		cur:      st,
		ahead:    st.Clone(),
		index:    index,
		snapAt:   snapAt,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		snapDone: make(chan struct{}),
		health:   health{since: norm.Clock.Now(), changed: make(chan struct{})},
	}
	go s.snapshotLoop()
	return s, nil
}

// replay rebuilds the state from the journal's latest snapshot and the
// records after it.
func replay[S StateMachine[S, R], R any](j *Journal, codec Codec[S, R]) (st S, index, snapAt uint64, err error) {
	var none S
	snap, ok, err := j.LatestSnapshot()
	if err != nil {
		return none, 0, 0, err
	}
	st = codec.Empty()
	if ok {
		if st, err = codec.Load(snap.State); err != nil {
			return none, 0, 0, fmt.Errorf("%w: snapshot %s: %w: %s",
				ErrCorrupt, filepath.Join(j.Dir(), snapName(snap.Index)), err, adminHint)
		}
		snapAt = snap.Index
	}
	last := j.LastIndex()
	r, err := j.ReadFrom(snapAt + 1)
	if err != nil {
		return none, 0, 0, err
	}
	defer r.Close()
	for i := snapAt + 1; i <= last; i++ {
		e, err := r.Next(context.Background())
		if err != nil {
			return none, 0, 0, err
		}
		rec, err := codec.Decode(e.Payload)
		if err == nil {
			err = st.Apply(rec)
		}
		if err != nil {
			return none, 0, 0, fmt.Errorf("persist: replaying record %d of %s: %w", e.Index, j.Dir(), err)
		}
	}
	return st, last, snapAt, nil
}

// Dir is the state directory.
func (s *Store[S, R]) Dir() string { return s.dir }

// Journal is the store's journal, for readers (ReadFrom, LatestSnapshot)
// such as the shipping of records to a standby. Appending to it or
// snapshotting it directly would bypass the state: don't. After
// RestoreBackup it is another Journal (the old one answers ErrClosed).
func (s *Store[S, R]) Journal() *Journal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.j
}

// LastIndex is the index of the last record applied to the state.
func (s *Store[S, R]) LastIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

// Propose checks r against the current state (with every record
// proposed before it applied), journals it (codec.Encode), waits for the
// fsync, and applies it. A record the state refuses is not journaled and
// Check's error is returned. Like Journal.Append, ctx counts only until
// the record is queued. The store keeps r until it is published: the
// caller must not change what it shares with r meanwhile.
func (s *Store[S, R]) Propose(ctx context.Context, r R) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	payload, err := s.codec.Encode(r)
	if err != nil {
		return fmt.Errorf("persist: encoding record: %w", err)
	}
	s.gate.RLock()
	defer s.gate.RUnlock()

	s.mu.Lock()
	s.resumeLocked()
	if s.err != nil {
		s.mu.Unlock()
		return s.err
	}
	if err := s.ahead.Check(r); err != nil {
		s.mu.Unlock()
		return err
	}
	index, b, err := s.j.enqueue(payload)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if err := s.ahead.Apply(r); err != nil {
		// Check just passed: Apply cannot refuse. If it does, the
		// journal holds a record the state lacks: stop.
		s.err = fmt.Errorf("persist: record %d: checked, then refused: %w", index, err)
		s.mu.Unlock()
		return s.err
	}
	s.queue = append(s.queue, queued[R]{index: index, rec: r})
	s.mu.Unlock()
	return s.await(b, index)
}

// await waits until batch b, which holds the store's record last, is
// durable, then publishes every queued record up to last; the caller
// holds s.gate shared.
func (s *Store[S, R]) await(b *batch, last uint64) error {
	<-b.done

	s.mu.Lock()
	defer s.mu.Unlock()
	if b.err != nil {
		// For lack of space the batch was undone and the store goes on
		// (resumeLocked, at the next proposal); any other failure ends
		// it.
		if s.err == nil && !errors.Is(b.err, ErrNoSpace) {
			s.err = b.err
		}
		s.setHealthLocked(b.err)
		return b.err
	}
	s.setHealthLocked(nil)
	// Every record up to last is durable (batches complete in order):
	// publish them all, whichever waiter gets here first.
	for len(s.queue) > 0 && s.queue[0].index <= last {
		q := s.queue[0]
		if err := s.cur.Apply(q.rec); err != nil {
			s.err = fmt.Errorf("persist: record %d: accepted, then refused on replay: %w", q.index, err)
			return s.err
		}
		s.index = q.index
		s.queue = s.queue[1:]
	}
	if n := s.opts.SnapshotEvery; n > 0 && s.index-s.snapAt >= uint64(n) {
		select {
		case s.kick <- struct{}{}:
		default: // a snapshot is already due
		}
	}
	return nil
}

// View calls read with the state after the last durable record (the
// published state), under the store's lock: read must not keep it, nor
// change it, nor call the store; it copies out what it needs (proposals
// wait meanwhile, so keep it short).
func (s *Store[S, R]) View(read func(S)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	read(s.cur)
}

// Snapshot writes a snapshot of the current state now (the store also
// writes one on its own every Options.SnapshotEvery records).
func (s *Store[S, R]) Snapshot(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.snapshot()
}

func (s *Store[S, R]) snapshotLoop() {
	defer close(s.snapDone)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			// A snapshot that fell due is still written: Close then
			// leaves at most SnapshotEvery records to replay.
			select {
			case <-s.kick:
				if err := s.snapshot(); err != nil {
					s.log.Error("snapshot failed", "msg_id", MsgSnapshotFailed, "err", err)
				}
			default:
			}
			return
		}
		if err := s.snapshot(); err != nil {
			// The journal still holds every record: the next trigger
			// tries again, and replay is only slower meanwhile.
			s.log.Error("snapshot failed", "msg_id", MsgSnapshotFailed, "err", err)
			if noSpace(err) {
				// The next journal write would fail too: say so now.
				s.mu.Lock()
				s.setHealthLocked(fmt.Errorf("%w: %w", ErrNoSpace, err))
				s.mu.Unlock()
			}
		}
	}
}

// snapshot writes the published state at its index. The state is copied
// under the lock and encoded outside it, so proposals continue.
func (s *Store[S, R]) snapshot() error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.index == s.snapAt {
		s.mu.Unlock()
		return nil
	}
	st, index, j := s.cur.Clone(), s.index, s.j
	s.mu.Unlock()
	b, err := st.Snapshot()
	if err != nil {
		return err
	}
	if err := j.Snapshot(index, b); err != nil {
		return err
	}
	s.mu.Lock()
	s.snapAt = max(s.snapAt, index)
	s.mu.Unlock()
	return nil
}

// Close waits for the proposals under way, closes the journal and
// releases the state directory. Proposals after Close fail with
// ErrClosed.
func (s *Store[S, R]) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.snapDone
	s.gate.Lock()
	defer s.gate.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.err = ErrClosed
	j := s.j
	s.mu.Unlock()
	err := j.Close()
	if lerr := s.lock.unlock(); err == nil {
		err = lerr
	}
	return err
}
