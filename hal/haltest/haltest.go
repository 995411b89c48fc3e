package haltest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// The standard topology every Lab must build.
const (
	Primary   hal.Serial = "LAB.2107-75P0001"
	Secondary hal.Serial = "LAB.2107-75S0001"
	FBLSS     hal.LSS    = 0x10 // FB, default CG timeout (60 s)
	CKDLSS    hal.LSS    = 0x20 // CKD, default CG timeout (120 s)
	Volumes              = 2    // volumes per LSS
)

// Lab is one fresh instance of the standard topology.
type Lab struct {
	Primary, Secondary hal.StorageSystem
	// Write and Read are host I/O (Read sees the disks directly).
	Write func(ctx context.Context, vol hal.VolumeRef, block uint32, data []byte) error
	Read  func(vol hal.VolumeRef, block uint32) ([]byte, error)
	// CutPaths cuts (up=false) or restores every path of the primary.
	CutPaths func(up bool)
	// CutManager takes the manager's connections to the primary down or up.
	CutManager func(up bool)
	// Pass lets d of storage time pass (advances a fake clock, or sleeps
	// on a scaled one).
	Pass func(d time.Duration)
}

// LSSPair is the standard LSS pair for l, primary to secondary.
func LSSPair(l hal.LSS) hal.LSSPair {
	return hal.LSSPair{Source: hal.LSSRef{Serial: Primary, LSS: l}, Target: hal.LSSRef{Serial: Secondary, LSS: l}}
}

// Pair is the standard volume pair n of LSS l.
func Pair(l hal.LSS, n uint8) hal.VolumePair {
	return hal.VolumePair{
		Source: hal.VolumeRef{Serial: Primary, Volume: hal.NewVolume(l, n)},
		Target: hal.VolumeRef{Serial: Secondary, Volume: hal.NewVolume(l, n)},
	}
}

// Run runs the suite; newLab builds a fresh Lab for each test.
func Run(t *testing.T, newLab func(t *testing.T) *Lab) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c *checker)
	}{
		{"Identity", testIdentity},
		{"MirroredWrite", testMirroredWrite},
		{"FreezeIsIdempotentAndHolds", testFreeze},
		{"ThawEndsELB", testThaw},
		{"SuspendAndResync", testSuspendResync},
		{"PathFailureEvent", testPathFailureEvent},
		{"HeartbeatLifecycle", testHeartbeat},
		{"Fencing", testFencing},
		{"RefusalsAreSorted", testRefusals},
		{"UnreachableIsRetryable", testUnreachable},
		{"RecoverFailback", testRecoverFailback},
		{"RemovePairsLeavesSimplex", testRemovePairs},
		{"RemovePairsEverySide", testRemovePairsEverySide},
		{"RemovePaths", testRemovePaths},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &checker{t: t, lab: newLab(t), epoch: 1}
			c.setup()
			tc.fn(t, c)
		})
	}
}

type checker struct {
	t      *testing.T
	lab    *Lab
	epoch  hal.Epoch
	events <-chan hal.Event
}

func (c *checker) ctx() context.Context {
	// A bound on a hang, not a timing claim. The labs of the drivers'
	// suites run storage time 10x faster, and a request's deadline is
	// kept in storage time: 30 s here is 3 s of real time, which a
	// loaded CI machine can need for one relayed command (1 s did not).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c.t.Cleanup(cancel)
	return ctx
}

func (c *checker) must(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

// setup establishes paths (CG option) and all pairs, and waits until every
// pair is full-duplex.
func (c *checker) setup() {
	c.t.Helper()
	p := c.lab.Primary
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	ev, err := p.Events(ctx)
	c.must(err)
	c.events = ev
	c.must(p.EstablishPaths(c.ctx(), c.epoch, []hal.PathSpec{
		{LSSPair: LSSPair(FBLSS), ConsistencyGroup: true}, {LSSPair: LSSPair(CKDLSS), ConsistencyGroup: true}}))
	var specs []hal.PairSpec
	for _, l := range []hal.LSS{FBLSS, CKDLSS} {
		for n := range uint8(Volumes) {
			specs = append(specs, hal.PairSpec{VolumePair: Pair(l, n)})
		}
	}
	c.must(p.EstablishPairs(c.ctx(), c.epoch, specs))
	c.eventually("all pairs full-duplex", func() bool {
		ps := c.pairs(p)
		n := 0
		for _, s := range ps {
			if s.State == hal.FullDuplex {
				n++
			}
		}
		return n == 2*Volumes
	})
}

// eventually lets storage time pass in small steps until cond holds.
func (c *checker) eventually(what string, cond func() bool) {
	c.t.Helper()
	for range 200 {
		if cond() {
			return
		}
		c.lab.Pass(10 * time.Millisecond)
	}
	c.t.Fatalf("never: %s", what)
}

func (c *checker) pairs(s hal.StorageSystem) []hal.PairStatus {
	c.t.Helper()
	ps, err := s.QueryPairs(c.ctx(), c.epoch)
	c.must(err)
	return ps
}

func (c *checker) pair(s hal.StorageSystem, vp hal.VolumePair) hal.PairStatus {
	c.t.Helper()
	for _, p := range c.pairs(s) {
		if p.VolumePair == vp {
			return p
		}
	}
	c.t.Fatalf("%s: no pair %s", s.Serial(), vp)
	return hal.PairStatus{}
}

func (c *checker) wantPair(vp hal.VolumePair, state hal.PairState, reason hal.SuspendReason) {
	c.t.Helper()
	if got := c.pair(c.lab.Primary, vp); got.State != state || got.Reason != reason {
		c.t.Fatalf("pair %s: %s (%s), want %s (%s)", vp, got.State, got.Reason, state, reason)
	}
}

func (c *checker) elb(l hal.LSS) time.Time {
	c.t.Helper()
	ls, err := c.lab.Primary.QueryLSSs(c.ctx(), c.epoch)
	c.must(err)
	for _, s := range ls {
		if s.LSS == l {
			return s.ELBUntil
		}
	}
	c.t.Fatalf("no LSS %s", l)
	return time.Time{}
}

// event waits for the next event of a kind, skipping others.
func (c *checker) event(kind hal.EventKind) hal.Event {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				c.t.Fatal("event stream closed")
			}
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			c.t.Fatalf("no %s event", kind)
		}
	}
}

func testIdentity(t *testing.T, c *checker) {
	if c.lab.Primary.Serial() != Primary || c.lab.Secondary.Serial() != Secondary {
		t.Fatalf("serials %s, %s", c.lab.Primary.Serial(), c.lab.Secondary.Serial())
	}
	for _, sys := range []hal.StorageSystem{c.lab.Primary, c.lab.Secondary} {
		if sys.Capabilities().Heartbeat {
			continue
		}
		// A connection without the capability says so on every use.
		err := sys.EnableHeartbeat(c.ctx(), c.epoch, hal.HeartbeatSpec{Session: "s1", Timeout: time.Minute,
			Pairs: []hal.LSSPair{LSSPair(FBLSS)}})
		if !errors.Is(err, hal.ErrUnsupported) || hal.Retryable(err) {
			t.Fatalf("%s: heartbeat on a connection without the capability: %v, want unsupported", sys.Serial(), err)
		}
	}
	ls, err := c.lab.Primary.QueryLSSs(c.ctx(), c.epoch)
	c.must(err)
	if len(ls) != 2 || ls[0].LSS != FBLSS || ls[0].CGTimeout != 60*time.Second || ls[1].Type != hal.CKD ||
		ls[1].CGTimeout != 120*time.Second {
		t.Fatalf("LSSs %+v", ls)
	}
	paths, err := c.lab.Primary.QueryPaths(c.ctx(), c.epoch)
	c.must(err)
	if len(paths) != 2 || !paths[0].ConsistencyGroup || paths[0].State != hal.PathUp {
		t.Fatalf("paths %+v", paths)
	}
}

func testMirroredWrite(t *testing.T, c *checker) {
	vp := Pair(FBLSS, 1)
	c.must(c.lab.Write(c.ctx(), vp.Source, 3, []byte("payload")))
	got, err := c.lab.Read(vp.Target, 3)
	c.must(err)
	if string(got) != "payload" {
		t.Fatalf("target holds %q", got)
	}
	if ts := c.pair(c.lab.Secondary, vp); ts.State != hal.TargetFullDuplex {
		t.Fatalf("target side %s", ts.State)
	}
}

func testFreeze(t *testing.T, c *checker) {
	p := c.lab.Primary
	c.must(p.Freeze(c.ctx(), c.epoch, []hal.LSSPair{LSSPair(FBLSS)}))
	c.wantPair(Pair(FBLSS, 0), hal.Suspended, hal.ReasonFreeze)
	c.wantPair(Pair(CKDLSS, 0), hal.FullDuplex, hal.ReasonNone)
	ev := c.event(hal.EventSuspend)
	if ev.Serial != Primary || ev.LSSPair != LSSPair(FBLSS) || ev.Reason != hal.ReasonFreeze || ev.Volumes.Len() != Volumes {
		t.Fatalf("event %+v", ev)
	}
	until := c.elb(FBLSS)
	if until.IsZero() {
		t.Fatal("freeze did not start ELB")
	}
	c.must(p.Freeze(c.ctx(), c.epoch, []hal.LSSPair{LSSPair(FBLSS)}))
	if again := c.elb(FBLSS); !again.Equal(until) {
		t.Fatalf("repeated freeze moved ELB from %v to %v", until, again)
	}
	paths, err := p.QueryPaths(c.ctx(), c.epoch)
	c.must(err)
	if len(paths) != 1 {
		t.Fatalf("freeze left paths %+v", paths)
	}
}

func testThaw(t *testing.T, c *checker) {
	p := c.lab.Primary
	c.must(p.Freeze(c.ctx(), c.epoch, []hal.LSSPair{LSSPair(CKDLSS)}))
	done := make(chan error, 1)
	go func() { done <- c.lab.Write(context.Background(), Pair(CKDLSS, 0).Source, 1, []byte("held")) }()
	select {
	case err := <-done:
		t.Fatalf("write during ELB completed at once (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	c.must(p.Thaw(c.ctx(), c.epoch, []hal.LSS{CKDLSS}))
	select {
	case err := <-done:
		c.must(err)
	case <-time.After(10 * time.Second):
		t.Fatal("thaw did not release the held write")
	}
	if !c.elb(CKDLSS).IsZero() {
		t.Fatal("ELB still on after thaw")
	}
	if got, _ := c.lab.Read(Pair(CKDLSS, 0).Target, 1); len(got) != 0 {
		t.Fatal("a write after the freeze reached the target")
	}
}

func testSuspendResync(t *testing.T, c *checker) {
	p := c.lab.Primary
	vp := Pair(CKDLSS, 1)
	c.must(p.Suspend(c.ctx(), c.epoch, []hal.VolumePair{vp}))
	c.wantPair(vp, hal.Suspended, hal.ReasonCommand)
	if !c.elb(CKDLSS).IsZero() {
		t.Fatal("a suspend command must not start ELB")
	}
	c.must(c.lab.Write(c.ctx(), vp.Source, 9, []byte("later")))
	if n := c.pair(p, vp).OutOfSync; n != 1 {
		t.Fatalf("out-of-sync %d, want 1", n)
	}
	c.must(p.EstablishPairs(c.ctx(), c.epoch, []hal.PairSpec{{VolumePair: vp, Mode: hal.Resync}}))
	c.eventually("resync done", func() bool { return c.pair(p, vp).State == hal.FullDuplex })
	got, err := c.lab.Read(vp.Target, 9)
	c.must(err)
	if string(got) != "later" {
		t.Fatalf("resync left target block %q", got)
	}
}

func testPathFailureEvent(t *testing.T, c *checker) {
	c.lab.CutPaths(false)
	ev := c.event(hal.EventSuspend)
	if ev.Reason != hal.ReasonPath || ev.Serial != Primary || ev.Seq == 0 || ev.At.IsZero() {
		t.Fatalf("event %+v", ev)
	}
	c.wantPair(Pair(FBLSS, 0), hal.Suspended, hal.ReasonPath)
	if c.elb(FBLSS).IsZero() {
		t.Fatal("a path failure with the CG option must start ELB")
	}
	c.lab.CutPaths(true)
}

func testHeartbeat(t *testing.T, c *checker) {
	p := c.lab.Primary
	if !p.Capabilities().Heartbeat {
		for name, err := range map[string]error{
			"heartbeat":         p.Heartbeat(c.ctx(), c.epoch, "s1"),
			"disable-heartbeat": p.DisableHeartbeat(c.ctx(), c.epoch, "s1"),
		} {
			if !errors.Is(err, hal.ErrUnsupported) || hal.Retryable(err) {
				t.Fatalf("%s without the capability: %v, want unsupported", name, err)
			}
		}
		t.Skip("the connection has no heartbeat capability")
	}
	// H is long and the refresh frequent so that a lab on a scaled wall
	// clock keeps the session alive under a loaded test machine.
	const h = 20 * time.Second
	err := p.Heartbeat(c.ctx(), c.epoch, "nosuch")
	if !errors.Is(err, hal.ErrRefused) {
		t.Fatalf("heartbeat of an unarmed session: %v, want refused", err)
	}
	c.must(p.EnableHeartbeat(c.ctx(), c.epoch, hal.HeartbeatSpec{Session: "s1", Timeout: h,
		Pairs: []hal.LSSPair{LSSPair(FBLSS)}}))
	for range 6 {
		c.lab.Pass(h / 5)
		c.must(p.Heartbeat(c.ctx(), c.epoch, "s1"))
	}
	c.wantPair(Pair(FBLSS, 0), hal.FullDuplex, hal.ReasonNone)
	c.lab.Pass(h + time.Second)
	ev := c.event(hal.EventHeartbeatExpiry)
	if ev.Session != "s1" {
		t.Fatalf("event %+v", ev)
	}
	c.wantPair(Pair(FBLSS, 0), hal.Suspended, hal.ReasonHeartbeatExpiry)
	c.wantPair(Pair(CKDLSS, 0), hal.FullDuplex, hal.ReasonNone)
	if err := p.Heartbeat(c.ctx(), c.epoch, "s1"); !errors.Is(err, hal.ErrHeartbeatExpired) {
		t.Fatalf("heartbeat after expiry: %v", err)
	}
	c.must(p.DisableHeartbeat(c.ctx(), c.epoch, "s1"))
}

func testFencing(t *testing.T, c *checker) {
	p := c.lab.Primary
	_, err := p.QueryPairs(c.ctx(), 7)
	c.must(err)
	err = p.Freeze(c.ctx(), 6, []hal.LSSPair{LSSPair(FBLSS)})
	if !errors.Is(err, hal.ErrFenced) {
		t.Fatalf("stale epoch: %v, want fenced", err)
	}
	if ev := c.event(hal.EventFenced); ev.Epoch != 7 {
		t.Fatalf("fenced event %+v", ev)
	}
	c.epoch = 7
	c.wantPair(Pair(FBLSS, 0), hal.FullDuplex, hal.ReasonNone)
}

func testRefusals(t *testing.T, c *checker) {
	p := c.lab.Primary
	foreign := hal.LSSPair{Source: hal.LSSRef{Serial: Secondary, LSS: FBLSS}, Target: hal.LSSRef{Serial: Primary, LSS: FBLSS}}
	refusals := map[string]error{
		"freeze of an LSS pair of another system": p.Freeze(c.ctx(), c.epoch, []hal.LSSPair{foreign}),
		"thaw of an unknown LSS":                  p.Thaw(c.ctx(), c.epoch, []hal.LSS{0x77}),
		"resync of a full-duplex pair's target":   p.EstablishPairs(c.ctx(), c.epoch, []hal.PairSpec{{VolumePair: Pair(FBLSS, 0).Reversed()}}),
	}
	if p.Capabilities().Heartbeat {
		refusals["heartbeat without timeout"] = p.EnableHeartbeat(c.ctx(), c.epoch, hal.HeartbeatSpec{Session: "x"})
	}
	for name, err := range refusals {
		if !errors.Is(err, hal.ErrRefused) || hal.Retryable(err) {
			t.Errorf("%s: %v, want a refusal that is not retryable", name, err)
		}
	}
}

func testUnreachable(t *testing.T, c *checker) {
	c.lab.CutManager(false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.lab.Primary.QueryPairs(ctx, c.epoch)
	if err == nil || !hal.Retryable(err) {
		t.Fatalf("query over a cut connection: %v, want unreachable or timeout", err)
	}
	// Another system is not affected.
	_, err = c.lab.Secondary.QueryPairs(c.ctx(), c.epoch)
	c.must(err)
	c.lab.CutManager(true)
	c.eventually("primary answers again", func() bool {
		_, err := c.lab.Primary.QueryPairs(c.ctx(), c.epoch)
		return err == nil
	})
}

func testRecoverFailback(t *testing.T, c *checker) {
	p, s := c.lab.Primary, c.lab.Secondary
	vp := Pair(FBLSS, 0)
	c.must(c.lab.Write(c.ctx(), vp.Source, 0, []byte("before")))
	c.must(p.Freeze(c.ctx(), c.epoch, []hal.LSSPair{LSSPair(FBLSS)}))
	c.must(p.Thaw(c.ctx(), c.epoch, []hal.LSS{FBLSS}))
	c.must(s.Recover(c.ctx(), c.epoch, []hal.VolumePair{vp}))
	if got := c.pair(s, vp.Reversed()); got.State != hal.Suspended || got.Reason != hal.ReasonFailover {
		t.Fatalf("after recover H2 side is %s (%s)", got.State, got.Reason)
	}
	c.must(c.lab.Write(c.ctx(), vp.Target, 1, []byte("site2")))
	back := LSSPair(FBLSS)
	back.Source, back.Target = back.Target, back.Source
	c.must(s.EstablishPaths(c.ctx(), c.epoch, []hal.PathSpec{{LSSPair: back, ConsistencyGroup: true}}))
	c.must(s.Failback(c.ctx(), c.epoch, []hal.VolumePair{vp}))
	c.eventually("failback full-duplex", func() bool { return c.pair(s, vp.Reversed()).State == hal.FullDuplex })
	got, err := c.lab.Read(vp.Source, 1)
	c.must(err)
	if string(got) != "site2" {
		t.Fatalf("H1 block after failback %q", got)
	}
}

// simplex reports whether sys shows no pair of vp (either direction).
func (c *checker) simplex(sys hal.StorageSystem, vp hal.VolumePair) bool {
	c.t.Helper()
	for _, p := range c.pairs(sys) {
		if p.VolumePair == vp || p.VolumePair == vp.Reversed() {
			return false
		}
	}
	return true
}

func (c *checker) paths(sys hal.StorageSystem) map[hal.LSSPair]bool {
	c.t.Helper()
	ps, err := sys.QueryPaths(c.ctx(), c.epoch)
	c.must(err)
	out := map[hal.LSSPair]bool{}
	for _, p := range ps {
		out[p.LSSPair] = true
	}
	return out
}

// testRemovePairs: a removed mirroring pair leaves both volumes simplex,
// no suspend event, and the other pairs as they were; writes stay local;
// removing it again is a success; a pair with no volume on the system
// is refused.
func testRemovePairs(t *testing.T, c *checker) {
	p, s := c.lab.Primary, c.lab.Secondary
	vp := Pair(FBLSS, 0)
	c.must(p.RemovePairs(c.ctx(), c.epoch, []hal.VolumePair{vp}))
	if !c.simplex(p, vp) || !c.simplex(s, vp) {
		t.Fatalf("after remove: primary %v, secondary %v", c.pairs(p), c.pairs(s))
	}
	c.wantPair(Pair(FBLSS, 1), hal.FullDuplex, hal.ReasonNone)
	if !c.elb(FBLSS).IsZero() {
		t.Fatal("removing a pair must not start ELB")
	}
	c.must(c.lab.Write(c.ctx(), vp.Source, 3, []byte("alone")))
	if got, _ := c.lab.Read(vp.Target, 3); len(got) != 0 {
		t.Fatal("a write after the remove reached the old target")
	}
	c.must(p.RemovePairs(c.ctx(), c.epoch, []hal.VolumePair{vp}))
	c.must(s.RemovePairs(c.ctx(), c.epoch, []hal.VolumePair{vp}))
	select {
	case ev := <-c.events:
		if ev.Kind == hal.EventSuspend {
			t.Fatalf("removing a pair raised %+v", ev)
		}
	default:
	}
	foreign := hal.VolumePair{
		Source: hal.VolumeRef{Serial: "LAB.2107-75X0001", Volume: hal.NewVolume(FBLSS, 0)},
		Target: hal.VolumeRef{Serial: "LAB.2107-75X0002", Volume: hal.NewVolume(FBLSS, 0)},
	}
	if err := p.RemovePairs(c.ctx(), c.epoch, []hal.VolumePair{foreign}); !errors.Is(err, hal.ErrRefused) || hal.Retryable(err) {
		t.Fatalf("remove of a pair with no volume here: %v, want a refusal", err)
	}
	// The freed volumes can be paired again.
	c.must(p.EstablishPairs(c.ctx(), c.epoch, []hal.PairSpec{{VolumePair: vp}}))
	c.eventually("pair again full-duplex", func() bool { return c.pair(p, vp).State == hal.FullDuplex })
}

// testRemovePairsEverySide: a pair whose target side the source could
// not reach (paths cut) and a recovered pair (both volumes sources)
// become simplex once RemovePairs reached both systems.
func testRemovePairsEverySide(t *testing.T, c *checker) {
	p, s := c.lab.Primary, c.lab.Secondary
	cut, rec := Pair(FBLSS, 0), Pair(CKDLSS, 0)
	c.must(p.Freeze(c.ctx(), c.epoch, []hal.LSSPair{LSSPair(CKDLSS)}))
	c.must(p.Thaw(c.ctx(), c.epoch, []hal.LSS{CKDLSS}))
	c.must(s.Recover(c.ctx(), c.epoch, []hal.VolumePair{rec}))
	c.lab.CutPaths(false)
	c.wantPair(cut, hal.Suspended, hal.ReasonPath)
	both := []hal.VolumePair{cut, rec}
	c.must(p.RemovePairs(c.ctx(), c.epoch, both))
	c.must(s.RemovePairs(c.ctx(), c.epoch, both))
	c.lab.CutPaths(true)
	c.must(p.Thaw(c.ctx(), c.epoch, []hal.LSS{FBLSS}))
	for _, vp := range both {
		if !c.simplex(p, vp) || !c.simplex(s, vp) {
			t.Fatalf("%s after remove on both systems: primary %v, secondary %v", vp, c.pairs(p), c.pairs(s))
		}
	}
	c.wantPair(Pair(FBLSS, 1), hal.Suspended, hal.ReasonPath)
}

// testRemovePaths: a path still used by a pair (mirroring or suspended)
// is refused and kept, with every other path of the command; once its
// pairs are removed it goes, and removing it again is a success.
func testRemovePaths(t *testing.T, c *checker) {
	p := c.lab.Primary
	fb, ckd := LSSPair(FBLSS), LSSPair(CKDLSS)
	c.must(p.Suspend(c.ctx(), c.epoch, []hal.VolumePair{Pair(FBLSS, 0)}))
	c.must(p.RemovePairs(c.ctx(), c.epoch, []hal.VolumePair{Pair(FBLSS, 1)}))
	err := p.RemovePaths(c.ctx(), c.epoch, []hal.LSSPair{ckd, fb})
	if !errors.Is(err, hal.ErrRefused) || hal.Retryable(err) {
		t.Fatalf("remove of paths used by pairs: %v, want a refusal", err)
	}
	if got := c.paths(p); !got[fb] || !got[ckd] {
		t.Fatalf("paths after a refused remove: %v", got)
	}
	c.wantPair(Pair(FBLSS, 0), hal.Suspended, hal.ReasonCommand)
	c.must(p.RemovePairs(c.ctx(), c.epoch, []hal.VolumePair{Pair(FBLSS, 0)}))
	c.must(p.RemovePaths(c.ctx(), c.epoch, []hal.LSSPair{fb}))
	if got := c.paths(p); got[fb] || !got[ckd] {
		t.Fatalf("paths after removing %s: %v", fb, got)
	}
	c.must(p.RemovePaths(c.ctx(), c.epoch, []hal.LSSPair{fb}))
	c.wantPair(Pair(CKDLSS, 0), hal.FullDuplex, hal.ReasonNone)
	err = p.EstablishPairs(c.ctx(), c.epoch, []hal.PairSpec{{VolumePair: Pair(FBLSS, 0)}})
	if !errors.Is(err, hal.ErrRefused) {
		t.Fatalf("establish over a removed path: %v, want a refusal", err)
	}
}
