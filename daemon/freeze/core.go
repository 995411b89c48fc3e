package freeze

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Group is one consistency group: every LSS pair of every session that
// shares a consistency-group name, by source storage system.
type Group struct {
	Name      string
	Pairs     map[hal.Serial][]hal.LSSPair
	ReleaseIO bool          // thaw as soon as every freeze is certain
	LowestCG  time.Duration // lowest CG timeout of the group's source LSSs
	// HighestCG is, per source system, the highest CG timeout of its
	// LSSs in the group: how long a hold there can last. A system missing
	// (unknown) holds until it is reached.
	HighestCG map[hal.Serial]time.Duration
	// Dormant are volume pairs of the group that are not meant to be
	// mirroring (their sessions are frozen, or a start is establishing
	// them, or failed to): a poll that finds one suspended is no sign of
	// trouble until the core has seen it mirroring since the group last
	// went back to mirroring. Any other pair of the group's LSS pairs found
	// suspended is one. A suspend event is one whatever the pair: storage
	// raises it only when a pair stops mirroring.
	Dormant []hal.VolumePair
	// Quiet are volume pairs an admin command suspends on purpose
	// (terminate): neither their suspend events nor a poll finding them
	// suspended is a sign of trouble.
	Quiet []hal.VolumePair
	// Initial is the phase a group new to the core starts in, from what
	// its sessions' records say (a restart of the manager must neither
	// freeze again a group that was thawed nor forget one that was being
	// frozen): Mirroring; Freezing (the fan-out is sent again); Partial
	// (the freeze is retried on every system until each acknowledges);
	// Frozen (every system known frozen, I/O held); Thawed. A group
	// already in the core keeps its own phase.
	Initial Phase
	// NoHeartbeat: the group's sessions are of a type the heartbeat does
	// not cover (HyperSwap: its z/OS host protects it). The core sends no
	// heartbeat command for it (no arm, refresh, probe or disarm), does
	// not report it unprotected by the heartbeat, and freezes it on every
	// other sign like any group.
	NoHeartbeat bool
}

// Phase is where a group stands.
type Phase uint8

const (
	Mirroring Phase = iota // no sign of trouble
	Freezing               // a freeze fan-out is running
	Partial                // frozen where it could be; some system not (yet) known frozen
	Frozen                 // every system known frozen: the secondary image is consistent
	Thawed                 // frozen, then I/O released
)

func (p Phase) String() string {
	return [...]string{"mirroring", "freezing", "partial", "frozen", "thawed"}[p]
}

// Observer hears what the core does to groups; the daemon turns it into
// session records and notifications. Calls come from the core's loop:
// they must not block for long (the freeze itself never waits for them).
type Observer interface {
	Freezing(group, reason string, at time.Time)
	// Settled: the fan-out is over. A later call follows when that
	// changes from uncertain to certain.
	Settled(group string, s Settlement)
	// Thawed: no storage system of the group holds host writes any more:
	// each acknowledged the thaw, or its hold has certainly ended.
	Thawed(group string, at time.Time)
	Fenced(epoch hal.Epoch)
}

// HealthObserver is an Observer that also hears what the core cannot
// vouch for while a group mirrors (optional: the core asks with a type
// assertion). Calls come from the loop, like the Observer's. Contact is
// reported only while a group mirrors: Freezing ends what was reported.
type HealthObserver interface {
	// Unprotected: the heartbeat is on but cannot protect the group (why
	// says why); the group is still frozen on every other sign. why ""
	// says it is protected again, or no longer needs to be.
	Unprotected(group, why string)
	// Contact: the source systems of a mirroring group the core cannot
	// reach changed (an empty c.Lost: it reaches every one again).
	Contact(group string, c Contact)
}

// HeartbeatObserver is an Observer that also hears, per storage system,
// what the heartbeat did there (optional: the core asks with a type
// assertion, like HealthObserver). Calls come from the loop.
type HeartbeatObserver interface {
	// HeartbeatExpired: serial said (its answer to a heartbeat, or an
	// event from source) that its heartbeat for group expired: it froze
	// pairs itself and holds host writes there for hold, its highest CG
	// timeout in the group (0: unknown). Said once per expiry: again
	// only after the heartbeat was armed there anew.
	HeartbeatExpired(group string, serial hal.Serial, pairs []hal.LSSPair, hold time.Duration, source string)
	// SystemUnprotected: the heartbeat could not be armed on serial for a
	// detection window (why: the last failure), so it would not freeze
	// itself if the manager went silent; why "" says it is armed again.
	// Said once per change, not every tick.
	SystemUnprotected(group string, serial hal.Serial, why string)
}

// Contact is what the core knows of its contact with a mirroring group.
type Contact struct {
	At   time.Time
	Lost []Lost // by serial
}

// Severe reports a system out of contact longer than the group's lowest
// CG timeout: the secondary image may no longer be consistent.
func (c Contact) Severe() bool {
	return slices.ContainsFunc(c.Lost, func(l Lost) bool { return l.Severe })
}

// Lost is one source system the core cannot reach.
type Lost struct {
	Serial hal.Serial
	// Since: the last time the core knew it was fine.
	Since time.Time
	// Why: the last failure.
	Why string
	// Severe: out of contact longer than the group's lowest CG timeout
	// (ContactLost): a suspension the core never heard of may have ended
	// its hold, and its writes may have gone on unmirrored.
	Severe bool
}

// String is a sentence for a session's reason.
func (c Contact) String() string {
	if len(c.Lost) == 0 {
		return "every storage system answers"
	}
	var parts []string
	for _, l := range c.Lost {
		s := fmt.Sprintf("%s unreachable since %s (%s)", l.Serial, l.Since.Format(time.RFC3339), l.Why)
		if l.Severe {
			s += ", longer than the lowest CG timeout: a hold may have been released there, the secondary image may be inconsistent"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// Settlement is what the core can vouch for after a freeze.
type Settlement struct {
	At time.Time
	// Certain: every system acknowledged the freeze or has certainly
	// frozen itself; none can still be mirroring.
	Certain bool
	// Recoverable: certain, and in time: no system can have released a
	// held write (its CG timeout) before every other system was frozen.
	// This is the session's Recoverable flag: the H2 image is consistent.
	Recoverable bool
	// Why says what keeps the group from being recoverable ("" if it is).
	Why string
}

// Options configure a Core.
type Options struct {
	Clock     clock.Clock  // nil: real time
	Logger    *slog.Logger // nil: discard
	Timings   Timings      // zero: DefaultTimings
	Systems   map[hal.Serial]hal.StorageSystem
	Epoch     hal.Epoch
	Heartbeat bool
	Observer  Observer // nil: nobody listens
}

// Errors the core answers.
var (
	ErrNotSafe      = errors.New("freeze: not safe to thaw")
	ErrUnknownGroup = errors.New("freeze: unknown consistency group")
	ErrFenced       = errors.New("freeze: fenced by a higher epoch; this server no longer acts")
	ErrStopped      = errors.New("freeze: core not running")
	// ErrBusy: the group's freeze fan-out is running; it settles within a
	// request timeout.
	ErrBusy = errors.New("freeze: consistency group being frozen")
)

// Core is the heartbeat and freeze loop.
type Core struct {
	clock    clock.Clock
	log      *slog.Logger
	t        Timings
	systems  map[hal.Serial]hal.StorageSystem // owned by the loop once Run started
	observer Observer
	inbox    chan func()
	progress atomic.Uint64
	runCtx   context.Context // set by Run before the loop starts
	started  chan struct{}
	stopped  chan struct{} // closed when Run returns: nothing reaches the loop after

	// Owned by the loop goroutine.
	groups    map[string]*group
	byLSSPair map[hal.LSSPair][]*group
	heartbeat bool
	epoch     hal.Epoch
	fenced    bool
	seen      *seenEvents
	// lastTick is when the loop last handled a tick; lateAt is the last
	// time the core found itself late (a tick missed, a heartbeat sent or
	// an answer handled late): silence across it proves nothing.
	lastTick, lateAt time.Time
	// polls counts the polls planned, each system's query one (see
	// group.watchFrom).
	polls uint64
	// unprotected and contact are what was last reported per group name
	// (a group whose pairs change is a new object under the same name).
	unprotected map[string]string
	contact     map[string]string
	// unsubscribe ends the event subscription of each system.
	unsubscribe map[hal.Serial]context.CancelFunc
	// hbOut has an entry for each storage system and group with a
	// heartbeat command out (heartbeatCommand).
	hbOut map[hbKey]*hbLane
	// polled: the systems whose pairs this core has seen, by a poll
	// answered; thawAfterPoll, the thawed groups whose thaw waits for a
	// system's first (thawUnprompted).
	polled        map[hal.Serial]bool
	thawAfterPoll map[hal.Serial][]*group
	// The loop's tickers, reset when the timings change.
	tick, pollTick, retryTick clock.Ticker
}

type group struct {
	Group
	h        time.Duration // storage heartbeat timeout; 0 if the timings cannot be safe
	hErr     error
	phase    Phase
	reason   string
	since    time.Time
	pending  int          // freezes of the first fan-out still out
	waiters  []chan error // Freeze callers waiting for the first fan-out
	thawWait []chan error // Thaw callers, answered once every thaw answered
	released bool         // Thawed: reported to the observer as holding nothing
	systems  map[hal.Serial]*member
	// dormant and quiet are Group.Dormant and Group.Quiet by source
	// volume; seen holds the dormant pairs a poll found mirroring since
	// the group last went back to mirroring.
	dormant, quiet, seen map[hal.VolumeRef]bool
	// watchFrom is the core's count of polls planned (Core.polls) when
	// the pairs whose suspension is a sign last grew (the group went back
	// to mirroring, or a pair stopped being dormant or quiet): a poll
	// planned before it may show such a pair suspended, or a dormant one
	// mirroring, from before, and is not judged on the group's pairs. A
	// count, not a time: a poll planned in the same instant as the
	// change, just before it, is as stale (a dormant pair it saw
	// mirroring before a freeze counted as seen, and its suspension by
	// that freeze froze the group again once started: engine's
	// TestStartEndsTheGroupsHolds under load).
	watchFrom uint64
}

// sign reports whether a pair of the group found suspended by a poll is
// a sign of trouble.
func (g *group) sign(src hal.VolumeRef) bool {
	return !g.quiet[src] && (!g.dormant[src] || g.seen[src])
}

// eventSign reports whether a suspend event is a sign of trouble for the
// group: storage raises one only when a pair stops mirroring, so it is,
// whatever the pair (dormant ones included: they mirrored), unless every
// volume of it is quiet (an admin command suspends it on purpose).
//
// A freeze's own suspend events (reason freeze) are no sign: only this
// core freezes (a predecessor is fenced before this core acts, and what
// its last freezes left the first poll finds), so such an event is the
// echo of a freeze the core sent itself: of this group before it went
// back to mirroring, arriving late (events and answers are separate
// streams), or of another group's freeze over a shared LSS pair, which
// freezes this group by itself (freeze).
func (g *group) eventSign(ev hal.Event) bool {
	if ev.Reason == hal.ReasonFreeze {
		return false
	}
	if ev.Volumes.Len() == 0 {
		return true
	}
	for n := range 256 {
		src := hal.VolumeRef{Serial: ev.LSSPair.Source.Serial, Volume: hal.NewVolume(ev.LSSPair.Source.LSS, uint8(n))}
		if ev.Volumes.Has(uint8(n)) && !g.quiet[src] {
			return true
		}
	}
	return false
}

// setWatch installs the group's dormant and quiet pairs; seen keeps the
// dormant pairs it already holds.
func (g *group) setWatch(dormant, quiet []hal.VolumePair, polls uint64) {
	nd, nq := bySourceVolume(dormant), bySourceVolume(quiet)
	for src := range g.dormant {
		if !nd[src] {
			g.watchFrom = polls
		}
	}
	for src := range g.quiet {
		if !nq[src] {
			g.watchFrom = polls
		}
	}
	g.Dormant, g.Quiet = dormant, quiet
	g.dormant, g.quiet = nd, nq
	for src := range g.seen {
		if !g.dormant[src] {
			delete(g.seen, src)
		}
	}
	if g.seen == nil {
		g.seen = map[hal.VolumeRef]bool{}
	}
}

func bySourceVolume(pairs []hal.VolumePair) map[hal.VolumeRef]bool {
	out := make(map[hal.VolumeRef]bool, len(pairs))
	for _, p := range pairs {
		out[p.Source] = true
	}
	return out
}

// member is one source system of a group.
type member struct {
	acked         bool
	freezing      bool // a freeze command is out
	heartbeatOut  bool
	arming        bool
	armed         bool
	armedAtFreeze bool // the heartbeat was armed (or stale) when the freeze began
	// armH is the H the system was last armed with. stale: the core no
	// longer refreshes that heartbeat (switched off, disarmed, to be armed
	// again with new pairs or timings) but the system may still hold it,
	// armed, until a disarm or a new arm is acknowledged: it would freeze
	// itself at ackedSent + armH, so the core freezes its group then
	// (checkStale). disarming: a disarm is out.
	armH      time.Duration
	stale     bool
	disarming bool
	// staleBy, for a stale heartbeat whose timing the core does not know
	// (armH 0: armed before this core started), is when it has certainly
	// expired if it exists (zero: unknown).
	staleBy time.Time
	// probing: a heartbeat is out to ask a system of a group new to the
	// core whether a heartbeat armed before expired (it froze itself while
	// no manager was there to follow); it is armed, or disarmed, only
	// after the answer. disarmAfterProbe: a disarm was asked for
	// meanwhile; the probe's answer sends it.
	probing          bool
	disarmAfterProbe bool
	// refreeze: pairs were established on it after the freeze out (or
	// acknowledged) was sent: that freeze does not cover them, so its
	// answer does not count and the freeze is sent again (Established).
	refreeze bool
	// contactAtFreeze is lastContact when the freeze began: an answer
	// during the freeze says nothing of the time the system was silent.
	contactAtFreeze time.Time
	unprotected     bool   // arming failed for a detection window: said once
	armErr          string // why the last arm failed
	// expired: the system said its heartbeat expired, and the observer
	// heard it; cleared when the heartbeat is armed there anew.
	expired bool
	// lastContact is the last time the core knew the system was fine:
	// a heartbeat reply, an answered command or poll, an event from it.
	lastContact time.Time
	lastSent    time.Time
	lastReply   time.Time
	// ackedSent is when the last acknowledged heartbeat (or the arm) was
	// sent: the system restarted its timer of H no earlier.
	ackedSent time.Time
	// hbStarted is when the heartbeat out (if any) really left, in Unix
	// nanoseconds, 0 while its goroutine has not run: set by that
	// goroutine, read by the loop to tell a heartbeat sent late.
	hbStarted *atomic.Int64
	// lost is the last failure to reach it while its group mirrors ("":
	// in contact).
	lost string
	// The hold after a freeze: the last freeze sent, and the thaw.
	lastFreezeSent time.Time
	thawing        bool
	released       bool
	thawErr        error
	// blocked names what kept the last thaw from some of its LSSs: they
	// are also source LSSs of another group that holds them (heldBy).
	blocked string
}

// New returns a core; Run starts it.
func New(opt Options) *Core {
	t := opt.Timings
	if t == (Timings{}) {
		t = DefaultTimings()
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Core{
		clock: clock.OrReal(opt.Clock), log: log.With("component", "freeze"), t: t,
		systems: maps.Clone(opt.Systems), observer: opt.Observer, inbox: make(chan func(), 256),
		started: make(chan struct{}), stopped: make(chan struct{}), groups: map[string]*group{}, byLSSPair: map[hal.LSSPair][]*group{},
		heartbeat: opt.Heartbeat, epoch: opt.Epoch, seen: newSeenEvents(),
		unsubscribe: map[hal.Serial]context.CancelFunc{}, unprotected: map[string]string{}, contact: map[string]string{},
		hbOut: map[hbKey]*hbLane{}, polled: map[hal.Serial]bool{}, thawAfterPoll: map[hal.Serial][]*group{},
	}
}

// Progress counts the loop's iterations; it stops moving when the loop is
// wedged, which is what the systemd watchdog must notice.
func (c *Core) Progress() uint64 { return c.progress.Load() }

// Run is the loop: it subscribes to every system's events and runs the
// heartbeat, the poll and the freeze retries until ctx is done.
func (c *Core) Run(ctx context.Context) error {
	if err := c.t.Validate(); err != nil {
		return err
	}
	c.runCtx = ctx
	for serial, sys := range c.systems {
		if err := c.subscribe(serial, sys); err != nil {
			return err
		}
	}
	c.tick = c.clock.NewTicker(c.t.Interval)
	c.lastTick = c.clock.Now() // the first tick is late if it comes late after this
	defer c.tick.Stop()
	c.pollTick = c.clock.NewTicker(c.t.PollInterval)
	defer c.pollTick.Stop()
	c.retryTick = c.clock.NewTicker(c.t.RetryInterval)
	defer c.retryTick.Stop()
	tick, poll, retry := c.tick, c.pollTick, c.retryTick
	close(c.started)
	defer close(c.stopped)
	for {
		select {
		case f := <-c.inbox:
			f()
		case <-tick.C():
			c.bootcheckWedge() // a no-op but in make boot-test's build
			now := c.clock.Now()
			if WokeLate(now, c.lastTick, c.t) {
				c.noteLate(now, fmt.Sprintf("the loop woke %v after its previous tick", now.Sub(c.lastTick)))
			}
			c.lastTick = now
			c.onTick()
		case <-poll.C():
			c.poll()
		case <-retry.C():
			c.retryFreezes()
		case <-ctx.Done():
			c.drain()
			return nil
		}
		c.progress.Add(1)
	}
}

// drain lets every freeze and thaw in flight finish (each within its
// request timeout) before the loop stops: a stop must never leave a
// consistency group frozen on some storage systems and mirroring on
// others because the answers were not awaited, nor holding writes where
// its sessions say they are released (a release-io session is recorded
// released once its freeze is certain, with the thaw still out).
func (c *Core) drain() {
	limit := c.clock.NewTimer(c.t.RequestTimeout + c.t.Interval)
	defer limit.Stop()
	for c.commandsInFlight() > 0 {
		select {
		case f := <-c.inbox:
			f()
		case <-limit.C():
			c.log.Error("stopping with freezes or thaws unanswered", "in_flight", c.commandsInFlight())
			return
		}
	}
}

// commandsInFlight counts the freezes and thaws out.
func (c *Core) commandsInFlight() int {
	n := 0
	for _, g := range c.groups {
		for _, m := range g.systems {
			if m.freezing {
				n++
			}
			if m.thawing {
				n++
			}
		}
	}
	return n
}

// subscribe forwards a system's pushed events to the loop until the
// system is removed or the core stops.
func (c *Core) subscribe(serial hal.Serial, sys hal.StorageSystem) error {
	ctx, cancel := context.WithCancel(c.runCtx)
	events, err := sys.Events(ctx)
	if err != nil {
		cancel()
		return fmt.Errorf("freeze: events of %s: %w", serial, err)
	}
	c.unsubscribe[serial] = cancel
	go func() {
		for ev := range events {
			// A freeze's own echoes never reach the loop (echo), and what
			// is already queued goes there in one hand-off: a freeze
			// raises one event per LSS pair on every system at once, and
			// a hand-off each made the echoes of the first systems
			// frozen delay the answers of the last.
			if echo(ev) {
				continue
			}
			batch := []hal.Event{ev}
		more:
			for len(batch) < maxEventBatch {
				select {
				case ev, ok := <-events:
					if !ok {
						break more
					}
					if !echo(ev) {
						batch = append(batch, ev)
					}
				default:
					break more
				}
			}
			c.post(func() {
				for _, ev := range batch {
					c.onEvent(ev, pushed)
				}
			})
		}
	}()
	return nil
}

// maxEventBatch bounds the events of one system handed to the loop at once.
const maxEventBatch = 64

// SetSystems replaces the storage systems the core talks to (storage
// added or removed at run time): new ones are subscribed to, removed ones
// forgotten.
func (c *Core) SetSystems(ctx context.Context, systems map[hal.Serial]hal.StorageSystem) error {
	return c.do(ctx, func() error {
		for serial, cancel := range c.unsubscribe {
			if systems[serial] != c.systems[serial] {
				cancel()
				delete(c.unsubscribe, serial)
			}
		}
		var errs []error
		for serial, sys := range systems {
			if _, ok := c.unsubscribe[serial]; !ok {
				errs = append(errs, c.subscribe(serial, sys))
			}
		}
		c.systems = maps.Clone(systems)
		return errors.Join(errs...)
	})
}

// post hands a function to the loop; it is dropped once the loop stopped.
func (c *Core) post(f func()) {
	select {
	case c.inbox <- f:
	case <-c.stopped:
	}
}

// do runs f in the loop and waits for its answer.
func (c *Core) do(ctx context.Context, f func() error) error {
	select {
	case <-c.started:
	case <-ctx.Done():
		return ErrStopped
	}
	reply := make(chan error, 1)
	select {
	case c.inbox <- func() { reply <- f() }:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.runCtx.Done():
		return ErrStopped
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// async runs a storage command on a system in its own goroutine, bounded
// by the request timeout, and hands its result back to the loop. A system
// that is not (or no longer) defined answers unreachable.
func (c *Core) async(serial hal.Serial, fn func(ctx context.Context, sys hal.StorageSystem) error, done func(err error)) {
	c.asyncWithin(nil, serial, fn, done)
}

// deadline is the context of a command issued now: it ends a request
// timeout from now, on the core's clock. The deadline runs from now, in
// the loop, not from when the goroutine gets to run: the rules bound
// when a command can reach a system by when it was issued plus the
// request timeout (SafeAt, HoldEnds), which a starved goroutine sending
// late would break. Not cancelled with the loop: a freeze sent must run
// to its answer, bounded by the request timeout (see drain).
func (c *Core) deadline() (context.Context, context.CancelFunc) {
	return clock.WithTimeout(context.WithoutCancel(c.runCtx), c.clock, c.t.RequestTimeout)
}

// fanOut is one deadline shared by the commands a loop step sends to
// many systems at once (a freeze's first round): issued in the same
// instant, they have the same deadline, and one context with its timer
// for all of them, instead of one each, halves what a fan-out allocates
// (BenchmarkCoreFanOut). It is cancelled once every command answered.
type fanOut struct {
	ctx    context.Context
	cancel context.CancelFunc
	out    int // commands not answered yet; owned by the loop
}

func (c *Core) newFanOut(n int) *fanOut {
	ctx, cancel := c.deadline()
	return &fanOut{ctx: ctx, cancel: cancel, out: n}
}

// answered counts one command of the fan-out answered (or not sent).
func (f *fanOut) answered() {
	if f == nil {
		return
	}
	if f.out--; f.out == 0 {
		f.cancel()
	}
}

// asyncWithin is async within a fan-out's deadline (nil: its own).
func (c *Core) asyncWithin(f *fanOut, serial hal.Serial, fn func(ctx context.Context, sys hal.StorageSystem) error, done func(err error)) {
	if c.fenced {
		f.answered()
		done(ErrFenced)
		return
	}
	sys := c.systems[serial]
	if sys == nil {
		f.answered()
		done(fmt.Errorf("%w: %s is not defined", hal.ErrUnreachable, serial))
		return
	}
	var ctx context.Context
	cancel := func() {}
	if f != nil {
		ctx = f.ctx
	} else {
		ctx, cancel = c.deadline()
	}
	go func() {
		err := fn(ctx, sys)
		cancel()
		c.post(func() {
			f.answered()
			if errors.Is(err, hal.ErrFenced) {
				c.onFenced(0)
			}
			done(err)
		})
	}()
}

// SetGroups replaces the consistency groups. A group already in the core
// keeps its phase and, on the systems still in it, what the core knows of
// them, whatever changed in its pairs (a session joined or left it): a
// frozen group is never put back to mirroring by a change of scope, nor a
// freeze in progress forgotten. A group new to the core starts in its
// Initial phase. Every group is installed, whatever its timings: one
// whose lowest CG timeout leaves no safe H is not heartbeat-armed (and
// disarmed, should an earlier run have armed it), is reported
// unprotected, and is frozen on every other sign like any group. A group
// left out of the core would be frozen on nothing at all.
func (c *Core) SetGroups(ctx context.Context, groups []Group) error {
	return c.do(ctx, func() error { return c.setGroups(groups, "") })
}

// setGroups is SetGroups in the loop; the group named restart (if any)
// is put back to mirroring once installed.
func (c *Core) setGroups(groups []Group, restart string) error {
	next := map[string]*group{}
	var fresh []*group
	for _, g := range groups {
		old := c.groups[g.Name]
		if old == nil {
			ng := &group{Group: g, systems: map[hal.Serial]*member{}}
			ng.h, ng.hErr = DeriveH(g.LowestCG, c.t)
			ng.setWatch(g.Dormant, g.Quiet, c.polls)
			next[g.Name] = ng
			fresh = append(fresh, ng)
			continue
		}
		c.update(old, g)
		next[g.Name] = old
	}
	for name, old := range c.groups {
		if next[name] == nil {
			if c.beats(old) {
				c.disarm(old, slices.Sorted(maps.Keys(old.Pairs)))
			}
			c.release(old.waiters, fmt.Errorf("%w: %s left the core", ErrUnknownGroup, name))
			c.release(old.thawWait, fmt.Errorf("%w: %s left the core", ErrUnknownGroup, name))
			c.reportProtection(name, "")
			c.reportContact(name, Contact{At: c.clock.Now()})
		}
	}
	c.groups = next
	c.byLSSPair = map[hal.LSSPair][]*group{}
	for _, g := range c.sortedGroups() {
		for _, serial := range slices.Sorted(maps.Keys(g.Pairs)) {
			for _, lp := range g.Pairs[serial] {
				c.byLSSPair[lp] = append(c.byLSSPair[lp], g)
			}
		}
	}
	for _, g := range fresh {
		c.install(g)
	}
	// Only once every group has its phase: a thaw sent again must not end
	// the hold of a frozen group installed after it (heldBy).
	for _, g := range fresh {
		c.thawAgainAtStart(g)
	}
	if g := c.groups[restart]; g != nil {
		if err := c.restart(g); err != nil {
			return err
		}
	}
	for _, g := range c.sortedGroups() {
		if c.beats(g) && g.hErr != nil && g.phase == Mirroring {
			c.disarm(g, slices.Sorted(maps.Keys(g.Pairs)))
		}
		c.protection(g)
	}
	if c.heartbeat {
		c.onTick() // arm the new groups now, not a tick later
	}
	return nil
}

// update gives a group already in the core its new definition. Systems
// that left the group are forgotten (and disarmed); systems that joined
// start as the group's phase needs: in contact while it mirrors,
// unacknowledged while it is frozen (the retries freeze them too). A
// system whose pairs changed while the group mirrors is armed again with
// them at the next tick.
func (c *Core) update(g *group, ng Group) {
	if ng.NoHeartbeat && !g.NoHeartbeat && c.heartbeat {
		c.disarm(g, slices.Sorted(maps.Keys(g.Pairs))) // no longer covered: ends what it was armed with
	}
	g.NoHeartbeat = ng.NoHeartbeat
	g.ReleaseIO, g.HighestCG = ng.ReleaseIO, ng.HighestCG
	g.setWatch(ng.Dormant, ng.Quiet, c.polls)
	if g.LowestCG != ng.LowestCG {
		g.LowestCG = ng.LowestCG
		g.h, g.hErr = DeriveH(ng.LowestCG, c.t)
		for _, m := range g.systems {
			m.unarm() // armed again with the new H at the next tick, if it has one
		}
	}
	if samePairs(g.Pairs, ng.Pairs) {
		return
	}
	now := c.clock.Now()
	var gone []hal.Serial
	for serial := range g.Pairs {
		if _, ok := ng.Pairs[serial]; !ok {
			gone = append(gone, serial)
		}
	}
	slices.Sort(gone)
	if c.beats(g) && len(gone) > 0 {
		c.disarm(g, gone)
	}
	for _, serial := range gone {
		delete(g.systems, serial)
	}
	for serial, lps := range ng.Pairs {
		m := g.systems[serial]
		switch {
		case m == nil:
			m = &member{lastReply: now, lastContact: now}
			if g.phase == Thawed {
				m.acked, m.released = true, true // nothing of the group holds there yet
			}
			g.systems[serial] = m
		case !slices.Equal(g.Pairs[serial], lps) && g.phase == Mirroring:
			m.unarm() // its heartbeat covers the old pairs: armed again with the new ones
		}
	}
	g.Pairs = ng.Pairs
	c.evaluate(g)
}

// install starts a group new to the core in its Initial phase.
func (c *Core) install(g *group) {
	c.resetGroup(g)
	now := c.clock.Now()
	switch g.Initial {
	case Freezing, Partial:
		// The fan-out is sent again to every system (it holds I/O again
		// where it reaches: the observer hears of the freeze, and the
		// sessions say I/O held, those frozen before included).
		why := "a freeze in progress when the manager stopped, taken up again"
		if g.Initial == Partial {
			why = "a freeze not known everywhere when the manager stopped, taken up again"
		}
		c.freeze(g, why)
		for _, m := range g.systems {
			// The core knows nothing of the time before it started: it
			// cannot vouch that no hold ended before every system froze.
			m.contactAtFreeze = time.Time{}
		}
	case Frozen:
		g.phase, g.reason, g.since = Frozen, "frozen when the manager stopped", now
		for _, m := range g.systems {
			// A hold there began before now: it ends by now + its CG
			// timeout at the latest.
			m.acked, m.lastFreezeSent = true, now
		}
	case Thawed:
		g.phase, g.reason, g.since, g.released = Thawed, "thawed when the manager stopped", now, true
		for _, m := range g.systems {
			m.acked, m.released = true, true
		}
	}
	if !c.beats(g) {
		return
	}
	// With the heartbeat on, each system may hold a heartbeat of this
	// group armed before this core started (a restart, a takeover), which
	// expires unless armed anew or disarmed: stale, timing unknown. A
	// heartbeat is shorter than the lowest CG timeout, so it has expired
	// by then if it existed.
	var by time.Time
	if g.LowestCG > 0 {
		by = now.Add(g.LowestCG + c.t.RequestTimeout)
	}
	for _, m := range g.systems {
		m.stale, m.staleBy = true, by
	}
	for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
		c.probe(g, serial, g.systems[serial])
	}
}

// probe asks a system of a group new to the core whether the heartbeat a
// previous manager armed there expired: then it froze itself, and holds
// writes again for its CG timeout, whatever the journal says. A mirroring
// group is frozen (nobody followed that system while the manager was
// away); a frozen or thawed one is reported as held again (the observer
// hears a freeze: its sessions say I/O held), and a thawed one is thawed
// again. Only after the answer is the system armed anew, or disarmed.
func (c *Core) probe(g *group, serial hal.Serial, m *member) {
	m.probing = true
	name := g.Name
	c.heartbeatCommand(serial, name, func(ctx context.Context, sys hal.StorageSystem, epoch hal.Epoch) error {
		return sys.Heartbeat(ctx, epoch, name)
	}, func(err error) {
		m.probing = false
		disarm := m.disarmAfterProbe
		m.disarmAfterProbe = false
		if c.groups[g.Name] != g {
			// The whole group left the core while the probe was out: its
			// answer is no business of any group here (a group of the
			// same name or LSSs defined since has its own view), so it
			// neither reports a hold nor thaws nor arms; only the disarm
			// the leaving asked for is sent.
			if disarm {
				c.disarm(g, []hal.Serial{serial})
			}
			return
		}
		if g.systems[serial] != m {
			if disarm && g.systems[serial] == nil {
				c.disarm(g, []hal.Serial{serial}) // it left the group while the probe was out
			}
			// (Started again: the new member is armed anew, which
			// replaces the old heartbeat; a late disarm would undo that.)
			return
		}
		if errors.Is(err, hal.ErrHeartbeatExpired) {
			c.reportExpired(g, serial, m, "probe")
			c.selfFrozen(g, m, fmt.Sprintf("%s's heartbeat, armed before this manager started, expired: it froze itself", serial))
		} else if err == nil || errors.Is(err, hal.ErrRefused) {
			m.lastReply = c.clock.Now() // it answers: armed anew, or disarmed, from now on
		}
		// A disarm asked for meanwhile (the group left the core) is sent
		// now, even to a group that would otherwise be armed.
		if disarm || g.phase != Mirroring || !c.beats(g) || g.hErr != nil {
			c.disarm(g, []hal.Serial{serial})
			return
		}
		c.arm(g, serial, m, c.clock.Now())
	})
}

// thawAgainAtStart sends the thaw of a group installed thawed again,
// quietly: the group stays reported released, as its sessions say. A
// release-io session is recorded released once its freeze is certain,
// and the manager before may have been killed in the moment its thaw was
// out: that system then held writes for its CG timeout (a minute or two
// of application I/O stalled) while the session said released. A thaw of
// an LSS that holds nothing changes nothing; one a frozen group holds is
// kept from it (heldBy), and one a mirroring group shares waits for the
// first poll (thawUnprompted). With the heartbeat on, the disarm that
// follows each system's probe sends the thaw (disarm: the heartbeat armed
// before may have expired), after the probe has said whether that system
// froze itself.
func (c *Core) thawAgainAtStart(g *group) {
	if g.phase != Thawed || c.beats(g) {
		return
	}
	for _, m := range g.systems {
		m.released = false
	}
	c.log.Info("sending the thaw of a group thawed before this manager started again: it may have been out when that manager stopped",
		"group", g.Name)
	c.thawUnprompted(g)
}

// thawUnprompted sends the thaw of a thawed group that the core sends
// again on its own (no caller waits): after a start, or after a
// heartbeat may have expired. Where a source LSS of the group is also a
// mirroring group's, on a system this core has not polled yet, it waits
// for that poll: the mirroring group's system may have suspended on its
// own while no manager was there, its ELB holding writes until the core
// freezes that group, and a thaw before it would let those writes go on
// unmirrored. The poll freezes the group if so (then heldBy keeps the
// thaw off that LSS), and sends the thaw after.
func (c *Core) thawUnprompted(g *group) {
	if serial, other := c.unpolledShare(g); serial != "" {
		if !slices.Contains(c.thawAfterPoll[serial], g) {
			c.thawAfterPoll[serial] = append(c.thawAfterPoll[serial], g)
		}
		c.log.Info("the thaw of a thawed group waits for the first poll of a system whose LSS a mirroring group shares",
			"group", g.Name, "serial", serial, "mirroring_group", other)
		return
	}
	c.thaw(g, nil)
}

// unpolledShare names a system this core has not polled yet where a
// source LSS of g is also one of a mirroring group's, and that group;
// "" if none.
func (c *Core) unpolledShare(g *group) (hal.Serial, string) {
	var others []*group // sorted once, when a system is still unpolled
	for _, serial := range slices.Sorted(maps.Keys(g.Pairs)) {
		if c.polled[serial] {
			continue
		}
		if others == nil {
			others = c.sortedGroups()
		}
		for _, lp := range g.Pairs[serial] {
			for _, o := range others {
				if o != g && o.phase == Mirroring && slices.ContainsFunc(o.Pairs[serial], func(olp hal.LSSPair) bool { return olp.Source == lp.Source }) {
					return serial, o.Name
				}
			}
		}
	}
	return "", ""
}

// polledOnce notes that serial's pairs were seen, and sends the thaws
// that waited for it (thawUnprompted) of the groups still here and
// thawed.
func (c *Core) polledOnce(serial hal.Serial) {
	c.polled[serial] = true
	waiting := c.thawAfterPoll[serial]
	delete(c.thawAfterPoll, serial)
	for _, g := range waiting {
		if c.groups[g.Name] == g && g.phase == Thawed {
			c.thawUnprompted(g)
		}
	}
}

// selfFrozen applies a system's word that it froze itself (its
// heartbeat expired) to its group: a mirroring group is frozen; in a
// frozen or thawed one the system holds writes again, for its CG timeout,
// whatever the group's state said: the observer hears a freeze (its
// sessions say I/O held), and a thawed group is thawed again (the thaw
// rule held when it thawed; the system's own hold changes nothing of
// it). m is the system's member (nil: not of the group).
func (c *Core) selfFrozen(g *group, m *member, why string) {
	switch g.phase {
	case Mirroring:
		c.freeze(g, why)
	case Frozen, Thawed:
		c.log.Warn("a system of a frozen or thawed group froze itself again", "group", g.Name, "why", why)
		if c.observer != nil {
			c.observer.Freezing(g.Name, why+" and holds I/O again", c.clock.Now())
		}
		if g.phase == Thawed && m != nil {
			m.released, g.released = false, false
			c.thaw(g, nil)
		}
	}
}

// Admit reports whether the heartbeat could protect g as the core runs
// now: nil when the heartbeat is off or g's timings give a safe H, else
// the ErrTiming saying why; and ErrBusy while the group of that name is
// being frozen (a start now would lose the freeze's answers). A command checks the group it is about to
// create with it before it changes anything on storage.
func (c *Core) Admit(ctx context.Context, g Group) error {
	return c.do(ctx, func() error {
		if old := c.groups[g.Name]; old != nil && old.phase == Freezing {
			return fmt.Errorf("%w: %s (%s); retry once its freeze settles", ErrBusy, old.Name, old.reason)
		}
		if !c.heartbeat || g.NoHeartbeat {
			return nil
		}
		_, err := DeriveH(g.LowestCG, c.t)
		return err
	})
}

// reportExpired tells the observer, once per expiry, that serial froze
// itself because its heartbeat expired.
func (c *Core) reportExpired(g *group, serial hal.Serial, m *member, source string) {
	if m.expired {
		return
	}
	m.expired = true
	hold := g.HighestCG[serial]
	c.log.Error("a storage system's heartbeat expired: it froze itself", "group", g.Name, "serial", serial,
		"hold", hold, "source", source)
	if ho, ok := c.observer.(HeartbeatObserver); ok {
		ho.HeartbeatExpired(g.Name, serial, slices.Clone(g.Pairs[serial]), hold, source)
	}
}

// beats reports whether the heartbeat covers g now: switched on, and g of
// a type it covers.
func (c *Core) beats(g *group) bool { return c.heartbeat && !g.NoHeartbeat }

// protection reports a change of whether the heartbeat protects g.
func (c *Core) protection(g *group) {
	why := ""
	if c.beats(g) && g.hErr != nil {
		why = fmt.Sprintf("not heartbeat-armed (frozen on every other sign): %v", g.hErr)
	}
	c.reportProtection(g.Name, why)
}

// reportProtection tells the health observer when whether the heartbeat
// protects the named group changed.
func (c *Core) reportProtection(name, why string) {
	if c.unprotected[name] == why {
		return
	}
	if why == "" {
		delete(c.unprotected, name)
		c.log.Info("consistency group protected by the heartbeat again, or no longer needs it", "group", name)
	} else {
		c.unprotected[name] = why
		c.log.Error("consistency group not protected by the heartbeat", "group", name, "why", why)
	}
	if ho, ok := c.observer.(HealthObserver); ok {
		ho.Unprotected(name, why)
	}
}

// reportContact tells the health observer when the systems of the named
// group that the core cannot reach changed.
func (c *Core) reportContact(name string, ct Contact) {
	key := ""
	for _, l := range ct.Lost {
		key += fmt.Sprintf("%s %v;", l.Serial, l.Severe)
	}
	if c.contact[name] == key {
		return
	}
	if key == "" {
		delete(c.contact, name)
	} else {
		c.contact[name] = key
	}
	if len(ct.Lost) > 0 {
		c.log.Warn("consistency group out of contact with a storage system", "group", name, "contact", ct.String())
	} else {
		c.log.Info("consistency group in contact with every storage system again", "group", name)
	}
	if ho, ok := c.observer.(HealthObserver); ok {
		ho.Contact(name, ct)
	}
}

func samePairs(a, b map[hal.Serial][]hal.LSSPair) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// resetGroup puts a group back to mirroring, with a fresh detection
// window for its heartbeat.
func (c *Core) resetGroup(g *group) {
	now := c.clock.Now()
	g.phase, g.reason, g.since, g.pending, g.released = Mirroring, "", now, 0, false
	clear(g.seen) // a dormant pair is watched again once seen mirroring
	g.watchFrom = c.polls
	c.release(g.thawWait, fmt.Errorf("%w: %s was started again before every thaw was answered", ErrNotSafe, g.Name))
	g.thawWait = nil
	for serial := range g.Pairs {
		// The pairs were mirroring when the group was (re)started.
		m := &member{lastReply: now, lastContact: now}
		if old := g.systems[serial]; old != nil && (old.stale || old.armed) {
			// It may still hold the heartbeat armed before (its disarm
			// not acknowledged yet, or never sent: a system that did not
			// acknowledge the freeze): stale until armed anew or
			// disarmed, and followed if it expires first (checkStale).
			m.stale, m.armH, m.ackedSent, m.staleBy = true, old.armH, old.ackedSent, old.staleBy
		}
		g.systems[serial] = m
	}
	c.reportContact(g.Name, Contact{At: now})
}

// Restart puts a frozen group back to mirroring (start-h1-h2), before
// its pairs are established again, so that they are covered from the
// first: the heartbeat is armed again, and every pair that is not
// Dormant is watched. A group that mirrors stays as it is. A group whose
// freeze fan-out is running is refused with ErrBusy: its answers would be
// lost, and its sessions left Suspending.
func (c *Core) Restart(ctx context.Context, name string) error {
	return c.do(ctx, func() error {
		g := c.groups[name]
		if g == nil {
			return fmt.Errorf("%w: %s", ErrUnknownGroup, name)
		}
		return c.restart(g)
	})
}

// StartGroup is SetGroups and Restart of the named group in one step of
// the loop (a session joining a frozen group and starting): the new
// definition is never in the core with the group still frozen, where a
// retried freeze would reach the systems that joined. It refuses with
// ErrBusy, changing nothing, while that group's freeze fan-out runs.
func (c *Core) StartGroup(ctx context.Context, groups []Group, name string) error {
	return c.do(ctx, func() error {
		if g := c.groups[name]; g != nil && g.phase == Freezing {
			return fmt.Errorf("%w: %s (%s); retry once its freeze settles", ErrBusy, g.Name, g.reason)
		}
		if !slices.ContainsFunc(groups, func(g Group) bool { return g.Name == name }) {
			return fmt.Errorf("%w: %s", ErrUnknownGroup, name)
		}
		return c.setGroups(groups, name)
	})
}

func (c *Core) restart(g *group) error {
	switch g.phase {
	case Mirroring:
		return nil
	case Freezing:
		return fmt.Errorf("%w: %s (%s); retry once its freeze settles", ErrBusy, g.Name, g.reason)
	}
	c.log.Info("consistency group back to mirroring", "group", g.Name, "was", g.phase.String())
	c.release(g.waiters, fmt.Errorf("%w: %s was started again", ErrNotSafe, g.Name))
	g.waiters = nil
	c.resetGroup(g)
	return nil
}

// Established tells the core that a start established (or failed back)
// pairs of the named group on serial. If the group is no longer
// mirroring, its freeze may have reached serial before them, and they
// mirror in a group that will not freeze them again: the freeze is sent
// to serial again (and, until it answers, serial is not known frozen),
// and Established answers an error wrapping ErrBusy; a group already
// thawed answers one wrapping ErrNotSafe, and the caller must suspend
// what it established there itself.
func (c *Core) Established(ctx context.Context, name string, serial hal.Serial) error {
	return c.do(ctx, func() error {
		g := c.groups[name]
		if g == nil {
			return fmt.Errorf("%w: %s", ErrUnknownGroup, name)
		}
		m := g.systems[serial]
		switch {
		case g.phase == Mirroring:
			return nil
		case m == nil:
			return fmt.Errorf("%w: %s has no pairs on %s", ErrUnknownGroup, name, serial)
		case g.phase == Thawed:
			return fmt.Errorf("%w: %s was frozen and thawed while the start ran", ErrNotSafe, name)
		}
		c.log.Warn("pairs established after the group's freeze was sent: freezing them too", "group", name, "serial", serial)
		m.acked = false
		if m.freezing {
			m.refreeze = true
		} else {
			c.sendFreeze(g, serial, false, nil)
		}
		return fmt.Errorf("%w: %s (%s) froze while the start ran; the pairs it established on %s are frozen with it",
			ErrBusy, name, g.reason, serial)
	})
}

// SetHeartbeat switches the heartbeat. On, it refuses when a group's
// timings cannot be safe, changing nothing; off, it disarms every system.
func (c *Core) SetHeartbeat(ctx context.Context, on bool) error {
	return c.do(ctx, func() error {
		if on == c.heartbeat {
			return nil
		}
		if on {
			var problems []error
			for _, g := range c.sortedGroups() {
				if g.hErr != nil && !g.NoHeartbeat {
					problems = append(problems, fmt.Errorf("group %s: %w", g.Name, g.hErr))
				}
			}
			if len(problems) > 0 {
				return errors.Join(problems...)
			}
			now := c.clock.Now()
			for _, g := range c.groups {
				for _, m := range g.systems {
					m.lastReply = now
					m.unarm()
				}
			}
		} else {
			for _, g := range c.groups {
				if !g.NoHeartbeat {
					c.disarm(g, slices.Collect(maps.Keys(g.Pairs)))
				}
			}
		}
		c.heartbeat = on
		c.log.Info("heartbeat switched", "on", on)
		for _, g := range c.sortedGroups() {
			c.protection(g)
		}
		if on {
			c.onTick() // arm now: every moment unarmed is a moment unprotected
		}
		return nil
	})
}

// SetTimings changes the heartbeat timings while the core runs (SIGHUP):
// the tickers follow at once, every group's H is derived again, and the
// mirroring groups are armed again with it. Timings that would take the
// heartbeat's protection from a group that has it are refused, changing
// nothing; a group already unprotected does not hold a reload back, and
// is armed once the new timings give it a safe H.
func (c *Core) SetTimings(ctx context.Context, t Timings) error {
	if err := t.Validate(); err != nil {
		return err
	}
	return c.do(ctx, func() error {
		type derived struct {
			h   time.Duration
			err error
		}
		hs := map[*group]derived{}
		var problems []error
		for _, g := range c.sortedGroups() {
			h, err := DeriveH(g.LowestCG, t)
			if err != nil && c.beats(g) && g.hErr == nil {
				problems = append(problems, fmt.Errorf("group %s: %w", g.Name, err))
			}
			hs[g] = derived{h, err}
		}
		if len(problems) > 0 {
			return errors.Join(problems...)
		}
		c.t = t
		c.tick.Reset(t.Interval)
		c.pollTick.Reset(t.PollInterval)
		c.retryTick.Reset(t.RetryInterval)
		now := c.clock.Now()
		c.lastTick = now // the first tick of the new interval is not late
		for g, d := range hs {
			g.h, g.hErr = d.h, d.err
			c.protection(g)
			if g.phase != Mirroring {
				continue
			}
			for _, m := range g.systems {
				// Re-armed at the next tick with the new H; until the
				// answer, the old timer guards the system.
				m.lastReply = now
				m.unarm()
			}
		}
		return nil
	})
}

// SetEpoch changes the epoch the core's commands carry (after a takeover).
func (c *Core) SetEpoch(ctx context.Context, e hal.Epoch) error {
	return c.do(ctx, func() error {
		c.epoch, c.fenced = e, false
		return nil
	})
}

func (c *Core) sortedGroups() []*group {
	out := slices.Collect(maps.Values(c.groups))
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Observe hands the core an event from another source than the pushed
// stream — a storage system's SNMP trap — named by source in the freeze
// reason. Such a source is not the storage system's authenticated
// connection, so what it says can only make the core freeze sooner: a
// suspend or expiry event starts the freeze of its group (the freeze is
// sent to every system and counts only when acknowledged), and a fenced
// event is ignored (only a storage system's answer to the core's own
// command fences it).
func (c *Core) Observe(ev hal.Event, source string) {
	select {
	case <-c.started:
	default:
		return // not running yet: the poll will see what this says
	}
	if echo(ev) {
		return
	}
	c.post(func() { c.onEvent(ev, source) })
}

// echo reports whether an event is the echo of a freeze: a suspend event
// of reason freeze. It is never a sign (group.eventSign: only this core
// freezes), so it is dropped before it costs the loop a hand-off or the
// deduplication a slot: freezing 32 systems × 16 LSSs raises 512 of them
// at the moment the last systems' freezes are still to run.
func echo(ev hal.Event) bool {
	return ev.Kind == hal.EventSuspend && ev.Reason == hal.ReasonFreeze
}

// pushed is the source name of a system's own event stream.
const pushed = "pushed"

// onEvent handles a pushed (or trapped) event.
func (c *Core) onEvent(ev hal.Event, source string) {
	if echo(ev) {
		return // no sign, whatever its source
	}
	if ev.Seq != 0 && c.seen.add(source, ev) {
		return // a source repeating itself (seen.go)
	}
	switch ev.Kind {
	case hal.EventSuspend:
		for _, g := range c.byLSSPair[ev.LSSPair] {
			if g.phase != Mirroring {
				continue // the echo of our own freeze, most of the time
			}
			if !g.eventSign(ev) {
				continue // pairs suspended on purpose (terminate), or not mirroring since the group restarted
			}
			c.freeze(g, fmt.Sprintf("%s suspend event from %s: LSS pair %s, %d volumes, reason %s",
				source, ev.Serial, ev.LSSPair, ev.Volumes.Len(), ev.Reason))
		}
	case hal.EventHeartbeatExpiry:
		// The system froze itself, or so the event says: freeze the group
		// now. The system is known frozen only once it acknowledges the
		// freeze (idempotent there), never on the event's word.
		if g := c.groups[ev.Session]; g != nil {
			m := g.systems[ev.Serial]
			if m != nil {
				c.reportExpired(g, ev.Serial, m, source)
			}
			why := fmt.Sprintf("%s: heartbeat expired on %s", source, ev.Serial)
			if g.phase == Mirroring || source == pushed {
				c.selfFrozen(g, m, why)
			}
			// (A trap says it of a frozen or thawed group: not trusted to
			// change what the sessions say, nor to send a thaw; only to
			// freeze sooner.)
		}
	case hal.EventFenced:
		if source != pushed {
			c.log.Warn("fenced event ignored: only a storage system's answer fences the core", "source", source,
				"serial", ev.Serial, "epoch", uint64(ev.Epoch))
			return
		}
		if ev.Epoch <= c.epoch {
			// A connection shared by several managers (an HMC) forwards
			// the fenced events of the others' stale commands: a system
			// that knows no epoch above ours has not fenced us.
			c.log.Info("fenced event of another manager ignored", "serial", ev.Serial,
				"epoch", uint64(ev.Epoch), "ours", uint64(c.epoch))
			return
		}
		c.onFenced(ev.Epoch)
	}
}

func (c *Core) onFenced(epoch hal.Epoch) {
	if c.fenced {
		return
	}
	c.fenced = true
	c.log.Error("fenced: a storage system has seen a higher epoch; no more commands from this server",
		"epoch", c.epoch, "seen", epoch)
	if c.observer != nil {
		c.observer.Fenced(epoch)
	}
}

// freeze starts the fan-out for a group that is mirroring.
func (c *Core) freeze(g *group, reason string) {
	if g.phase != Mirroring || c.fenced {
		return
	}
	now := c.clock.Now()
	g.phase, g.reason, g.since = Freezing, reason, now
	for _, m := range g.systems {
		m.armedAtFreeze, m.contactAtFreeze = m.armed || m.stale, m.lastContact
		m.released, m.thawErr = false, nil
		m.lost = ""
	}
	// Contact is reported while a group mirrors; from now on the freeze's
	// reports tell (the observer drops what it knew of the group's
	// contact on Freezing).
	delete(c.contact, g.Name)
	serials := slices.Sorted(maps.Keys(g.Pairs))
	g.pending = len(serials)
	fan := c.newFanOut(len(serials))
	for _, serial := range serials {
		c.sendFreeze(g, serial, true, fan)
	}
	c.log.Warn("freezing consistency group", "group", g.Name, "reason", reason, "systems", len(serials))
	if c.observer != nil {
		c.observer.Freezing(g.Name, reason, now)
	}
	// A group sharing an LSS pair with this one has its pairs there
	// suspended by this freeze: it is frozen too, now rather than on the
	// events or the poll that would tell it.
	for _, serial := range serials {
		for _, lp := range g.Pairs[serial] {
			for _, o := range c.byLSSPair[lp] {
				if o != g && o.phase == Mirroring {
					c.freeze(o, fmt.Sprintf("group %s, which shares LSS pair %s, is freezing: %s", g.Name, lp, reason))
				}
			}
		}
	}
}

// sendFreeze sends serial its freeze within the fan-out's deadline (nil:
// its own).
func (c *Core) sendFreeze(g *group, serial hal.Serial, firstRound bool, fan *fanOut) {
	m := g.systems[serial]
	if m.freezing || m.acked {
		fan.answered()
		return
	}
	m.freezing, m.lastFreezeSent = true, c.clock.Now()
	pairs, epoch := g.Pairs[serial], c.epoch
	c.asyncWithin(fan, serial, func(ctx context.Context, sys hal.StorageSystem) error {
		return sys.Freeze(ctx, epoch, pairs)
	}, func(err error) {
		m.freezing = false
		if firstRound {
			g.pending--
		}
		if g.phase == Thawed {
			// The thaw waited for this answer (thaw): it follows it now.
			if err == nil {
				m.released = false
			}
			c.thaw(g, nil)
			return
		}
		if g.phase == Mirroring {
			return // a late answer after a restart
		}
		if m.refreeze {
			m.refreeze = false
			c.sendFreeze(g, serial, false, nil) // it does not cover pairs established after it
			c.evaluate(g)
			return
		}
		if err != nil {
			c.log.Warn("freeze not acknowledged", "group", g.Name, "serial", serial, "err", err)
		} else {
			stale := m.stale || m.armed
			m.acked = true
			if c.beats(g) || stale {
				c.disarm(g, []hal.Serial{serial})
			}
		}
		c.evaluate(g)
	})
}

// evaluate applies the thaw rule to a group that is freezing or partial.
func (c *Core) evaluate(g *group) {
	if g.phase != Freezing && g.phase != Partial {
		return
	}
	if g.phase == Freezing && g.pending > 0 {
		return
	}
	now := c.clock.Now()
	certain, _ := Certainty(now, c.memberStates(g), true, g.h, c.t.RequestTimeout)
	switch {
	case certain:
		g.phase = Frozen
		st := Settlement{At: now, Certain: true, Recoverable: true}
		if late := c.late(g, now); late != "" {
			st.Recoverable, st.Why = false, late
			c.log.Error("consistency group frozen too late to vouch for the secondary image", "group", g.Name, "why", late)
		} else {
			c.log.Info("consistency group frozen everywhere", "group", g.Name)
		}
		// The observer hears first, then the callers: a command that
		// froze the group hears its answer after the report of its own
		// freeze (the engine records that report as the command's, not
		// as news that came while it ran), whatever goroutine runs first.
		if c.observer != nil {
			c.observer.Settled(g.Name, st)
		}
		c.release(g.waiters, nil)
		g.waiters = nil
		if g.ReleaseIO {
			c.thaw(g, nil)
		}
	case g.phase == Freezing:
		g.phase = Partial
		why := fmt.Sprintf("%s may still be mirroring", strings.Join(c.unacked(g), ", "))
		if c.observer != nil {
			c.observer.Settled(g.Name, Settlement{At: now, Why: why}) // before the callers, as above
		}
		c.release(g.waiters, fmt.Errorf("freeze of %s not acknowledged by %s", g.Name, strings.Join(c.unacked(g), ", ")))
		g.waiters = nil
	}
}

// late says which system may have released held writes before the whole
// group was frozen at done, or "" if none. A system whose heartbeat was
// armed is covered: had it suspended unheard, its silence would have
// frozen the group within the detection window. Any other system is
// covered only up to its last contact plus the lowest CG timeout: past
// that, a suspension the core never heard may have ended its hold while
// the others still mirrored.
func (c *Core) late(g *group, done time.Time) string {
	var out []string
	for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
		m := g.systems[serial]
		if m.armedAtFreeze {
			continue
		}
		if m.contactAtFreeze.IsZero() {
			out = append(out, fmt.Sprintf("%s: the freeze was taken up after the manager restarted, "+
				"so nothing is known of the time before", serial))
			continue
		}
		if limit := m.contactAtFreeze.Add(g.LowestCG); done.After(limit) {
			out = append(out, fmt.Sprintf("%s was out of contact from %s, and its writes may have been released from %s on",
				serial, m.contactAtFreeze.Format(time.RFC3339), limit.Format(time.RFC3339)))
		}
	}
	return strings.Join(out, "; ")
}

func (c *Core) release(waiters []chan error, err error) {
	for _, w := range waiters {
		w <- err
	}
}

func (c *Core) memberStates(g *group) map[string]SystemFreeze {
	out := make(map[string]SystemFreeze, len(g.systems))
	for serial, m := range g.systems {
		// A system is known frozen by its heartbeat if it is armed (the
		// heartbeat on) or stale: a heartbeat it holds expires whether or
		// not the core still wants it.
		out[string(serial)] = SystemFreeze{Acked: m.acked, Armed: m.armed && c.heartbeat || m.stale && m.armH > 0,
			LastSent: m.lastSent, H: m.armH}
	}
	return out
}

func (c *Core) unacked(g *group) []string {
	var out []string
	for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
		if !g.systems[serial].acked {
			out = append(out, string(serial))
		}
	}
	return out
}

// retryFreezes sends the freeze again to every system that has not
// acknowledged it, while its group is not thawed.
func (c *Core) retryFreezes() {
	for _, g := range c.sortedGroups() {
		if g.phase != Freezing && g.phase != Partial && g.phase != Frozen {
			continue
		}
		for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
			c.sendFreeze(g, serial, false, nil)
			if m := g.systems[serial]; m.stale && m.acked && !m.disarming {
				c.disarm(g, []hal.Serial{serial}) // frozen: its heartbeat must not hold it again after a thaw
			}
		}
	}
}

// onTick runs the heartbeat and the time-driven rules.
func (c *Core) onTick() {
	now := c.clock.Now()
	for _, g := range c.sortedGroups() {
		switch g.phase {
		case Freezing, Partial:
			c.evaluate(g)
		case Thawed:
			c.staleHolds(g, now)
			c.thawProgress(g)
		case Mirroring:
			c.checkStale(g, now)
			if g.phase == Mirroring && c.beats(g) && g.hErr == nil {
				c.heartbeatGroup(g, now)
			}
			if g.phase == Mirroring {
				c.checkContact(g, now)
			}
		}
	}
}

// noteLate records that the core itself was late at now: the silence of
// a storage system measured across it proves nothing (Judge).
func (c *Core) noteLate(now time.Time, what string) {
	if !c.lateAt.Equal(now) {
		c.log.Warn("the freeze core itself was late: silence measured across it is re-checked, not frozen on",
			"what", what)
	}
	c.lateAt = now
}

// heartbeatGroup refreshes the heartbeat of a mirroring group and applies
// the heartbeat rule (Judge) to each armed system.
func (c *Core) heartbeatGroup(g *group, now time.Time) {
	for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
		m := g.systems[serial]
		if !m.armed {
			// Silence from a system whose heartbeat is not armed is no
			// reason to freeze: it would not freeze itself, so freezing
			// the others would only let their CG timeouts release writes
			// while it still mirrors. It stays unprotected until armed.
			if Doubtful(now, m.lastReply, c.t.DetectionWindow) && !m.unprotected {
				m.unprotected = true
				why := m.armErr
				if why == "" {
					why = "no answer to the arm within the detection window"
				}
				c.log.Error("heartbeat cannot be armed: this storage system is not protected by it",
					"group", g.Name, "serial", serial, "why", why)
				if ho, ok := c.observer.(HeartbeatObserver); ok {
					ho.SystemUnprotected(g.Name, serial, why)
				}
			}
			if !m.probing {
				c.arm(g, serial, m, now)
			}
			continue
		}
		if m.heartbeatOut {
			// A heartbeat that left late, or has not left yet, is the
			// core's lateness: the silence it would have broken is not
			// the storage system's.
			switch left := m.hbStarted.Load(); {
			case left == 0 && RanLate(m.lastSent, now, c.t):
				c.noteLate(now, fmt.Sprintf("a heartbeat to %s planned %v ago has not left yet", serial, now.Sub(m.lastSent)))
			case left != 0 && RanLate(m.lastSent, time.Unix(0, left), c.t):
				c.noteLate(now, fmt.Sprintf("a heartbeat to %s left %v after it was planned", serial, time.Unix(0, left).Sub(m.lastSent)))
			}
		}
		silence := now.Sub(m.lastReply)
		switch Judge(now, m.lastReply, m.ackedSent, c.lateAt, g.h, c.t) {
		case Silent:
			c.freeze(g, fmt.Sprintf("no heartbeat reply from %s for %v", serial, silence))
			return
		case MayHaveExpired:
			c.freeze(g, fmt.Sprintf("no heartbeat reply from %s for %v, and its last acknowledged heartbeat + H (%v) has passed: "+
				"it may have frozen itself", serial, silence, g.h))
			return
		case Recheck:
			c.log.Info("no heartbeat reply within the detection window, but the core itself was late: re-checking",
				"group", g.Name, "serial", serial, "silence", silence)
		}
		if m.heartbeatOut {
			continue
		}
		c.sendHeartbeat(g, serial, m, now)
	}
}

// sendHeartbeat sends one heartbeat and judges its answer. Its deadline
// runs from lastSent (async), so it reaches the system by lastSent +
// request timeout or not at all: SafeAt holds however late it leaves. The goroutine
// stamps when it really left and when the answer came: under CPU
// starvation those differ from the loop's own times, and the difference
// is the core's lateness, not the storage system's silence.
func (c *Core) sendHeartbeat(g *group, serial hal.Serial, m *member, now time.Time) {
	started := new(atomic.Int64)
	var doneAt time.Time
	m.heartbeatOut, m.lastSent, m.hbStarted = true, now, started
	epoch, name, timeout := c.epoch, g.Name, c.t.RequestTimeout
	c.async(serial, func(ctx context.Context, sys hal.StorageSystem) error {
		started.Store(c.clock.Now().UnixNano())
		err := sys.Heartbeat(ctx, epoch, name)
		doneAt = c.clock.Now()
		return err
	}, func(err error) {
		m.heartbeatOut = false
		handled := c.clock.Now()
		if doneAt.IsZero() {
			doneAt = handled // not sent at all (fenced, or no such system)
		}
		left := time.Unix(0, started.Load())
		if started.Load() == 0 {
			left = doneAt
		}
		late := ""
		switch {
		case RanLate(now, left, c.t):
			late = fmt.Sprintf("a heartbeat to %s left %v after it was planned", serial, left.Sub(now))
		case err != nil && RanLate(now.Add(timeout), doneAt, c.t):
			late = fmt.Sprintf("a heartbeat to %s failed %v after it was issued, its timeout being %v", serial, doneAt.Sub(now), timeout)
		case RanLate(doneAt, handled, c.t):
			late = fmt.Sprintf("the answer of a heartbeat to %s was handled %v after it came", serial, handled.Sub(doneAt))
		}
		if late != "" {
			c.noteLate(handled, late)
		}
		if g.phase != Mirroring || g.systems[serial] != m {
			return // frozen meanwhile, or the group was replaced
		}
		switch {
		case err == nil:
			m.lastReply, m.ackedSent = doneAt, left
			c.contactOK(g, m, doneAt)
		case errors.Is(err, hal.ErrHeartbeatExpired):
			// Its own word that it froze itself: freeze the group. It
			// counts as frozen once it acknowledges that freeze, like any
			// system: the heartbeat's answer covers the pairs it was armed
			// with, the freeze covers the group's pairs now.
			c.reportExpired(g, serial, m, "heartbeat")
			c.freeze(g, fmt.Sprintf("%s reports its heartbeat expired", serial))
		default:
			c.log.Warn("heartbeat failed", "group", g.Name, "serial", serial, "err", err)
			if late == "" {
				c.contactFailed(g, serial, m, err)
			}
		}
	})
}

// arm arms the heartbeat of a group on one of its systems. While another
// heartbeat command to that system for the group is out, it is not
// sent: once that one is answered, the arm is tried again (armAgain).
func (c *Core) arm(g *group, serial hal.Serial, m *member, now time.Time) {
	if m.arming || g.hErr != nil || g.NoHeartbeat {
		return
	}
	if lane := c.hbOut[hbKey{serial, g.Name}]; lane != nil {
		lane.armHeld = true
		return
	}
	m.arming, m.lastSent = true, now
	spec := hal.HeartbeatSpec{Session: g.Name, Pairs: g.Pairs[serial], Timeout: g.h}
	var doneAt time.Time
	var left atomic.Int64
	c.heartbeatCommand(serial, g.Name, func(ctx context.Context, sys hal.StorageSystem, epoch hal.Epoch) error {
		left.Store(c.clock.Now().UnixNano())
		err := sys.EnableHeartbeat(ctx, epoch, spec)
		doneAt = c.clock.Now()
		return err
	}, func(err error) {
		m.arming = false
		if err != nil {
			m.armErr = err.Error()
			c.log.Warn("heartbeat not armed", "group", g.Name, "serial", serial, "err", err)
			return
		}
		if cur := g.systems[serial]; cur != m {
			// The group was started again meanwhile (a new member), or
			// the system left it (its disarm waits for this answer).
			// The system holds this arm until its successor's arm
			// replaces it: stale until then.
			if cur != nil && !cur.armed {
				cur.stale, cur.armH, cur.ackedSent, cur.staleBy = true, spec.Timeout, time.Unix(0, left.Load()), time.Time{}
			}
			return
		}
		// Armed on storage now, whatever the core decided meanwhile.
		m.armH, m.ackedSent, m.stale = spec.Timeout, time.Unix(0, left.Load()), false
		if g.phase == Mirroring && c.beats(g) && g.hErr == nil && g.h == spec.Timeout {
			if m.unprotected {
				c.log.Info("heartbeat armed: this storage system is protected by it again", "group", g.Name, "serial", serial)
				if ho, ok := c.observer.(HeartbeatObserver); ok {
					ho.SystemUnprotected(g.Name, serial, "")
				}
			}
			m.armed, m.unprotected, m.lastReply, m.armErr, m.expired = true, false, doneAt, "", false
			c.contactOK(g, m, doneAt)
			return
		}
		// Switched off, frozen, or new timings meanwhile: this arm is
		// stale; disarmed (or armed again at the next tick).
		m.armed = true
		if g.phase == Mirroring && c.beats(g) && g.hErr == nil {
			m.unarm()
			return
		}
		c.disarm(g, []hal.Serial{serial})
	})
}

// hbKey names the heartbeat a storage system holds for a group (the
// group's name is the heartbeat's session).
type hbKey struct {
	serial hal.Serial
	group  string
}

// hbLane is what waits for the heartbeat command out for an hbKey: the
// commands asked for since, in order, and whether an arm was held back.
type hbLane struct {
	waiting []func()
	armHeld bool
}

// heartbeatCommand sends a command that sets, or asks for, the heartbeat
// serial holds for a group: an arm, a disarm, or a probe. Such commands
// reach a system one at a time, each after the answer to the one before
// (an answer, a timeout too, means the command will not be carried out
// later: the storage drops a request past its deadline). Sent side by
// side, the system could carry them out in another order than the core
// sent them, and hold what the core does not think it holds: no
// heartbeat while the core refreshes one (the refreshes refused, and the
// group frozen on a system that was fine: a disarm after a freeze,
// carried out after the arm of a restart), or one that nobody refreshes
// (a self-freeze nobody follows). One asked for while another is out is
// sent once that one is answered; then, none waiting, an arm held back
// meanwhile is tried again at once (armAgain). fn gets the epoch current
// when it is sent.
func (c *Core) heartbeatCommand(serial hal.Serial, group string, fn func(ctx context.Context, sys hal.StorageSystem, epoch hal.Epoch) error, done func(err error)) {
	k := hbKey{serial, group}
	send := func() {
		epoch := c.epoch
		c.async(serial, func(ctx context.Context, sys hal.StorageSystem) error { return fn(ctx, sys, epoch) }, func(err error) {
			done(err)
			c.heartbeatAnswered(k)
		})
	}
	if lane := c.hbOut[k]; lane != nil {
		lane.waiting = append(lane.waiting, send)
		return
	}
	c.hbOut[k] = &hbLane{}
	send()
}

// heartbeatAnswered sends the next heartbeat command waiting for k, or,
// none waiting, the arm held back meanwhile, if the group is still to be
// armed there.
func (c *Core) heartbeatAnswered(k hbKey) {
	lane := c.hbOut[k]
	if len(lane.waiting) == 0 {
		delete(c.hbOut, k)
		if lane.armHeld {
			c.armAgain(k)
		}
		return
	}
	next := lane.waiting[0]
	lane.waiting = lane.waiting[1:]
	next()
}

// armAgain arms a system of a mirroring group whose arm was held back
// while another heartbeat command was out, as the next tick would, now.
func (c *Core) armAgain(k hbKey) {
	g := c.groups[k.group]
	if g == nil || g.phase != Mirroring || !c.beats(g) || g.hErr != nil {
		return
	}
	if m := g.systems[k.serial]; m != nil && !m.armed && !m.arming && !m.probing {
		c.arm(g, k.serial, m, c.clock.Now())
	}
}

// contactOK: the system answered at at.
func (c *Core) contactOK(g *group, m *member, at time.Time) {
	if at.After(m.lastContact) {
		m.lastContact = at
	}
	if m.lost != "" {
		m.lost = ""
		c.checkContact(g, c.clock.Now())
	}
}

// contactFailed: a command to the system failed while its group mirrors.
func (c *Core) contactFailed(g *group, serial hal.Serial, m *member, err error) {
	first := m.lost == ""
	m.lost = err.Error()
	if first {
		c.checkContact(g, c.clock.Now())
	}
}

// checkContact reports the systems of a mirroring group that the core
// cannot reach, and those out of contact longer than the lowest CG
// timeout (ContactLost), when that changes.
func (c *Core) checkContact(g *group, now time.Time) {
	ct := Contact{At: now}
	for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
		if m := g.systems[serial]; m.lost != "" {
			ct.Lost = append(ct.Lost, Lost{Serial: serial, Since: m.lastContact, Why: m.lost,
				Severe: ContactLost(now, m.lastContact, g.LowestCG)})
		}
	}
	c.reportContact(g.Name, ct)
}

// unarm stops judging a system by the heartbeat rule (to arm it again
// with new pairs or timings, or to disarm it). It may still hold its
// armed heartbeat and freeze itself with it: it is stale until a new arm
// or a disarm is acknowledged. Mirroring, that is a freeze to follow
// (checkStale); frozen, it is a hold that may begin again after a thaw,
// for a CG timeout from the expiry (thawProgress).
func (m *member) unarm() {
	if m.armed {
		m.stale = true
	}
	m.armed = false
}

// disarm switches the heartbeat off on systems of a group. A system
// whose disarm is not acknowledged may still freeze itself when its
// heartbeat expires: it stays stale, the disarm is sent again, and if its
// expiry comes first the core freezes its group as it would on a
// heartbeat rule (checkStale): a self-freeze nobody follows would let
// the others mirror on after its CG timeout released its held writes
// (found by the admin schedules: heartbeat off while a system was
// black-holed, seed 49).
func (c *Core) disarm(g *group, serials []hal.Serial) {
	if g.NoHeartbeat {
		return // never armed: no heartbeat command for its pairs, not even a disarm
	}
	for _, serial := range serials {
		name := g.Name
		m := g.systems[serial]
		if m != nil {
			m.unarm()
			if m.disarming || m.disarmAfterProbe {
				continue
			}
			if m.probing {
				// The disarm deletes the heartbeat a previous manager
				// armed there, and with it the system's word that it
				// expired: sent beside the probe, whichever reached the
				// system first would decide whether its self-freeze is
				// learnt. It waits for the probe's answer.
				m.disarmAfterProbe = true
				continue
			}
			m.disarming = true
		}
		c.heartbeatCommand(serial, name, func(ctx context.Context, sys hal.StorageSystem, epoch hal.Epoch) error {
			return sys.DisableHeartbeat(ctx, epoch, name)
		}, func(err error) {
			if m != nil {
				m.disarming = false
			}
			if err != nil {
				c.log.Info("heartbeat not disarmed", "group", name, "serial", serial, "err", err)
				return
			}
			// The system holds no heartbeat of the group now, and no arm
			// was sent after this disarm (heartbeatCommand): that is true
			// of the member the system has in the group now, too, if the
			// group was started again meanwhile.
			cur := g.systems[serial]
			if cur == nil {
				cur = m
			}
			if cur != nil && !cur.armed && !cur.arming && cur.stale {
				cur.stale = false
				// Acknowledged only after its heartbeat may have expired:
				// that expiry may have held its writes again after a thaw.
				if cur.released && g.phase == Thawed && g.systems[serial] == cur && !c.clock.Now().Before(cur.ackedSent.Add(cur.armH)) {
					cur.released = false
					c.thawUnprompted(g)
				}
			}
		})
	}
}

// checkStale applies the heartbeat rule to the systems of a mirroring
// group that may still hold a heartbeat the core no longer refreshes: at
// its last acknowledged heartbeat + the H it was armed with, it may have
// frozen itself, and the group is frozen. Until then the disarm is sent
// again, unless the heartbeat will arm it anew.
func (c *Core) checkStale(g *group, now time.Time) {
	rearm := c.beats(g) && g.hErr == nil
	for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
		m := g.systems[serial]
		if !m.stale {
			continue
		}
		switch {
		case m.armH == 0 && !m.staleBy.IsZero() && !now.Before(m.staleBy):
			m.stale = false // certainly expired by now, if it existed
			continue
		case m.armH == 0 && Doubtful(now, m.lastReply, c.t.DetectionWindow) &&
			!(c.lateAt.After(m.lastReply) && !Doubtful(now, c.lateAt, c.t.DetectionWindow)):
			// (The core's own lateness within the window is re-checked,
			// as the heartbeat rule does.)
			// When it expires is unknown: as for an armed system, a
			// detection window without an answer is a possible freeze.
			c.freeze(g, fmt.Sprintf("%s may hold a heartbeat armed before this manager started, neither armed anew "+
				"nor disarmed for %v: it may freeze itself", serial, now.Sub(m.lastReply)))
			return
		case m.armH > 0 && !now.Before(m.ackedSent.Add(m.armH)):
			c.freeze(g, fmt.Sprintf("%s may have frozen itself: its heartbeat, no longer refreshed, was not known disarmed "+
				"by its last acknowledged heartbeat + H (%v)", serial, m.armH))
			return
		}
		if !rearm && !m.disarming {
			c.disarm(g, []hal.Serial{serial})
		}
	}
}

// poll queries every system's pairs: a suspended source pair of a
// mirroring group is a sign like an event. An answer is contact with the
// system; a failure (unless the core itself was late) is loss of it.
func (c *Core) poll() {
	for _, serial := range slices.Sorted(maps.Keys(c.systems)) {
		epoch, planned, timeout := c.epoch, c.clock.Now(), c.t.RequestTimeout
		c.polls++
		seq := c.polls
		var pairs []hal.PairStatus
		var left, doneAt time.Time
		c.async(serial, func(ctx context.Context, sys hal.StorageSystem) error {
			left = c.clock.Now()
			var err error
			pairs, err = sys.QueryPairs(ctx, epoch)
			doneAt = c.clock.Now()
			return err
		}, func(err error) {
			now := c.clock.Now()
			if err != nil {
				if !left.IsZero() && (RanLate(planned, left, c.t) || RanLate(planned.Add(timeout), doneAt, c.t) ||
					RanLate(doneAt, now, c.t)) {
					c.noteLate(now, fmt.Sprintf("a poll of %s failed (%v) while the core was late", serial, err))
					return
				}
				c.log.Debug("poll failed", "serial", serial, "err", err)
				for _, g := range c.sortedGroups() {
					if m := g.systems[serial]; m != nil && g.phase == Mirroring {
						c.contactFailed(g, serial, m, err)
					}
				}
				return
			}
			for _, p := range pairs {
				if p.Source.Serial != serial {
					continue
				}
				for _, g := range c.byLSSPair[p.LSSPair()] {
					if seq <= g.watchFrom {
						continue // planned before the group's watch grew: stale for it
					}
					switch {
					case p.State.Mirroring():
						if g.phase == Mirroring && g.dormant[p.Source] {
							g.seen[p.Source] = true // from now on its suspension is a sign
						}
					case p.State == hal.Suspended && g.sign(p.Source):
						if m := g.systems[serial]; m != nil && p.Reason == hal.ReasonHeartbeatExpiry {
							// The system froze itself. Its word for it (the
							// answer to a heartbeat) may be gone: a probe
							// that found it unreachable, then a disarm,
							// deletes it. The pair's reason stays.
							c.reportExpired(g, serial, m, "poll")
						}
						c.freeze(g, fmt.Sprintf("poll: pair %s suspended (%s)", p.VolumePair, p.Reason))
					}
				}
			}
			// Only now, after any freeze it started took the contact
			// before it: the system was fine for the groups still mirroring.
			for _, g := range c.sortedGroups() {
				if m := g.systems[serial]; m != nil && g.phase == Mirroring {
					c.contactOK(g, m, left)
				}
			}
			c.polledOnce(serial)
		})
	}
}

// Freeze freezes a group on command (the session's suspend) and waits for
// the first fan-out. It answers nil when every system acknowledged or is
// known frozen, else an error naming the systems that are not.
func (c *Core) Freeze(ctx context.Context, name, reason string) error {
	return c.await(ctx, name, func(g *group, wait chan error) error {
		if c.fenced {
			return ErrFenced
		}
		switch g.phase {
		case Mirroring:
			c.freeze(g, reason)
			g.waiters = append(g.waiters, wait)
		case Freezing:
			g.waiters = append(g.waiters, wait)
		case Partial:
			wait <- fmt.Errorf("freeze of %s not acknowledged by %s", g.Name, strings.Join(c.unacked(g), ", "))
		default:
			wait <- nil
		}
		return nil
	})
}

// Thaw releases I/O of a frozen group (release-io) if the thaw rule
// allows it, and answers ErrNotSafe, saying why, if not. It answers nil
// once every storage system of the group acknowledged the thaw or its
// hold has certainly ended (HoldEnds); else an error naming those that
// may still hold host writes, and until when. Called again, it sends the
// thaw again to those.
func (c *Core) Thaw(ctx context.Context, name string) error {
	return c.await(ctx, name, func(g *group, wait chan error) error {
		if g.phase == Mirroring {
			return fmt.Errorf("%w: %s is not frozen", ErrNotSafe, name)
		}
		if serial, other := c.unpolledShare(g); serial != "" {
			// As for the core's own thaws (thawUnprompted): the mirroring
			// group's system may hold writes it suspended on its own
			// while no manager was there.
			return fmt.Errorf("%w: %s shares an LSS of %s with mirroring group %s, which this manager has not polled since it started; run release-io again once it has (within %s)",
				ErrNotSafe, name, serial, other, c.t.PollInterval)
		}
		if g.phase == Thawed {
			c.thaw(g, wait)
			return nil
		}
		certain, at := Certainty(c.clock.Now(), c.memberStates(g), true, g.h, c.t.RequestTimeout)
		if !certain {
			why := "no freeze acknowledged and the heartbeat cannot vouch for them"
			if !at.IsZero() {
				why = fmt.Sprintf("they are known frozen only from %s on (last heartbeat + H + request timeout)",
					at.Format(time.RFC3339Nano))
			}
			return fmt.Errorf("%w: %s may still be mirroring: %s", ErrNotSafe, strings.Join(c.unacked(g), ", "), why)
		}
		c.thaw(g, wait)
		return nil
	})
}

// await runs start in the loop for the named group; start either answers
// at once (its error) or hands wait to whatever will answer later.
func (c *Core) await(ctx context.Context, name string, start func(g *group, wait chan error) error) error {
	wait := make(chan error, 1)
	if err := c.do(ctx, func() error {
		g := c.groups[name]
		if g == nil {
			return fmt.Errorf("%w: %s", ErrUnknownGroup, name)
		}
		return start(g, wait)
	}); err != nil {
		return err
	}
	select {
	case err := <-wait:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// thaw ends ELB on every source LSS of a group whose freeze is certain,
// or, for a group already thawed, on the systems that have not
// acknowledged it yet. wait (if any) is answered by thawProgress once
// every thaw sent answered.
func (c *Core) thaw(g *group, wait chan error) {
	if c.groups[g.Name] != g {
		// A late answer (a probe, a disarm) of a group that left the
		// core: what holds its LSSs now is the business of the groups
		// here, which judge it themselves.
		if wait != nil {
			c.release([]chan error{wait}, fmt.Errorf("%w: %s left the core", ErrUnknownGroup, g.Name))
		}
		return
	}
	if g.phase != Thawed {
		g.phase = Thawed
		c.log.Info("thawing consistency group", "group", g.Name)
	}
	if wait != nil {
		g.thawWait = append(g.thawWait, wait)
	}
	for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
		m := g.systems[serial]
		if m.released || m.thawing {
			continue
		}
		if m.freezing {
			// A freeze out (a retry to a system known frozen only by
			// its heartbeat's expiry) may be carried out after a thaw
			// sent beside it, and hold writes again for a CG timeout
			// while the group is said thawed: the thaw follows its
			// answer (sendFreeze).
			continue
		}
		var lsss []hal.LSS
		var blocked []string
		for _, l := range sourceLSSs(g.Pairs[serial]) {
			if by := c.heldBy(g, hal.LSSRef{Serial: serial, LSS: l}); by != "" {
				blocked = append(blocked, fmt.Sprintf("LSS %s is also held by group %s", l, by))
				continue
			}
			lsss = append(lsss, l)
		}
		m.blocked = strings.Join(blocked, ", ")
		if len(lsss) == 0 {
			continue
		}
		m.thawing = true
		epoch := c.epoch
		c.async(serial, func(ctx context.Context, sys hal.StorageSystem) error { return sys.Thaw(ctx, epoch, lsss) }, func(err error) {
			m.thawing = false
			if g.systems[serial] != m {
				return // the group was started again meanwhile
			}
			if err != nil {
				c.log.Warn("thaw not acknowledged: the system may hold writes until its CG timeout ends",
					"group", g.Name, "serial", serial, "err", err)
			}
			if m.thawErr = err; err == nil && m.blocked == "" {
				m.released = true
			}
			c.thawProgress(g)
		})
	}
	c.thawProgress(g)
}

// staleHolds follows the systems of a thawed group whose heartbeat is not
// known disarmed: its expiry would hold their writes again, for a CG
// timeout (the group is not reported thawed meanwhile). The disarm is
// sent again; once the expiry has certainly happened (or the disarm
// landed), the thaw is sent again where it had been acknowledged.
func (c *Core) staleHolds(g *group, now time.Time) {
	again := false
	for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
		m := g.systems[serial]
		if !m.stale {
			continue
		}
		expired := !now.Before(SafeAt(m.lastSent, m.armH, c.t.RequestTimeout))
		if m.armH == 0 {
			expired = !m.staleBy.IsZero() && !now.Before(m.staleBy)
		}
		if expired {
			m.stale = false // expired by now, if it was still armed: it holds again, if at all, from then
			if m.released {
				m.released, again = false, true
			}
			continue
		}
		if !m.disarming {
			c.disarm(g, []hal.Serial{serial})
		}
	}
	if again {
		c.thaw(g, nil)
	}
}

// heldBy names another group that holds the source LSS ref: one that is
// being frozen, partially frozen, or frozen and not thawed. A thaw of g
// must not end its hold there (ELB is the LSS's, whoever started it):
// that would let writes go on unmirrored while that group's other
// systems may still mirror, or end a hold its admin kept. "" if none.
func (c *Core) heldBy(g *group, ref hal.LSSRef) string {
	for _, o := range c.sortedGroups() {
		if o == g || o.phase == Mirroring || o.phase == Thawed {
			continue
		}
		if slices.ContainsFunc(o.Pairs[ref.Serial], func(lp hal.LSSPair) bool { return lp.Source == ref }) {
			return fmt.Sprintf("%s (%s)", o.Name, o.phase)
		}
	}
	return ""
}

// thawProgress answers the thaw's callers once no thaw is out, and tells
// the observer once no system can still hold writes.
func (c *Core) thawProgress(g *group) {
	if g.phase != Thawed {
		return
	}
	now := c.clock.Now()
	var holding []string
	for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
		m := g.systems[serial]
		if (m.thawing || m.freezing) && len(g.thawWait) > 0 {
			return // answer once every thaw sent, or to follow a freeze out, answered
		}
		if m.released && !m.stale {
			continue
		}
		if m.blocked != "" {
			// The other group's hold may last longer than ours: held
			// until this group's thaw reaches those LSSs too.
			holding = append(holding, fmt.Sprintf("%s: %s; its thaw follows when that group's hold ends", serial, m.blocked))
			continue
		}
		h := m.armH
		if h == 0 {
			h = g.h
		}
		end, known := HoldEnds(Hold{LastFreezeSent: m.lastFreezeSent, Armed: m.armedAtFreeze || m.stale,
			LastHeartbeatSent: m.lastSent, HighestCG: g.HighestCG[serial]}, h, c.t.RequestTimeout)
		switch {
		case known && !now.Before(end):
			continue // its hold has certainly ended
		case known:
			holding = append(holding, fmt.Sprintf("%s (%v) holds I/O until %s at the latest, when its CG timeout ends",
				serial, m.thawErr, end.Format(time.RFC3339)))
		default:
			holding = append(holding, fmt.Sprintf("%s (%v) holds I/O until it is reached or its CG timeout ends",
				serial, m.thawErr))
		}
	}
	var out error
	if len(holding) > 0 {
		out = fmt.Errorf("thaw of %s: not reached: %s; run release-io again to retry", g.Name, strings.Join(holding, "; "))
	}
	// The observer hears first, then the callers (see evaluate).
	wait := g.thawWait
	g.thawWait = nil
	if out == nil && !g.released {
		g.released = true
		c.log.Info("consistency group thawed: no storage system holds its writes", "group", g.Name)
		if c.observer != nil {
			c.observer.Thawed(g.Name, now)
		}
		// Groups whose thaw this one's hold kept from shared LSSs.
		for _, o := range c.sortedGroups() {
			if o != g && o.phase == Thawed && slices.ContainsFunc(slices.Collect(maps.Values(o.systems)),
				func(m *member) bool { return m.blocked != "" && !m.thawing }) {
				c.thaw(o, nil)
			}
		}
	}
	c.release(wait, out)
}

func sourceLSSs(pairs []hal.LSSPair) []hal.LSS {
	seen := map[hal.LSS]bool{}
	var out []hal.LSS
	for _, lp := range pairs {
		if !seen[lp.Source.LSS] {
			seen[lp.Source.LSS] = true
			out = append(out, lp.Source.LSS)
		}
	}
	slices.Sort(out)
	return out
}

// GroupStatus is a group as the core sees it.
type GroupStatus struct {
	Name   string
	Phase  Phase
	Reason string
	Since  time.Time
	H      time.Duration
	// Unprotected says why the heartbeat, though on, does not protect
	// the group ("" when it does, or is off).
	Unprotected string
	// NoHeartbeat: the group is of a type the heartbeat does not cover
	// (Group.NoHeartbeat).
	NoHeartbeat bool
	Systems     []MemberStatus
}

// MemberStatus is one source system of a group.
type MemberStatus struct {
	Serial hal.Serial
	// Pairs are the system's LSS pairs in the group: what a freeze of the
	// group sends it, the scope the core protects there.
	Pairs     []hal.LSSPair
	Acked     bool
	Armed     bool
	LastSent  time.Time
	LastReply time.Time
	// Lost is the last failure to reach it while the group mirrors (""
	// while in contact); LastContact is when it last answered.
	Lost        string
	LastContact time.Time
	// Released: it acknowledged the thaw of a thawed group.
	Released bool
}

// Status reports every group.
func (c *Core) Status(ctx context.Context) ([]GroupStatus, error) {
	var out []GroupStatus
	err := c.do(ctx, func() error {
		for _, g := range c.sortedGroups() {
			gs := GroupStatus{Name: g.Name, Phase: g.phase, Reason: g.reason, Since: g.since, H: g.h, NoHeartbeat: g.NoHeartbeat,
				Unprotected: c.unprotected[g.Name]}
			for _, serial := range slices.Sorted(maps.Keys(g.systems)) {
				m := g.systems[serial]
				gs.Systems = append(gs.Systems, MemberStatus{Serial: serial, Pairs: slices.Clone(g.Pairs[serial]),
					Acked: m.acked, Armed: m.armed, LastSent: m.lastSent, LastReply: m.lastReply, Lost: m.lost,
					LastContact: m.lastContact, Released: m.released})
			}
			out = append(out, gs)
		}
		return nil
	})
	return out, err
}
