package freeze_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// heartbeatObserver records the core's per-system heartbeat reports.
type heartbeatObserver struct {
	freezeCounter
	mu      sync.Mutex
	expired []expiry
	unprot  []string // serial + ": " + why
}

type expiry struct {
	group  string
	serial hal.Serial
	pairs  int
	hold   time.Duration
	source string
}

func (o *heartbeatObserver) HeartbeatExpired(group string, serial hal.Serial, pairs []hal.LSSPair, hold time.Duration, source string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expired = append(o.expired, expiry{group, serial, len(pairs), hold, source})
}

func (o *heartbeatObserver) SystemUnprotected(_ string, serial hal.Serial, why string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unprot = append(o.unprot, string(serial)+": "+why)
}

func (o *heartbeatObserver) reports() ([]expiry, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.expired), slices.Clone(o.unprot)
}

// TestHeartbeatExpiryIsReportedOncePerSystem: the manager stops with the
// heartbeat armed and stays away longer than H, so both primaries freeze
// themselves. The manager that starts again learns it from each (its
// probe, and maybe their events) and reports each expiry once, with the
// pairs frozen there and how long the hold lasts (the system's CG
// timeout in the group).
func TestHeartbeatExpiryIsReportedOncePerSystem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, _, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		g := freeze.Group{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: 10 * time.Second,
			HighestCG: map[hal.Serial]time.Duration{p1: 10 * time.Second, p2: 12 * time.Second}}
		diedArmed(t, ctx, conns, g, 10*time.Second) // longer than H: both froze themselves

		obs := &heartbeatObserver{}
		core := runCore(t, ctx, freeze.Options{Systems: conns, Heartbeat: true, Observer: obs})
		if err := core.SetGroups(ctx, []freeze.Group{g}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second) // many ticks, polls and retries
		expired, _ := obs.reports()
		want := []expiry{{"cg", p1, len(g.Pairs[p1]), 10 * time.Second, "probe"}, {"cg", p2, len(g.Pairs[p2]), 12 * time.Second, "probe"}}
		slices.SortFunc(expired, func(a, b expiry) int { return strings.Compare(string(a.serial), string(b.serial)) })
		if !slices.Equal(expired, want) {
			t.Fatalf("expiries reported %+v, want %+v (once per system)", expired, want)
		}
	})
}

// refusingArm is a system that answers everything but refuses to arm a
// heartbeat while refuse is set.
type refusingArm struct {
	hal.StorageSystem
	refuse *atomic.Bool
}

func (r refusingArm) EnableHeartbeat(ctx context.Context, e hal.Epoch, spec hal.HeartbeatSpec) error {
	if r.refuse.Load() {
		return fmt.Errorf("%w: enable-heartbeat: not licensed (test)", hal.ErrRefused)
	}
	return r.StorageSystem.EnableHeartbeat(ctx, e, spec)
}

// TestSystemUnprotectedOncePerChange: the heartbeat switched on, a primary
// that refuses the arm is not protected by the heartbeat: once a
// detection window has passed it is reported unprotected, once, however
// many ticks follow; armed at last, it is reported protected, once.
func TestSystemUnprotectedOncePerChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, _, conns := establishedLab(t, ctx)
		p2 := topology.PrimarySerial(1)
		refuse := new(atomic.Bool)
		refuse.Store(true)
		conns[p2] = refusingArm{conns[p2], refuse}
		obs := &heartbeatObserver{}
		core := runCore(t, ctx, freeze.Options{Systems: conns, Observer: obs})
		if err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: 10 * time.Second}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if err := core.SetHeartbeat(ctx, true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(phaseTimings.DetectionWindow / 2)
		if _, unprot := obs.reports(); len(unprot) != 0 {
			t.Fatalf("reported %q before a detection window passed", unprot)
		}
		time.Sleep(30 * time.Second) // 60 ticks
		_, unprot := obs.reports()
		if len(unprot) != 1 || !strings.HasPrefix(unprot[0], string(p2)+": ") || !strings.Contains(unprot[0], "not licensed") {
			t.Fatalf("reports %q, want %s unprotected once, with why", unprot, p2)
		}
		refuse.Store(false)
		time.Sleep(10 * time.Second)
		if _, unprot = obs.reports(); len(unprot) != 2 || unprot[1] != string(p2)+": " {
			t.Fatalf("reports %q, want %s protected again, once", unprot, p2)
		}
		if st := groupStatus(t, core, "cg"); st.Phase != freeze.Mirroring {
			t.Fatalf("phase %s: an unarmed system's silence froze the group", st.Phase)
		}
	})
}

// unreachableProbe is a system whose first heartbeat (the restarted
// manager's probe) finds it unreachable, as when lockstepd starts before
// its connection is up.
type unreachableProbe struct {
	hal.StorageSystem
	once *sync.Once
}

func (u unreachableProbe) Heartbeat(ctx context.Context, e hal.Epoch, session string) error {
	err := fmt.Errorf("%w: not connected yet (test)", hal.ErrUnreachable)
	ran := false
	u.once.Do(func() { ran = true })
	if ran {
		return err
	}
	return u.StorageSystem.Heartbeat(ctx, e, session)
}

// TestExpiryLearntByThePollWhenTheProbeFails: a manager restarted after
// the systems froze themselves probes each system, but the probe of one
// finds it not yet connected; the group (timings that leave no safe H)
// is then disarmed there, which deletes the system's word that its
// heartbeat expired. Its pairs still say so: the poll that finds them
// suspended by heartbeat-expiry reports the expiry, once
// (TestEveryNotificationHasASender lost LS4001E so under load).
func TestExpiryLearntByThePollWhenTheProbeFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, _, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		g := freeze.Group{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: 10 * time.Second,
			HighestCG: map[hal.Serial]time.Duration{p1: 10 * time.Second, p2: 12 * time.Second}}
		diedArmed(t, ctx, conns, g, 10*time.Second) // longer than H: both froze themselves
		conns[p1] = unreachableProbe{conns[p1], &sync.Once{}}
		obs := &heartbeatObserver{}
		core := runCore(t, ctx, freeze.Options{Systems: conns, Heartbeat: true, Observer: obs})
		g.LowestCG = 4 * time.Second // no safe H: disarmed after the probe
		if err := core.SetGroups(ctx, []freeze.Group{g}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second) // several polls
		expired, _ := obs.reports()
		var from []string
		for _, e := range expired {
			from = append(from, fmt.Sprintf("%s by %s", e.serial, e.source))
		}
		slices.Sort(from)
		if len(from) != 2 || !strings.HasPrefix(from[0], string(p1)+" by poll") || !strings.HasPrefix(from[1], string(p2)+" by probe") {
			t.Fatalf("expiries reported: %q; want %s by the poll, %s by its probe, once each", from, p1, p2)
		}
	})
}

// deafToBeats is a system whose heartbeat commands (refresh and disarm)
// are lost once lost is set: its armed heartbeat runs out.
type deafToBeats struct {
	hal.StorageSystem
	lost *atomic.Bool
}

func (d deafToBeats) Heartbeat(ctx context.Context, e hal.Epoch, session string) error {
	if d.lost.Load() {
		return nil
	}
	return d.StorageSystem.Heartbeat(ctx, e, session)
}

func (d deafToBeats) DisableHeartbeat(ctx context.Context, e hal.Epoch, session string) error {
	if d.lost.Load() {
		return nil
	}
	return d.StorageSystem.DisableHeartbeat(ctx, e, session)
}

// TestExpiryEventOfAThawedGroupHoldsAndThawsAgain: a release-io group
// frozen and thawed while its heartbeat's disarm was lost on the way; the
// heartbeat runs out and the system freezes itself, holding writes, and
// says so in a pushed event. The core reported the expiry but, the group
// being thawed, did nothing else: its sessions said I/O released while
// the system held writes for its CG timeout (admin schedules, seed 169
// under load). Now the hold is reported, and the group thawed again, as
// when a probe learns it.
func TestExpiryEventOfAThawedGroupHoldsAndThawsAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, fab, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		lost := new(atomic.Bool)
		conns[p1] = deafToBeats{conns[p1], lost}
		obs := &freezeCounter{}
		core := runCore(t, ctx, freeze.Options{Systems: conns, Heartbeat: true, Observer: obs})
		g := freeze.Group{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: 10 * time.Second, ReleaseIO: true,
			HighestCG: map[hal.Serial]time.Duration{p1: 10 * time.Second, p2: 10 * time.Second}}
		if err := core.SetGroups(ctx, []freeze.Group{g}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // armed
		lost.Store(true)
		if err := core.Freeze(ctx, "cg", "test"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if st := groupStatus(t, core, "cg"); st.Phase != freeze.Thawed || held(t, fab, p1) {
			t.Fatalf("after the freeze of a release-io group: %s, held %v", st.Phase, held(t, fab, p1))
		}
		time.Sleep(8 * time.Second) // the heartbeat left armed on p1 runs out
		f, th := obs.counts()
		if f != 2 || th != 2 || held(t, fab, p1) {
			t.Fatalf("after p1's expiry: %d freezing, %d thawed reported, p1 held %v; want the hold reported and thawed again",
				f, th, held(t, fab, p1))
		}
	})
}
