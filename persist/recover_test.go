package persist

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pristine is a journal directory with records 1..n appended one at a
// time (each its own batch) and the bytes of its last segment.
func pristine(t *testing.T, n uint64, opts Options) (dir string, last string, b []byte) {
	t.Helper()
	dir = t.TempDir()
	j := mustOpen(t, dir, opts)
	appendN(t, j, 1, n)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segFiles(t, dir)
	last = segs[len(segs)-1]
	return dir, last, readFile(t, last)
}

// reopenRepaired opens a damaged copy, expects the journal to hold
// records 1..keep, then appends one more, reopens, and reads everything
// back: a repair must leave a journal that works.
func reopenRepaired(t *testing.T, dir string, keep uint64, opts Options) {
	t.Helper()
	j, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open after damage: %v", err)
	}
	checkRecords(t, j, 1, keep)
	extra := []byte("appended after the repair")
	if _, err := j.Append(context.Background(), extra); err != nil {
		t.Fatalf("Append after repair: %v", err)
	}
	j.Close()
	j = mustOpen(t, dir, opts)
	defer j.Close()
	checkRecords(t, j, 1, keep, extra)
}

// TestTruncateEveryOffset cuts the last segment at every byte offset of
// its last three records: the records wholly before the cut survive, a
// cut inside a record is a torn tail (repaired, with a .broken copy).
func TestTruncateEveryOffset(t *testing.T) {
	t.Parallel()
	const n = 12
	_, last, b := pristine(t, n, Options{})
	offs := recordOffsets(t, b) // offs[k] is where record k+1 starts; offs[n] == len(b)
	for cut := offs[n-3]; cut < len(b); cut++ {
		t.Run(fmt.Sprintf("cut=%d", cut), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, filepath.Base(last)), b[:cut])
			var keep uint64
			for keep < n && offs[keep+1] <= cut {
				keep++
			}
			reopenRepaired(t, dir, keep, Options{})
			broken := brokenFiles(t, dir)
			if atBoundary := offs[keep] == cut; atBoundary != (len(broken) == 0) {
				t.Errorf("cut at %d (record boundary %t): .broken copies %v", cut, atBoundary, broken)
			}
			if len(broken) == 1 {
				if got := readFile(t, broken[0]); string(got) != string(b[:cut]) {
					t.Errorf(".broken copy differs from the damaged segment")
				}
			}
		})
	}
}

// TestTornTail: the shapes a crash leaves at the end of the last
// segment, all repaired. The log names the file, the offset and the
// records dropped.
func TestTornTail(t *testing.T) {
	t.Parallel()
	const n = 8
	_, last, b := pristine(t, n, Options{})
	offs := recordOffsets(t, b)
	lastRec := offs[n-1]
	zeroed := func(from, to int) []byte {
		c := append([]byte(nil), b...)
		clear(c[from:to])
		return c
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		keep    uint64
		dropped int
	}{
		{"payload cut short", b[:lastRec+recHeaderSize+3], n - 1, 1},
		{"header only", b[:lastRec+recHeaderSize], n - 1, 1},
		{"last record zeroed", zeroed(lastRec, len(b)), n - 1, 0},
		{"last payload zeroed", zeroed(lastRec+recHeaderSize, len(b)), n - 1, 1},
		{"zero pages after the end", append(append([]byte(nil), b...), make([]byte, 8192)...), n, 0},
		{"garbage after the end", append(append([]byte(nil), b...), []byte("\x01garbage of a write that never finished")...), n, 1},
		{"two last records zeroed", zeroed(offs[n-2], len(b)), n - 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, filepath.Base(last))
			writeFile(t, path, tc.data)
			log, lb := newLog()
			opts := Options{Logger: log}
			j, err := Open(dir, opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			j.Close()
			out := lb.String()
			for _, want := range []string{MsgTornTail, "file=" + path, fmt.Sprintf("offset=%d", offs[tc.keep]), fmt.Sprintf("records_dropped=%d", tc.dropped)} {
				if !strings.Contains(out, want) {
					t.Errorf("log %q lacks %q", out, want)
				}
			}
			if len(brokenFiles(t, dir)) != 1 {
				t.Errorf("no .broken copy")
			}
			reopenRepaired(t, dir, tc.keep, Options{})
		})
	}
}

// TestFlipBitLastRecord flips every bit of the last record in turn: each
// looks like a crash during the last write, and is repaired.
func TestFlipBitLastRecord(t *testing.T) {
	t.Parallel()
	const n = 6
	_, last, b := pristine(t, n, Options{})
	offs := recordOffsets(t, b)
	for bit := offs[n-1] * 8; bit < len(b)*8; bit++ {
		t.Run(fmt.Sprintf("bit=%d", bit), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			c := append([]byte(nil), b...)
			c[bit/8] ^= 1 << (bit % 8)
			writeFile(t, filepath.Join(dir, filepath.Base(last)), c)
			reopenRepaired(t, dir, n-1, Options{})
			if len(brokenFiles(t, dir)) != 1 {
				t.Errorf("no .broken copy")
			}
		})
	}
}

// TestFlipBitEarlierRecord flips every bit of a record that complete
// batches follow, in the last segment and in an earlier one: Open
// refuses, names the file and the offset, and changes nothing.
func TestFlipBitEarlierRecord(t *testing.T) {
	t.Parallel()
	const n = 40
	opts := Options{SegmentSize: 512}
	dir, _, _ := pristine(t, n, opts)
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	for _, target := range []struct {
		name string
		seg  string
		rec  int // record number within the segment, from 0
	}{
		{"last segment, third from the end", segs[len(segs)-1], -3},
		{"first segment, middle", segs[0], 1},
		{"first segment, its last record", segs[0], -1},
		{"middle segment, first record", segs[1], 0},
	} {
		b := readFile(t, target.seg)
		offs := recordOffsets(t, b)
		k := target.rec
		if k < 0 {
			k += len(offs) - 1
		}
		if k < 0 || k+1 >= len(offs) {
			t.Fatalf("%s: segment holds %d records", target.name, len(offs)-1)
		}
		for bit := offs[k] * 8; bit < offs[k+1]*8; bit++ {
			t.Run(fmt.Sprintf("%s/bit=%d", target.name, bit), func(t *testing.T) {
				t.Parallel()
				d := copyDir(t, dir)
				path := filepath.Join(d, filepath.Base(target.seg))
				c := append([]byte(nil), b...)
				c[bit/8] ^= 1 << (bit % 8)
				writeFile(t, path, c)
				before := dirState(t, d)
				j, err := Open(d, opts)
				if err == nil {
					j.Close()
					t.Fatalf("Open of a journal with a flipped bit in an acknowledged record succeeded")
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("err = %v, want ErrCorrupt", err)
				}
				for _, want := range []string{path, fmt.Sprintf("offset %d", offs[k]), "lockstepctl backup restore"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				if diff := diffKeys(before, dirState(t, d)); diff != "" {
					t.Errorf("a refused Open changed files: %s", diff)
				}
			})
		}
	}
}

// TestSegmentsMissingOrReordered: segments that do not make one unbroken
// sequence refuse to open, naming the file.
func TestSegmentsMissingOrReordered(t *testing.T) {
	t.Parallel()
	opts := Options{SegmentSize: 256}
	dir, _, _ := pristine(t, 30, opts)
	segs := segFiles(t, dir)
	if len(segs) < 4 {
		t.Fatalf("want 4 segments or more, got %d", len(segs))
	}
	base := func(i int) string { return filepath.Base(segs[i]) }
	for _, tc := range []struct {
		name   string
		damage func(d string)
		want   error
		names  string // the file the error must name
	}{
		{"middle segment missing", func(d string) { os.Remove(filepath.Join(d, base(1))) }, ErrMissingSegment, base(2)},
		{"first segment missing", func(d string) { os.Remove(filepath.Join(d, base(0))) }, ErrMissingSegment, "starts at index"},
		{"two segments swapped", func(d string) {
			a, b := readFile(t, filepath.Join(d, base(1))), readFile(t, filepath.Join(d, base(2)))
			writeFile(t, filepath.Join(d, base(1)), b)
			writeFile(t, filepath.Join(d, base(2)), a)
		}, ErrSegmentOrder, base(1)},
		{"last segment renamed ahead", func(d string) {
			os.Rename(filepath.Join(d, base(len(segs)-1)), filepath.Join(d, segName(1000)))
		}, ErrSegmentOrder, segName(1000)},
		{"segment copied over the next", func(d string) {
			writeFile(t, filepath.Join(d, base(2)), readFile(t, filepath.Join(d, base(1))))
		}, ErrSegmentOrder, base(2)},
		{"last segment header damaged", func(d string) {
			p := filepath.Join(d, base(len(segs)-1))
			c := readFile(t, p)
			c[3] ^= 0x10
			writeFile(t, p, c)
		}, ErrCorrupt, base(len(segs) - 1)},
		{"a stray .seg name", func(d string) {
			writeFile(t, filepath.Join(d, "copy.seg"), nil)
		}, ErrSegmentOrder, "copy.seg"},
		{"chain broken between segments", func(d string) {
			// A valid header, but with another previous CRC.
			p := filepath.Join(d, base(2))
			c := readFile(t, p)
			h, _ := parseSegHeader(c)
			h.prevCRC++
			copy(c, h.marshal())
			writeFile(t, p, c)
		}, ErrCorrupt, base(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := copyDir(t, dir)
			tc.damage(d)
			before := dirState(t, d)
			j, err := Open(d, opts)
			if err == nil {
				j.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if tc.names != "" && !strings.Contains(err.Error(), tc.names) {
				t.Errorf("error %q does not name %s", err, tc.names)
			}
			if !strings.Contains(err.Error(), "lockstepctl backup restore") {
				t.Errorf("error %q does not say what to do", err)
			}
			if diff := diffKeys(before, dirState(t, d)); diff != "" {
				t.Errorf("a refused Open changed files: %s", diff)
			}
		})
	}
}

// TestCorruptSnapshot: a damaged latest snapshot falls back to the older
// one when the segments still cover it (SnapshotsKept 2), and refuses
// when they do not (SnapshotsKept 1 compacted them away).
func TestCorruptSnapshot(t *testing.T) {
	t.Parallel()
	build := func(t *testing.T, opts Options) string {
		dir := t.TempDir()
		j := mustOpen(t, dir, opts)
		appendN(t, j, 1, 60)
		for _, i := range []uint64{20, 40} {
			if err := j.Snapshot(i, []byte(fmt.Sprintf("state %d", i))); err != nil {
				t.Fatal(err)
			}
		}
		appendN(t, j, 61, 70)
		j.Close()
		return dir
	}
	damage := func(t *testing.T, dir string, index uint64) string {
		p := filepath.Join(dir, snapName(index))
		c := readFile(t, p)
		c[len(c)-1] ^= 0x01
		writeFile(t, p, c)
		return p
	}

	t.Run("fallback", func(t *testing.T) {
		t.Parallel()
		opts := Options{SegmentSize: 256}
		dir := build(t, opts)
		path := damage(t, dir, 40)
		log, lb := newLog()
		j, err := Open(dir, Options{SegmentSize: 256, Logger: log})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		s, ok, err := j.LatestSnapshot()
		if err != nil || !ok || s.Index != 20 || string(s.State) != "state 20" {
			t.Errorf("LatestSnapshot = %d %q %t %v, want the one at 20", s.Index, s.State, ok, err)
		}
		if j.FirstIndex() > 21 {
			t.Errorf("records after the fallback snapshot are gone: first %d", j.FirstIndex())
		}
		checkRecords(t, j, 21, 70)
		for _, want := range []string{MsgSnapshotFallback, path} {
			if !strings.Contains(lb.String(), want) {
				t.Errorf("log %q lacks %q", lb.String(), want)
			}
		}
		if _, err := os.Stat(path + ".broken"); err != nil {
			t.Errorf("damaged snapshot not kept as .broken: %v", err)
		}
		appendN(t, j, 71, 75)
		j.Close()
		j = mustOpen(t, dir, opts)
		defer j.Close()
		checkRecords(t, j, 21, 75)
	})

	t.Run("no fallback", func(t *testing.T) {
		t.Parallel()
		opts := Options{SegmentSize: 256, SnapshotsKept: 1}
		dir := build(t, opts)
		path := damage(t, dir, 40)
		before := dirState(t, dir)
		j, err := Open(dir, opts)
		if err == nil {
			j.Close()
			t.Fatal("Open succeeded without a usable snapshot")
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v, want ErrCorrupt naming %s", err, path)
		}
		if diff := diffKeys(before, dirState(t, dir)); diff != "" {
			t.Errorf("a refused Open changed files: %s", diff)
		}
	})

	t.Run("damaged record covered by a snapshot", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		j := mustOpen(t, dir, Options{})
		appendN(t, j, 1, 5)
		if err := j.Snapshot(5, []byte("5")); err != nil {
			t.Fatal(err)
		}
		j.Close()
		p := segFiles(t, dir)[0]
		c := readFile(t, p)
		c[len(c)-1] ^= 0x80
		writeFile(t, p, c)
		if j, err := Open(dir, Options{}); err == nil || !errors.Is(err, ErrCorrupt) {
			if err == nil {
				j.Close()
			}
			t.Errorf("Open = %v, want ErrCorrupt: the snapshot proves record 5 was acknowledged", err)
		}
	})
}

// TestJudgeTail covers the rule on hand-made tails.
func TestJudgeTail(t *testing.T) {
	t.Parallel()
	h := segHeader{first: 1}
	// Records 1..6 in batches [1] [2 3] [4] [5 6].
	commits := map[uint64]bool{1: true, 3: true, 4: true, 6: true}
	b := h.marshal()
	var crc uint32
	offs := []int{}
	for i := uint64(1); i <= 6; i++ {
		offs = append(offs, len(b))
		b, crc = appendRecord(b, crc, i, payloadFor(i), commits[i])
	}
	damage := func(rec int) []byte {
		c := append([]byte(nil), b...)
		c[offs[rec-1]+recHeaderSize] ^= 1 // a payload bit
		return c
	}
	for _, tc := range []struct {
		name string
		rec  int // damaged record
		torn bool
	}{
		{"last record", 6, true},
		{"first of the last batch", 5, true},
		{"alone in its batch, a batch after it", 4, false},
		{"middle of an earlier batch", 2, false},
		{"end of an earlier batch", 3, false},
	} {
		c := damage(tc.rec)
		s := scanRecords(c, h)
		if s.end != offs[tc.rec-1] {
			t.Fatalf("%s: scan stopped at %d, want %d", tc.name, s.end, offs[tc.rec-1])
		}
		if v := judgeTail(c, s.end, s.lastCRC, s.last+1); v.torn != tc.torn {
			t.Errorf("%s: torn = %t, want %t (%+v)", tc.name, v.torn, tc.torn, v)
		}
	}
}
