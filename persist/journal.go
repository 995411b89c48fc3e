package persist

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
)

// Options configure a Journal and a Store. The zero value is usable.
type Options struct {
	// SegmentSize: before a write batch, a segment that holds at least
	// this many bytes is closed and a new one begun (default 16 MiB). A
	// batch is never split, so a segment may exceed it by one batch.
	SegmentSize int64
	// SnapshotsKept is how many snapshots are kept (default 2). Compaction
	// deletes the segments wholly covered by the oldest one kept, so with
	// 2 a damaged latest snapshot can fall back to the one before it; 1
	// deletes everything the latest covers.
	SnapshotsKept int
	// SnapshotEvery (Store) is the number of records after which the store
	// writes a snapshot on its own (default 10 000; negative: never).
	SnapshotEvery int
	// BackupRetention (Store) is the age past which backups are deleted
	// after each new one, the newest always kept (default 30 days;
	// negative: keep all).
	BackupRetention time.Duration
	// Clock stamps backups (nil: real time).
	Clock clock.Clock
	// Logger receives repairs and failures (nil: discard).
	Logger *slog.Logger

	// syncDir fsyncs a directory (nil: the real one); tests record the
	// calls.
	syncDir func(dir string) error
}

// Defaults of Options.
const (
	DefaultSegmentSize     = 16 << 20
	DefaultSnapshotsKept   = 2
	DefaultSnapshotEvery   = 10_000
	DefaultBackupRetention = 30 * 24 * time.Hour
)

func (o Options) withDefaults() Options {
	if o.SegmentSize <= 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SnapshotsKept <= 0 {
		o.SnapshotsKept = DefaultSnapshotsKept
	}
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = DefaultSnapshotEvery
	}
	if o.BackupRetention == 0 {
		o.BackupRetention = DefaultBackupRetention
	}
	o.Clock = clock.OrReal(o.Clock)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("component", "persist")
	if o.syncDir == nil {
		o.syncDir = syncDir
	}
	return o
}

// Journal is the append-only, segmented record log (doc.go).
//
// Appends are grouped: one writer goroutine takes every record queued
// while the previous fsync ran, writes them with one write call and makes
// them durable with one fsync. Append returns once its record is durable.
// Indexes are assigned in the order Appends queue, which is the order of
// the records on disk.
type Journal struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *dirLock // nil when the Store holds the state directory's lock

	snapMu sync.Mutex // one Snapshot at a time

	mu      sync.Mutex
	wake    *sync.Cond    // the writer waits on it for a batch or Close
	segs    []*segment    // oldest first; the last one is being written
	snaps   []uint64      // snapshot files kept, oldest first
	next    uint64        // the index the next Append gets
	pending *batch        // appends queued for the writer
	durable uint64        // the last fsynced index
	changed chan struct{} // closed and replaced when durable, err or closing change
	// err is set once a write failed: appends fail with it. It is
	// ErrWriteFailed for good, or, when resumable, ErrNoSpace: the batch
	// was undone and resume lets appends go on (see noSpace).
	err       error
	resumable bool
	closing   bool
	done      chan struct{} // closed when the writer has returned

	// Owned by the writer goroutine.
	f          *os.File // the last segment, open for appending
	active     *segment
	activeSize int64
	lastCRC    uint32
	buf        []byte

	syncs atomic.Uint64 // batches written: tests and benchmarks read it
	// beforeWrite, if set (by tests, before the first Append), runs in
	// the writer before each batch is written.
	beforeWrite func(records int)
	// afterEnqueue, if set (by tests, before the first Append), runs in
	// the appender after each enqueue, j.mu released: a test can wait
	// there for the writer to take the batch, which shows what one
	// enqueue puts in one batch.
	afterEnqueue func()
}

// batch is the records that one write and one fsync make durable.
type batch struct {
	first    uint64
	payloads [][]byte
	done     chan struct{} // closed when written (err nil) or failed
	err      error
}

// Open opens the journal in dir, creating it if dir holds none, after
// taking the directory's lock (ErrLocked if another holder has it) and
// running recovery (recover.go). A refusal to open names the file and
// offset at fault and leaves the directory as it was.
func Open(dir string, opts Options) (*Journal, error) {
	opts = opts.withDefaults()
	if err := mkdirDurable(dir, opts.syncDir); err != nil {
		return nil, fmt.Errorf("persist: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	j, err := openJournal(dir, opts, lock)
	if err != nil {
		lock.unlock()
		return nil, err
	}
	return j, nil
}

// openJournal opens the journal in dir; the caller holds the lock that
// protects dir. lock, if not nil, is released by Close.
func openJournal(dir string, opts Options, lock *dirLock) (*Journal, error) {
	opts = opts.withDefaults()
	if err := mkdirDurable(dir, opts.syncDir); err != nil {
		return nil, fmt.Errorf("persist: %w", err)
	}
	if err := removeTemps(dir); err != nil {
		return nil, fmt.Errorf("persist: %w", err)
	}
	rec, err := recoverDir(dir, opts.Logger)
	if err != nil {
		return nil, err
	}
	active := rec.segs[len(rec.segs)-1]
	// Recovery left the file exactly active.size bytes long.
	f, err := os.OpenFile(active.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("persist: %w", err)
	}
	j := &Journal{
		dir:        dir,
		opts:       opts,
		log:        opts.Logger,
		lock:       lock,
		segs:       rec.segs,
		snaps:      rec.snaps,
		next:       active.last + 1,
		durable:    active.last,
		changed:    make(chan struct{}),
		done:       make(chan struct{}),
		f:          f,
		active:     active,
		activeSize: active.size,
		lastCRC:    rec.lastCRC,
	}
	j.wake = sync.NewCond(&j.mu)
	go j.run()
	return j, nil
}

// Dir is the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// FirstIndex is the oldest record still readable (older ones were
// compacted). It is LastIndex+1 when the journal holds no record.
func (j *Journal) FirstIndex() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.segs[0].first
}

// LastIndex is the last durable record's index (0 when none was ever
// written; the snapshot's index after a restore).
func (j *Journal) LastIndex() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.durable
}

// Append adds payload as the next record and returns its index once the
// record is fsynced. Concurrent Appends share one write and one fsync.
//
// ctx is honoured until the record is queued; after that Append waits for
// the fsync, however long the disk takes: returning early would answer
// "not done" for a record that may still become durable and be replayed.
// payload must not change until Append returns.
func (j *Journal) Append(ctx context.Context, payload []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	j.resume() // after a write undone for lack of space: try again
	index, b, err := j.enqueue(payload)
	if err != nil {
		return 0, err
	}
	<-b.done
	if b.err != nil {
		return 0, b.err
	}
	return index, nil
}

// enqueue queues payload for the writer and returns its index and the
// batch to wait for. The Store calls it under its own lock, so that the
// order of its records in the journal is the order it checked them in.
func (j *Journal) enqueue(payload []byte) (uint64, *batch, error) {
	return j.enqueueAt(0, [][]byte{payload})
}

// enqueueAt queues payloads (at least one) as consecutive records and
// returns the index of the first and the batch to wait for. They join
// the pending batch under one hold of j.mu, which the writer needs to
// take that batch: all of them go into the same write and the same
// fsync (a batch is never split, not even by a segment rollover). If
// first is not 0, it must be the index the first record gets, else
// nothing is queued (ErrNotNext). Nothing is queued either if one
// payload is too large.
func (j *Journal) enqueueAt(first uint64, payloads [][]byte) (uint64, *batch, error) {
	for _, p := range payloads {
		if len(p) > MaxPayload {
			return 0, nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, len(p), MaxPayload)
		}
	}
	j.mu.Lock()
	if j.closing {
		j.mu.Unlock()
		return 0, nil, ErrClosed
	}
	if j.err != nil {
		err := j.err
		j.mu.Unlock()
		return 0, nil, err
	}
	if first != 0 && first != j.next {
		err := fmt.Errorf("%w: records from %d, the journal's next is %d", ErrNotNext, first, j.next)
		j.mu.Unlock()
		return 0, nil, err
	}
	if j.pending == nil {
		j.pending = &batch{first: j.next, done: make(chan struct{})}
		j.wake.Signal()
	}
	j.pending.payloads = append(j.pending.payloads, payloads...)
	index, b := j.next, j.pending
	j.next += uint64(len(payloads))
	j.mu.Unlock()
	if j.afterEnqueue != nil {
		j.afterEnqueue()
	}
	return index, b, nil
}

// run is the writer: it takes whatever is queued, writes and fsyncs it,
// and answers the waiting Appends, until Close.
func (j *Journal) run() {
	defer close(j.done)
	for {
		j.mu.Lock()
		for j.pending == nil && !j.closing {
			j.wake.Wait()
		}
		b, failed := j.pending, j.err
		j.pending = nil
		j.mu.Unlock()
		if b == nil {
			return // closing, and nothing left to write
		}
		err := failed
		if err == nil {
			if j.beforeWrite != nil {
				j.beforeWrite(len(b.payloads))
			}
			if err = j.write(b); err != nil {
				err = j.failed(b, err)
			}
		}
		b.err = err
		close(b.done)
	}
}

// failed handles a batch whose write (or fsync, or segment rollover)
// failed with err: the segment is cut back at once to the end of the last
// durable record, so that no part of the batch stays in it, and that cut
// is fsynced. If that worked and the cause is a full file system
// (noSpace), the journal is intact and only refuses appends until resume
// (ErrNoSpace); otherwise it refuses them until it is reopened
// (ErrWriteFailed). It returns the error the batch's appends get.
func (j *Journal) failed(b *batch, err error) error {
	last := b.first + uint64(len(b.payloads)) - 1
	cutErr := j.cutBack()
	resumable := cutErr == nil && noSpace(err)
	if resumable {
		err = fmt.Errorf("%w: records %d-%d of %s were not written, and nothing of them stays on disk (%w); "+
			"free space on that file system: the next change tries again", ErrNoSpace, b.first, last, j.dir, err)
		j.log.Error("journal write failed for lack of space; the batch was undone",
			"msg_id", MsgNoSpace, "file", j.active.path, "first", b.first, "last", last, "offset", j.activeSize, "err", err)
	} else {
		if cutErr != nil {
			err = fmt.Errorf("%w, and cutting %s back to %d bytes failed too: %w", err, j.active.path, j.activeSize, cutErr)
		}
		err = fmt.Errorf("%w: %w", ErrWriteFailed, err)
		j.log.Error("journal write failed; appends refused until the journal is reopened",
			"msg_id", MsgWriteFailed, "file", j.active.path, "err", err)
	}
	j.mu.Lock()
	j.err, j.resumable = err, resumable
	j.notify()
	j.mu.Unlock()
	return err
}

// cutBack truncates the segment being written to its last durable
// record and makes that durable: a failed write may have left part of a
// batch after it, which no Append was ever told is written.
func (j *Journal) cutBack() error {
	if err := j.f.Truncate(j.activeSize); err != nil {
		return err
	}
	return syncData(j.f)
}

// resume lets appends go on after a write that failed for lack of space
// and was undone: the next record again takes the index after the last
// durable one, and the batch queued since the failure fails (its records
// were numbered after the undone ones). It reports whether appends are
// accepted now; false after any other failure, or once closing. The
// Store calls it under its lock, after dropping the undone records from
// its look-ahead state.
func (j *Journal) resume() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.closing:
		return false
	case j.err == nil:
		return true
	case !j.resumable:
		return false
	}
	if p := j.pending; p != nil {
		p.err = j.err
		close(p.done)
		j.pending = nil
	}
	j.err, j.resumable = nil, false
	j.next = j.durable + 1
	return true
}

// undone reports whether the last write failed for lack of space and was
// undone, so that resume would let appends go on.
func (j *Journal) undone() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err != nil && j.resumable
}

// write makes one batch durable: a new segment first if the current one
// is full, then one write of every record and one fsync.
func (j *Journal) write(b *batch) error {
	if j.activeSize >= j.opts.SegmentSize && j.active.last >= j.active.first {
		if err := j.rollover(b.first); err != nil {
			return err
		}
	}
	buf, crc := j.buf[:0], j.lastCRC
	for i, p := range b.payloads {
		buf, crc = appendRecord(buf, crc, b.first+uint64(i), p, i == len(b.payloads)-1)
	}
	if cap(buf) <= 1<<20 {
		j.buf = buf // reuse, unless one huge batch would pin its memory
	}
	if _, err := j.f.Write(buf); err != nil {
		return err
	}
	if err := syncData(j.f); err != nil {
		return err
	}
	j.syncs.Add(1)
	j.lastCRC = crc
	j.activeSize += int64(len(buf))
	last := b.first + uint64(len(b.payloads)) - 1
	j.mu.Lock()
	j.active.last, j.active.size = last, j.activeSize
	j.durable = last
	j.notify()
	j.mu.Unlock()
	return nil
}

// rollover begins a new segment whose first record will be first. The
// current one is complete: its last batch was fsynced.
func (j *Journal) rollover(first uint64) error {
	seg, err := createSegment(j.dir, segHeader{first: first, prevCRC: j.lastCRC})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if err := j.f.Close(); err != nil {
		f.Close()
		return err
	}
	j.f = f
	j.mu.Lock()
	j.active.sealed = true
	j.segs = append(j.segs, seg)
	j.mu.Unlock()
	j.active, j.activeSize = seg, seg.size
	return nil
}

// notify wakes every waiting reader; j.mu is held.
func (j *Journal) notify() {
	close(j.changed)
	j.changed = make(chan struct{})
}

// Close waits for the queued appends to be written, stops the writer and
// releases the directory's lock. Appends after Close fail with ErrClosed;
// readers return the records already durable, then ErrClosed.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closing {
		j.mu.Unlock()
		<-j.done
		return nil
	}
	j.closing = true
	j.wake.Signal()
	j.mu.Unlock()
	<-j.done
	err := j.f.Close()
	j.mu.Lock()
	j.notify()
	j.mu.Unlock()
	if lerr := j.lock.unlock(); err == nil {
		err = lerr
	}
	return err
}
