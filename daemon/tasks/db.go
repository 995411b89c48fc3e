package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// RecordVersion is the version of the record encoding.
const RecordVersion = 1

// Record kinds.
const (
	KindCreated  = "task-created"
	KindEnabled  = "task-enabled" // On: enabled or disabled
	KindRunAt    = "task-run-at"  // a one-off extra run at RunAt (the zero time: none)
	KindRemoved  = "task-removed"
	KindStarted  = "occurrence-started"
	KindFinished = "occurrence-finished"
	KindMissed   = "occurrence-missed"
)

// Results of an occurrence.
const (
	ResultSuccess     = "success"
	ResultFailed      = "failed"
	ResultInterrupted = "interrupted" // journaled started, never finished: the server stopped
	ResultMissed      = "missed"      // never started (the server did not act, or the task still ran)
)

// Errors of Apply.
var (
	ErrInvalid  = errors.New("tasks: invalid record")
	ErrNotFound = errors.New("tasks: no such task")
	ErrExists   = errors.New("tasks: task already defined")
	ErrRunning  = errors.New("tasks: an occurrence of the task is running")
)

// Record is one change to the tasks, the family "task" of the journal.
type Record struct {
	Version int       `json:"version"`
	Kind    string    `json:"kind"`
	At      time.Time `json:"at"`
	Task    string    `json:"task"`
	// task-created
	Steps    []string `json:"steps,omitempty"`
	Schedule string   `json:"schedule,omitempty"`
	Zone     string   `json:"zone,omitempty"`
	// task-created (enabled at creation), task-enabled
	On bool `json:"on,omitempty"`
	// task-run-at
	RunAt time.Time `json:"run_at,omitzero"`
	// occurrence-*: the occurrence's scheduled instant, which names it.
	Scheduled time.Time `json:"scheduled,omitzero"`
	// occurrence-started: the acting epoch and whether it was asked for
	// (task run) rather than scheduled.
	Epoch  hal.Epoch `json:"epoch,omitempty"`
	Manual bool      `json:"manual,omitempty"`
	// occurrence-finished, occurrence-missed
	Result  string `json:"result,omitempty"`
	Message string `json:"message,omitempty"`
	// occurrence-missed: how many occurrences, up to Scheduled.
	Count int `json:"count,omitempty"`
}

// Occurrence is one run of a task.
type Occurrence struct {
	Scheduled time.Time `json:"scheduled"`
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
	Epoch     hal.Epoch `json:"epoch,omitempty"`
	Manual    bool      `json:"manual,omitempty"`
	Result    string    `json:"result,omitempty"`
	Message   string    `json:"message,omitempty"`
}

// Task is a task as the journal built it.
type Task struct {
	Name     string    `json:"name"`
	Steps    []Step    `json:"-"`
	Schedule Schedule  `json:"-"`
	Zone     string    `json:"zone"`
	Enabled  bool      `json:"enabled"`
	Created  time.Time `json:"created"`
	// Anchor is where an every schedule counts from and Cursor the
	// latest scheduled occurrence dealt with (started or reported
	// missed); occurrences after Cursor are the ones still to come. Both
	// move to the enabling time on enable: a disabled task's occurrences
	// are neither run nor missed.
	Anchor time.Time `json:"anchor"`
	Cursor time.Time `json:"cursor"`
	// RunAt is a one-off extra run asked for (task run --at).
	RunAt time.Time `json:"run_at,omitzero"`
	// Running is the occurrence journaled started and not finished.
	Running *Occurrence `json:"running,omitempty"`
	// Last is the latest finished (or missed) occurrence.
	Last *Occurrence `json:"last,omitempty"`
	// Missed counts the occurrences reported missed.
	Missed int `json:"missed,omitempty"`
}

// Location is the task's zone (it was checked when the task was created).
func (t *Task) Location() *time.Location {
	loc, err := LoadZone(t.Zone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Next is the task's next occurrence after its cursor, false if none is
// to come (an at task that ran, or a disabled task). A pending one-off
// run (task run --at) counts, enabled or not, when it comes first.
func (t *Task) Next() (time.Time, bool) {
	var n time.Time
	ok := false
	if t.Enabled {
		n, ok = t.Schedule.Next(t.Location(), t.Anchor, t.Cursor)
	}
	if !t.RunAt.IsZero() && (!ok || t.RunAt.Before(n)) {
		return t.RunAt, true
	}
	return n, ok
}

func (t *Task) clone() *Task {
	c := *t
	c.Steps = slices.Clone(t.Steps)
	if t.Running != nil {
		r := *t.Running
		c.Running = &r
	}
	if t.Last != nil {
		l := *t.Last
		c.Last = &l
	}
	return &c
}

// DB is the tasks' state. The zero value is not usable: NewDB.
type DB struct {
	tasks map[string]*Task
}

// NewDB returns an empty DB.
func NewDB() *DB { return &DB{tasks: map[string]*Task{}} }

// Clone is an independent copy.
func (db *DB) Clone() *DB {
	out := &DB{tasks: make(map[string]*Task, len(db.tasks))}
	for k, v := range db.tasks {
		out.tasks[k] = v.clone()
	}
	return out
}

// Task is a copy of the named task.
func (db *DB) Task(name string) (*Task, bool) {
	t, ok := db.tasks[name]
	if !ok {
		return nil, false
	}
	return t.clone(), true
}

// Tasks are copies of every task, by name.
func (db *DB) Tasks() []*Task {
	out := []*Task{}
	for _, k := range slices.Sorted(maps.Keys(db.tasks)) {
		out = append(out, db.tasks[k].clone())
	}
	return out
}

// Check says whether Apply would accept r, changing nothing.
func (db *DB) Check(r Record) error {
	_, err := db.effect(r)
	return err
}

// Apply is the only way the tasks change. It refuses what Check refuses,
// changing nothing.
func (db *DB) Apply(r Record) error {
	t, err := db.effect(r)
	if err != nil {
		return err
	}
	if t == nil {
		delete(db.tasks, r.Task)
	} else {
		db.tasks[r.Task] = t
	}
	return nil
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// effect is the task as r leaves it (nil: removed), computed on a copy.
func (db *DB) effect(r Record) (*Task, error) {
	if r.Version != RecordVersion {
		return nil, invalid("version %d", r.Version)
	}
	if r.At.IsZero() {
		return nil, invalid("a record without a time")
	}
	if r.Kind == KindCreated {
		if _, ok := db.tasks[r.Task]; ok {
			return nil, fmt.Errorf("%w: %q", ErrExists, r.Task)
		}
		return newTask(r)
	}
	cur, ok := db.tasks[r.Task]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, r.Task)
	}
	t := cur.clone()
	switch r.Kind {
	case KindEnabled:
		if r.On && !t.Enabled {
			// A disabled task's occurrences are neither run nor missed:
			// its schedule starts again now.
			t.Cursor = r.At
			if t.Schedule.Form == FormEvery {
				t.Anchor = r.At
			}
		}
		t.Enabled = r.On
	case KindRunAt:
		t.RunAt = r.RunAt
	case KindRemoved:
		if t.Running != nil {
			return nil, fmt.Errorf("%w: %q (its occurrence of %s)", ErrRunning, r.Task, t.Running.Scheduled.UTC().Format(time.RFC3339))
		}
		return nil, nil
	case KindStarted:
		if r.Scheduled.IsZero() || r.Epoch == 0 {
			return nil, invalid("occurrence-started needs its scheduled time and epoch")
		}
		if t.Running != nil {
			return nil, fmt.Errorf("%w: %q", ErrRunning, r.Task)
		}
		if !r.Manual {
			// An occurrence is started at most once: the cursor names
			// the last one dealt with.
			if !r.Scheduled.After(t.Cursor) {
				return nil, invalid("occurrence %s of %q is not after the last one dealt with (%s)",
					r.Scheduled.UTC().Format(time.RFC3339), r.Task, t.Cursor.UTC().Format(time.RFC3339))
			}
			t.Cursor = r.Scheduled
		}
		if !t.RunAt.IsZero() && r.Scheduled.Equal(t.RunAt) {
			t.RunAt = time.Time{}
		}
		t.Running = &Occurrence{Scheduled: r.Scheduled, Started: r.At, Epoch: r.Epoch, Manual: r.Manual}
	case KindFinished:
		if t.Running == nil || !t.Running.Scheduled.Equal(r.Scheduled) {
			return nil, invalid("occurrence-finished of %q: no such occurrence running", r.Task)
		}
		if r.Result != ResultSuccess && r.Result != ResultFailed && r.Result != ResultInterrupted {
			return nil, invalid("result %q", r.Result)
		}
		o := *t.Running
		o.Finished, o.Result, o.Message = r.At, r.Result, r.Message
		t.Last, t.Running = &o, nil
	case KindMissed:
		if r.Count < 1 || r.Scheduled.IsZero() {
			return nil, invalid("occurrence-missed of %q needs a count and a scheduled time", r.Task)
		}
		if r.Manual {
			// A one-off run that came due before any server could run it.
			if !r.Scheduled.Equal(t.RunAt) {
				return nil, invalid("occurrence-missed of %q: no run asked for at %s", r.Task, r.Scheduled.UTC().Format(time.RFC3339))
			}
			t.RunAt = time.Time{}
		} else {
			if !r.Scheduled.After(t.Cursor) {
				return nil, invalid("occurrence-missed of %q: %s is not after the last occurrence dealt with", r.Task, r.Scheduled.UTC().Format(time.RFC3339))
			}
			t.Cursor = r.Scheduled
		}
		t.Missed += r.Count
		if t.Running == nil {
			t.Last = &Occurrence{Scheduled: r.Scheduled, Finished: r.At, Manual: r.Manual, Result: ResultMissed, Message: r.Message}
		}
	default:
		return nil, invalid("unknown kind %q", r.Kind)
	}
	return t, nil
}

func newTask(r Record) (*Task, error) {
	if !ValidName(r.Task) {
		return nil, invalid("task name %q: want 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit", r.Task)
	}
	if len(r.Steps) == 0 || len(r.Steps) > MaxSteps {
		return nil, invalid("task %q: 1 to %d steps", r.Task, MaxSteps)
	}
	t := &Task{Name: r.Task, Zone: r.Zone, Enabled: r.On, Created: r.At, Anchor: r.At, Cursor: r.At}
	for _, s := range r.Steps {
		st, err := ParseStep(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		t.Steps = append(t.Steps, st)
	}
	sc, err := ParseSchedule(r.Schedule)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := LoadZone(r.Zone); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	t.Schedule = sc
	return t, nil
}

// MaxSteps bounds a task's steps.
const MaxSteps = 64

// ValidName reports whether s can name a task (or a session in a step):
// 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit, the rule
// of session names.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// snapshot is the encoding of DB: each task with its steps and schedule
// in their canonical text.
type snapshot struct {
	Version int            `json:"version"`
	Tasks   []taskSnapshot `json:"tasks"`
}

type taskSnapshot struct {
	Task
	Steps    []string `json:"steps"`
	Schedule string   `json:"schedule"`
}

// Snapshot encodes the whole DB; equal DBs give equal bytes.
func (db *DB) Snapshot() ([]byte, error) {
	s := snapshot{Version: RecordVersion, Tasks: []taskSnapshot{}}
	for _, t := range db.Tasks() {
		ts := taskSnapshot{Task: *t, Schedule: t.Schedule.String(), Steps: []string{}}
		for _, st := range t.Steps {
			ts.Steps = append(ts.Steps, st.String())
		}
		s.Tasks = append(s.Tasks, ts)
	}
	return json.Marshal(s)
}

// Restore decodes a Snapshot, checking what Apply would have.
func Restore(b []byte) (*DB, error) {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %w", ErrInvalid, err)
	}
	if s.Version != RecordVersion {
		return nil, invalid("snapshot version %d", s.Version)
	}
	db := NewDB()
	for _, ts := range s.Tasks {
		t, err := newTask(Record{Task: ts.Name, Steps: ts.Steps, Schedule: ts.Schedule, Zone: ts.Zone, At: ts.Created})
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		if _, dup := db.tasks[t.Name]; dup {
			return nil, invalid("snapshot: task %q twice", t.Name)
		}
		t.Enabled, t.Anchor, t.Cursor, t.RunAt, t.Running, t.Last, t.Missed =
			ts.Enabled, ts.Anchor, ts.Cursor, ts.RunAt, ts.Running, ts.Last, ts.Missed
		db.tasks[t.Name] = t
	}
	return db, nil
}

// Len is the number of tasks.
func (db *DB) Len() int { return len(db.tasks) }
