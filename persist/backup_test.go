package persist

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
)

func TestBackupCreateListRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	opts := Options{Clock: clk, SnapshotEvery: 20}
	s := mustOpenStore(t, dir, opts)
	g := newGen(11)
	fill(t, s, g, 50)
	atBackup := stateOf(t, s)
	info, err := s.CreateBackup(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if info.Epoch != 7 || info.LastIndex != 50 || !info.Created.Equal(t0) || info.Format != backupFormat || info.Version != 1 {
		t.Errorf("backup manifest %+v", info.Manifest)
	}
	clk.Advance(time.Hour)
	fill(t, s, g, 80)
	later := stateOf(t, s)
	info2, err := s.CreateBackup(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}

	list, err := ListBackups(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Path != info.Path || list[1].Path != info2.Path || list[1].LastIndex != 80 {
		t.Fatalf("ListBackups = %+v", list)
	}
	if len(list[0].Members) != 1 || list[0].Members[0].Name != stateName || list[0].Size == 0 {
		t.Errorf("listed members %+v", list[0])
	}

	// Online restore: the state is the backup's, indexes continue from it.
	fill(t, s, g, 90)
	got, err := s.RestoreBackup(ctx, info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastIndex != 50 {
		t.Errorf("restored %+v", got)
	}
	if stateOf(t, s) != atBackup || s.LastIndex() != 50 {
		t.Fatalf("state after restore is not the backup's (last index %d)", s.LastIndex())
	}
	fill(t, s, g, 60)
	afterMore := stateOf(t, s)
	s.Close()
	s = mustOpenStore(t, dir, opts)
	if stateOf(t, s) != afterMore || s.LastIndex() != 60 {
		t.Errorf("reopen after restore: state differs (last index %d)", s.LastIndex())
	}
	s.Close()
	for _, name := range []string{restoreName, restoreTmpName, oldJournalName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s left behind", name)
		}
	}

	// Offline restore of the other backup.
	if _, err := RestoreBackup(dir, info2.Path, tallyCodec, Options{}); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir, opts)
	defer s.Close()
	if stateOf(t, s) != later {
		t.Errorf("offline restore: state differs")
	}
	if _, err := RestoreBackup(dir, info2.Path, tallyCodec, Options{}); !errors.Is(err, ErrLocked) {
		t.Errorf("offline restore while the store is open = %v, want ErrLocked", err)
	}
}

// TestRestoreInterrupted: a crash after the commit point is finished by
// the next OpenStore; one before it leaves the old state.
func TestRestoreInterrupted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpenStore(t, dir, Options{})
	g := newGen(5)
	fill(t, s, g, 30)
	info, err := s.CreateBackup(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	backup := stateOf(t, s)
	fill(t, s, g, 40)
	current := stateOf(t, s)
	s.Close()
	_, stateBytes, _, err := loadBackup(info.Path, tallyCodec)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		crash func(d string) // leaves d as a crash at some step would
		want  string
	}{
		{"before the commit", func(d string) {
			os.Mkdir(filepath.Join(d, restoreTmpName), dirMode)
			writeSnapshot(filepath.Join(d, restoreTmpName), 30, stateBytes)
		}, current},
		{"after the commit", func(d string) {
			tmp := filepath.Join(d, restoreTmpName)
			os.Mkdir(tmp, dirMode)
			writeSnapshot(tmp, 30, stateBytes)
			createSegment(tmp, segHeader{first: 31})
			os.Rename(tmp, filepath.Join(d, restoreName))
		}, backup},
		{"between the renames", func(d string) {
			tmp := filepath.Join(d, restoreTmpName)
			os.Mkdir(tmp, dirMode)
			writeSnapshot(tmp, 30, stateBytes)
			createSegment(tmp, segHeader{first: 31})
			os.Rename(tmp, filepath.Join(d, restoreName))
			os.Rename(filepath.Join(d, journalDirName), filepath.Join(d, oldJournalName))
		}, backup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			if err := os.CopyFS(d, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			tc.crash(d)
			s, err := OpenStore(d, tallyCodec, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if stateOf(t, s) != tc.want {
				t.Errorf("state after the interrupted restore is not the expected one")
			}
			for _, name := range []string{restoreName, restoreTmpName, oldJournalName} {
				if _, err := os.Stat(filepath.Join(d, name)); err == nil {
					t.Errorf("%s left behind", name)
				}
			}
		})
	}
}

// member is one file to put in a hand-made zip.
type member struct {
	name string
	data []byte
	// declared, if not 0, is the uncompressed size the zip header claims.
	declared uint64
}

func makeZip(t testing.TB, members ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range members {
		if m.declared != 0 {
			// A stored member whose header lies about its size.
			h := &zip.FileHeader{Name: m.name, Method: zip.Store, CRC32: 0, CompressedSize64: uint64(len(m.data)), UncompressedSize64: m.declared}
			w, err := zw.CreateRaw(h)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(m.data)
			continue
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(m.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func manifestFor(t testing.TB, edit func(*Manifest), members ...member) member {
	t.Helper()
	m := Manifest{Format: backupFormat, Version: backupVersion, LastIndex: 3, Created: t0}
	for _, mem := range members {
		sum := sha256.Sum256(mem.data)
		m.Members = append(m.Members, Member{Name: mem.name, Size: int64(len(mem.data)), SHA256: hex.EncodeToString(sum[:])})
	}
	if edit != nil {
		edit(&m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return member{name: manifestName, data: b}
}

func validState(t testing.TB) []byte {
	t.Helper()
	st := emptyTally()
	if err := st.Apply(add("a")); err != nil {
		t.Fatal(err)
	}
	b, err := st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// badBackups is the table of backups a restore must refuse, shared with
// the fuzz test's seeds.
func badBackups(t testing.TB) []struct {
	name string
	zip  []byte
} {
	st := member{name: stateName, data: validState(t)}
	ok := manifestFor(t, nil, st)
	unsafe := func(name string) []byte {
		evil := member{name: name, data: []byte("x")}
		return makeZip(t, manifestFor(t, nil, st, evil), st, evil)
	}
	bigManifest := append([]byte(`{"format":"lockstep-backup","version":1,"members":[],"x":"`), bytes.Repeat([]byte("a"), maxManifestSize)...)
	return []struct {
		name string
		zip  []byte
	}{
		{"not a zip", []byte("PK\x03\x04 not really")},
		{"empty zip", makeZip(t)},
		{"no manifest", makeZip(t, st)},
		{"no state", makeZip(t, manifestFor(t, nil))},
		{"dot-dot name", unsafe("../../etc/passwd")},
		{"dot-dot inside", unsafe("a/../state.json")},
		{"absolute name", unsafe("/etc/passwd")},
		{"backslash name", unsafe(`..\state.json`)},
		{"drive name", unsafe(`C:state.json`)},
		{"unknown member", unsafe("extra.txt")},
		{"member twice", makeZip(t, ok, st, st)},
		{"checksum mismatch", makeZip(t, ok, member{name: stateName, data: append(validState(t)[:10:10], validState(t)[11:]...)})},
		{"size mismatch", makeZip(t, manifestFor(t, func(m *Manifest) { m.Members[0].Size++ }, st), st)},
		{"wrong version", makeZip(t, manifestFor(t, func(m *Manifest) { m.Version = 2 }, st), st)},
		{"wrong format", makeZip(t, manifestFor(t, func(m *Manifest) { m.Format = "other" }, st), st)},
		{"manifest lists a missing member", makeZip(t, manifestFor(t, func(m *Manifest) {
			m.Members = append(m.Members, Member{Name: "other.json"})
		}, st), st)},
		{"manifest lists itself", makeZip(t, manifestFor(t, func(m *Manifest) { m.Members[0].Name = manifestName }, st), st)},
		{"manifest unknown field", makeZip(t, member{name: manifestName, data: []byte(`{"format":"lockstep-backup","version":1,"surprise":1}`)}, st)},
		{"declared oversized state", makeZip(t, ok, member{name: stateName, data: st.data, declared: maxStateSize + 1})},
		{"oversized manifest", makeZip(t, member{name: manifestName, data: bigManifest}, st)},
		{"manifest lies small", makeZip(t, member{name: manifestName, data: bigManifest, declared: 100}, st)},
		{"state does not load", func() []byte {
			bad := member{name: stateName, data: []byte("tally 1\nepoch 0\nkeys 1\nNOT A KEY\n")}
			return makeZip(t, manifestFor(t, nil, bad), bad)
		}()},
		{"state of a newer version", func() []byte {
			bad := member{name: stateName, data: []byte("tally 2\nepoch 0\nkeys 0\n")}
			return makeZip(t, manifestFor(t, nil, bad), bad)
		}()},
	}
}

// TestRestoreRefusesBadBackups: each bad backup is refused, online and
// offline, and the state directory is left exactly as it was.
func TestRestoreRefusesBadBackups(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpenStore(t, dir, Options{})
	fill(t, s, newGen(2), 20)
	want := stateOf(t, s)
	// A good hand-made backup restores: the table's bad ones differ from
	// it in one thing each.
	st := member{name: stateName, data: validState(t)}
	good := filepath.Join(t.TempDir(), "good.zip")
	writeFile(t, good, makeZip(t, manifestFor(t, nil, st), st))
	if _, _, _, err := loadBackup(good, tallyCodec); err != nil {
		t.Fatalf("the good hand-made backup: %v", err)
	}
	s.Close()
	before := dirState(t, dir)
	s = mustOpenStore(t, dir, Options{})
	defer s.Close()

	for _, tc := range badBackups(t) {
		path := filepath.Join(t.TempDir(), "bad.zip")
		writeFile(t, path, tc.zip)
		_, err := s.RestoreBackup(context.Background(), path)
		if !errors.Is(err, ErrBadBackup) {
			t.Errorf("%s: online restore = %v, want ErrBadBackup", tc.name, err)
		}
		if stateOf(t, s) != want {
			t.Fatalf("%s: a refused restore changed the state", tc.name)
		}
		if _, err := RestoreBackup(t.TempDir(), path, tallyCodec, Options{}); !errors.Is(err, ErrBadBackup) {
			t.Errorf("%s: offline restore = %v, want ErrBadBackup", tc.name, err)
		}
		if strings.Contains(tc.name, "name") && err != nil && !strings.Contains(err.Error(), "unsafe member name") {
			t.Errorf("%s: error %q does not say the name is unsafe", tc.name, err)
		}
	}
	if err := s.Propose(context.Background(), newGen(99).record(tallyOf(s))); err != nil && errors.Is(err, ErrClosed) {
		t.Errorf("store unusable after refused restores: %v", err)
	}
	s.Close()
	after := dirState(t, dir)
	// Only the journal may differ: the Propose above may have added a
	// record. Compare everything else.
	for k := range before {
		if strings.HasPrefix(k, journalDirName+"/") {
			delete(before, k)
			delete(after, k)
		}
	}
	if d := diffKeys(before, after); d != "" {
		t.Errorf("refused restores changed files: %s", d)
	}
}

// TestBackupRetention: backups older than the retention are pruned after
// each new one, the newest never.
func TestBackupRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	day := 24 * time.Hour
	s := mustOpenStore(t, dir, Options{Clock: clk, BackupRetention: 30 * day})
	defer s.Close()
	var paths []string
	for _, at := range []time.Duration{0, 10 * day, 40 * day} {
		clk.AdvanceTo(t0.Add(at))
		info, err := s.CreateBackup(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, info.Path)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if exists(paths[0]) || !exists(paths[1]) || !exists(paths[2]) {
		t.Errorf("after 40 days: %t %t %t, want false true true", exists(paths[0]), exists(paths[1]), exists(paths[2]))
	}
	// Everything is old now, but the newest stays.
	clk.Advance(365 * day)
	deleted, err := s.PruneBackups()
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0] != paths[1] || !exists(paths[2]) {
		t.Errorf("pruned %v; the newest %s exists: %t", deleted, paths[2], exists(paths[2]))
	}
	// Two backups in the same second get distinct names (and the first
	// prunes paths[2], a year old).
	a, err := s.CreateBackup(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateBackup(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Path == b.Path || !exists(a.Path) || !exists(b.Path) {
		t.Errorf("same-second backups %s and %s", a.Path, b.Path)
	}
	// An unreadable file is listed with its error and never pruned.
	junk := filepath.Join(dir, backupsDirName, "junk.zip")
	writeFile(t, junk, []byte("junk"))
	list, err := ListBackups(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Path != junk || list[0].Err == nil || exists(paths[2]) {
		t.Errorf("ListBackups = %+v", list)
	}
	clk.Advance(365 * day)
	if _, err := s.CreateBackup(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if !exists(junk) {
		t.Errorf("an unreadable backup was pruned")
	}
}
