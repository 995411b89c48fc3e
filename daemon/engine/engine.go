package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Options configure an Engine.
type Options struct {
	Core    *freeze.Core
	Systems map[hal.Serial]hal.StorageSystem // every storage system, sources and targets
	Epoch   func() hal.Epoch
	Logger  *slog.Logger
	// Clock times the engine's own queries (nil: real time).
	Clock clock.Clock
	// RequestTimeout bounds each question the engine asks a storage
	// system on its own (the CG timeouts of its LSSs), so that one that
	// does not answer never delays the core's groups for longer (nil:
	// the default timings' request timeout).
	RequestTimeout func() time.Duration
	// SwapHosts gives the z/OS hosts that can HyperSwap a session whose
	// H1 and H2 systems are serials (hyperswap.go); an error says why
	// there is none. Nil: HyperSwap is unavailable on this server.
	SwapHosts func(serials []hal.Serial) ([]SwapHost, error)
}

// ErrGroupFroze: a terminate's consistency group froze while it removed
// the pairs (see Terminate).
var ErrGroupFroze = errors.New("engine: the consistency group froze during the terminate")

// Engine is session.Hardware and freeze.Observer for one server.
type Engine struct {
	core    *freeze.Core
	systems map[hal.Serial]hal.StorageSystem
	epoch   func() hal.Epoch
	log     *slog.Logger
	marks   chan func(context.Context)
	clock   clock.Clock
	timeout func() time.Duration
	swaps   func(serials []hal.Serial) ([]SwapHost, error)
	// work holds the freezes a swap report asks of the core; Run waits
	// for them.
	work sync.WaitGroup

	mu     sync.Mutex
	mgr    *session.Manager
	groups map[string][]string // group name -> session names
	// own counts, per group and action (freeze, thaw), the commands
	// running that action on the group: the core's reports of that very
	// action are the commands' outcome, which the session manager records
	// itself. A count, not a flag: commands on two sessions of one group
	// run at once, and the first to end must not unmark the other.
	own map[string]map[string]int
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
	// What the engine's own commands do to a session's pairs, until the
	// session is started again (or Defined in the journal):
	//   - starting: a start establishes them: Dormant (not yet mirroring);
	//   - failedStart: the start failed midway: the pairs on the systems
	//     it did not finish are Dormant (they may never mirror; those that
	//     do are watched once the core sees them), the others watched;
	//   - gone: the terminate removed them all: out of the core's
	//     scope (the journal records Defined just after, or the error
	//     of a terminate that could not remove every path).
	starting, gone map[string]bool
	failedStart    map[string]map[hal.Serial]bool // the systems the failed start finished
	// freezes counts the freezes the core began, per group (Freezing): a
	// terminate tells by it whether its group froze while it ran.
	freezes map[string]uint64

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
	timeout := opt.RequestTimeout
	if timeout == nil {
		timeout = func() time.Duration { return freeze.DefaultTimings().RequestTimeout }
	}
	return &Engine{core: opt.Core, systems: opt.Systems, epoch: opt.Epoch, log: log.With("component", "engine"),
		marks: make(chan func(context.Context), 1024), groups: map[string][]string{}, own: map[string]map[string]int{},
		cgs: map[hal.Serial]map[hal.LSS]time.Duration{}, unknownCG: map[string]bool{},
		contact: map[string]freeze.Contact{}, kick: make(chan struct{}, 1),
		clock: clock.OrReal(opt.Clock), timeout: timeout, swaps: opt.SwapHosts,
		starting: map[string]bool{}, freezes: map[string]uint64{}, failedStart: map[string]map[hal.Serial]bool{}, gone: map[string]bool{}}
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
	defer e.work.Wait()
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
	return e.sync(ctx, "")
}

// sync is SyncGroups; the group named restart (if any) is put back to
// mirroring in the same step (a start).
func (e *Engine) sync(ctx context.Context, restart string) error {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	groups, names, err := e.groupsFor(ctx, nil)
	if err != nil {
		return err
	}
	// The names first: installing a group can make the core report at
	// once (a freeze taken up again after a restart), and a report of a
	// group the engine cannot name would be dropped.
	e.mu.Lock()
	for g, n := range names {
		e.groups[g] = n
	}
	e.mu.Unlock()
	if restart != "" {
		err = e.core.StartGroup(ctx, groups, restart)
	} else {
		err = e.core.SetGroups(ctx, groups)
	}
	if err != nil {
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
	noBeat := map[string]bool{}
	dormant := map[string][]hal.VolumePair{}
	states := map[string][]*session.Session{}
	sessions := mgr.DB().Sessions()
	if also != nil {
		sessions = append(slices.DeleteFunc(sessions, func(s *session.Session) bool { return s.Name == also.Name }), also)
	}
	e.mu.Lock()
	e.prune(sessions)
	for _, s := range sessions {
		if s.State == session.Defined && s != also || e.gone[s.Name] && s != also {
			continue
		}
		g := GroupName(s)
		names[g] = append(names[g], s.Name)
		states[g] = append(states[g], s)
		release[g] = release[g] || s.Policy == session.ReleaseIO
		noBeat[g] = noBeat[g] || !s.Type.Heartbeat()
		if pairs[g] == nil {
			pairs[g] = map[hal.Serial][]hal.LSSPair{}
		}
		for _, lp := range s.LSSPairs() {
			if !slices.Contains(pairs[g][lp.Source.Serial], lp) {
				pairs[g][lp.Source.Serial] = append(pairs[g][lp.Source.Serial], lp)
			}
		}
		switch done, failed := e.failedStart[s.Name]; {
		case failed && s != also:
			for _, p := range s.VolumePairs() {
				if !done[p.Source.Serial] {
					dormant[g] = append(dormant[g], p)
				}
			}
		case !e.expected(s) || s == also:
			dormant[g] = append(dormant[g], s.VolumePairs()...)
		}
	}
	e.mu.Unlock()
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
		groups = append(groups, freeze.Group{Name: g, Pairs: pairs[g], ReleaseIO: release[g], LowestCG: low, HighestCG: high,
			Dormant: dormant[g], Initial: initialPhase(states[g]), NoHeartbeat: noBeat[g]})
	}
	return groups, names, nil
}

// expected reports whether a session's pairs are meant to be mirroring:
// it is Prepared, or Preparing after a start that worked, and no command
// of the engine is establishing or suspending them. Called with e.mu.
func (e *Engine) expected(s *session.Session) bool {
	switch {
	case e.starting[s.Name]:
		return false
	case s.State == session.Prepared:
		return true
	}
	return s.State == session.Preparing && !s.Error
}

// prune forgets what the engine's commands did to sessions that are gone
// or Defined in the journal (a terminate recorded, a session removed).
// Called with e.mu.
func (e *Engine) prune(sessions []*session.Session) {
	live := map[string]bool{}
	for _, s := range sessions {
		if s.State != session.Defined {
			live[s.Name] = true
		}
	}
	for name := range e.gone {
		if !live[name] && !e.starting[name] {
			delete(e.gone, name)
		}
	}
	for name := range e.failedStart {
		if !live[name] && !e.starting[name] {
			delete(e.failedStart, name)
		}
	}
}

// initialPhase is the phase a group new to the core starts in, from its
// sessions' records (a manager that restarts): mirroring if any session
// of it is meant to be; else the freeze where it stood: being frozen,
// partial, frozen holding I/O, or thawed.
func initialPhase(ss []*session.Session) freeze.Phase {
	has := func(f func(*session.Session) bool) bool { return slices.ContainsFunc(ss, f) }
	switch {
	case has(func(s *session.Session) bool { return s.State == session.Prepared || s.State == session.Preparing }):
		return freeze.Mirroring
	case has(func(s *session.Session) bool { return s.State == session.Suspending }):
		return freeze.Freezing
	case has(func(s *session.Session) bool { return s.State == session.SuspendedPartial }):
		return freeze.Partial
	case has(func(s *session.Session) bool { return s.IOHeld }):
		return freeze.Frozen
	}
	return freeze.Thawed
}

// Vet refuses, before anything is recorded or sent to storage, a start
// whose consistency group the heartbeat (if on) could not protect (the
// group the start would make, with the lowest CG timeout of all its
// source LSSs), whose group is being frozen (the freeze settles within a
// request timeout), or whose thaw of its source LSSs would end the hold
// of a session of another group. Every other command passes.
func (e *Engine) Vet(ctx context.Context, s *session.Session, cmd session.Command) error {
	if s.Type.HyperSwap() && (cmd == session.CmdStartH1H2 || cmd == session.CmdStartH2H1 || cmd == session.CmdHyperSwap) {
		if _, err := e.swapHosts(s); err != nil {
			return fmt.Errorf("%w: %w", session.ErrVetoed, err)
		}
	}
	if cmd != session.CmdStartH1H2 && cmd != session.CmdStartH2H1 {
		return nil
	}
	if err := e.vetSharedBeat(s); err != nil {
		return err
	}
	started := *s
	started.State = session.Preparing
	if cmd == session.CmdStartH2H1 {
		started.Direction = session.H2ToH1
	} else {
		started.Direction = session.H1ToH2
	}
	all := e.mgrSessions()
	for _, ref := range sourceLSSs(&started) {
		for _, o := range all {
			if o.IOHeld && o.State != session.Defined && GroupName(o) != GroupName(s) && slices.Contains(sourceLSSs(o), ref) {
				return fmt.Errorf("%w: LSS %s is held by session %s of another consistency group (%s); "+
					"the start would end that hold: release its I/O first, or keep the groups on LSSs of their own",
					session.ErrVetoed, ref, o.Name, GroupName(o))
			}
		}
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
// group's source LSSs, and the highest per system. The systems not yet
// known are asked at once, each bounded by the request timeout: one that
// does not answer costs the group a request timeout, never one per
// system. A system that cannot be asked leaves the lowest unknown (0):
// it may be the lowest of all, so the heartbeat cannot be derived from
// the others (the core then keeps the group unprotected, and the engine
// asks again once it answers); it is missing from high.
func (e *Engine) cgTimeouts(ctx context.Context, pairs map[hal.Serial][]hal.LSSPair) (low time.Duration, high map[hal.Serial]time.Duration, err error) {
	high = map[hal.Serial]time.Duration{}
	unknown := false
	var ask []hal.Serial
	e.mu.Lock()
	for _, serial := range slices.Sorted(maps.Keys(pairs)) {
		if e.cgs[serial] == nil {
			ask = append(ask, serial)
		}
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, serial := range ask {
		sys, err := e.system(serial)
		if err != nil {
			return 0, nil, err
		}
		wg.Go(func() {
			qctx, cancel := clock.WithTimeout(ctx, e.clock, e.timeout())
			defer cancel()
			ls, err := sys.QueryLSSs(qctx, e.epoch())
			if err != nil {
				e.log.Warn("CG timeouts unknown until the storage system answers", "serial", serial, "err", err)
				return
			}
			known := map[hal.LSS]time.Duration{}
			for _, l := range ls {
				known[l.LSS] = l.CGTimeout
			}
			e.mu.Lock()
			e.cgs[serial] = known
			e.mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	for _, serial := range slices.Sorted(maps.Keys(pairs)) {
		e.mu.Lock()
		known := e.cgs[serial]
		e.mu.Unlock()
		if known == nil {
			unknown = true
			continue
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
// direction, ends any hold of its source LSSs and of the sessions of its
// consistency group that are frozen, and puts its group back to
// mirroring in the core (before anything changes on storage).
func (e *Engine) StartH1H2(ctx context.Context, s *session.Session) error { return e.start(ctx, s) }

// StartH2H1 is the same in the failback direction: recovered volumes are
// failed back, others resynced or copied.
func (e *Engine) StartH2H1(ctx context.Context, s *session.Session) error { return e.start(ctx, s) }

// start puts the session's group back to mirroring in the core with the
// session's pairs in it (its transitional record made it Preparing)
// before the first storage command, so that they are covered while being
// established and stay covered if the start fails midway; then ends the
// holds of the group (a consistency group that mirrors again holds
// nothing: the frozen sessions of it are released, and recorded so); then
// establishes the pairs. Until it returns, the session's pairs are
// Dormant (a poll finding them still suspended is no sign); once it
// returns they are watched, or, after a failure midway, those the core
// sees mirroring are.
func (e *Engine) start(ctx context.Context, s *session.Session) (err error) {
	name, group := s.Name, GroupName(s)
	e.mu.Lock()
	e.starting[name] = true
	delete(e.failedStart, name)
	delete(e.gone, name)
	e.mu.Unlock()
	finished := map[hal.Serial]bool{} // the systems whose pairs the start established
	defer func() {
		e.mu.Lock()
		delete(e.starting, name)
		if err != nil {
			e.failedStart[name] = finished
		}
		e.mu.Unlock()
		if serr := e.SyncGroups(context.WithoutCancel(ctx)); serr != nil {
			e.log.Warn("consistency groups not synced after a start", "session", name, "err", serr)
		}
	}()
	if err := e.sync(ctx, group); err != nil {
		return err
	}
	if err := e.unloadOther(ctx, s); err != nil {
		return err
	}
	peers, peerLSSs := e.frozenPeers(s)
	epoch := e.epoch()
	own := bySource(s.VolumePairs())
	for _, serial := range slices.Sorted(maps.Keys(peerLSSs)) {
		if _, ok := own[serial]; ok {
			continue // thawed below with the session's own LSSs
		}
		sys, err := e.system(serial)
		if err == nil {
			err = sys.Thaw(ctx, epoch, peerLSSs[serial])
		}
		if err != nil {
			return fmt.Errorf("ending the hold of the group on %s: %w", serial, err)
		}
	}
	for serial, pairs := range sortedBy(own) {
		sys, err := e.system(serial)
		if err != nil {
			return err
		}
		var paths []hal.PathSpec
		lsss := slices.Clone(peerLSSs[serial])
		for _, lp := range s.LSSPairs() {
			if lp.Source.Serial == serial {
				paths = append(paths, hal.PathSpec{LSSPair: lp, ConsistencyGroup: true})
				if !slices.Contains(lsss, lp.Source.LSS) {
					lsss = append(lsss, lp.Source.LSS)
				}
			}
		}
		slices.Sort(lsss)
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
		var errs []error
		if len(failback) > 0 {
			if err := sys.Failback(ctx, epoch, failback); err != nil {
				errs = append(errs, fmt.Errorf("failback on %s: %w", serial, err))
			}
		}
		if len(establish) > 0 && len(errs) == 0 {
			if err := sys.EstablishPairs(ctx, epoch, establish); err != nil {
				errs = append(errs, fmt.Errorf("pairs on %s: %w", serial, err))
			}
		}
		if len(failback)+len(establish) > 0 {
			// The group may have frozen meanwhile, its freeze reaching
			// this system before the pairs (even those a failed command
			// may have made).
			if err := e.core.Established(context.WithoutCancel(ctx), group, serial); err != nil {
				if errors.Is(err, freeze.ErrNotSafe) {
					errs = append(errs, e.unmirror(ctx, sys, serial, pairs))
				}
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		finished[serial] = true
	}
	e.recordReleased(peers, fmt.Sprintf("I/O released: session %s of its consistency group was started", name))
	return e.loadSwap(ctx, s)
}

// unmirror suspends (without a hold) those of pairs that mirror on sys:
// the pairs a start established in a group that was frozen and thawed
// meanwhile, which nothing would freeze.
func (e *Engine) unmirror(ctx context.Context, sys hal.StorageSystem, serial hal.Serial, pairs []hal.VolumePair) error {
	epoch := e.epoch()
	existing, err := sys.QueryPairs(ctx, epoch)
	if err != nil {
		return fmt.Errorf("suspending again the pairs it established on %s: %w", serial, err)
	}
	mirroring := map[hal.VolumePair]bool{}
	for _, p := range existing {
		mirroring[p.VolumePair] = p.State.Mirroring()
	}
	var suspend []hal.VolumePair
	for _, p := range pairs {
		if mirroring[p] {
			suspend = append(suspend, p)
		}
	}
	if len(suspend) == 0 {
		return nil
	}
	if err := sys.Suspend(ctx, epoch, suspend); err != nil {
		return fmt.Errorf("suspending again the pairs it established on %s: %w", serial, err)
	}
	return nil
}

// frozenPeers returns the other sessions of s's consistency group whose
// hold a start of s ends (frozen, Suspended or Suspended (Partial), with
// I/O held), with their revisions, and, per system, the source LSSs to
// thaw for them. A peer whose hold is on an LSS that a session of
// another group also uses is left holding (a thaw there could end that
// group's hold or break its freeze): it is not recorded released.
func (e *Engine) frozenPeers(s *session.Session) (map[string]uint64, map[hal.Serial][]hal.LSS) {
	e.mu.Lock()
	mgr := e.mgr
	e.mu.Unlock()
	all := mgr.DB().Sessions()
	group := GroupName(s)
	peers := map[string]uint64{}
	lsss := map[hal.Serial][]hal.LSS{}
	for _, p := range all {
		if p.Name == s.Name || GroupName(p) != group || !p.IOHeld ||
			p.State != session.Suspended && p.State != session.SuspendedPartial {
			continue
		}
		mine := sourceLSSs(p)
		if slices.ContainsFunc(mine, func(ref hal.LSSRef) bool { return e.usedOutside(all, group, ref) }) {
			continue
		}
		peers[p.Name] = p.Rev
		for _, ref := range mine {
			if !slices.Contains(lsss[ref.Serial], ref.LSS) {
				lsss[ref.Serial] = append(lsss[ref.Serial], ref.LSS)
			}
		}
	}
	for serial := range lsss {
		slices.Sort(lsss[serial])
	}
	return peers, lsss
}

// usedOutside reports whether a session of another group than group
// (not Defined, not terminated) has a source LSS at ref.
func (e *Engine) usedOutside(all []*session.Session, group string, ref hal.LSSRef) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(all, func(o *session.Session) bool {
		return GroupName(o) != group && o.State != session.Defined && !e.gone[o.Name] &&
			slices.Contains(sourceLSSs(o), ref)
	})
}

// sourceLSSs are a session's source LSSs in its direction.
func sourceLSSs(s *session.Session) []hal.LSSRef {
	var out []hal.LSSRef
	for _, lp := range s.LSSPairs() {
		if !slices.Contains(out, lp.Source) {
			out = append(out, lp.Source)
		}
	}
	return out
}

// recordReleased queues records that the named sessions (at the given
// revisions) no longer hold I/O: the engine itself ended their hold.
func (e *Engine) recordReleased(peers map[string]uint64, reason string) {
	e.mu.Lock()
	mgr := e.mgr
	e.mu.Unlock()
	if mgr == nil || len(peers) == 0 {
		return
	}
	at := e.clock.Now()
	for _, name := range slices.Sorted(maps.Keys(peers)) {
		rev := peers[name]
		select {
		case e.marks <- func(ctx context.Context) {
			if err := mgr.MarkReleased(ctx, name, rev, reason, at); err != nil {
				e.log.Error("recording a released hold failed", "session", name, "err", err)
			}
		}:
		default:
			e.log.Error("record queue full; the next refresh will correct the sessions", "session", name)
		}
	}
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

// ReleaseIO thaws the group if the thaw rule allows it. A group that
// mirrors again (a session of it was started after the freeze) holds I/O
// only where a freeze left it on sessions that are still frozen: those
// holds are ended directly, on the LSSs only such sessions of the group
// use.
func (e *Engine) ReleaseIO(ctx context.Context, s *session.Session) error {
	group := GroupName(s)
	st, err := e.core.Status(ctx)
	if err != nil {
		return err
	}
	for _, g := range st {
		if g.Name == group && g.Phase == freeze.Mirroring {
			return e.releaseLeftover(ctx, s)
		}
	}
	defer e.running(group, "thaw")()
	return e.core.Thaw(ctx, group)
}

// releaseLeftover ends the holds of the frozen sessions of a group that
// mirrors again. An LSS that a mirroring session, or a session of
// another group, also uses is not thawed: a hold there is a sign of
// trouble the core is handling, or that group's; the command fails
// naming it, and I/O stays held.
func (e *Engine) releaseLeftover(ctx context.Context, s *session.Session) error {
	e.mu.Lock()
	mgr := e.mgr
	e.mu.Unlock()
	all := mgr.DB().Sessions()
	group := GroupName(s)
	lsss := map[hal.Serial][]hal.LSS{}
	var blocked []string
	for _, p := range all {
		if GroupName(p) != group || !p.IOHeld {
			continue
		}
		for _, ref := range sourceLSSs(p) {
			if slices.Contains(lsss[ref.Serial], ref.LSS) {
				continue
			}
			if who := e.sharedWith(all, p, ref); who != "" {
				blocked = append(blocked, fmt.Sprintf("%s (also used by %s)", ref, who))
				continue
			}
			lsss[ref.Serial] = append(lsss[ref.Serial], ref.LSS)
		}
	}
	var errs []error
	epoch := e.epoch()
	for _, serial := range slices.Sorted(maps.Keys(lsss)) {
		sys, err := e.system(serial)
		if err == nil {
			slices.Sort(lsss[serial])
			err = sys.Thaw(ctx, epoch, lsss[serial])
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("thaw on %s: %w", serial, err))
		}
	}
	if len(blocked) > 0 {
		slices.Sort(blocked)
		errs = append(errs, fmt.Errorf("%w: %s: I/O stays held there until its CG timeout ends or that session's hold is released",
			freeze.ErrNotSafe, strings.Join(slices.Compact(blocked), ", ")))
	}
	return errors.Join(errs...)
}

// sharedWith names a session other than p that uses ref as a source LSS
// and whose hold p's release must not end: one meant to be mirroring, or
// one of another group ("" if none).
func (e *Engine) sharedWith(all []*session.Session, p *session.Session, ref hal.LSSRef) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, o := range all {
		if o.Name == p.Name || o.State == session.Defined || e.gone[o.Name] || !slices.Contains(sourceLSSs(o), ref) {
			continue
		}
		if GroupName(o) != GroupName(p) || o.State == session.Prepared || o.State == session.Preparing {
			return o.Name
		}
	}
	return ""
}

// running marks a command's own action on a group until the returned
// function is called.
func (e *Engine) running(group, action string) func() {
	e.mu.Lock()
	if e.own[group] == nil {
		e.own[group] = map[string]int{}
	}
	e.own[group][action]++
	e.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.own[group][action]--; e.own[group][action] == 0 {
				delete(e.own[group], action)
			}
			if len(e.own[group]) == 0 {
				delete(e.own, group)
			}
		})
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

// Terminate removes the session's pairs, then the paths of its copy sets
// that nothing else needs, leaving its volumes simplex. It never ends a
// hold: the allowed-commands table refuses a terminate while the session
// holds I/O (release-io first).
//
// The pairs stay in the core's scope, watched like any other, until every
// one is removed: removing raises no suspend event, and a poll finding a
// pair gone is no sign, so nothing the terminate does freezes the group,
// while a pair that stops mirroring before it is removed still does. A
// terminate that fails midway leaves the pairs it did not remove covered.
// Once all are removed they leave the scope, before the paths go (paths
// are no business of the core's), unless the group froze meanwhile
// (ErrGroupFroze).
//
// Each step is idempotent, so a terminate that failed midway, or whose
// answer was lost, is finished by the next one.
func (e *Engine) Terminate(ctx context.Context, s *session.Session) error {
	name, group := s.Name, GroupName(s)
	e.mu.Lock()
	freezes := e.freezes[group]
	e.mu.Unlock()
	if err := e.unloadSwap(ctx, s); err != nil {
		return err
	}
	epoch := e.epoch()
	pairs := s.VolumePairs()
	// The source side first: there a removal also ends the target side
	// over a working link. Then the target side: what a link down left
	// there, and the volumes a recover made sources at the target site.
	for _, by := range []map[hal.Serial][]hal.VolumePair{bySource(pairs), byTarget(pairs)} {
		for serial, ps := range sortedBy(by) {
			sys, err := e.system(serial)
			if err == nil {
				err = sys.RemovePairs(ctx, epoch, ps)
			}
			if err != nil {
				return fmt.Errorf("removing the pairs on %s: %w", serial, err)
			}
		}
	}
	e.mu.Lock()
	e.gone[name] = true
	e.mu.Unlock()
	if err := e.SyncGroups(context.WithoutCancel(ctx)); err != nil {
		e.log.Warn("consistency groups not synced after a terminate", "session", name, "err", err)
	}
	// A freeze of the group that began before the pairs left its scope
	// held the session's source LSSs too, and only a thaw of the group
	// with them in it ends that hold: the session goes back into the
	// scope (its pairs are gone: nothing there is a sign) and the
	// terminate fails; the next one, once the group is released, ends it.
	// A freeze that begins later does not reach its LSS pairs.
	e.mu.Lock()
	froze := e.freezes[group] != freezes
	if froze {
		delete(e.gone, name)
	}
	e.mu.Unlock()
	if froze {
		if err := e.SyncGroups(context.WithoutCancel(ctx)); err != nil {
			e.log.Warn("consistency groups not synced after a terminate", "session", name, "err", err)
		}
		return fmt.Errorf("%w: %s: the pairs are removed, but the session stays in the group until its I/O is released; "+
			"then terminate again", ErrGroupFroze, group)
	}
	return e.removePaths(ctx, s)
}

// removePaths removes, on each system, the paths of the session's copy
// sets in either direction (a start establishes those of its direction;
// a start back after a recover, those of the other) except those another
// session uses: one that is not Defined and not terminated, with a copy
// set over the same LSS pair, either way. A path storage shows still used
// by a pair (one no session of this server manages) is kept and logged:
// storage would refuse its removal.
func (e *Engine) removePaths(ctx context.Context, s *session.Session) error {
	all := e.mgrSessions()
	others := map[hal.LSSPair]bool{}
	e.mu.Lock()
	for _, o := range all {
		if o.Name == s.Name || o.State == session.Defined || e.gone[o.Name] {
			continue
		}
		for _, lp := range bothWays(o) {
			others[lp] = true
		}
	}
	e.mu.Unlock()
	mine := map[hal.Serial][]hal.LSSPair{}
	for _, lp := range bothWays(s) {
		if !others[lp] {
			mine[lp.Source.Serial] = append(mine[lp.Source.Serial], lp)
		}
	}
	epoch := e.epoch()
	for _, serial := range slices.Sorted(maps.Keys(mine)) {
		sys, err := e.system(serial)
		if err != nil {
			return fmt.Errorf("removing the paths on %s: %w", serial, err)
		}
		existing, err := sys.QueryPairs(ctx, epoch)
		if err != nil {
			return fmt.Errorf("removing the paths on %s: %w", serial, err)
		}
		used := map[hal.LSSPair]hal.VolumePair{}
		for _, p := range existing {
			if p.Source.Serial == serial {
				used[p.LSSPair()] = p.VolumePair
			}
		}
		var remove []hal.LSSPair
		for _, lp := range mine[serial] {
			if vp, ok := used[lp]; ok {
				e.log.Warn("path kept after a terminate: a pair still uses it", "session", s.Name,
					"path", lp.String(), "pair", vp.String())
				continue
			}
			remove = append(remove, lp)
		}
		if len(remove) == 0 {
			continue
		}
		if err := sys.RemovePaths(ctx, epoch, remove); err != nil {
			return fmt.Errorf("removing the paths on %s: %w", serial, err)
		}
	}
	return nil
}

// bothWays are the LSS pairs of a session's copy sets in both directions,
// sorted, without duplicates.
func bothWays(s *session.Session) []hal.LSSPair {
	var out []hal.LSSPair
	for _, c := range s.CopySets {
		lp := c.Pair(session.H1ToH2).LSSPair()
		out = append(out, lp, hal.LSSPair{Source: lp.Target, Target: lp.Source})
	}
	slices.SortFunc(out, compareLSSPair)
	return slices.Compact(out)
}

func (e *Engine) mgrSessions() []*session.Session {
	e.mu.Lock()
	mgr := e.mgr
	e.mu.Unlock()
	return mgr.DB().Sessions()
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
	names, mgr, own := e.groups[group], e.mgr, e.own[group][action] > 0
	e.mu.Unlock()
	if mgr == nil || len(names) == 0 || own {
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
	e.mu.Lock()
	e.freezes[group]++
	e.mu.Unlock()
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
