package persist

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Recovery runs at Open, before the journal accepts appends. It first
// examines everything and decides, and only then changes files, so that a
// refusal leaves the directory exactly as it found it.
//
// The rules (doc.go, "Recovery", says them for admins):
//
//   - Every segment is read in full. Its header must be valid, its first
//     index must match its file name, follow the previous segment's last
//     index without gap or overlap, and its previous-CRC must be the
//     previous segment's last CRC. Any record that fails to decode in a
//     segment other than the last refuses to open.
//   - In the last segment, the first record that fails to decode starts a
//     torn tail, which is truncated after a copy of the file is saved as
//     <segment>.broken, unless there is proof that the bad record had
//     been fsynced (and so acknowledged), which a crash cannot damage:
//     a complete write batch after it (judgeTail), or a snapshot that
//     covers it. Then Open refuses.
//   - The newest snapshot that decodes and whose records are still
//     covered by the segments is used; newer ones that do not decode are
//     renamed <snapshot>.broken (with a warning). Without a usable
//     snapshot the segments must start at index 1.

// segment is one segment file as the journal tracks it.
type segment struct {
	first  uint64
	last   uint64 // index of the last durable record; first-1 when none
	size   int64  // durable bytes, header included
	path   string
	sealed bool // a later segment exists; this one no longer grows
}

// recovered is what Open continues from.
type recovered struct {
	segs    []*segment
	lastCRC uint32   // CRC of the last record (or the last header's prevCRC)
	snaps   []uint64 // snapshot files kept, oldest first
}

// dirFiles is the journal directory's segment and snapshot files by index.
type dirFiles struct {
	segs  []uint64
	snaps []uint64
}

func listDir(dir string) (dirFiles, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return dirFiles{}, err
	}
	var d dirFiles
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, segSuffix):
			i, ok := parseIndexName(name, segSuffix)
			if !ok || !e.Type().IsRegular() {
				return dirFiles{}, fmt.Errorf("%w: %s: unexpected file among the segments: %s",
					ErrSegmentOrder, filepath.Join(dir, name), adminHint)
			}
			d.segs = append(d.segs, i)
		case strings.HasSuffix(name, snapSuffix):
			i, ok := parseIndexName(name, snapSuffix)
			if !ok || !e.Type().IsRegular() {
				return dirFiles{}, fmt.Errorf("%w: %s: unexpected file among the snapshots: %s",
					ErrCorrupt, filepath.Join(dir, name), adminHint)
			}
			d.snaps = append(d.snaps, i)
		}
	}
	slices.Sort(d.segs)
	slices.Sort(d.snaps)
	return d, nil
}

// repairPlan is what recovery will change once it has decided to open.
type repairPlan struct {
	tornPath    string // segment to truncate ("" for none)
	tornOffset  int64
	tornRecords int // records seen in the dropped tail (at least)
	tornBytes   int64
	badSnaps    []uint64 // newest snapshots that failed to decode
}

// recoverDir examines dir, repairs what a crash explains, and refuses
// what it does not.
func recoverDir(dir string, log *slog.Logger) (recovered, error) {
	files, err := listDir(dir)
	if err != nil {
		return recovered{}, err
	}
	if len(files.segs) == 0 {
		if len(files.snaps) > 0 {
			return recovered{}, fmt.Errorf("%w: %s holds snapshots but no segment: %s", ErrMissingSegment, dir, adminHint)
		}
		// A new journal.
		seg, err := createSegment(dir, segHeader{first: 1})
		if err != nil {
			return recovered{}, err
		}
		return recovered{segs: []*segment{seg}}, nil
	}

	var (
		segs []*segment
		plan repairPlan
		prev segScan
	)
	for i, first := range files.segs {
		path := filepath.Join(dir, segName(first))
		b, err := os.ReadFile(path)
		if err != nil {
			return recovered{}, err
		}
		h, err := parseSegHeader(b)
		if err != nil {
			return recovered{}, fmt.Errorf("%w: %s at offset 0: %v: %s", ErrCorrupt, path, err, adminHint)
		}
		if h.first != first {
			return recovered{}, fmt.Errorf("%w: %s holds records from index %d but its name says %d (renamed or copied over?): %s",
				ErrSegmentOrder, path, h.first, first, adminHint)
		}
		if i > 0 {
			prevPath := segs[i-1].path
			switch {
			case h.first > prev.last+1:
				return recovered{}, fmt.Errorf("%w: records %d to %d are missing between %s and %s: %s",
					ErrMissingSegment, prev.last+1, h.first-1, prevPath, path, adminHint)
			case h.first < prev.last+1:
				return recovered{}, fmt.Errorf("%w: %s starts at index %d but %s ends at %d: %s",
					ErrSegmentOrder, path, h.first, prevPath, prev.last, adminHint)
			case h.prevCRC != prev.lastCRC:
				return recovered{}, fmt.Errorf("%w: %s at offset 24: its previous-record CRC %08x does not match the last record of %s (%08x): %s",
					ErrCorrupt, path, h.prevCRC, prevPath, prev.lastCRC, adminHint)
			}
		}
		s := scanRecords(b, h)
		isLast := i == len(files.segs)-1
		if s.err != nil {
			if !isLast {
				return recovered{}, fmt.Errorf("%w: %s at offset %d (record %d): %v, in a segment that was complete: %s",
					ErrCorrupt, path, s.end, s.last+1, s.err, adminHint)
			}
			v := judgeTail(b, s.end, s.lastCRC, s.last+1)
			if !v.torn {
				return recovered{}, fmt.Errorf("%w: %s at offset %d (record %d): %v, and records written after it at offset %d were complete, so it was not a crash: %s",
					ErrCorrupt, path, s.end, s.last+1, s.err, v.evidence, adminHint)
			}
			plan.tornPath, plan.tornOffset = path, int64(s.end)
			plan.tornRecords, plan.tornBytes = v.dropped, int64(len(b)-s.end)
		}
		segs = append(segs, &segment{first: h.first, last: s.last, size: int64(s.end), path: path, sealed: !isLast})
		prev = s
	}
	last := segs[len(segs)-1].last

	// The newest usable snapshot. Older ones are not read: they matter
	// only if this one is damaged one day, and then the next Open reads
	// them.
	oldest := segs[0].first // records before it are compacted away
	var (
		chosen    uint64
		found     bool
		lastSnErr error
	)
	for k := len(files.snaps) - 1; k >= 0 && !found; k-- {
		idx := files.snaps[k]
		if idx+1 < oldest {
			break // this one and older ones: their records are gone
		}
		if _, err := readSnapshot(dir, idx); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return recovered{}, err // unreadable, not damaged: nothing to decide on
			}
			plan.badSnaps = append(plan.badSnaps, idx)
			lastSnErr = err
			continue
		}
		chosen, found = idx, true
	}
	switch {
	case !found && oldest != 1:
		if lastSnErr != nil {
			return recovered{}, fmt.Errorf("%w: no usable snapshot (%v) and the records before index %d are compacted: %s",
				ErrCorrupt, lastSnErr, oldest, adminHint)
		}
		return recovered{}, fmt.Errorf("%w: the journal in %s starts at index %d and no snapshot covers the records before it: %s",
			ErrMissingSegment, dir, oldest, adminHint)
	case found && chosen > last && plan.tornPath != "":
		// Snapshots cover durable records only: this damaged record had
		// been acknowledged, and truncating it would lose it.
		return recovered{}, fmt.Errorf("%w: %s at offset %d (record %d) is damaged, and snapshot %s covers it, so it had been acknowledged: %s",
			ErrCorrupt, plan.tornPath, plan.tornOffset, last+1, filepath.Join(dir, snapName(chosen)), adminHint)
	case found && chosen > last:
		return recovered{}, fmt.Errorf("%w: snapshot %s is at index %d, after the journal's last record %d: %s",
			ErrMissingSegment, filepath.Join(dir, snapName(chosen)), chosen, last, adminHint)
	}

	// Decided: now change what needs changing.
	for _, idx := range plan.badSnaps {
		path := filepath.Join(dir, snapName(idx))
		broken := freeName(dir, snapName(idx)+".broken")
		if err := os.Rename(path, filepath.Join(dir, broken)); err != nil {
			return recovered{}, err
		}
		log.Warn("journal snapshot damaged, using an older one",
			"msg_id", MsgSnapshotFallback, "file", path, "moved_to", broken, "using_index", chosen)
	}
	if plan.tornPath != "" {
		if err := truncateTorn(dir, plan, log); err != nil {
			return recovered{}, err
		}
	}
	if len(plan.badSnaps) > 0 && plan.tornPath == "" {
		if err := syncDir(dir); err != nil {
			return recovered{}, err
		}
	}
	var snaps []uint64
	for _, idx := range files.snaps {
		if !slices.Contains(plan.badSnaps, idx) {
			snaps = append(snaps, idx)
		}
	}
	return recovered{segs: segs, lastCRC: prev.lastCRC, snaps: snaps}, nil
}

// truncateTorn saves a copy of the segment as <segment>.broken, then cuts
// the torn tail off and makes both durable. When the file system is too
// full for the copy (noSpace), it cuts the tail anyway and says so, with
// the offset and the bytes dropped: the tail was never acknowledged, and
// refusing to open would leave the daemon failing at every start, which
// is worse than losing the copy of a record nobody was told is written.
func truncateTorn(dir string, plan repairPlan, log *slog.Logger) error {
	broken := freeName(dir, filepath.Base(plan.tornPath)+".broken")
	err := writeAtomic(dir, broken, func(dst *os.File) error {
		src, err := os.Open(plan.tornPath)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(dst, src)
		return err
	})
	switch {
	case err != nil && noSpace(err):
		log.Warn("journal torn tail truncated without a .broken copy: no space left for it",
			"msg_id", MsgTornTailNoCopy, "file", plan.tornPath, "offset", plan.tornOffset,
			"records_dropped", plan.tornRecords, "bytes_dropped", plan.tornBytes, "err", err)
		broken = ""
	case err != nil:
		return fmt.Errorf("persist: saving %s before repair: %w", plan.tornPath, err)
	}
	f, err := os.OpenFile(plan.tornPath, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(plan.tornOffset)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("persist: truncating %s: %w", plan.tornPath, err)
	}
	if broken == "" {
		return nil
	}
	log.Warn("journal torn tail truncated",
		"msg_id", MsgTornTail, "file", plan.tornPath, "offset", plan.tornOffset,
		"records_dropped", plan.tornRecords, "bytes_dropped", plan.tornBytes,
		"broken_copy", filepath.Join(dir, broken))
	return nil
}

// createSegment creates a segment holding only its header, atomically:
// after a crash it either exists whole or not at all.
func createSegment(dir string, h segHeader) (*segment, error) {
	name := segName(h.first)
	err := writeAtomic(dir, name, func(f *os.File) error {
		_, err := f.Write(h.marshal())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("persist: creating segment %s: %w", filepath.Join(dir, name), err)
	}
	return &segment{first: h.first, last: h.first - 1, size: segHeaderSize, path: filepath.Join(dir, name)}, nil
}

// tailVerdict is judgeTail's answer.
type tailVerdict struct {
	torn     bool
	evidence int // when not torn: offset of a record that proves the damage was fsynced
	dropped  int // records seen in the tail (the damaged one unless zeroes, and the valid ones chained to it)
}

// judgeTail decides whether the bytes of the last segment b from offset
// bad, where the record with index want (following a record with CRC
// prev) failed to decode, are a torn tail.
//
// The journal writes one batch (one write call) at a time and starts the
// next only after the fsync of the previous has returned; the last record
// of each batch carries the commit flag. So a crash can damage only the
// last batch, and that batch was never acknowledged. The tail is torn
// unless a record R can be shown to start a batch written after the
// damaged record's batch was complete:
//
//   - the damaged record's own header is plausible (right index, length
//     within the file) and has the commit flag, and the record after it
//     decodes, chained on the damaged record's stored CRC; or
//   - at some 8-aligned offset after bad, a plausible header with the
//     commit flag and an index above want is followed by a record that
//     decodes chained on it (the CRC makes a chance match 1 in 2^32).
//
// A damaged record that was acknowledged can look torn only if no later
// batch was written after it: then recovery drops it with the records
// that follow, keeping them in the .broken copy (doc.go says so).
func judgeTail(b []byte, bad int, prev uint32, want uint64) tailVerdict {
	v := tailVerdict{torn: true}
	if bad >= len(b) {
		return v
	}
	hdrEnd := min(bad+recHeaderSize, len(b))
	if slices.ContainsFunc(b[bad:hdrEnd], func(c byte) bool { return c != 0 }) {
		v.dropped = 1
	}
	if h, ok := parseRecHeader(b[bad:]); ok && h.index == want && bad+h.size() <= len(b) {
		next, crc, idx := bad+h.size(), h.crc, want+1
		for first := true; ; first = false {
			rh, _, err := decodeRecord(b[next:], crc, idx)
			if err != nil {
				break
			}
			if first && h.commit {
				return tailVerdict{evidence: next}
			}
			v.dropped++
			next, crc, idx = next+rh.size(), rh.crc, idx+1
		}
	}
	// Every record takes at least recHeaderSize bytes: no index in the
	// tail can be higher than this.
	maxIndex := want + uint64((len(b)-bad)/recHeaderSize)
	for q := bad + 8; q+recHeaderSize <= len(b); q += 8 {
		h, ok := parseRecHeader(b[q:])
		if !ok || !h.commit || h.index <= want || h.index > maxIndex || q+h.size() > len(b) {
			continue
		}
		if _, _, err := decodeRecord(b[q+h.size():], h.crc, h.index+1); err == nil {
			return tailVerdict{evidence: q + h.size()}
		}
	}
	return v
}
