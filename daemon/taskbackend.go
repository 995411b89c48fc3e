package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/tasks"
)

// The admin API's scheduled tasks (control.Backend). Reads answer on any
// server (a standby holds the tasks too, by replication); changes only
// on the acting one, like every change.

func taskDoc(t *tasks.Task) api.TaskDoc {
	doc := api.TaskDoc{Name: t.Name, Schedule: t.Schedule.String(), Zone: t.Zone, Steps: []string{},
		Enabled: t.Enabled, Created: t.Created, RunAt: t.RunAt, Missed: t.Missed,
		Running: occurrenceDoc(t.Running), Last: occurrenceDoc(t.Last)}
	for _, st := range t.Steps {
		doc.Steps = append(doc.Steps, st.String())
	}
	if n, ok := t.Next(); ok {
		doc.Next = n
	}
	return doc
}

func occurrenceDoc(o *tasks.Occurrence) *api.OccurrenceDoc {
	if o == nil {
		return nil
	}
	return &api.OccurrenceDoc{Scheduled: o.Scheduled, Started: o.Started, Finished: o.Finished, Epoch: o.Epoch,
		Manual: o.Manual, Result: o.Result, Message: o.Message}
}

func (s *Server) TaskList(ctx context.Context) ([]api.TaskDoc, error) {
	out := []api.TaskDoc{}
	for _, t := range s.store.Tasks().Tasks() {
		out = append(out, taskDoc(t))
	}
	return out, nil
}

func (s *Server) TaskShow(ctx context.Context, name string) (api.TaskDoc, error) {
	t, ok := s.store.Tasks().Task(name)
	if !ok {
		return api.TaskDoc{}, fmt.Errorf("%w: task %s", api.ErrNotFound, name)
	}
	return taskDoc(t), nil
}

// localZone is the IANA name of the server's own zone, which a task
// created without one stores: $TZ, else the zone /etc/localtime links
// to, else time.Local's name, else UTC (Go's time.Local when there is no
// /etc/localtime).
func localZone() (string, error) {
	if tz, ok := os.LookupEnv("TZ"); ok {
		tz = strings.TrimPrefix(tz, ":")
		if tz == "" {
			return "UTC", nil
		}
		if _, err := tasks.LoadZone(tz); err != nil {
			return "", fmt.Errorf("the server's zone (TZ=%s) is no IANA zone: name one (--zone): %w", tz, err)
		}
		return tz, nil
	}
	if link, err := os.Readlink("/etc/localtime"); err == nil {
		if i := strings.Index(link, "zoneinfo/"); i >= 0 {
			if name := filepath.Clean(link[i+len("zoneinfo/"):]); name != "" {
				if _, err := tasks.LoadZone(name); err == nil {
					return name, nil
				}
			}
		}
	} else if _, err := os.Stat("/etc/localtime"); err == nil {
		if n := time.Local.String(); n != "Local" {
			return n, nil
		}
		return "", errors.New("the server's zone (/etc/localtime, a copy) has no IANA name: name one (--zone)")
	}
	return "UTC", nil
}

// taskErr gives a task refusal its API class.
func taskErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tasks.ErrExists), errors.Is(err, tasks.ErrRunning):
		return fmt.Errorf("%w: %w", api.ErrRefused, err)
	case errors.Is(err, tasks.ErrNotFound):
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case errors.Is(err, tasks.ErrSyntax), errors.Is(err, tasks.ErrInvalid):
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	return err
}

// proposeTask journals a task change on the acting server, waits for a
// synchronized standby, and wakes the period's runner.
func (s *Server) proposeTask(ctx context.Context, d *duties, r tasks.Record) (api.TaskDoc, error) {
	r.Version, r.At = tasks.RecordVersion, s.clock.Now()
	if err := s.store.ProposeTask(ctx, r); err != nil {
		return api.TaskDoc{}, taskErr(err)
	}
	s.ha.waitReplicated(ctx, s.store.LastIndex())
	d.tasks.Poke()
	t, ok := s.store.Tasks().Task(r.Task)
	if !ok {
		return api.TaskDoc{}, nil // removed
	}
	return taskDoc(t), nil
}

func (s *Server) TaskCreate(ctx context.Context, spec api.TaskSpec) (api.TaskDoc, error) {
	d, err := s.actingPeriod()
	if err != nil {
		return api.TaskDoc{}, err
	}
	if !tasks.ValidName(spec.Name) {
		return api.TaskDoc{}, fmt.Errorf("%w: task name %q: want 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit", api.ErrInvalid, spec.Name)
	}
	zone := spec.Zone
	if zone == "" {
		if zone, err = localZone(); err != nil {
			return api.TaskDoc{}, fmt.Errorf("%w: %w", api.ErrInvalid, err)
		}
	}
	loc, err := tasks.LoadZone(zone)
	if err != nil {
		return api.TaskDoc{}, taskErr(err)
	}
	sched, err := tasks.ParseSchedule(spec.Schedule)
	if err != nil {
		return api.TaskDoc{}, taskErr(err)
	}
	now := s.clock.Now()
	if _, ok := sched.Next(loc, now, now); !ok {
		return api.TaskDoc{}, fmt.Errorf("%w: task %s: %s (%s) is in the past", api.ErrInvalid, spec.Name, sched, zone)
	}
	r := tasks.Record{Kind: tasks.KindCreated, Task: spec.Name, Schedule: sched.String(), Zone: zone, On: !spec.Disabled}
	db := s.db()
	for _, text := range spec.Steps {
		st, err := tasks.ParseStep(text)
		if err != nil {
			return api.TaskDoc{}, taskErr(err)
		}
		if _, ok := db.Session(st.Session); !ok {
			return api.TaskDoc{}, fmt.Errorf("%w: task %s: step %q: no session %s (lockstepctl session list)", api.ErrInvalid, spec.Name, text, st.Session)
		}
		r.Steps = append(r.Steps, st.String())
	}
	return s.proposeTask(ctx, d, r)
}

func (s *Server) TaskEnable(ctx context.Context, name string, on bool) (api.TaskDoc, error) {
	d, err := s.actingPeriod()
	if err != nil {
		return api.TaskDoc{}, err
	}
	return s.proposeTask(ctx, d, tasks.Record{Kind: tasks.KindEnabled, Task: name, On: on})
}

func (s *Server) TaskRun(ctx context.Context, name string, at time.Time) (api.TaskDoc, error) {
	d, err := s.actingPeriod()
	if err != nil {
		return api.TaskDoc{}, err
	}
	now := s.clock.Now()
	switch {
	case at.IsZero():
		at = now
	case at.Before(now.Add(-time.Minute)):
		return api.TaskDoc{}, fmt.Errorf("%w: task %s: run time %s is in the past", api.ErrInvalid, name, at.UTC().Format(time.RFC3339))
	}
	if _, ok := s.store.Tasks().Task(name); !ok {
		return api.TaskDoc{}, fmt.Errorf("%w: task %s", api.ErrNotFound, name)
	}
	return s.proposeTask(ctx, d, tasks.Record{Kind: tasks.KindRunAt, Task: name, RunAt: at})
}

func (s *Server) TaskRemove(ctx context.Context, name string) error {
	d, err := s.actingPeriod()
	if err != nil {
		return err
	}
	_, err = s.proposeTask(ctx, d, tasks.Record{Kind: tasks.KindRemoved, Task: name})
	return err
}
