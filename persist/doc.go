// Package persist owns lockstep's durable storage: the
// journal (a segmented, CRC-chained write-ahead log with group commit),
// its snapshots and compaction, the state store built on them (Store),
// zip backups, and the standby's side of journal shipping. It stores
// opaque records and snapshots: what a record means and what state the
// records build belong to the application (the daemon's is package
// daemon/state), which hands the store a StateMachine and a Codec. The
// package imports nothing of the domain above it.
//
// The state is built only by applying journal records in order; the
// journal makes each record durable before it is applied, and a record is
// acknowledged (Append or Propose returns) only after its fsync. The
// active of an HA pair (package ha) ships the same records to its standby with a
// Reader (Journal.ReadFrom), which waits for new ones and answers
// ErrCompacted when a snapshot must be sent instead; the standby's Store
// takes them with InstallSnapshot and AppendReplicated (see Standby).
//
// # The state machine
//
// A Store[S, R] keeps a state S that the application implements
// (StateMachine) and journals its records R as the bytes its Codec
// makes of them, the way a raft log carries commands and the
// application's state machine gives them meaning:
//
//	Check(r) error          would Apply take r? changes nothing
//	Apply(r) error          the one change of the state: a record
//	                        committed (or replayed); refuses exactly
//	                        what Check refuses, deterministic
//	Snapshot() ([]byte, error)
//	                        the state's bytes: snapshots, backups, what
//	                        a standby installs; equal states, equal bytes
//	Clone() S               an independent copy
//
//	Codec.Empty() S         the state before any record
//	Codec.Load(b) (S, error)
//	                        a state from Snapshot's bytes, checked as
//	                        applying records would check it
//	Codec.Encode(r)         a record's journal payload
//	Codec.Decode(p)         a payload back into its record (replay, the
//	                        active's records on a standby); refuses a
//	                        format this build does not know
//
// Propose(r) encodes r, checks it against the look-ahead state (every
// record queued applied), queues the payload and applies r to that
// state under one lock, then waits for the fsync and applies r to the
// published state (View). A record Check refuses never reaches the
// journal. Replay is Load of the newest snapshot (Empty without one),
// then Decode and Apply of each record after it; a record that does not
// decode or that Apply refuses stops OpenStore, naming its index. The
// same Load checks a backup before a restore and a state before
// InstallSnapshot, and the same Decode and Check take each record given
// to AppendReplicated: nothing the application would refuse is ever
// written.
//
// All integers below are little-endian. CRC means CRC-32C (Castagnoli).
//
// # State directory
//
// A Store uses a state directory (/var/lib/lockstep):
//
//	LOCK        flock(2)ed by the process using the directory; holds its
//	            pid as a hint for the error a second process gets
//	journal/    the journal: segments and snapshots
//	backups/    backup zips
//
// During a restore or a standby's snapshot install, journal.restore.tmp/,
// journal.restore/ and journal.old/ may also exist (see Restore).
// Journal.Open used alone takes a LOCK in its own directory and keeps its
// files there.
//
// # Segments
//
// The journal is a sequence of segment files named after the index of
// their first record, 16 lower-case hex digits: 0000000000000001.seg.
// A segment is a 32-byte header followed by records:
//
//	offset size field
//	 0      8   magic "LKSTPSEG"
//	 8      4   format version, 1
//	12      4   reserved, 0
//	16      8   first index: the index of the segment's first record (>= 1),
//	            equal to the one in the file name
//	24      4   previous CRC: the CRC of the record before the first one
//	            (the last record of the previous segment), 0 when no
//	            record precedes it in this journal (a new journal, or one
//	            restored from a backup)
//	28      4   CRC of bytes 0-27
//
// A segment is created as a temp file holding the header, fsynced,
// renamed into place, and the directory fsynced: a segment file exists
// whole or not at all. The writer begins a new segment before a write
// batch once the current one holds Options.SegmentSize bytes; segments
// other than the last are complete and never change again.
//
// # Records
//
// Each record starts at a multiple of 8 bytes from the start of the file:
//
//	offset size field
//	 0      4   CRC: CRC-32C over bytes 4 to the end of the padding,
//	            seeded with the CRC of the previous record (the previous
//	            CRC of the segment header for the first record): the chain
//	            makes a record valid only in its place
//	 4      4   bits 0-26: payload length n (at most MaxPayload, 64 MiB);
//	            bits 27-30: reserved, 0; bit 31: commit flag, set on the
//	            last record of each write batch
//	 8      8   index: the previous record's index + 1 (never 0, so
//	            zeroes are never a record)
//	16      n   payload
//	16+n    p   padding: p zero bytes, 0 <= p < 8, so that 16+n+p is a
//	            multiple of 8
//
// A segment holds records from its first index on, without gap; the next
// segment starts at the next index and its previous CRC is the CRC of
// this segment's last record.
//
// # Group commit
//
// Appends queue their payloads; one writer goroutine takes everything
// queued, assigns nothing (indexes were assigned at queueing, in queue
// order), encodes the records with the commit flag on the last, writes
// them with one write call and fsyncs (fdatasync on Linux) once, then
// answers every Append of the batch. It starts the next write only after
// that fsync returned. Hence at a crash only the last batch can be
// incomplete on disk, and that batch was never acknowledged.
//
// # A failed write, a full disk
//
// When the write, the fsync or the segment rollover of a batch fails,
// the segment is cut back at once (ftruncate to the end of the last
// durable record, fsynced): nothing of the failed batch stays in it, and
// every Append of that batch, and of the batches queued behind it, fails.
// If the cause is a full file system (ENOSPC, EDQUOT) and the cut worked,
// the journal is intact and the failure is ErrNoSpace: the store drops
// the records it had counted on from its look-ahead state, and the next
// proposal writes again from the index after the last durable record
// (readers waiting for new records keep waiting). Store.WriteHealth says
// whether the last write worked (the daemon reports it) and
// Store.Probe, a 64 KiB temp file written, fsynced and deleted, tells when
// space has returned. Any other failure is ErrWriteFailed: the journal
// refuses appends until it is reopened. No acknowledged record is touched
// either way. A snapshot that fails for lack of space also turns
// WriteHealth to ErrNoSpace. A new directory (the state directory's
// missing parents, journal/, backups/) is followed by an fsync of its
// parent.
//
// # Recovery
//
// Open reads every segment completely, checks it, and decides before it
// changes anything:
//
//   - A segment whose header is damaged, whose first index differs from
//     its name or does not follow the previous segment (gap: missing
//     segment; overlap: out of order), or whose previous CRC does not
//     match, refuses to open (ErrCorrupt, ErrMissingSegment,
//     ErrSegmentOrder), naming the file and offset.
//   - A record that fails to decode (truncated, malformed header, wrong
//     index, CRC mismatch) in any segment but the last refuses to open.
//   - In the last segment, the first record that fails to decode begins
//     a torn tail: a copy of the segment is saved as <segment>.broken
//     (.broken.1, ... if that exists), the segment is truncated at the
//     record's offset and fsynced, and a warning (msg_id
//     persist-torn-tail-W) names the file, the offset and the records
//     dropped. Unless the bad record is proven to have been fsynced,
//     which a crash cannot damage: a complete later batch follows it
//     (a record with the commit flag whose successor decodes chained on
//     it, or the bad record itself intact enough to show its commit flag
//     and chain to the next), or a snapshot covers its index. Then Open
//     refuses. Consequence: damage to the records of the last batch of
//     the last segment is repaired even if they had been acknowledged,
//     since nothing tells it from a crash during that batch; the .broken
//     copy keeps them. When the file system is too full for the .broken
//     copy, the tail is truncated all the same and a warning
//     (persist-torn-tail-no-copy-W) names the file, the offset, the
//     records and the bytes dropped: refusing to open would leave the
//     daemon failing at every start on a full disk, for records nobody
//     was told are written.
//   - The newest snapshot that decodes and whose records the segments
//     still hold (its index >= the first segment's first index - 1) is
//     used. A damaged newer one is renamed <snapshot>.broken with a
//     warning (persist-snapshot-fallback-W). With the default
//     SnapshotsKept of 2, compaction keeps the segments after the older
//     of the two snapshots, so one damaged snapshot always has a
//     fallback; if none is usable, the segments must start at index 1,
//     else Open refuses. A usable snapshot beyond the last record also
//     refuses (records are missing).
//   - Temp files (*.tmp) of interrupted creations are deleted.
//
// A deleted last segment cannot be detected (nothing records that it
// existed), as in any log of this kind; a restore from a backup is the
// answer to lost files.
//
// Every refusal ends with what the admin can do: restore a backup with
// `lockstepctl backup restore`, or move the state directory aside.
//
// # Snapshots
//
// Snapshot files are named after the index of the last record they
// cover, 16 hex digits: 0000000000002710.snap. Index 0 is the state
// before any record.
//
//	offset size field
//	 0      8   magic "LKSTPSNP"
//	 8      4   format version, 1
//	12      4   reserved, 0
//	16      8   index
//	24      8   state length m
//	32      4   CRC of the state
//	36      4   CRC of bytes 0-35
//	40      m   state (opaque: for a Store, StateMachine.Snapshot's bytes)
//
// A snapshot is written as a temp file, fsynced, renamed, and the
// directory fsynced. Then the newest SnapshotsKept snapshots are kept
// and the segments whose records are all covered by the oldest one kept
// are deleted (never the segment being written). Replay is: the newest
// snapshot, then the records after its index.
//
// # Store payloads
//
// A Store's record payloads are Codec.Encode's bytes and its snapshots'
// state StateMachine.Snapshot's; the journal neither reads nor
// constrains them beyond MaxPayload and the snapshot bound. The daemon's
// formats (a JSON envelope per record family, the combined state) are
// documented in package daemon/state.
//
// # Backups
//
// A backup is a zip file in backups/ named
// lockstep-<created, 20060102T150405Z>-<last index>.zip (-2, -3, ...
// before .zip if that exists), written as a temp file, fsynced and
// renamed, with exactly two members, deflated:
//
//	manifest.json  {"format": "lockstep-backup", "version": 1,
//	                "epoch": <uint>, "last_index": <uint>,
//	                "created": "<RFC 3339, UTC, from the injected clock>",
//	                "members": [{"name": "state.json", "size": <bytes>,
//	                             "sha256": "<64 lower-case hex digits>"}]}
//	state.json     the state (StateMachine.Snapshot's bytes)
//
// The manifest lists every member but itself. A reader accepts only
// these two names, each once (a name with "..", a leading "/", "\" or
// ":" is refused as unsafe before anything else), bounds the zip (about
// 258 MiB), the manifest (1 MiB) and the state (256 MiB) and reads every
// member through that bound whatever the zip declares, requires format
// and version to match, and checks every size and SHA-256, and that the
// state loads (Codec.Load), before anything is changed.
//
// After each backup, the backups created more than
// Options.BackupRetention ago are deleted, never the newest one and
// never a file whose manifest does not read.
//
// # Restore
//
// RestoreBackup (offline, taking the lock) and Store.RestoreBackup (on
// an open store, after the proposals under way) replace the journal:
//
//  1. verify the backup completely; on failure stop, nothing changed;
//  2. build journal.restore.tmp/ with the backup's state as the snapshot
//     at its last index and an empty segment starting after it, fsynced;
//  3. rename it to journal.restore/ and fsync the state directory: the
//     commit point;
//  4. rename journal/ to journal.old/; 5. rename journal.restore/ to
//     journal/; 6. delete journal.old/, each followed by a directory
//     fsync.
//
// A crash before step 3 leaves the old state (the temp directory is
// deleted at the next open); after it, OpenStore completes steps 4-6
// before anything else. The restored journal continues at the backup's
// last index + 1. The old journal is deleted, not kept: take a backup
// first to keep it.
//
// # Standby
//
// A standby's Store is fed by the active (package ha/link, StoreSink)
// through two methods, each durable when it returns:
//
//   - InstallSnapshot(index, state) replaces the whole state with the
//     active's: state is what the active's snapshots hold
//     (StateMachine.Snapshot's bytes), the state after record index;
//     index 0 with no bytes is the empty state. The bytes must load
//     (Codec.Load; ErrBadState otherwise, nothing changed); then the
//     journal is swapped exactly as by a restore (steps 2-6 above, with
//     state as the snapshot at index; none for the empty state), and
//     the next record is index + 1.
//   - AppendReplicated(first, payloads) appends the active's records at
//     the active's indexes, payloads byte for byte as the active's
//     journal holds them, so that both journals hold the same records.
//     first must be LastIndex + 1 with no record of the store's own
//     queued (ErrNotNext otherwise, nothing changed). Each payload is
//     decoded (Codec.Decode) and checked against the state with the
//     ones before it applied, before anything is queued; the first that
//     fails ends the call with an error naming its index: the records
//     before it are journaled, it and those after it are not, and the
//     store goes on from that index. The records of one call are queued under one lock
//     hold into one write batch: one write, one fsync.
//
// A standby must not propose while it is fed: a record of its own would
// take the next index (and AppendReplicated then refuses the active's).
package persist
