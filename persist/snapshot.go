package persist

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// Snapshot files (doc.go has the byte layout): a header with its own CRC,
// then the state, with a CRC of its own in the header. The journal treats
// the state as opaque bytes; the store defines what they hold.

const (
	snapMagic      = "LKSTPSNP"
	snapHeaderSize = 40
	snapSuffix     = ".snap"
	// maxSnapshotState bounds what a damaged length field can make Open
	// allocate.
	maxSnapshotState = 1 << 30
)

// Snapshot is the state after the record at Index (0: before any record).
type Snapshot struct {
	Index uint64
	State []byte
}

func snapName(index uint64) string { return fmt.Sprintf("%016x%s", index, snapSuffix) }

func marshalSnapHeader(index uint64, state []byte) []byte {
	b := make([]byte, snapHeaderSize)
	copy(b, snapMagic)
	le.PutUint32(b[8:], formatVersion)
	// b[12:16] reserved, zero
	le.PutUint64(b[16:], index)
	le.PutUint64(b[24:], uint64(len(state)))
	le.PutUint32(b[32:], crc32.Checksum(state, castagnoli))
	le.PutUint32(b[36:], crc32.Checksum(b[:36], castagnoli))
	return b
}

// parseSnapshot checks and decodes a whole snapshot file. The state
// aliases b.
func parseSnapshot(b []byte) (Snapshot, error) {
	if len(b) < snapHeaderSize {
		return Snapshot{}, fmt.Errorf("header truncated (%d of %d bytes)", len(b), snapHeaderSize)
	}
	if string(b[:8]) != snapMagic {
		return Snapshot{}, fmt.Errorf("not a snapshot (magic %q)", b[:8])
	}
	if crc32.Checksum(b[:36], castagnoli) != le.Uint32(b[36:]) {
		return Snapshot{}, fmt.Errorf("header checksum mismatch")
	}
	if v := le.Uint32(b[8:]); v != formatVersion {
		return Snapshot{}, fmt.Errorf("snapshot format version %d, this build reads %d", v, formatVersion)
	}
	if le.Uint32(b[12:]) != 0 {
		return Snapshot{}, fmt.Errorf("reserved header bytes set")
	}
	n := le.Uint64(b[24:])
	if n != uint64(len(b)-snapHeaderSize) {
		return Snapshot{}, fmt.Errorf("state of %d bytes in a file of %d", n, len(b))
	}
	state := b[snapHeaderSize:]
	if crc32.Checksum(state, castagnoli) != le.Uint32(b[32:]) {
		return Snapshot{}, fmt.Errorf("state checksum mismatch")
	}
	return Snapshot{Index: le.Uint64(b[16:]), State: state}, nil
}

// writeSnapshot writes dir/<index>.snap atomically.
func writeSnapshot(dir string, index uint64, state []byte) error {
	if len(state) > maxSnapshotState {
		return fmt.Errorf("%w: snapshot state of %d bytes (at most %d)", ErrTooLarge, len(state), maxSnapshotState)
	}
	return writeAtomic(dir, snapName(index), func(f *os.File) error {
		if _, err := f.Write(marshalSnapHeader(index, state)); err != nil {
			return err
		}
		_, err := f.Write(state)
		return err
	})
}

// readSnapshot reads and checks dir/<index>.snap. Its error names the
// file; the index in the header must match the name.
func readSnapshot(dir string, index uint64) (Snapshot, error) {
	path := filepath.Join(dir, snapName(index))
	f, err := os.Open(path)
	if err != nil {
		return Snapshot{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Snapshot{}, err
	}
	if fi.Size() > snapHeaderSize+maxSnapshotState {
		return Snapshot{}, fmt.Errorf("%w: snapshot %s: %d bytes, more than a snapshot can hold", ErrCorrupt, path, fi.Size())
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	s, err := parseSnapshot(b)
	if err != nil {
		return Snapshot{}, fmt.Errorf("%w: snapshot %s: %v", ErrCorrupt, path, err)
	}
	if s.Index != index {
		return Snapshot{}, fmt.Errorf("%w: snapshot %s holds the state at index %d, its name says %d", ErrCorrupt, path, s.Index, index)
	}
	return s, nil
}

// LatestSnapshot reads the newest snapshot from disk. ok is false when
// the journal has none (replay starts from the empty state at index 0).
func (j *Journal) LatestSnapshot() (s Snapshot, ok bool, err error) {
	j.snapMu.Lock()
	defer j.snapMu.Unlock()
	j.mu.Lock()
	n := len(j.snaps)
	var index uint64
	if n > 0 {
		index = j.snaps[n-1]
	}
	j.mu.Unlock()
	if n == 0 {
		return Snapshot{}, false, nil
	}
	s, err = readSnapshot(j.dir, index)
	if err != nil {
		return Snapshot{}, false, err
	}
	return s, true, nil
}

// Snapshot stores state as the state after the record at index, which
// must be durable and not older than the latest snapshot, then compacts:
// it keeps the newest Options.SnapshotsKept snapshots and deletes the
// segments whose records are all covered by the oldest one kept (never
// the segment being written). With fewer snapshots than that, nothing is
// deleted: the journal from index 1 is then the fallback.
//
// Appends and readers continue meanwhile; a reader whose next segment is
// deleted gets ErrCompacted.
func (j *Journal) Snapshot(index uint64, state []byte) error {
	j.snapMu.Lock()
	defer j.snapMu.Unlock()
	j.mu.Lock()
	if j.closing {
		j.mu.Unlock()
		return ErrClosed
	}
	durable := j.durable
	var latest uint64
	if n := len(j.snaps); n > 0 {
		latest = j.snaps[n-1]
		if index < latest {
			j.mu.Unlock()
			return fmt.Errorf("%w: index %d is older than the latest snapshot (%d)", ErrSnapshotIndex, index, latest)
		}
	}
	j.mu.Unlock()
	if index > durable {
		return fmt.Errorf("%w: index %d is not durable yet (last durable %d)", ErrSnapshotIndex, index, durable)
	}
	if err := writeSnapshot(j.dir, index, state); err != nil {
		return fmt.Errorf("persist: snapshot at %d: %w", index, err)
	}

	j.mu.Lock()
	if n := len(j.snaps); n == 0 || j.snaps[n-1] != index {
		j.snaps = append(j.snaps, index)
	}
	var dropSnaps []uint64
	if extra := len(j.snaps) - j.opts.SnapshotsKept; extra > 0 {
		dropSnaps = append(dropSnaps, j.snaps[:extra]...)
		j.snaps = append([]uint64(nil), j.snaps[extra:]...)
	}
	var dropSegs []string
	if len(j.snaps) >= j.opts.SnapshotsKept {
		covered := j.snaps[0]
		for len(j.segs) > 1 && j.segs[0].sealed && j.segs[0].last <= covered {
			dropSegs = append(dropSegs, j.segs[0].path)
			j.segs = j.segs[1:]
		}
	}
	j.mu.Unlock()

	// Deleting is safe in any order and after a crash half done: Open
	// takes the newest valid snapshot and the segments after it.
	for _, idx := range dropSnaps {
		if err := os.Remove(filepath.Join(j.dir, snapName(idx))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("persist: compaction: %w", err)
		}
	}
	for _, p := range dropSegs {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("persist: compaction: %w", err)
		}
	}
	if len(dropSnaps)+len(dropSegs) > 0 {
		return syncDir(j.dir)
	}
	return nil
}
