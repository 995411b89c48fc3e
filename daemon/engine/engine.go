package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// Options configure an Engine.
type Options struct {
	Core    *freeze.Core
	Systems map[hal.Serial]hal.StorageSystem // every storage system, sources and targets
	Epoch   func() hal.Epoch
	Logger  *slog.Logger
}

// Engine is session.Hardware and freeze.Observer for one server.
type Engine struct {
	core    *freeze.Core
	systems map[hal.Serial]hal.StorageSystem
	epoch   func() hal.Epoch
	log     *slog.Logger
	marks   chan func(context.Context)

	mu     sync.Mutex
	mgr    *session.Manager
	groups map[string][]string // group name -> session names
	// own marks a group whose freeze or thaw a command is running: the
	// core's reports of that very action are the command's outcome, which
	// the session manager records itself.
	own map[string]string
	cgs map[hal.Serial]map[hal.LSS]time.Duration
	// unknownCG names the groups whose CG timeouts could not all be
	// asked: they are synced again once the core reaches them.
	unknownCG map[string]bool
	// contact holds the core's latest contact report per group until the
	// contact worker records it; kick wakes the worker.
	contact map[string]freeze.Contact
	kick    chan struct{}
	// reachable: a storage system connected (again); the worker syncs the
	// groups whose CG timeouts are unknown.
	reachable bool

	// syncMu orders SyncGroups: each reads the sessions after the
	// previous one's groups are in the core, so that an older view of
	// the sessions never replaces a newer one there.
	syncMu sync.Mutex
}

var (
	_ session.Hardware      = (*Engine)(nil)
	_ session.Vetter        = (*Engine)(nil)
	_ freeze.Observer       = (*Engine)(nil)
	_ freeze.HealthObserver = (*Engine)(nil)
)

// New returns an engine; Attach gives it the session manager.
func New(opt Options) *Engine {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{core: opt.Core, systems: opt.Systems, epoch: opt.Epoch, log: log.With("component", "engine"),
		marks: make(chan func(context.Context), 1024), groups: map[string][]string{}, own: map[string]string{},
		cgs: map[hal.Serial]map[hal.LSS]time.Duration{}, unknownCG: map[string]bool{},
		contact: map[string]freeze.Contact{}, kick: make(chan struct{}, 1)}
}

// Attach gives the engine the manager whose sessions it serves.
func (e *Engine) Attach(m *session.Manager) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mgr = m
}

// Run records the core's reports, in order, until ctx is done. Contact
// reports are recorded by a second goroutine: they wait for the commands
// in flight (Manager.MarkContact), which a freeze report never does.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { e.recordContact(ctx) })
	for {
		select {
		case f := <-e.marks:
			f(ctx)
		case <-ctx.Done():
			return nil
		}
	}
}

// GroupName names the consistency group of a session.
func GroupName(s *session.Session) string {
	if s.CGName != "" {
		return "cg:" + s.CGName
	}
	return "session:" + s.Name
}

// SyncGroups gives the core the consistency groups of every session that
// is not Defined, with the lowest CG timeout of their source LSSs: every
// pair that may be mirroring is in the core's scope.
func (e *Engine) SyncGroups(ctx context.Context) error {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	groups, names, err := e.groupsFor(ctx, nil)
	if err != nil {
		return err
	}
	if err := e.core.SetGroups(ctx, groups); err != nil {
		return err
	}
	e.mu.Lock()
	e.groups = names
	e.mu.Unlock()
	return nil
}

// groupsFor computes the consistency groups of every session that is not
// Defined, and of also (if not nil) as if it were started: the groups a
// start would make.
func (e *Engine) groupsFor(ctx context.Context, also *session.Session) ([]freeze.Group, map[string][]string, error) {
	e.mu.Lock()
	mgr := e.mgr
	e.mu.Unlock()
	if mgr == nil {
		return nil, nil, errors.New("engine: no session manager attached")
	}
	pairs := map[string]map[hal.Serial][]hal.LSSPair{}
	names := map[string][]string{}
	release := map[string]bool{}
	sessions := mgr.DB().Sessions()
	if also != nil {
		sessions = append(slices.DeleteFunc(sessions, func(s *session.Session) bool { return s.Name == also.Name }), also)
	}
	for _, s := range sessions {
		if s.State == session.Defined && s != also {
			continue
		}
		g := GroupName(s)
		names[g] = append(names[g], s.Name)
		release[g] = release[g] || s.Policy == session.ReleaseIO
		if pairs[g] == nil {
			pairs[g] = map[hal.Serial][]hal.LSSPair{}
		}
		for _, lp := range s.LSSPairs() {
			if !slices.Contains(pairs[g][lp.Source.Serial], lp) {
				pairs[g][lp.Source.Serial] = append(pairs[g][lp.Source.Serial], lp)
			}
		}
	}
	var groups []freeze.Group
	for _, g := range slices.Sorted(maps.Keys(pairs)) {
		for serial := range pairs[g] {
			slices.SortFunc(pairs[g][serial], compareLSSPair)
		}
		low, high, err := e.cgTimeouts(ctx, pairs[g])
		if err != nil {
			return nil, nil, fmt.Errorf("engine: group %s: %w", g, err)
		}
		if also == nil {
			e.mu.Lock()
			if low == 0 {
				e.unknownCG[g] = true
			} else {
				delete(e.unknownCG, g)
			}
			e.mu.Unlock()
		}
		groups = append(groups, freeze.Group{Name: g, Pairs: pairs[g], ReleaseIO: release[g], LowestCG: low, HighestCG: high})
	}
	return groups, names, nil
}

// Vet refuses, before anything is recorded or sent to storage, a start
// whose consistency group the heartbeat (if on) could not protect: the
// group the start would make, with the lowest CG timeout of all its
// source LSSs. Every other command passes.
func (e *Engine) Vet(ctx context.Context, s *session.Session, cmd session.Command) error {
	if cmd != session.CmdStartH1H2 && cmd != session.CmdStartH2H1 {
		return nil
	}
	started := *s
	started.State = session.Preparing
	if cmd == session.CmdStartH2H1 {
		started.Direction = session.H2ToH1
	} else {
		started.Direction = session.H1ToH2
	}
	groups, _, err := e.groupsFor(ctx, &started)
	if err != nil {
		return fmt.Errorf("%w: %w", session.ErrVetoed, err)
	}
	name := GroupName(s)
	for _, g := range groups {
		if g.Name != name {
			continue
		}
		if err := e.core.Admit(ctx, g); err != nil {
			return fmt.Errorf("%w: consistency group %s would not be protected by the heartbeat: %w; "+
				"switch the heartbeat off, shorten its timings, or raise the CG timeouts", session.ErrVetoed, name, err)
		}
	}
	return nil
}

func compareLSSPair(a, b hal.LSSPair) int {
	if a.String() < b.String() {
		return -1
	}
	if a.String() > b.String() {
		return 1
	}
	return 0
}

// cgTimeouts asks the source systems for their LSSs' CG timeouts (once
// per system, until one answers) and returns the lowest among the
// group's source LSSs, and the highest per system. A system that cannot
// be asked leaves the lowest unknown (0): it may be the lowest of all, so
// the heartbeat cannot be derived from the others (the core then keeps
// the group unprotected, and the engine asks again once it answers); it
// is missing from high.
func (e *Engine) cgTimeouts(ctx context.Context, pairs map[hal.Serial][]hal.LSSPair) (low time.Duration, high map[hal.Serial]time.Duration, err error) {
	high = map[hal.Serial]time.Duration{}
	unknown := false
	for _, serial := range slices.Sorted(maps.Keys(pairs)) {
		e.mu.Lock()
		known := e.cgs[serial]
		e.mu.Unlock()
		if known == nil {
			sys, err := e.system(serial)
			if err != nil {
				return 0, nil, err
			}
			ls, err := sys.QueryLSSs(ctx, e.epoch())
			if err != nil {
				e.log.Warn("CG timeouts unknown until the storage system answers", "serial", serial, "err", err)
				unknown = true
				continue
			}
			known = map[hal.LSS]time.Duration{}
			for _, l := range ls {
				known[l.LSS] = l.CGTimeout
			}
			e.mu.Lock()
			e.cgs[serial] = known
			e.mu.Unlock()
		}
		for _, lp := range pairs[serial] {
			cg, ok := known[lp.Source.LSS]
			if !ok {
				unknown = true // no such LSS there: the start will fail; nothing to derive from
				continue
			}
			if low == 0 || cg < low {
				low = cg
			}
			high[serial] = max(high[serial], cg)
		}
	}
	if unknown {
		low = 0
	}
	return low, high, nil
}

// bySource groups volume pairs by the system of their source.
func bySource(pairs []hal.VolumePair) map[hal.Serial][]hal.VolumePair {
	return groupBy(pairs, func(p hal.VolumePair) hal.Serial { return p.Source.Serial })
}

// byTarget groups volume pairs by the system of their target.
func byTarget(pairs []hal.VolumePair) map[hal.Serial][]hal.VolumePair {
	return groupBy(pairs, func(p hal.VolumePair) hal.Serial { return p.Target.Serial })
}

// sortedBy iterates a grouping in serial order: commands go to the
// storage systems in the same order every time, so that a run replays.
func sortedBy(m map[hal.Serial][]hal.VolumePair) iter.Seq2[hal.Serial, []hal.VolumePair] {
	return func(yield func(hal.Serial, []hal.VolumePair) bool) {
		for _, serial := range slices.Sorted(maps.Keys(m)) {
			if !yield(serial, m[serial]) {
				return
			}
		}
	}
}

func groupBy(pairs []hal.VolumePair, key func(hal.VolumePair) hal.Serial) map[hal.Serial][]hal.VolumePair {
	out := map[hal.Serial][]hal.VolumePair{}
	for _, p := range pairs {
		out[key(p)] = append(out[key(p)], p)
	}
	return out
}

// SetSystems replaces the storage systems (storage added or removed).
func (e *Engine) SetSystems(systems map[hal.Serial]hal.StorageSystem) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.systems = maps.Clone(systems)
	for serial := range e.cgs {
		if systems[serial] == nil {
			delete(e.cgs, serial)
		}
	}
}

func (e *Engine) system(serial hal.Serial) (hal.StorageSystem, error) {
	e.mu.Lock()
	sys := e.systems[serial]
	e.mu.Unlock()
	if sys == nil {
		return nil, fmt.Errorf("storage system %s is not defined", serial)
	}
	return sys, nil
}

// StartH1H2 establishes (or resyncs) the session's pairs in its
// direction, ends any hold of its source LSSs, and puts its group back to
// mirroring in the core.
func (e *Engine) StartH1H2(ctx context.Context, s *session.Session) error { return e.start(ctx, s) }

// StartH2H1 is the same in the failback direction: recovered volumes are
// failed back, others resynced or copied.
func (e *Engine) StartH2H1(ctx context.Context, s *session.Session) error { return e.start(ctx, s) }

// start puts the session's pairs into the core's scope first (its
// transitional record made it Preparing), so that they are covered while
// being established and stay covered if the start fails midway; then
// changes storage; then puts the group back to mirroring.
func (e *Engine) start(ctx context.Context, s *session.Session) error {
	if err := e.SyncGroups(ctx); err != nil {
		return err
	}
	epoch := e.epoch()
	for serial, pairs := range sortedBy(bySource(s.VolumePairs())) {
		sys, err := e.system(serial)
		if err != nil {
			return err
		}
		var paths []hal.PathSpec
		var lsss []hal.LSS
		for _, lp := range s.LSSPairs() {
			if lp.Source.Serial == serial {
				paths = append(paths, hal.PathSpec{LSSPair: lp, ConsistencyGroup: true})
				if !slices.Contains(lsss, lp.Source.LSS) {
					lsss = append(lsss, lp.Source.LSS)
				}
			}
		}
		if err := sys.Thaw(ctx, epoch, lsss); err != nil {
			return fmt.Errorf("ending the hold on %s: %w", serial, err)
		}
		if err := sys.EstablishPaths(ctx, epoch, paths); err != nil {
			return fmt.Errorf("paths on %s: %w", serial, err)
		}
		existing, err := sys.QueryPairs(ctx, epoch)
		if err != nil {
			return fmt.Errorf("pairs of %s: %w", serial, err)
		}
		state := map[hal.VolumePair]hal.PairStatus{}
		for _, p := range existing {
			state[p.VolumePair] = p
		}
		var establish []hal.PairSpec
		var failback []hal.VolumePair
		for _, p := range pairs {
			st, ok := state[p]
			switch {
			case ok && st.State.Mirroring():
			case ok && st.State == hal.Suspended && st.Reason == hal.ReasonFailover:
				failback = append(failback, p.Reversed()) // named as first established
			case ok && st.State == hal.Suspended:
				establish = append(establish, hal.PairSpec{VolumePair: p, Mode: hal.Resync})
			default:
				establish = append(establish, hal.PairSpec{VolumePair: p, Mode: hal.FullCopy})
			}
		}
		if len(failback) > 0 {
			if err := sys.Failback(ctx, epoch, failback); err != nil {
				return fmt.Errorf("failback on %s: %w", serial, err)
			}
		}
		if len(establish) > 0 {
			if err := sys.EstablishPairs(ctx, epoch, establish); err != nil {
				return fmt.Errorf("pairs on %s: %w", serial, err)
			}
		}
	}
	return e.core.Restart(ctx, GroupName(s))
}

// Suspend freezes the session's consistency group.
func (e *Engine) Suspend(ctx context.Context, s *session.Session) error {
	if err := e.SyncGroups(ctx); err != nil {
		return err
	}
	defer e.running(GroupName(s), "freeze")()
	if err := e.core.Freeze(ctx, GroupName(s), fmt.Sprintf("suspend command on session %s", s.Name)); err != nil {
		return fmt.Errorf("%w: %w", session.ErrPartialFreeze, err)
	}
	return nil
}

// ReleaseIO thaws the group if the thaw rule allows it.
func (e *Engine) ReleaseIO(ctx context.Context, s *session.Session) error {
	defer e.running(GroupName(s), "thaw")()
	return e.core.Thaw(ctx, GroupName(s))
}

// running marks a command's own action on a group until the returned
// function is called.
func (e *Engine) running(group, action string) func() {
	e.mu.Lock()
	e.own[group] = action
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		delete(e.own, group)
		e.mu.Unlock()
	}
}

// Recover makes the target-site volumes writable.
func (e *Engine) Recover(ctx context.Context, s *session.Session) error {
	for serial, pairs := range sortedBy(byTarget(s.VolumePairs())) {
		sys, err := e.system(serial)
		if err != nil {
			return err
		}
		if err := sys.Recover(ctx, e.epoch(), pairs); err != nil {
			return fmt.Errorf("recover on %s: %w", serial, err)
		}
	}
	return nil
}

// Terminate stops mirroring (without a hold) and ends any hold. The
// protocol cannot delete pairs: they stay suspended.
func (e *Engine) Terminate(ctx context.Context, s *session.Session) error {
	for serial, pairs := range sortedBy(bySource(s.VolumePairs())) {
		sys, err := e.system(serial)
		if err != nil {
			return err
		}
		if err := sys.Suspend(ctx, e.epoch(), pairs); err != nil && !errors.Is(err, hal.ErrRefused) {
			return fmt.Errorf("terminate on %s: %w", serial, err)
		}
		var lsss []hal.LSS
		for _, p := range pairs {
			if !slices.Contains(lsss, p.Source.Volume.LSS()) {
				lsss = append(lsss, p.Source.Volume.LSS())
			}
		}
		if err := sys.Thaw(ctx, e.epoch(), lsss); err != nil {
			return fmt.Errorf("terminate on %s: %w", serial, err)
		}
	}
	return nil
}

// Refresh summarises the session's pairs as the storage systems see them.
func (e *Engine) Refresh(ctx context.Context, s *session.Session) (session.Observed, error) {
	obs := session.Observed{Pairs: map[hal.PairState]int{}}
	epoch := e.epoch()
	for serial, pairs := range sortedBy(bySource(s.VolumePairs())) {
		sys, err := e.system(serial)
		if err != nil {
			return obs, err
		}
		got, err := sys.QueryPairs(ctx, epoch)
		if err != nil {
			obs.Unreachable = append(obs.Unreachable, serial)
			continue
		}
		bySrc := map[hal.VolumeRef]hal.PairStatus{}
		for _, p := range got {
			if p.Source.Serial == serial {
				bySrc[p.Source] = p
			}
		}
		for _, p := range pairs {
			st, ok := bySrc[p.Source]
			if !ok || st.Target != p.Target {
				obs.Pairs[hal.Simplex]++
				continue
			}
			obs.Pairs[st.State]++
			if st.State == hal.Suspended {
				obs.Suspended = append(obs.Suspended, st)
			}
		}
		ls, err := sys.QueryLSSs(ctx, epoch)
		if err == nil {
			for _, l := range ls {
				if !l.ELBUntil.IsZero() && slices.ContainsFunc(pairs, func(p hal.VolumePair) bool {
					return p.Source.Volume.LSS() == l.LSS
				}) {
					obs.IOHeld = true
				}
			}
		}
	}
	for serial, pairs := range sortedBy(byTarget(s.VolumePairs())) {
		sys, err := e.system(serial)
		if err != nil {
			return obs, err
		}
		got, err := sys.QueryPairs(ctx, epoch)
		if err != nil {
			obs.Unreachable = append(obs.Unreachable, serial)
			continue
		}
		for _, st := range got {
			if st.Source.Serial == serial && st.State == hal.Suspended && st.Reason == hal.ReasonFailover &&
				slices.ContainsFunc(pairs, func(p hal.VolumePair) bool { return p.Target == st.Source }) {
				obs.Recovered++
			}
		}
	}
	slices.Sort(obs.Unreachable)
	obs.Unreachable = slices.Compact(obs.Unreachable)
	return obs, nil
}

// mark queues a record of what the core did to a group, for Run.
func (e *Engine) mark(group, action string, f func(ctx context.Context, m *session.Manager, name string) error) {
	e.mu.Lock()
	names, mgr, own := e.groups[group], e.mgr, e.own[group]
	e.mu.Unlock()
	if mgr == nil || len(names) == 0 || own == action {
		return
	}
	select {
	case e.marks <- func(ctx context.Context) {
		// One name stands for its whole scope.
		if err := f(ctx, mgr, names[0]); err != nil {
			e.log.Error("recording the core's report failed", "group", group, "err", err)
		}
	}:
	default:
		e.log.Error("record queue full; the next refresh will correct the sessions", "group", group)
	}
}

// Freezing records that the core started freezing a group.
func (e *Engine) Freezing(group, reason string, at time.Time) {
	e.mark(group, "freeze", func(ctx context.Context, m *session.Manager, name string) error {
		return m.MarkFreezing(ctx, name, reason, at)
	})
}

// Settled records the end of a freeze: recoverable or not, and why.
func (e *Engine) Settled(group string, st freeze.Settlement) {
	why := st.Why
	if st.Recoverable {
		why = "every storage system frozen in time"
	}
	e.mark(group, "freeze", func(ctx context.Context, m *session.Manager, name string) error {
		return m.MarkFrozen(ctx, name, st.Recoverable, why, st.At)
	})
}

// Thawed records that a group's hold ended.
func (e *Engine) Thawed(group string, at time.Time) {
	e.mark(group, "thaw", func(ctx context.Context, m *session.Manager, name string) error {
		return m.MarkThawed(ctx, name, "I/O released", at)
	})
}

// Fenced is logged here; the HA part demotes the server.
func (e *Engine) Fenced(epoch hal.Epoch) {
	e.log.Error("fenced: another server holds a higher epoch", "epoch", epoch)
}

// Unprotected is reported by the daemon (STATUS=, a trap, status); the
// engine has nothing to record.
func (e *Engine) Unprotected(group, why string) {}

// Contact queues the core's contact report of a group for the contact
// worker; only the latest per group matters.
func (e *Engine) Contact(group string, c freeze.Contact) {
	e.mu.Lock()
	e.contact[group] = c
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Reachable tells the engine that a storage system connected (again):
// groups whose CG timeouts could not be asked are synced again, so that
// the heartbeat protects them as soon as it can.
func (e *Engine) Reachable(serial hal.Serial) {
	e.mu.Lock()
	e.reachable = true
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// recordContact records the contact reports on the sessions of their
// group, and syncs the groups again when a group whose CG timeouts were
// unknown is in contact with every system again.
func (e *Engine) recordContact(ctx context.Context) {
	for {
		select {
		case <-e.kick:
		case <-ctx.Done():
			return
		}
		e.mu.Lock()
		pending := e.contact
		e.contact = map[string]freeze.Contact{}
		mgr := e.mgr
		resync := e.reachable && len(e.unknownCG) > 0
		e.reachable = false
		for g, c := range pending {
			resync = resync || len(c.Lost) == 0 && e.unknownCG[g]
		}
		names := maps.Clone(e.groups)
		e.mu.Unlock()
		if resync {
			if err := e.SyncGroups(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("consistency groups not synced again", "err", err)
			}
		}
		for _, g := range slices.Sorted(maps.Keys(pending)) {
			c := pending[g]
			if mgr == nil || len(names[g]) == 0 {
				continue
			}
			ct := session.Contact{Lost: len(c.Lost) > 0, Severe: c.Severe()}
			if ct.Lost {
				ct.Reason = c.String()
			}
			// One name stands for its whole scope.
			if err := mgr.MarkContact(ctx, names[g][0], ct, c.At); err != nil && ctx.Err() == nil {
				e.log.Error("recording the core's contact report failed", "group", g, "err", err)
			}
		}
	}
}
