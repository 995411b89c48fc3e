package persist

import "errors"

// Errors of the package, wrapped with the detail (file, offset, index).
// ErrLocked, ErrCorrupt, ErrMissingSegment, ErrSegmentOrder and
// ErrBadBackup are fatal where they occur: an admin must act, and the
// message says how. ErrCompacted and ErrBeyondEnd are answers a reader
// acts on. ErrWriteFailed and ErrClosed end a journal: reopen it.
// ErrNoSpace ends nothing: the store goes on once space returns.
// ErrNotNext and ErrBadState refuse what a standby was sent, changing
// nothing: the link is out of step or the active is broken, and a new
// synchronization is the answer.
var (
	// ErrLocked: another process (or another Open in this one) holds the
	// state directory.
	ErrLocked = errors.New("persist: state directory is locked")
	// ErrCorrupt: a record, a segment header or a snapshot failed its
	// checks where a crash cannot explain it.
	ErrCorrupt = errors.New("persist: journal corrupt")
	// ErrMissingSegment: the segments do not cover an unbroken range of
	// indexes (one was deleted or lost).
	ErrMissingSegment = errors.New("persist: journal segment missing")
	// ErrSegmentOrder: a segment's header does not match its place (file
	// renamed, copied over, or overlapping another).
	ErrSegmentOrder = errors.New("persist: journal segments out of order")
	// ErrCompacted: the records asked for were deleted by compaction; the
	// reader must start from a snapshot instead.
	ErrCompacted = errors.New("persist: index compacted")
	// ErrBeyondEnd: the index asked for is past the next record to come.
	ErrBeyondEnd = errors.New("persist: index beyond the end of the journal")
	// ErrClosed: the journal or store was closed.
	ErrClosed = errors.New("persist: closed")
	// ErrWriteFailed: a write or fsync of the journal failed. Whether the
	// bytes reached the disk is unknown (after a failed fsync the page
	// cache cannot be trusted), so the journal refuses every later append
	// and must be reopened, which runs recovery.
	ErrWriteFailed = errors.New("persist: journal write failed")
	// ErrNoSpace: the file system of the state directory is full (ENOSPC,
	// or EDQUOT). A journal write that failed so was undone at once
	// (nothing of its batch stays on disk, no acknowledged record is
	// touched) and the store refuses changes with it; it takes changes
	// again as soon as a write succeeds: the next proposal tries, and
	// Store.Probe tells when space is back.
	ErrNoSpace = errors.New("persist: no space left for the state")
	// ErrTooLarge: a payload longer than MaxPayload.
	ErrTooLarge = errors.New("persist: payload too large")
	// ErrSnapshotIndex: a snapshot for an index not yet durable, or older
	// than the latest snapshot.
	ErrSnapshotIndex = errors.New("persist: snapshot index out of range")
	// ErrBadBackup: a backup failed verification (format, version, member
	// names or sizes, checksums, or its state does not load).
	ErrBadBackup = errors.New("persist: invalid backup")
	// ErrNotNext: replicated records that do not start right after the
	// store's last record (a gap or an overlap), or that arrive while
	// the store has records of its own queued.
	ErrNotNext = errors.New("persist: replicated records are not the next ones")
	// ErrBadState: a state to install (Store.InstallSnapshot) that does
	// not load.
	ErrBadState = errors.New("persist: invalid state")
)

// adminHint ends every refusal to open: what an admin can do about it.
const adminHint = "restore a backup with `lockstepctl backup restore` " +
	"(list them with `lockstepctl backup list`), or move the state directory aside to start empty"

// Message ids of the events this package logs (the msg_id attribute),
// stable for operators' filters; the suffix is the severity.
const (
	MsgTornTail         = "persist-torn-tail-W"
	MsgSnapshotFallback = "persist-snapshot-fallback-W"
	MsgWriteFailed      = "persist-write-failed-E"
	MsgNoSpace          = "persist-no-space-E"
	MsgWritable         = "persist-writable-again-W"
	MsgTornTailNoCopy   = "persist-torn-tail-no-copy-W"
	MsgSnapshotFailed   = "persist-snapshot-failed-E"
	MsgBackupCreated    = "persist-backup-created-I"
	MsgBackupPruned     = "persist-backup-pruned-I"
	MsgBackupRestored   = "persist-backup-restored-W"
	MsgRestoreFinished  = "persist-restore-finished-W"
	MsgStateInstalled   = "persist-state-installed-W"
)
