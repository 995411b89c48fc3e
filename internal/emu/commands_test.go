package emu

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// diffRecords prints want and got side by side, (-want +got), when they
// differ.
func diffRecords(want, got []CommandRecord) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	var b strings.Builder
	for i := range max(len(want), len(got)) {
		var w, g string
		if i < len(want) {
			w = fmt.Sprintf("%+v", want[i])
		}
		if i < len(got) {
			g = fmt.Sprintf("%+v", got[i])
		}
		if w == g {
			fmt.Fprintf(&b, "  %s\n", w)
			continue
		}
		if w != "" {
			fmt.Fprintf(&b, "- %s\n", w)
		}
		if g != "" {
			fmt.Fprintf(&b, "+ %s\n", g)
		}
	}
	return b.String()
}

// lastSeq is the Seq of the newest record of the fabric (0: none).
func lastSeq(t *testing.T, f *Fabric) uint64 {
	t.Helper()
	recs, _ := f.Commands(0)
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].Seq
}

// TestCommandLogOutcomes: two managers, the second taking over with a
// higher epoch; every command that reaches the epoch check is recorded
// with its manager, both epochs and its outcome, and commands the system
// never saw are not.
func TestCommandLogOutcomes(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	ctx := context.Background()
	a, b := r.pc, r.p.Connect("mgr-b")
	start := lastSeq(t, r.fab)
	if start < 3 { // the rig's establish paths, establish pairs, query pairs
		t.Fatalf("the rig's setup left %d records, want at least 3", start)
	}

	r.clk.Advance(time.Second)
	at1 := r.clk.Now()
	wantErr := func(err, kind error) {
		t.Helper()
		if !errors.Is(err, kind) {
			t.Fatalf("err %v, want %v", err, kind)
		}
	}
	r.must(a.Freeze(ctx, 1, []hal.LSSPair{lssPair(fbL)}))
	wantErr(a.Heartbeat(ctx, 1, "none"), hal.ErrRefused) // no heartbeat armed
	r.clk.Advance(time.Second)
	at2 := r.clk.Now()
	r.must(b.Thaw(ctx, 2, []hal.LSS{fbL})) // b takes over with epoch 2
	wantErr(a.Freeze(ctx, 1, []hal.LSSPair{lssPair(ckdL)}), hal.ErrFenced)
	wantErr(a.Heartbeat(ctx, 1, "none"), hal.ErrFenced)
	// Commands the system never judges are not recorded.
	r.p.SetManagerLink("mgr-b", LinkDown)
	wantErr(b.Heartbeat(ctx, 2, "none"), hal.ErrUnreachable)
	r.p.SetManagerLink("mgr-b", LinkUp)
	r.p.Crash()
	_, err := b.QueryLSSs(ctx, 2)
	wantErr(err, hal.ErrUnreachable)
	r.p.Restart()
	// The secondary keeps its own epoch.
	_, err = r.sc.QueryPaths(ctx, 1)
	r.must(err)
	// Refused after the epoch check: the epoch is taken all the same.
	wantErr(b.Suspend(ctx, 3, []hal.VolumePair{vpair(fbL, 9)}), hal.ErrRefused)
	if r.p.Epoch() != 3 {
		t.Fatalf("system epoch %d, want 3", r.p.Epoch())
	}

	rec := func(at time.Time, serial hal.Serial, manager string, epoch, sysEpoch hal.Epoch, op, outcome string) CommandRecord {
		return CommandRecord{At: at, Serial: serial, Manager: manager, Epoch: epoch, SystemEpoch: sysEpoch, Op: op, Outcome: outcome}
	}
	beat := func(r CommandRecord) CommandRecord { r.Session = "none"; return r }
	want := []CommandRecord{
		rec(at1, prim, mgr, 1, 1, OpFreeze, OutcomeOK),
		beat(rec(at1, prim, mgr, 1, 1, OpHeartbeat, OutcomeRefused)),
		rec(at2, prim, "mgr-b", 2, 1, OpThaw, OutcomeOK),
		rec(at2, prim, mgr, 1, 2, OpFreeze, OutcomeFenced),
		beat(rec(at2, prim, mgr, 1, 2, OpHeartbeat, OutcomeFenced)),
		rec(at2, sec, mgr, 1, 0, OpQueryPaths, OutcomeOK),
		rec(at2, prim, "mgr-b", 3, 2, OpSuspend, OutcomeRefused),
	}
	for i := range want {
		want[i].Seq = start + 1 + uint64(i)
	}
	got, dropped := r.fab.Commands(start)
	if dropped != 0 {
		t.Errorf("dropped %d, want 0", dropped)
	}
	if d := diffRecords(want, got); d != "" {
		t.Fatalf("records (-want +got):\n%s", d)
	}
	for _, rc := range got {
		if rc.Accepted() != (rc.Outcome != OutcomeFenced) || rc.Accepted() != (rc.Epoch >= rc.SystemEpoch) {
			t.Errorf("record %+v: Accepted() = %v", rc, rc.Accepted())
		}
	}
}

// TestCommandLogNamesTheHeartbeat: a heartbeat command's record names
// its heartbeat session, and an enable-heartbeat's the LSS pairs it arms
// (what a test reads to tell which pairs the heartbeat covers), even when
// the epoch check fences it.
func TestCommandLogNamesTheHeartbeat(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	ctx := context.Background()
	start := lastSeq(t, r.fab)
	lps := []hal.LSSPair{lssPair(fbL), lssPair(ckdL)}
	r.must(r.pc.EnableHeartbeat(ctx, 2, hal.HeartbeatSpec{Session: "cg1", Pairs: lps, Timeout: time.Minute}))
	r.must(r.pc.Heartbeat(ctx, 2, "cg1"))
	if err := r.pc.EnableHeartbeat(ctx, 1, hal.HeartbeatSpec{Session: "cg2", Pairs: lps[:1], Timeout: time.Minute}); !errors.Is(err, hal.ErrFenced) {
		t.Fatalf("enable-heartbeat with a lower epoch: %v", err)
	}
	r.must(r.pc.DisableHeartbeat(ctx, 2, "cg1"))
	lps[0] = lssPair(ckdL) // the record holds its own copy
	got, _ := r.fab.Commands(start)
	want := []struct {
		op, session string
		pairs       []hal.LSSPair
	}{
		{OpEnableHeartbeat, "cg1", []hal.LSSPair{lssPair(fbL), lssPair(ckdL)}},
		{OpHeartbeat, "cg1", nil},
		{OpEnableHeartbeat, "cg2", []hal.LSSPair{lssPair(fbL)}},
		{OpDisableHeartbeat, "cg1", nil},
	}
	if len(got) != len(want) {
		t.Fatalf("records %+v, want %d", got, len(want))
	}
	for i, w := range want {
		if g := got[i]; g.Op != w.op || g.Session != w.session || !reflect.DeepEqual(g.LSSPairs, w.pairs) {
			t.Errorf("record %d: %s %q %v, want %s %q %v", i, g.Op, g.Session, g.LSSPairs, w.op, w.session, w.pairs)
		}
	}
}

// oneSystem is a fabric of one system with a small command log, and a
// manager's connection to it.
func oneSystem(t *testing.T, logSize int) (*Fabric, hal.StorageSystem) {
	t.Helper()
	fab := NewFabric(Options{Clock: clock.NewFake(t0), CommandLogSize: logSize})
	s, err := fab.AddSystem(SystemConfig{Serial: prim, LSSs: []LSSConfig{{LSS: fbL, Type: hal.FB, Volumes: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	return fab, s.Connect(mgr)
}

// seqs lists the Seq and Epoch of records, as "seq/epoch".
func seqs(recs []CommandRecord) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%d/%d", r.Seq, r.Epoch))
	}
	return out
}

// TestCommandLogRing: a log of 4 after 10 commands (command n carries
// epoch 10+n, so a record in the wrong slot shows) holds the last 4 and
// counts, for each reader, the records after its cursor it lost.
func TestCommandLogRing(t *testing.T) {
	t.Parallel()
	fab, c := oneSystem(t, 4)
	ctx := context.Background()
	if recs, dropped := fab.Commands(0); len(recs) != 0 || dropped != 0 {
		t.Fatalf("empty log: %v, dropped %d", seqs(recs), dropped)
	}
	for n := range 10 {
		if err := c.Heartbeat(ctx, hal.Epoch(11+n), "none"); !errors.Is(err, hal.ErrRefused) {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name        string
		after       uint64
		want        []string
		wantDropped uint64
	}{
		{"everything held", 0, []string{"7/17", "8/18", "9/19", "10/20"}, 6},
		{"cursor inside the dropped range", 3, []string{"7/17", "8/18", "9/19", "10/20"}, 3},
		{"cursor just before the oldest", 6, []string{"7/17", "8/18", "9/19", "10/20"}, 0},
		{"cursor inside the ring", 8, []string{"9/19", "10/20"}, 0},
		{"cursor at the newest", 10, []string{}, 0},
		{"cursor beyond the newest", 99, []string{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, dropped := fab.Commands(tc.after)
			if got := seqs(recs); !reflect.DeepEqual(got, tc.want) || dropped != tc.wantDropped {
				t.Fatalf("Commands(%d) = %v, dropped %d; want %v, dropped %d",
					tc.after, got, dropped, tc.want, tc.wantDropped)
			}
		})
	}
	// One more wraps again: the oldest slot is reused.
	_ = c.Heartbeat(ctx, 21, "none")
	recs, dropped := fab.Commands(0)
	if got, want := seqs(recs), []string{"8/18", "9/19", "10/20", "11/21"}; !reflect.DeepEqual(got, want) || dropped != 7 {
		t.Fatalf("after wrapping: %v, dropped %d; want %v, dropped 7", got, dropped, want)
	}
}

// TestCommandLogPaging: readers that page with the last Seq they saw get
// every record once, in order, whatever the commands do meanwhile; what
// they get is a copy.
func TestCommandLogPaging(t *testing.T) {
	t.Parallel()
	fab, _ := oneSystem(t, 0)
	ctx := context.Background()
	var (
		wg      sync.WaitGroup
		perConn = 200
	)
	for m := range 3 {
		conn := fab.System(prim).Connect(fmt.Sprintf("m%d", m))
		wg.Go(func() {
			for range perConn {
				_, _ = conn.QueryPaths(ctx, 1)
			}
		})
	}
	var all []CommandRecord
	var after uint64
	page := func() {
		recs, dropped := fab.Commands(after)
		if dropped != 0 {
			t.Errorf("dropped %d after %d", dropped, after)
		}
		if len(recs) > 0 {
			after = recs[len(recs)-1].Seq
			recs[0].Op = "scribbled" // must not reach the log
		}
		all = append(all, recs...)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for polling := true; polling; {
		select {
		case <-done:
			polling = false
		default:
		}
		page()
	}
	page()
	if len(all) != 3*perConn {
		t.Fatalf("%d records, want %d", len(all), 3*perConn)
	}
	perManager := map[string]int{}
	for i, r := range all {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has Seq %d", i, r.Seq)
		}
		perManager[r.Manager]++
	}
	if want := map[string]int{"m0": perConn, "m1": perConn, "m2": perConn}; !reflect.DeepEqual(perManager, want) {
		t.Fatalf("records per manager %v, want %v", perManager, want)
	}
	recs, _ := fab.Commands(0)
	for _, r := range recs {
		if r.Op != OpQueryPaths || r.Outcome != OutcomeOK {
			t.Fatalf("record %+v: the log was changed through a returned slice, or is wrong", r)
		}
	}
}

// TestCommandLogRingHoldsNoPointer: the ring is never scanned by the
// garbage collector only while its slots hold no pointer (see
// commandLog); a field with one (a string, a slice, a time.Time) would
// make the ring half the live heap of a loopback bench again.
func TestCommandLogRingHoldsNoPointer(t *testing.T) {
	var pointerFree func(reflect.Type) bool
	pointerFree = func(typ reflect.Type) bool {
		switch typ.Kind() {
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
			return true
		case reflect.Array:
			return pointerFree(typ.Elem())
		case reflect.Struct:
			for f := range typ.Fields() {
				if !pointerFree(f.Type) {
					t.Errorf("storedCommand.%s (%s) holds a pointer", f.Name, f.Type)
					return false
				}
			}
			return true
		}
		return false
	}
	pointerFree(reflect.TypeFor[storedCommand]())
}

// TestCommandLogKeepsPairsOfHeldRecordsOnly: a record's LSS pairs come
// back with it (a copy), and leave the log when the ring overwrites the
// record.
func TestCommandLogKeepsPairsOfHeldRecordsOnly(t *testing.T) {
	l := &commandLog{size: 2}
	at := time.Date(2026, 1, 1, 0, 0, 0, 5, time.FixedZone("X", 3600))
	lp := hal.LSSPair{Source: hal.LSSRef{Serial: "A", LSS: 1}, Target: hal.LSSRef{Serial: "B", LSS: 1}}
	want := CommandRecord{Seq: 1, At: at, Serial: "A", Manager: "m", Epoch: 3, SystemEpoch: 2,
		Op: OpEnableHeartbeat, Outcome: OutcomeOK, Session: "cg", LSSPairs: []hal.LSSPair{lp}}
	l.add(want)
	got, _ := l.after(0)
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	got[0].LSSPairs[0].Target.LSS = 9
	if again, _ := l.after(0); again[0].LSSPairs[0] != lp {
		t.Fatalf("a reader's change reached the log: %v", again[0].LSSPairs)
	}
	l.add(CommandRecord{Op: OpHeartbeat, At: at})
	l.add(CommandRecord{Op: OpHeartbeat}) // overwrites record 1
	if len(l.pairs) != 0 {
		t.Fatalf("the pairs of an overwritten record are kept: %v", l.pairs)
	}
	if recs, _ := l.after(0); !recs[1].At.IsZero() || !recs[0].At.Equal(at) {
		t.Fatalf("instants %v, %v; want %v, zero", recs[0].At, recs[1].At, at)
	}
}
