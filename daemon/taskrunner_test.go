package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/tasks"
	"github.com/lockstep-io/lockstep/ha"
)

// taskMark is what the journal says of a task's occurrences: its cursor
// (the last scheduled one dealt with), whether one runs, the last that
// ended, and a run asked for.
type taskMark struct {
	cursor  time.Time
	running bool
	last    tasks.Occurrence
	runAt   time.Time
}

func markOf(s *Server, name string) taskMark {
	t, ok := s.store.Tasks().Task(name)
	if !ok {
		return taskMark{}
	}
	m := taskMark{cursor: t.Cursor, running: t.Running != nil, runAt: t.RunAt}
	if t.Last != nil {
		m.last = *t.Last
	}
	return m
}

// TestStandbyNeverRunsTasks: a task every second runs on the acting
// server (with its epoch, and its end as an event); demoted (a disconnected
// standby) and as a standby, the server starts no occurrence, neither
// scheduled nor asked for, though the task is in its journal; its period
// and so its runner are gone. Acting again (a takeover), the occurrences
// that came due meanwhile are reported missed, and the schedule goes on at
// the new epoch.
func TestStandbyNeverRunsTasks(t *testing.T) {
	s, c := newServer(t, "", nil)
	ctx := context.Background()
	if err := eventually(func() bool { d, err := c.HAStatus(ctx); return err == nil && d.Acting }); err != nil {
		t.Fatal("not acting")
	}
	if err := c.SessionCreate(ctx, "prod", api.MetroMirrorSingleDirection, "", api.HoldIO); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TaskCreate(ctx, api.TaskSpec{Name: "cycle", Schedule: "every 1s", Zone: "UTC", Steps: []string{"refresh prod"}}); err != nil {
		t.Fatal(err)
	}
	epoch := s.ha.state().Epoch
	// Acting: occurrences run (refresh is not allowed on a Defined
	// session: each fails, with its event).
	if err := within(30*time.Second, func() bool {
		m := markOf(s, "cycle")
		return m.last.Result == tasks.ResultFailed && m.last.Epoch == epoch
	}); err != nil {
		t.Fatalf("no occurrence ran on the acting server: %+v", markOf(s, "cycle"))
	}
	if err := within(10*time.Second, func() bool { return hasEvent(c, notify7002, "task cycle: failed") }); err != nil {
		t.Fatal("no taskFailed event")
	}

	notActing := func(what string) {
		t.Helper()
		if d := s.acting.current(); d != nil {
			t.Fatalf("%s: a period in duty", what)
		}
		// The last period has ended: its runner with it.
		select {
		case <-s.acting.last.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the last period did not end", what)
		}
		before := markOf(s, "cycle")
		if before.running {
			// Started by the period that just stopped, never finished:
			// the next acting period reports it interrupted.
			t.Logf("%s: an occurrence was in flight at the stop", what)
		}
		// Asked for a run: the API refuses, and a run journaled anyway
		// (as a standby receives it by replication) is not started.
		if _, err := c.TaskRun(ctx, "cycle", time.Time{}); !errors.Is(err, api.ErrRefused) {
			t.Fatalf("%s: task run = %v, want refused", what, err)
		}
		if err := s.store.ProposeTask(ctx, tasks.Record{Version: tasks.RecordVersion, Kind: tasks.KindRunAt,
			At: s.clock.Now(), Task: "cycle", RunAt: s.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		// Three occurrences come due, and the run asked for: none starts.
		if err := within(3500*time.Millisecond, func() bool {
			m := markOf(s, "cycle")
			return !m.cursor.Equal(before.cursor) || m.last != before.last || m.runAt.IsZero()
		}); err == nil {
			t.Fatalf("%s: an occurrence was dealt with: %+v, before %+v", what, markOf(s, "cycle"), before)
		}
	}

	// Demoted: a disconnected standby.
	s.ha.loop.Post(ha.HigherEpochSeen{Epoch: epoch + 1, From: "test"})
	if err := within(30*time.Second, func() bool { return s.ha.state().Role == ha.DisconnectedStandby }); err != nil {
		t.Fatal("not demoted")
	}
	notActing("demoted")

	// A takeover: acting again at a higher epoch; what came due is
	// reported missed, the schedule goes on.
	if err := s.ha.loop.Do(ctx, ha.Takeover{}); err != nil {
		t.Fatal(err)
	}
	epoch = s.ha.state().Epoch
	if err := within(30*time.Second, func() bool {
		m := markOf(s, "cycle")
		return m.last.Epoch == epoch && m.last.Result == tasks.ResultFailed
	}); err != nil {
		t.Fatalf("no occurrence at the new epoch %d: %+v", epoch, markOf(s, "cycle"))
	}
	if tk, _ := s.store.Tasks().Task("cycle"); tk.Missed < 3 {
		t.Fatalf("%d occurrences reported missed, want at least the 3 due while demoted", tk.Missed)
	}

	// A standby (of an active that does not answer).
	if err := s.ha.loop.Do(ctx, ha.SetAsStandby{Addr: "tcp://127.0.0.1:9", Name: "b"}); err != nil {
		t.Fatal(err)
	}
	if st := s.ha.state(); st.Role != ha.Standby {
		t.Fatalf("role %s, want standby", st.Role)
	}
	notActing("standby")
}

const notify7002 = "LS7002E"
