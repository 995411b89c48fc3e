package daemon

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// fakeSwapConn is a z/OS host's HyperSwap side held in memory (the real
// one is the emulated host's, drivers/zos): it keeps what it is given,
// and the test raises its reports.
type fakeSwapConn struct {
	mu   sync.Mutex
	held map[string]hal.SwapState
	subs []chan hal.SwapEvent
}

func (f *fakeSwapConn) LoadSwap(_ context.Context, _ hal.Epoch, name string, pairs []hal.VolumePair) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held[name] = hal.SwapState{Session: name, Pairs: slices.Clone(pairs), Ready: true}
	return nil
}

func (f *fakeSwapConn) UnloadSwap(_ context.Context, _ hal.Epoch, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.held, name)
	return nil
}

func (f *fakeSwapConn) Swap(_ context.Context, _ hal.Epoch, name string) error {
	return fmt.Errorf("%w: not in this test", hal.ErrRefused)
}

func (f *fakeSwapConn) SwapEvents(ctx context.Context) (<-chan hal.SwapEvent, error) {
	ch := make(chan hal.SwapEvent, 8)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.subs = slices.DeleteFunc(f.subs, func(c chan hal.SwapEvent) bool { return c == ch })
		close(ch)
	}()
	return ch, nil
}

func (f *fakeSwapConn) SwapStatus(context.Context, hal.Epoch) ([]hal.SwapState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Collect(maps.Values(f.held)), nil
}

func (f *fakeSwapConn) Close() error { return nil }

func (f *fakeSwapConn) loaded(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.held[name]
	return ok
}

// report raises an unplanned swap of name to every subscriber.
func (f *fakeSwapConn) report(ev hal.SwapEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.held[ev.Session]; ok {
		st.Swapped = true
		f.held[ev.Session] = st
	}
	for _, ch := range f.subs {
		ch <- ev
	}
}

// TestHyperSwapSessionOutsideTheHeartbeat (issue 19 §3): lockstepd of
// sysplex PLEX1 over the lab, z/OS host SYSA, a single-direction session
// on primary 1 and a HyperSwap session on primary 0.
//   - the HyperSwap start is refused while SYSA has not its H2 system
//     online, naming it; accepted once it has;
//   - heartbeat on succeeds, warning by name of the HyperSwap session
//     defined before; one created or started after warns too;
//   - with the heartbeat on, the lab's command log shows heartbeat
//     commands to primary 1 and none, ever, to primary 0; the HyperSwap
//     group is not reported unprotected;
//   - an unplanned swap reported by the host makes the session Target
//     Available with H2 active and the trigger, with an event.
func TestHyperSwapSessionOutsideTheHeartbeat(t *testing.T) {
	r := newZOSRig(t, 5*time.Second, false)
	host := &fakeSwapConn{held: map[string]hal.SwapState{}}
	r.swapHosts = func(ctx context.Context, spec hal.ConnectionSpec) (hal.SwapHostConn, error) {
		if spec.Name != "SYSA" || spec.Sysplex != "PLEX1" {
			return nil, fmt.Errorf("unexpected z/OS connection %+v", spec)
		}
		return host, nil
	}
	ctx := context.Background()
	c, stop := r.start(safeFor5s, &countingNotifier{})
	defer stop()
	p0, p1 := topology.PrimarySerial(0), topology.PrimarySerial(1)
	s0 := topology.SecondarySerial(0)
	r.defineSession(c, "plain", "", 1)
	must(t, c.SessionCreate(ctx, "hs", api.MetroMirrorHyperSwap, "", api.HoldIO))
	for _, p := range r.lab.Topology().Pairs {
		if p.Source.Serial == p0 {
			must(t, c.SessionAddCopySet(ctx, "hs", api.CopySet{H1: p.Source, H2: p.Target}))
		}
	}

	// SYSA with the primaries online only: no z/OS connection has s0.
	r.addZOS(c, p0, p1)
	if _, err := c.SessionCommand(ctx, "hs", api.CmdStartH1H2); err == nil ||
		!strings.Contains(err.Error(), "no z/OS connection of sysplex PLEX1 has "+string(s0)+" online") {
		t.Fatalf("start of the HyperSwap session without its H2 system online at a z/OS host: %v", err)
	}
	if _, err := c.ZOSRemove(ctx, "SYSA"); err != nil {
		t.Fatal(err)
	}
	var all []hal.Serial
	for _, st := range r.lab.Status() {
		all = append(all, hal.Serial(st.Serial))
	}
	r.addZOS(c, all...)

	seq := lastSeq(r)
	ws, err := c.HeartbeatSet(ctx, true)
	if err != nil || !slices.ContainsFunc(ws, func(w string) bool { return strings.Contains(w, "HyperSwap sessions hs:") }) {
		t.Fatalf("heartbeat on beside a HyperSwap session: %v, warnings %q", err, ws)
	}
	var doc api.SessionDoc
	if err := eventually(func() bool { doc, err = c.SessionCommand(ctx, "hs", api.CmdStartH1H2); return err == nil }); err != nil {
		t.Fatalf("start-h1-h2 hs: %v", err)
	}
	if !slices.ContainsFunc(doc.Warnings, func(w string) bool { return strings.Contains(w, "sessions hs:") }) {
		t.Errorf("start of a HyperSwap session with the heartbeat on: warnings %q", doc.Warnings)
	}
	if err := eventually(func() bool {
		d, err := c.SessionCommand(ctx, "hs", api.CmdRefresh)
		return err == nil && d.State == api.StatePrepared
	}); err != nil {
		t.Fatal("hs never Prepared")
	}
	if !host.loaded("hs") {
		t.Fatal("the z/OS host was not given the session's pairs")
	}
	must(t, c.SessionCreate(ctx, "hs2", api.MetroMirrorHyperSwap, "", api.HoldIO))
	if err := eventually(func() bool { return hasEvent(c, "LS4006W", "sessions hs2:") }); err != nil {
		t.Error("creating a HyperSwap session with the heartbeat on: no LS4006W naming it")
	}
	time.Sleep(3 * time.Second) // the heartbeat of plain's group runs every 200 ms

	beats := map[hal.Serial]int{}
	for _, rec := range commandsSince(r.lab, seq) {
		switch rec.Op {
		case emu.OpEnableHeartbeat, emu.OpHeartbeat, emu.OpDisableHeartbeat:
			beats[rec.Serial]++
		}
	}
	if beats[p0] != 0 {
		t.Errorf("%d heartbeat commands to %s, the HyperSwap session's primary", beats[p0], p0)
	}
	if beats[p1] < 5 {
		t.Errorf("%d heartbeat commands to %s, the other session's primary: the test proves nothing", beats[p1], p1)
	}
	st, err := c.Status(ctx)
	must(t, err)
	if len(st.Degraded) != 0 {
		t.Errorf("status degraded with the HyperSwap session: %q", st.Degraded)
	}
	if hasEvent(c, "LS4005E", "") {
		t.Error("a group reported unprotected by the heartbeat (LS4005E)")
	}
	hb, err := c.HeartbeatShow(ctx)
	if err != nil || !slices.ContainsFunc(hb.Warnings, func(w string) bool { return strings.Contains(w, "sessions hs, hs2:") }) {
		t.Errorf("heartbeat show: %v, warnings %q", err, hb.Warnings)
	}

	// The last TCP/IP connection of a system only the HyperSwap session
	// uses goes without --force: no heartbeat is lost, nothing to suspend.
	if _, err := c.StorageRemove(ctx, p0, "direct", false); err != nil {
		t.Errorf("removing the direct connection of %s, used only by the HyperSwap session: %v", p0, err)
	}
	if d, err := c.SessionShow(ctx, "hs"); err != nil || d.State != api.StatePrepared {
		t.Errorf("the HyperSwap session after its primary's direct connection went: %+v, %v", d, err)
	}

	// An unplanned swap: the host's report alone.
	host.report(hal.SwapEvent{Session: "hs", Trigger: "storage system " + string(p0) + " crashed", Host: "SYSA"})
	if err := eventually(func() bool {
		d, err := c.SessionShow(ctx, "hs")
		return err == nil && d.State == api.StateTargetAvailable && d.ActiveSite == api.H2
	}); err != nil {
		d, _ := c.SessionShow(ctx, "hs")
		t.Fatalf("after the host's unplanned swap: %+v", d)
	}
	if err := eventually(func() bool { return hasEvent(c, "LS2018W", "HyperSwap (unplanned) by z/OS host SYSA") }); err != nil {
		t.Error("no sessionTargetAvailable event telling the swap")
	}
	for _, rec := range commandsSince(r.lab, seq) {
		if rec.Serial == p0 && (rec.Op == emu.OpEnableHeartbeat || rec.Op == emu.OpHeartbeat || rec.Op == emu.OpDisableHeartbeat) {
			t.Fatalf("a heartbeat command to %s after the swap: %+v", p0, rec)
		}
	}
}

func lastSeq(r *labRig) uint64 {
	recs := commandsSince(r.lab, 0)
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].Seq
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSwapReportRightAfterTheStartIsRecorded (found by the end-to-end
// run, internal/hapair TestHyperSwapEndToEnd): a z/OS host added while
// the server acts, and whose first use is the start of a HyperSwap
// session, is followed from the moment it is opened: its report of an
// unplanned swap made right after the start is recorded at once. Before,
// the server subscribed to a host's reports only at its next status
// poll, so the report was lost and the session stayed as the freeze left
// it (Suspended (Partial), Severe) until that poll; the poll interval
// here is a minute, so nothing but the report can record the swap.
func TestSwapReportRightAfterTheStartIsRecorded(t *testing.T) {
	r := newZOSRig(t, 5*time.Second, false)
	host := &fakeSwapConn{held: map[string]hal.SwapState{}}
	r.swapHosts = func(context.Context, hal.ConnectionSpec) (hal.SwapHostConn, error) { return host, nil }
	ctx := context.Background()
	slowPoll := "interval = \"200ms\"\ndetection_window = \"500ms\"\nrequest_timeout = \"300ms\"\npoll_interval = \"1m\"\nretry_interval = \"250ms\"\n"
	c, stop := r.start(slowPoll, &countingNotifier{})
	defer stop()
	p0 := topology.PrimarySerial(0)
	var all []hal.Serial
	for _, st := range r.lab.Status() {
		all = append(all, hal.Serial(st.Serial))
	}
	// A standalone server acts from its start: the first status poll of
	// its acting period finds no z/OS connection.
	r.addZOS(c, all...)
	must(t, c.SessionCreate(ctx, "hs", api.MetroMirrorHyperSwap, "", api.HoldIO))
	for _, p := range r.lab.Topology().Pairs {
		if p.Source.Serial == p0 {
			must(t, c.SessionAddCopySet(ctx, "hs", api.CopySet{H1: p.Source, H2: p.Target}))
		}
	}
	if err := eventually(func() bool {
		_, err := c.SessionCommand(ctx, "hs", api.CmdStartH1H2)
		return err == nil
	}); err != nil {
		t.Fatal("start-h1-h2 hs refused")
	}
	if err := eventually(func() bool {
		d, err := c.SessionCommand(ctx, "hs", api.CmdRefresh)
		return err == nil && d.State == api.StatePrepared
	}); err != nil {
		t.Fatal("hs never Prepared")
	}
	host.report(hal.SwapEvent{Session: "hs", Trigger: "storage system " + string(p0) + " crashed", Host: "SYSA"})
	if err := eventuallyWithin(20*time.Second, func() bool {
		d, err := c.SessionShow(ctx, "hs")
		return err == nil && d.State == api.StateTargetAvailable && d.ActiveSite == api.H2
	}); err != nil {
		d, _ := c.SessionShow(ctx, "hs")
		t.Fatalf("the host's report of an unplanned swap right after the start was not recorded: %s, %s active (%s)",
			d.State, d.ActiveSite, d.Reason)
	}
}
