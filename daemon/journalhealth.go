package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/persist"
)

// JournalProbeInterval is how often, while the journal cannot write,
// the daemon checks whether space has returned (state.Store.Probe: a
// 64 KiB file written and deleted). A change tried meanwhile probes at
// once, so this only bounds how long the report lags behind an admin
// who freed space and tries nothing.
const JournalProbeInterval = 10 * time.Second

// journalWatch reports the journal's ability to write (docs/architecture.md (Trust), a
// full disk). It probes once at start, so that a daemon started on a
// full disk says so before the first change fails, then follows
// state.Store.WriteHealth and calls report on each turn (the daemon
// sends the catalogue event, a trap, and a new STATUS=); while the
// journal cannot write, it probes every JournalProbeInterval on the
// injected clock. The daemon keeps running whatever the disk does: a
// full disk is never a reason to exit, which would make systemd restart
// it into the same full disk.
type journalWatch struct {
	store  *state.Store
	clock  clock.Clock
	report func(unwritable bool, err error)
	// after, if not nil, holds the first report back until it is closed:
	// the admin API's readiness, so that its event list has the report.
	after <-chan struct{}
}

func (w journalWatch) run(ctx context.Context) error {
	if w.after != nil {
		select {
		case <-w.after:
		case <-ctx.Done():
			return nil
		}
	}
	_ = w.store.Probe() // the outcome arrives through WriteHealth
	unwritable := false // as last reported
	for {
		h := w.store.WriteHealth()
		if (h.Err != nil) != unwritable {
			unwritable = h.Err != nil
			w.report(unwritable, h.Err)
		}
		var probe <-chan time.Time
		var timer clock.Timer
		if unwritable {
			timer = w.clock.NewTimer(JournalProbeInterval)
			probe = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-h.Changed:
		case <-probe:
			_ = w.store.Probe()
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// reportJournal tells the operator and the NMS that the journal cannot
// write, or writes again.
func (s *Server) reportJournal(unwritable bool, err error) {
	dir := s.cfg.Load().Server.StateDir
	if unwritable {
		s.emit(notify.StateUnwritable, fmt.Sprintf("the journal cannot write: changes are refused until it can: %v", err),
			"dir", dir, "err", err.Error())
	} else {
		s.emit(notify.StateWritable, "the journal writes again: changes are accepted", "dir", dir)
	}
	s.updateStatus()
}

// journalWritable refuses a change while the journal cannot write, after
// one probe (space may have returned since the last one): a change that
// could not be recorded must not reach storage first.
func (s *Server) journalWritable() error {
	if s.store.WriteHealth().Err == nil {
		return nil
	}
	if err := s.store.Probe(); err != nil {
		return fmt.Errorf("%w: changes are refused while the journal cannot write "+
			"(free space in %s; lockstepctl status shows when it writes again): %w",
			api.ErrUnavailable, s.cfg.Load().Server.StateDir, err)
	}
	return nil
}

// journalDoc is the journal's health for lockstepctl status.
func journalDoc(h persist.WriteHealth) api.JournalDoc {
	doc := api.JournalDoc{Writable: h.Err == nil, Since: h.Since}
	if h.Err != nil {
		doc.Error = h.Err.Error()
	}
	return doc
}
