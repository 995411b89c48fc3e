package persist

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
)

// Entry is one record as a Reader returns it.
type Entry struct {
	Index   uint64
	Payload []byte // the reader's own copy
}

// Reader reads records in index order from an index onward, while appends
// continue, and waits for new ones: the replay at open and the shipping of
// records to a standby both use it. It returns only durable records and
// checks every CRC, chained from the start of its segment. A Reader is
// for one goroutine.
type Reader struct {
	j    *Journal
	want uint64 // the next index Next returns

	seg    *segment
	f      *os.File
	pos    uint64 // index of the record at off
	off    int64
	crc    uint32 // CRC of the record before off
	buf    []byte // a window of the file from bufOff
	bufOff int64
}

// readChunk is how much a Reader reads at once.
const readChunk = 64 << 10

// ReadFrom returns a Reader whose first record is index. It fails with
// ErrCompacted if that record was compacted away (send a snapshot
// instead) and ErrBeyondEnd if index is past LastIndex+1. Close it after
// use.
func (j *Journal) ReadFrom(index uint64) (*Reader, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closing {
		return nil, ErrClosed
	}
	if first := j.segs[0].first; index < first {
		return nil, fmt.Errorf("%w: index %d, the oldest record is %d", ErrCompacted, index, first)
	}
	if index > j.durable+1 {
		return nil, fmt.Errorf("%w: index %d, the last record is %d", ErrBeyondEnd, index, j.durable)
	}
	// The segment holding index: the last one starting at or before it.
	i := sort.Search(len(j.segs), func(i int) bool { return j.segs[i].first > index }) - 1
	r := &Reader{j: j, want: index}
	if err := r.open(j.segs[i]); err != nil {
		return nil, err
	}
	return r, nil
}

// open switches to seg, from its start; j.mu is held, so compaction
// cannot delete the file before it is open.
func (r *Reader) open(seg *segment) error {
	f, err := os.Open(seg.path)
	if err != nil {
		return fmt.Errorf("persist: reading %s: %w", seg.path, err)
	}
	hb := make([]byte, segHeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		f.Close()
		return fmt.Errorf("persist: reading %s: %w", seg.path, err)
	}
	h, err := parseSegHeader(hb)
	if err != nil {
		f.Close()
		return fmt.Errorf("%w: %s at offset 0: %v", ErrCorrupt, seg.path, err)
	}
	if r.f != nil {
		// Moving on from the previous segment: the chain continues.
		if h.prevCRC != r.crc {
			f.Close()
			return fmt.Errorf("%w: %s at offset 24: previous-record CRC does not match the segment before", ErrCorrupt, seg.path)
		}
		r.f.Close()
	}
	r.seg, r.f, r.pos, r.off, r.crc = seg, f, h.first, segHeaderSize, h.prevCRC
	r.buf, r.bufOff = r.buf[:0], 0
	return nil
}

// Next returns the next record, waiting for it to become durable or for
// ctx to end. After Close of the journal it returns the records already
// durable, then ErrClosed.
func (r *Reader) Next(ctx context.Context) (Entry, error) {
	for {
		e, wait, err := r.tryNext()
		if err != nil || wait == nil {
			return e, err
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return Entry{}, ctx.Err()
		}
	}
}

// tryNext returns the next record, or a channel closed when there may be
// one.
func (r *Reader) tryNext() (Entry, <-chan struct{}, error) {
	j := r.j
	for {
		j.mu.Lock()
		if r.pos > j.durable {
			wait, closing, err := j.changed, j.closing, j.err
			if j.resumable {
				err = nil // undone for lack of space: records may come again
			}
			j.mu.Unlock()
			switch {
			case err != nil:
				return Entry{}, nil, err
			case closing:
				return Entry{}, nil, ErrClosed
			}
			return Entry{}, wait, nil
		}
		if r.seg.sealed && r.pos > r.seg.last {
			err := r.openNext()
			j.mu.Unlock()
			if err != nil {
				return Entry{}, nil, err
			}
			continue
		}
		limit := r.seg.size
		j.mu.Unlock()

		h, payload, err := r.read(limit)
		if err != nil {
			return Entry{}, nil, fmt.Errorf("%w: %s at offset %d (record %d): %v", ErrCorrupt, r.seg.path, r.off, r.pos, err)
		}
		r.off += int64(h.size())
		r.crc = h.crc
		r.pos++
		if h.index < r.want {
			continue // skipping from the segment's start to the first wanted
		}
		r.want = h.index + 1
		return Entry{Index: h.index, Payload: bytes.Clone(payload)}, nil, nil
	}
}

// openNext moves to the segment after the current one; j.mu is held.
func (r *Reader) openNext() error {
	j := r.j
	i := sort.Search(len(j.segs), func(i int) bool { return j.segs[i].first >= r.pos })
	if i == len(j.segs) || j.segs[i].first != r.pos {
		return fmt.Errorf("%w: record %d, the oldest record is %d", ErrCompacted, r.pos, j.segs[0].first)
	}
	return r.open(j.segs[i])
}

// read decodes the record at r.off, reading no further than limit (the
// durable end of the segment).
func (r *Reader) read(limit int64) (recHeader, []byte, error) {
	b, err := r.window(recHeaderSize, limit)
	if err != nil {
		return recHeader{}, nil, err
	}
	h, ok := parseRecHeader(b)
	if !ok {
		return recHeader{}, nil, errHeader
	}
	if b, err = r.window(h.size(), limit); err != nil {
		return recHeader{}, nil, err
	}
	h, payload, err := decodeRecord(b, r.crc, r.pos)
	return h, payload, err
}

// window returns at least need bytes of the file from r.off.
func (r *Reader) window(need int, limit int64) ([]byte, error) {
	end := r.bufOff + int64(len(r.buf))
	if r.off >= r.bufOff && r.off+int64(need) <= end {
		return r.buf[r.off-r.bufOff:], nil
	}
	if r.off+int64(need) > limit {
		return nil, errTruncated
	}
	n := min(int64(max(need, readChunk)), limit-r.off)
	if int64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if m, err := r.f.ReadAt(r.buf, r.off); m < len(r.buf) {
		r.buf = r.buf[:0]
		if err == nil || err == io.EOF {
			err = errTruncated
		}
		return nil, err
	}
	r.bufOff = r.off
	return r.buf, nil
}

// Close releases the reader's file.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
