package state

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/persist"
)

// The on-disk formats did not change when persist stopped knowing the
// record families: a journal, a snapshot and a backup written before
// (testdata/v1, see its README) open and replay to the very same state,
// and the same records written now give the same bytes.

// fixtureRecords is the history the v1 fixture holds: records of both
// families, valid ones only, each either a session.Record or a
// registry.Record; snapAt lists after which records a snapshot is
// taken, backupAt after which one a backup. It must stay as it was when
// the fixture was written.
func fixtureRecords() (recs []any, snapAt, backupAt map[int]bool) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tick := func() time.Time { at = at.Add(1500 * time.Millisecond); return at }
	cs := func(k int, lss hal.LSS, n uint8) session.CopySet {
		v := hal.NewVolume(lss, n)
		return session.CopySet{
			H1: hal.VolumeRef{Serial: hal.Serial(fmt.Sprintf("LAB.2107-75P%04d", k+1)), Volume: v},
			H2: hal.VolumeRef{Serial: hal.Serial(fmt.Sprintf("LAB.2107-75S%04d", k+1)), Volume: v},
		}
	}
	sess := func(r session.Record) { r.Version, r.At = session.RecordVersion, tick(); recs = append(recs, r) }
	reg := func(r registry.Record) { r.Version, r.At = registry.RecordVersion, tick(); recs = append(recs, r) }
	conn := func(name, addr string) *registry.Connection {
		return &registry.Connection{Name: name, Kind: "direct", Addresses: []string{addr}}
	}
	change := func(st session.State, status session.Status, copying, ioHeld bool, reason string) *session.Change {
		return &session.Change{State: st, Status: status, Copying: copying, IOHeld: ioHeld, Reason: reason}
	}
	reg(registry.Record{Kind: registry.KindEpochSet, Epoch: 1})
	reg(registry.Record{Kind: registry.KindStorageAdded, Serial: "LAB.2107-75P0001", Connection: conn("direct", "10.0.0.1:1750")})
	reg(registry.Record{Kind: registry.KindStorageAdded, Serial: "LAB.2107-75S0001", Connection: conn("direct", "10.0.1.1:1750")})
	sess(session.Record{Kind: session.KindSessionCreated, Session: "A",
		Create: &session.Create{Type: session.MetroMirrorFailoverFailback, CGName: "g1", Policy: session.HoldIO}})
	sess(session.Record{Kind: session.KindCopySetsAdded, Session: "A",
		CopySets: []session.CopySet{cs(0, 0x10, 0), cs(0, 0x10, 1), cs(0, 0x10, 2), cs(0, 0x10, 3)}})
	sess(session.Record{Kind: session.KindSessionCreated, Session: "B",
		Create: &session.Create{Type: session.MetroMirrorSingleDirection, Policy: session.ReleaseIO}})
	sess(session.Record{Kind: session.KindCopySetsAdded, Session: "B", CopySets: []session.CopySet{cs(1, 0x11, 0)}})
	reg(registry.Record{Kind: registry.KindHeartbeatSet, On: true})
	sess(session.Record{Kind: session.KindStateChanged, Session: "A", Change: change(session.Preparing, session.Warning, true, false, "start")})
	sess(session.Record{Kind: session.KindStateChanged, Session: "A", Change: change(session.Prepared, session.Normal, true, false, "in sync")})
	snapAt = map[int]bool{len(recs): true}
	sess(session.Record{Kind: session.KindCopySetsAdded, Session: "B", CopySets: []session.CopySet{cs(1, 0x11, 1), cs(1, 0x11, 2)}})
	reg(registry.Record{Kind: registry.KindEpochSet, Epoch: 2})
	reg(registry.Record{Kind: registry.KindStorageAdded, Serial: "LAB.2107-75P0001", Connection: conn("spare", "10.0.0.2:1750")})
	sess(session.Record{Kind: session.KindStateChanged, Session: "A", IfRev: 4, Change: change(session.Suspended, session.Severe, false, true, "freeze: pair 10:00 suspended")})
	sess(session.Record{Kind: session.KindSessionCreated, Session: "C",
		Create: &session.Create{Type: session.MetroMirrorFailoverFailback, CGName: "g2", Policy: session.HoldIO}})
	sess(session.Record{Kind: session.KindSessionRemoved, Session: "C"})
	reg(registry.Record{Kind: registry.KindConnectionRemoved, Serial: "LAB.2107-75P0001", Name: "spare"})
	snapAt[len(recs)] = true
	sess(session.Record{Kind: session.KindCopySetsRemoved, Session: "B", CopySets: []session.CopySet{cs(1, 0x11, 0)}})
	reg(registry.Record{Kind: registry.KindHeartbeatSet, On: false})
	sess(session.Record{Kind: session.KindStateChanged, Session: "B", Change: change(session.Preparing, session.Warning, true, false, "start")})
	backupAt = map[int]bool{len(recs): true}
	sess(session.Record{Kind: session.KindStateChanged, Session: "B", Change: change(session.Prepared, session.Normal, true, false, "in sync")})
	reg(registry.Record{Kind: registry.KindEpochSet, Epoch: 3})
	sess(session.Record{Kind: session.KindStateChanged, Session: "A", Change: change(session.Preparing, session.Warning, true, false, "resync")})
	return recs, snapAt, backupAt
}

const (
	fixtureDir  = "testdata/v1"
	fixtureLast = 23 // records in the fixture
	backupLast  = 20 // the backup's last index
)

// fixtureOpts are the options the fixture was written with.
func fixtureOpts(clk clock.Clock) persist.Options {
	return persist.Options{SegmentSize: 512, SnapshotEvery: -1, Clock: clk}
}

func fixtureClock() *clock.Fake { return clock.NewFake(time.Date(2025, 3, 2, 8, 30, 0, 0, time.UTC)) }

// copyFixture copies a fixture state directory to a temp one: opening
// takes a lock file in it, and the test must not change testdata.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(fixtureDir, name, "state"))); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readFixture(t testing.TB, path ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{fixtureDir}, path...)...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFixtureV1Replays: the journals written before the split open and
// replay to the state that code built, from a snapshot and its tail or
// from the records alone; and the store goes on after them.
func TestFixtureV1Replays(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"snapshots", "journal-only"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := copyFixture(t, name)
			s := mustOpen(t, dir, persist.Options{})
			defer func() { s.Close() }()
			want := readFixture(t, name, "want-state.json")
			if got := stateOf(t, s); got != want || s.LastIndex() != fixtureLast {
				t.Fatalf("replayed: LastIndex %d (want %d), state (-want +got):\n-%s\n+%s", s.LastIndex(), fixtureLast, want, got)
			}
			// What the daemon reads: the sessions and the registry.
			if db := s.DB(); db.Len() != 2 {
				t.Errorf("%d sessions, want A and B", db.Len())
			}
			if reg := s.Registry(); reg.Epoch() != 3 || reg.Heartbeat() || len(reg.Serials()) != 2 {
				t.Errorf("registry: epoch %d, heartbeat %t, %d storage systems", reg.Epoch(), reg.Heartbeat(), len(reg.Serials()))
			}
			if err := s.ProposeRegistry(context.Background(), registry.Record{Version: registry.RecordVersion,
				Kind: registry.KindEpochSet, At: t0, Epoch: 4}); err != nil || s.LastIndex() != fixtureLast+1 {
				t.Fatalf("a record after the fixture's: %v (LastIndex %d)", err, s.LastIndex())
			}
		})
	}
}

// TestFixtureV1Backup: the backup written before the split is listed
// with its manifest and restores (offline and on an open store) to the
// state that code backed up.
func TestFixtureV1Backup(t *testing.T) {
	t.Parallel()
	backups, err := persist.ListBackups(filepath.Join(fixtureDir, "snapshots", "state"))
	if err != nil || len(backups) != 1 {
		t.Fatalf("ListBackups = %v, %v; want the fixture's one", backups, err)
	}
	m := backups[0].Manifest
	if m.Epoch != 7 || m.LastIndex != backupLast || !m.Created.Equal(fixtureClock().Now()) || backups[0].Err != nil {
		t.Fatalf("manifest %+v (err %v)", m, backups[0].Err)
	}
	want := readFixture(t, "snapshots", "want-backup-state.json")

	offline := filepath.Join(t.TempDir(), "state")
	if _, err := RestoreBackup(offline, backups[0].Path, persist.Options{}); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, offline, persist.Options{})
	if got := stateOf(t, s); got != want || s.LastIndex() != backupLast {
		t.Errorf("restored offline: LastIndex %d, state (-want +got):\n-%s\n+%s", s.LastIndex(), want, got)
	}
	s.Close()

	s = mustOpen(t, copyFixture(t, "journal-only"), persist.Options{})
	defer s.Close()
	if _, err := s.RestoreBackup(context.Background(), backups[0].Path); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, s); got != want || s.LastIndex() != backupLast {
		t.Errorf("restored online: LastIndex %d, state (-want +got):\n-%s\n+%s", s.LastIndex(), want, got)
	}
}

// TestFixtureV1WritesTheSameBytes: the fixture's records proposed now
// give the fixture's files byte for byte: segments, snapshots, the
// backup's name and its members.
func TestFixtureV1WritesTheSameBytes(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"snapshots", "journal-only"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			snaps := name == "snapshots"
			dir := filepath.Join(t.TempDir(), "state")
			s := mustOpen(t, dir, fixtureOpts(fixtureClock()))
			recs, snapAt, backupAt := fixtureRecords()
			for i, r := range recs {
				var err error
				switch r := r.(type) {
				case session.Record:
					err = s.Propose(ctx, r)
				case registry.Record:
					err = s.ProposeRegistry(ctx, r)
				}
				if err != nil {
					t.Fatalf("record %d: %v", i+1, err)
				}
				if snaps && snapAt[i+1] {
					if err := s.Snapshot(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if snaps && backupAt[i+1] {
					if _, err := s.CreateBackup(ctx, 7); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(fixtureDir, name, "state")
			for _, sub := range []string{"journal", "backups"} {
				wantFiles, _ := filepath.Glob(filepath.Join(want, sub, "*"))
				gotFiles, _ := filepath.Glob(filepath.Join(dir, sub, "*"))
				if !slices.Equal(bases(wantFiles), bases(gotFiles)) {
					t.Fatalf("%s: files %q, the fixture has %q", sub, bases(gotFiles), bases(wantFiles))
				}
				for i, w := range wantFiles {
					wb, gb := zipOrFile(t, w), zipOrFile(t, gotFiles[i])
					if !slices.Equal(wb, gb) {
						t.Errorf("%s differs from the fixture's", filepath.Join(sub, filepath.Base(w)))
					}
				}
			}
		})
	}
}

func bases(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// zipOrFile is a file's bytes, or for a backup zip its members' names
// and contents in order (the compressed bytes belong to the Go release's
// deflate, not to lockstep's format).
func zipOrFile(t *testing.T, path string) []string {
	t.Helper()
	if filepath.Ext(path) != ".zip" {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return []string{string(b)}
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var out []string
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f.Name, f.Modified.UTC().String(), string(b))
	}
	return out
}
