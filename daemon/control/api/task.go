package api

import (
	"fmt"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// TaskSpec is the argument of TaskCreate: a scheduled task (daemon/freeze/doc.go).
// The daemon checks the schedule's and the steps' syntax (package
// daemon/tasks) and answers ErrInvalid with what is wrong.
type TaskSpec struct {
	Name string `json:"name"`
	// Schedule: "at 2026-12-24T02:00", "every 6h", "daily 02:00",
	// "weekly sun 03:30"; wall-clock times in Zone.
	Schedule string `json:"schedule"`
	// Zone is an IANA time zone ("" = the server's own zone's name, which
	// the task then stores, so that both servers of a pair agree).
	Zone string `json:"zone,omitempty"`
	// Steps, in order: "COMMAND SESSION" (a session command, e.g.
	// "suspend prod") or "wait SESSION STATE [timeout D]".
	Steps []string `json:"steps"`
	// Disabled creates the task disabled (enable it with TaskEnable).
	Disabled bool `json:"disabled,omitempty"`
}

// Validate checks what needs no knowledge of schedules: a name and steps.
func (s TaskSpec) Validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("%w: a task needs a name", ErrInvalid)
	case s.Schedule == "":
		return fmt.Errorf("%w: task %s needs a schedule", ErrInvalid, s.Name)
	case len(s.Steps) == 0:
		return fmt.Errorf("%w: task %s needs at least one step", ErrInvalid, s.Name)
	}
	return nil
}

// TaskDoc is one task, as task list and task show print it (after CSM's
// lstasks -l).
type TaskDoc struct {
	Name     string    `json:"name"`
	Schedule string    `json:"schedule"`
	Zone     string    `json:"zone"`
	Steps    []string  `json:"steps"`
	Enabled  bool      `json:"enabled"`
	Created  time.Time `json:"created"`
	// Next is the next occurrence (absent when none is to come).
	Next time.Time `json:"next,omitzero"`
	// RunAt is a one-off run asked for (task run --at), pending.
	RunAt time.Time `json:"run_at,omitzero"`
	// Running: an occurrence journaled started and not finished, with
	// its scheduled time, start and epoch.
	Running *OccurrenceDoc `json:"running,omitempty"`
	// Last is the latest occurrence that ended (or was missed).
	Last *OccurrenceDoc `json:"last,omitempty"`
	// Missed counts the occurrences reported missed.
	Missed int `json:"missed"`
}

// OccurrenceDoc is one run of a task. Result is success, failed,
// interrupted (the server running it stopped; not retried) or missed.
type OccurrenceDoc struct {
	Scheduled time.Time `json:"scheduled"`
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
	Epoch     hal.Epoch `json:"epoch,omitempty"`
	Manual    bool      `json:"manual,omitempty"`
	Result    string    `json:"result,omitempty"`
	Message   string    `json:"message,omitempty"`
}
