package ha_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// fakeEffects records every action the Loop executes, with the clock's
// time, and fails the persisting ones on demand.
type fakeEffects struct {
	clk *clock.Fake

	mu          sync.Mutex
	calls       []call
	failEpoch   error
	failRelship error
	failRestore error
}

type call struct {
	at   time.Time
	a    ha.Action
	mark string // instead of a: what OnCommit saw
}

var _ ha.Effects = (*fakeEffects)(nil)

func (f *fakeEffects) record(a ha.Action) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{at: f.clk.Now(), a: a})
}

// take returns the actions recorded since the last take.
func (f *fakeEffects) take() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeEffects) PersistEpoch(_ context.Context, e hal.Epoch) error {
	f.record(ha.PersistEpoch{Epoch: e})
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failEpoch
}

func (f *fakeEffects) PersistRelationship(_ context.Context, r ha.Relationship) error {
	f.record(ha.PersistRelationship{Relationship: r})
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failRelship
}

func (f *fakeEffects) RestoreFrom(_ context.Context, backup string) error {
	f.record(ha.RestoreFrom{Backup: backup})
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failRestore
}

func (f *fakeEffects) Connect(addr string)               { f.record(ha.Connect{Addr: addr}) }
func (f *fakeEffects) Disconnect(l ha.LinkID, why error) { f.record(ha.Disconnect{Link: l, Err: why}) }
func (f *fakeEffects) NotifyEpoch(l ha.LinkID, e hal.Epoch) {
	f.record(ha.NotifyEpoch{Link: l, Epoch: e})
}
func (f *fakeEffects) Serve(l ha.LinkID, r ha.Role) { f.record(ha.Serve{Link: l, Role: r}) }
func (f *fakeEffects) TakeBackup(l ha.LinkID)       { f.record(ha.TakeBackup{Link: l}) }
func (f *fakeEffects) TakeAutobackup(l ha.LinkID)   { f.record(ha.TakeAutobackup{Link: l}) }
func (f *fakeEffects) RequestSync(l ha.LinkID, full bool) {
	f.record(ha.RequestSync{Link: l, Full: full})
}
func (f *fakeEffects) SendSnapshot(l ha.LinkID) { f.record(ha.SendSnapshot{Link: l}) }
func (f *fakeEffects) StartStream(l ha.LinkID)  { f.record(ha.StartStream{Link: l}) }
func (f *fakeEffects) RestoreBackup()           { f.record(ha.RestoreBackup{}) }
func (f *fakeEffects) StartActiveDuties(e hal.Epoch, tko bool) {
	f.record(ha.StartActiveDuties{Epoch: e, Takeover: tko})
}
func (f *fakeEffects) StopActiveDuties() { f.record(ha.StopActiveDuties{}) }
func (f *fakeEffects) Emit(n ha.Notice)  { f.record(ha.Emit{Notice: n}) }

// startLoop runs a Loop from initial on a fake clock until the test ends.
func startLoop(t *testing.T, initial ha.State, cfg ha.Config) (*ha.Loop, *fakeEffects, *clock.Fake) {
	return startLoopWith(t, initial, cfg, false)
}

// startLoopWith is startLoop; with onCommit, each commit is recorded
// among the actions, as "commit OLD -> NEW".
func startLoopWith(t *testing.T, initial ha.State, cfg ha.Config, onCommit bool) (*ha.Loop, *fakeEffects, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	fx := &fakeEffects{clk: clk}
	opts := ha.LoopOptions{Clock: clk}
	if onCommit {
		opts.OnCommit = func(old, n ha.State) {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			fx.calls = append(fx.calls, call{at: clk.Now(), mark: "commit " + old.Status().String() + " -> " + n.Status().String()})
		}
	}
	l := ha.NewLoop(initial, cfg, fx, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	<-l.Ready()
	return l, fx, clk
}

// settle waits until every event posted so far has been stepped: Tick is
// harmless when nothing is due, and Do answers in queue order.
func settle(t *testing.T, l *ha.Loop) {
	t.Helper()
	if err := l.Do(context.Background(), ha.Tick{}); err != nil {
		t.Fatal(err)
	}
}

func kinds(calls []call) []string {
	out := []string{}
	for _, c := range calls {
		if c.a == nil {
			out = append(out, c.mark)
			continue
		}
		out = append(out, render(c.a))
	}
	return out
}

func connects(calls []call) []time.Time {
	var at []time.Time
	for _, c := range calls {
		if _, ok := c.a.(ha.Connect); ok {
			at = append(at, c.at)
		}
	}
	return at
}

// synchronize brings an active Loop from its start to Synchronized on
// link.
func synchronize(t *testing.T, l *ha.Loop, link ha.LinkID) {
	t.Helper()
	for _, ev := range []ha.Event{
		ha.LinkUp{Link: link, Peer: infoB, Dialed: true},
		ha.SyncRequested{Link: link, Full: true},
		ha.SnapshotSent{Link: link, Index: 10},
		ha.StreamCaughtUp{Link: link, Index: 12},
	} {
		l.Post(ev)
	}
	settle(t, l)
	if s := l.State(); s.Conn != ha.Synchronized {
		t.Fatalf("state %s, want Synchronized", s.Status())
	}
}

// TestLoopReconnectSchedule: on the fake clock, after the link is lost
// the active makes exactly ReconnectAttempts attempts, one every
// ReconnectInterval, even though each fails at once; then it stops until
// ha reconnect.
func TestLoopReconnectSchedule(t *testing.T) {
	t.Parallel()
	cfg := ha.Config{ReconnectInterval: time.Minute, ReconnectAttempts: 3}
	l, fx, clk := startLoop(t, ha.State{Role: ha.Active, Peer: pB, Epoch: 3, Seen: 3}, cfg)
	if got := kinds(fx.take()); !slices.Equal(got, []string{"start-active-duties epoch 3 (takeover false)", "connect tcp://b:9730"}) {
		t.Fatalf("start: %v", got)
	}
	synchronize(t, l, 1)
	fx.take()

	clk.Advance(5 * time.Second)
	lost := clk.Now()
	l.Post(ha.LinkDown{Link: 1, Err: errBoom})
	settle(t, l)

	var attempts []time.Time
	for i := range cfg.ReconnectAttempts {
		// Nothing a nanosecond before the interval...
		clk.Advance(cfg.ReconnectInterval - time.Nanosecond)
		settle(t, l)
		if c := connects(fx.take()); len(c) != 0 {
			t.Fatalf("attempt %d came early, at %v", i+1, c)
		}
		// ... one attempt at it...
		clk.Advance(time.Nanosecond)
		settle(t, l)
		c := connects(fx.take())
		if len(c) != 1 {
			t.Fatalf("attempt %d: %d connects at %v", i+1, len(c), clk.Now())
		}
		attempts = append(attempts, c[0])
		// ... which fails at once, and brings nothing closer.
		l.Post(ha.ConnectFailed{Addr: pB.Addr, Err: errBoom})
		settle(t, l)
		if c := connects(fx.take()); len(c) != 0 {
			t.Fatalf("a failure at once made attempt %d+1 come at once", i+1)
		}
	}
	for i, at := range attempts {
		if want := lost.Add(time.Duration(i+1) * cfg.ReconnectInterval); !at.Equal(want) {
			t.Errorf("attempt %d at %v, want %v", i+1, at.Sub(lost), want.Sub(lost))
		}
	}
	if s := l.State(); s.Conn != ha.DisconnectedConsistent || s.Reconnect.Attempts != cfg.ReconnectAttempts {
		t.Errorf("after the series: %+v", s)
	}

	// Then nothing, however long.
	if n := clk.Pending(); n != 0 {
		t.Errorf("%d timers armed after the series", n)
	}
	clk.Advance(24 * time.Hour)
	settle(t, l)
	if c := fx.take(); len(connects(c)) != 0 {
		t.Fatalf("attempts after the series: %v", kinds(c))
	}

	// ha reconnect: at once, and a new series.
	if err := l.Do(context.Background(), ha.ReconnectCommand{}); err != nil {
		t.Fatal(err)
	}
	if c := connects(fx.take()); len(c) != 1 || !c[0].Equal(clk.Now()) {
		t.Fatalf("manual reconnect: %v", c)
	}
	if s := l.State(); s.Reconnect.Attempts != 0 || !s.Reconnect.Next.Equal(clk.Now().Add(time.Minute)) {
		t.Errorf("manual reconnect did not start a new series: %+v", s.Reconnect)
	}
}

// TestLoopReconnectStoppedNotice: the last failed attempt says that
// automatic reconnection stopped.
func TestLoopReconnectStoppedNotice(t *testing.T) {
	t.Parallel()
	cfg := ha.Config{ReconnectInterval: time.Minute, ReconnectAttempts: 1}
	l, fx, clk := startLoop(t, ha.State{Role: ha.Active, Peer: pB, Epoch: 3, Seen: 3}, cfg)
	synchronize(t, l, 1)
	l.Post(ha.LinkDown{Link: 1, Err: errBoom})
	settle(t, l)
	clk.Advance(time.Minute)
	settle(t, l)
	l.Post(ha.ConnectFailed{Err: errBoom})
	settle(t, l)
	got := kinds(fx.take())
	if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "emit reconnect-stopped") }) {
		t.Errorf("no reconnect-stopped notice in %v", got)
	}
}

// TestLoopFlappingLink: a link that comes up and drops at once during a
// resync is one attempt; the next one still waits an interval.
func TestLoopFlappingLink(t *testing.T) {
	t.Parallel()
	cfg := ha.Config{ReconnectInterval: time.Minute, ReconnectAttempts: 5}
	l, fx, clk := startLoop(t, ha.State{Role: ha.Active, Peer: pB, Epoch: 3, Seen: 3}, cfg)
	synchronize(t, l, 1)
	l.Post(ha.LinkDown{Link: 1, Err: errBoom})
	settle(t, l)
	fx.take()
	for link := ha.LinkID(2); link < 5; link++ {
		clk.Advance(time.Minute)
		settle(t, l)
		if c := connects(fx.take()); len(c) != 1 {
			t.Fatalf("link %d: %d attempts", link, len(c))
		}
		l.Post(ha.LinkUp{Link: link, Peer: infoB, Dialed: true})
		l.Post(ha.LinkDown{Link: link, Err: errBoom})
		settle(t, l)
		if c := connects(fx.take()); len(c) != 0 {
			t.Fatalf("a flapping link made the next attempt come at once")
		}
	}
	if s := l.State(); s.Reconnect.Attempts != 3 || s.Conn != ha.DisconnectedConsistent {
		t.Errorf("after three flaps: %+v", s)
	}
}

func TestLoopRefusal(t *testing.T) {
	t.Parallel()
	l, fx, _ := startLoop(t, ha.State{Role: ha.Standby, Peer: pA, Epoch: 3, Seen: 3}, testCfg)
	err := l.Do(context.Background(), ha.SetStandby{Addr: "tcp://c:1"})
	if !errors.Is(err, ha.ErrSecondRelationship) || !strings.Contains(err.Error(), "remove the active first (ha remove-active)") {
		t.Errorf("Do = %v", err)
	}
	if c := fx.take(); len(c) != 0 {
		t.Errorf("a refusal executed %v", kinds(c))
	}
}

// TestLoopTakeoverNotPersisted: a takeover whose epoch cannot be persisted
// is refused, and nothing else happened.
func TestLoopTakeoverNotPersisted(t *testing.T) {
	t.Parallel()
	l, fx, _ := startLoop(t, standbyDC, testCfg)
	fx.take()
	fx.mu.Lock()
	fx.failEpoch = errBoom
	fx.mu.Unlock()
	err := l.Do(context.Background(), ha.Takeover{})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Do(takeover) = %v, want the persistence error", err)
	}
	if got := kinds(fx.take()); !slices.Equal(got, []string{"persist-epoch 4"}) {
		t.Errorf("executed %v, want only the failed persist-epoch", got)
	}
	if s := l.State(); s.Role != ha.Standby || s.Epoch != 3 {
		t.Errorf("state after the failed takeover: %+v", s)
	}

	fx.mu.Lock()
	fx.failEpoch = nil
	fx.mu.Unlock()
	if err := l.Do(context.Background(), ha.Takeover{}); err != nil {
		t.Fatal(err)
	}
	if s := l.State(); s.Role != ha.Active || s.Epoch != 4 {
		t.Errorf("state after the takeover: %+v", s)
	}
}

// TestLoopDemotionNotPersisted: the old active stops acting even when it
// cannot persist that.
func TestLoopDemotionNotPersisted(t *testing.T) {
	t.Parallel()
	l, fx, _ := startLoop(t, ha.State{Role: ha.Active, Peer: pB, Epoch: 3, Seen: 3}, testCfg)
	synchronize(t, l, 1)
	fx.take()
	fx.mu.Lock()
	fx.failRelship = errBoom
	fx.mu.Unlock()
	l.Post(ha.HigherEpochSeen{Epoch: 4, From: "storage X"})
	settle(t, l)
	got := kinds(fx.take())
	if !slices.Contains(got, "stop-active-duties") {
		t.Errorf("duties not stopped: %v", got)
	}
	if s := l.State(); s.Role != ha.DisconnectedStandby || s.Link != 0 {
		t.Errorf("state: %+v", s)
	}
}

// TestLoopOnCommit: OnCommit sees each new state before any action of
// its step runs (the daemon ends an acting period there, before the
// demotion's persistence); a step undone after its persistence failed
// returns to a state that acts, and starts acting again, at its epoch.
func TestLoopOnCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		ev      ha.Event
		failRel bool
		want    []string
		role    ha.Role
	}{
		{"demotion", ha.HigherEpochSeen{Epoch: 4, From: "storage X"}, false, []string{
			"commit standalone/Unknown -> disconnected-standby/Disconnected",
			"persist-relationship disconnected-standby",
			"stop-active-duties",
		}, ha.DisconnectedStandby},
		{"demotion not persisted", ha.HigherEpochSeen{Epoch: 4, From: "storage X"}, true, []string{
			"commit standalone/Unknown -> disconnected-standby/Disconnected",
			"persist-relationship disconnected-standby",
			"commit disconnected-standby/Disconnected -> disconnected-standby/Disconnected",
			"stop-active-duties",
		}, ha.DisconnectedStandby},
		{"set-as-standby not persisted", ha.SetAsStandby{Addr: "tcp://a:9730", Name: "a"}, true, []string{
			"commit standalone/Unknown -> standby/Unknown",
			"persist-relationship standby a (tcp://a:9730)",
			"commit standby/Unknown -> standalone/Unknown",
			"start-active-duties epoch 3 (takeover false)",
		}, ha.Standalone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, fx, _ := startLoopWith(t, standalone, testCfg, true)
			if got := kinds(fx.take()); !slices.Equal(got, []string{"commit standalone/Unknown -> standalone/Unknown", "start-active-duties epoch 3 (takeover false)"}) {
				t.Fatalf("start: %v", got)
			}
			if tc.failRel {
				fx.mu.Lock()
				fx.failRelship = errBoom
				fx.mu.Unlock()
			}
			_ = l.Do(context.Background(), tc.ev)
			got := kinds(fx.take())
			if len(got) < len(tc.want) || !slices.Equal(got[:len(tc.want)], tc.want) {
				t.Fatalf("executed %v, want it to begin with %v", got, tc.want)
			}
			if s := l.State(); s.Role != tc.role || s.Epoch != 3 {
				t.Fatalf("state %s epoch %d, want %s epoch 3", s.Status(), s.Epoch, tc.role)
			}
			starts := slices.ContainsFunc(got, func(k string) bool { return strings.HasPrefix(k, "start-active-duties") })
			if starts != tc.role.Acting() {
				t.Fatalf("starts acting: %v, in %v", starts, got)
			}
		})
	}
}

func TestLoopStopped(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	l := ha.NewLoop(standalone, testCfg, &fakeEffects{clk: clk}, ha.LoopOptions{Clock: clk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	<-l.Ready()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Do(context.Background(), ha.SetStandby{Addr: "tcp://b:1"}); !errors.Is(err, ha.ErrLoopStopped) {
		t.Errorf("Do after Run = %v", err)
	}
}
