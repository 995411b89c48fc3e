package state

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/tasks"
	"github.com/lockstep-io/lockstep/persist"
)

// The task family's v1 fixture (testdata/tasks-v1, see its README): a
// journal with a snapshot holding tasks, written when the family was
// added. Every later build opens it to the same state and writes the
// same bytes from the same records.

const (
	taskFixtureDir      = "testdata/tasks-v1"
	taskFixtureSnapshot = 8 // a snapshot after this record
)

// taskFixtureRecords is the history the fixture holds. It must stay as
// it was when the fixture was written.
func taskFixtureRecords() []Record {
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	tick := func() time.Time { at = at.Add(1500 * time.Millisecond); return at }
	var recs []Record
	task := func(r tasks.Record) {
		r.Version, r.At = tasks.RecordVersion, tick()
		recs = append(recs, Record{Task: &r})
	}
	reg := registry.Record{Version: registry.RecordVersion, Kind: registry.KindEpochSet, At: tick(), Epoch: 1}
	recs = append(recs, Record{Registry: &reg})
	sess := session.Record{Version: session.RecordVersion, Kind: session.KindSessionCreated, Session: "prod", At: tick(),
		Create: &session.Create{Type: session.MetroMirrorFailoverFailback, CGName: "g1", Policy: session.HoldIO}}
	recs = append(recs, Record{Session: &sess})
	task(tasks.Record{Kind: tasks.KindCreated, Task: "nightly", Steps: []string{"suspend prod", "wait prod suspended timeout 5m0s", "start-h1-h2 prod"},
		Schedule: "daily 02:30", Zone: "Europe/Berlin", On: true})
	task(tasks.Record{Kind: tasks.KindCreated, Task: "cycle", Steps: []string{"refresh prod"}, Schedule: "every 6h0m0s", Zone: "UTC", On: true})
	task(tasks.Record{Kind: tasks.KindCreated, Task: "xmas", Steps: []string{"suspend prod"}, Schedule: "at 2026-12-24T02:00", Zone: "America/New_York"})
	task(tasks.Record{Kind: tasks.KindCreated, Task: "weekly", Steps: []string{"refresh prod"}, Schedule: "weekly sun 03:30", Zone: "UTC", On: true})
	s1 := time.Date(2026, 12, 3, 1, 30, 0, 0, time.UTC)
	task(tasks.Record{Kind: tasks.KindStarted, Task: "nightly", Scheduled: s1, Epoch: 1})
	task(tasks.Record{Kind: tasks.KindFinished, Task: "nightly", Scheduled: s1, Result: tasks.ResultSuccess, Message: "3 step(s) done"})
	// snapshot here
	s2 := time.Date(2026, 12, 2, 15, 0, 3, 0, time.UTC)
	task(tasks.Record{Kind: tasks.KindMissed, Task: "cycle", Scheduled: s2, Count: 1, Result: tasks.ResultMissed, Message: "missed: 1"})
	task(tasks.Record{Kind: tasks.KindStarted, Task: "cycle", Scheduled: s2.Add(6 * time.Hour), Epoch: 2})
	task(tasks.Record{Kind: tasks.KindRunAt, Task: "xmas", RunAt: time.Date(2026, 12, 20, 7, 0, 0, 0, time.UTC)})
	task(tasks.Record{Kind: tasks.KindEnabled, Task: "xmas", On: true})
	task(tasks.Record{Kind: tasks.KindEnabled, Task: "weekly", On: false})
	task(tasks.Record{Kind: tasks.KindStarted, Task: "nightly", Scheduled: s1.Add(24 * time.Hour), Epoch: 2})
	task(tasks.Record{Kind: tasks.KindFinished, Task: "nightly", Scheduled: s1.Add(24 * time.Hour), Result: tasks.ResultFailed, Message: "step 1 (suspend prod): refused"})
	task(tasks.Record{Kind: tasks.KindCreated, Task: "gone", Steps: []string{"refresh prod"}, Schedule: "every 1m0s", Zone: "UTC"})
	task(tasks.Record{Kind: tasks.KindRemoved, Task: "gone"})
	return recs
}

func readTaskFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(taskFixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeTaskFixture proposes the fixture's records to a store in dir.
func writeTaskFixture(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	s := mustOpen(t, dir, fixtureOpts(fixtureClock()))
	for i, r := range taskFixtureRecords() {
		var err error
		switch {
		case r.Session != nil:
			err = s.Propose(ctx, *r.Session)
		case r.Registry != nil:
			err = s.ProposeRegistry(ctx, *r.Registry)
		default:
			err = s.ProposeTask(ctx, *r.Task)
		}
		if err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
		if i+1 == taskFixtureSnapshot {
			if err := s.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if os.Getenv("LOCKSTEP_WRITE_TASK_FIXTURE") != "" {
		if err := os.WriteFile(filepath.Join(taskFixtureDir, "want-state.json"), []byte(stateOf(t, s)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriteTaskFixture writes testdata/tasks-v1 once, when the family is
// added (LOCKSTEP_WRITE_TASK_FIXTURE=1). Never again: the fixture is the
// past's output.
func TestWriteTaskFixture(t *testing.T) {
	if os.Getenv("LOCKSTEP_WRITE_TASK_FIXTURE") == "" {
		t.Skip("writes the fixture: LOCKSTEP_WRITE_TASK_FIXTURE=1, once")
	}
	writeTaskFixture(t, filepath.Join(taskFixtureDir, "state"))
}

// TestTaskFixtureV1Replays: the tasks journaled by the first build that
// knew them open and replay to that build's state (snapshot and tail),
// and the store goes on.
func TestTaskFixtureV1Replays(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(taskFixtureDir, "state"))); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir, persist.Options{})
	defer s.Close()
	want := readTaskFixture(t, "want-state.json")
	if got := stateOf(t, s); got != want || s.LastIndex() != uint64(len(taskFixtureRecords())) {
		t.Fatalf("replayed: LastIndex %d, state (-want +got):\n-%s\n+%s", s.LastIndex(), want, got)
	}
	db := s.Tasks()
	n, _ := db.Task("nightly")
	c, _ := db.Task("cycle")
	x, _ := db.Task("xmas")
	if db.Len() != 4 || n.Last == nil || n.Last.Result != tasks.ResultFailed || c.Running == nil || c.Missed != 1 || x.RunAt.IsZero() {
		t.Fatalf("tasks after replay: %d; nightly %+v; cycle %+v; xmas %+v", db.Len(), n, c, x)
	}
	if err := s.ProposeTask(context.Background(), tasks.Record{Version: tasks.RecordVersion, Kind: tasks.KindStarted,
		At: t0, Task: "nightly", Scheduled: n.Cursor, Epoch: 3}); err == nil {
		t.Fatal("an occurrence already started was started again after replay")
	}
}

// TestTaskFixtureV1WritesTheSameBytes: the fixture's records proposed now
// give its files byte for byte.
func TestTaskFixtureV1WritesTheSameBytes(t *testing.T) {
	t.Parallel()
	if os.Getenv("LOCKSTEP_WRITE_TASK_FIXTURE") != "" {
		t.Skip("writing the fixture")
	}
	dir := filepath.Join(t.TempDir(), "state")
	writeTaskFixture(t, dir)
	want := filepath.Join(taskFixtureDir, "state", "journal")
	wantFiles, _ := filepath.Glob(filepath.Join(want, "*"))
	gotFiles, _ := filepath.Glob(filepath.Join(dir, "journal", "*"))
	if len(wantFiles) == 0 || !slices.Equal(bases(wantFiles), bases(gotFiles)) {
		t.Fatalf("files %q, the fixture has %q", bases(gotFiles), bases(wantFiles))
	}
	for i, w := range wantFiles {
		if !slices.Equal(zipOrFile(t, w), zipOrFile(t, gotFiles[i])) {
			t.Errorf("%s differs from the fixture's", filepath.Base(w))
		}
	}
}
