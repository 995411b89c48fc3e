package persist

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// payloadFor is the payload tests give record i: varying lengths, so that
// every padding size occurs.
func payloadFor(i uint64) []byte {
	return []byte(fmt.Sprintf("record %d%s", i, strings.Repeat("+", int(i%11))))
}

// logBuffer is a slog handler's output that tests read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

func mustOpen(t testing.TB, dir string, opts Options) *Journal {
	t.Helper()
	j, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return j
}

// appendN appends records from..to one at a time (one batch each) with
// payloadFor.
func appendN(t testing.TB, j *Journal, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		got, err := j.Append(context.Background(), payloadFor(i))
		if err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
		if got != i {
			t.Fatalf("Append got index %d, want %d", got, i)
		}
	}
}

// readAll reads every record from the journal's first to its last.
func readAll(t testing.TB, j *Journal) []Entry {
	t.Helper()
	return readRange(t, j, j.FirstIndex(), j.LastIndex())
}

func readRange(t testing.TB, j *Journal, from, to uint64) []Entry {
	t.Helper()
	r, err := j.ReadFrom(from)
	if err != nil {
		t.Fatalf("ReadFrom(%d): %v", from, err)
	}
	defer r.Close()
	var out []Entry
	for i := from; i <= to; i++ {
		e, err := r.Next(context.Background())
		if err != nil {
			t.Fatalf("Next at %d: %v", i, err)
		}
		out = append(out, e)
	}
	return out
}

// checkRecords checks that the journal holds exactly records from..to
// with payloadFor, plus the extras after them.
func checkRecords(t testing.TB, j *Journal, from, to uint64, extra ...[]byte) {
	t.Helper()
	if got, want := j.LastIndex(), to+uint64(len(extra)); got != want {
		t.Fatalf("LastIndex = %d, want %d", got, want)
	}
	for _, e := range readRange(t, j, from, j.LastIndex()) {
		want := payloadFor(e.Index)
		if e.Index > to {
			want = extra[e.Index-to-1]
		}
		if !bytes.Equal(e.Payload, want) {
			t.Fatalf("record %d = %q, want %q", e.Index, e.Payload, want)
		}
	}
}

// segFiles lists the segment files of dir, in order.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func brokenFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.broken*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// recordOffsets are the offsets of the records of a segment file b, and
// len(b) last.
func recordOffsets(t testing.TB, b []byte) []int {
	t.Helper()
	h, err := parseSegHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	offs := []int{segHeaderSize}
	off, crc := segHeaderSize, h.prevCRC
	for i := h.first; off < len(b); i++ {
		rh, _, err := decodeRecord(b[off:], crc, i)
		if err != nil {
			t.Fatalf("record %d at %d: %v", i, off, err)
		}
		off += rh.size()
		crc = rh.crc
		offs = append(offs, off)
	}
	return offs
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, fileMode); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies the regular files of src into a new temp directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			writeFile(t, filepath.Join(dst, e.Name()), readFile(t, filepath.Join(src, e.Name())))
		}
	}
	return dst
}

// dirState is every file under dir with its content, to show that a
// refusal changed nothing.
func dirState(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		if d.Name() == lockName {
			return nil // holds the pid of the last holder
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffKeys says how two dirStates differ, "" if they do not.
func diffKeys(want, got map[string]string) string {
	var d []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			d = append(d, "-"+k)
		} else if g != v {
			d = append(d, "~"+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "+"+k)
		}
	}
	slices.Sort(d)
	return strings.Join(d, " ")
}
