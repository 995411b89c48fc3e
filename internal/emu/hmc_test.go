package emu_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/hal/haltest"
	"github.com/lockstep-io/lockstep/internal/emu"
)

func hmcFabric(t *testing.T, clk clock.Clock, cfg emu.HMCConfig) (*emu.Fabric, *emu.HMC) {
	t.Helper()
	fab := emu.NewFabric(emu.Options{Clock: clk})
	lsss := []emu.LSSConfig{{LSS: haltest.FBLSS, Type: hal.FB, Volumes: haltest.Volumes},
		{LSS: haltest.CKDLSS, Type: hal.CKD, Volumes: haltest.Volumes}}
	for _, s := range []hal.Serial{haltest.Primary, haltest.Secondary} {
		if _, err := fab.AddSystem(emu.SystemConfig{Serial: s, LSSs: lsss}); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Name = "HMC1"
	cfg.Systems = []hal.Serial{haltest.Primary, haltest.Secondary}
	h, err := emu.NewHMC(fab, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fab, h
}

func route(t *testing.T, s *emu.HMCSession, serial hal.Serial) hal.StorageSystem {
	t.Helper()
	sys, err := s.Route(serial)
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

// TestConformanceThroughHMC: the emulator behind an HMC is the same
// storage system (no HMC timing: the suite runs on a fake clock).
func TestConformanceThroughHMC(t *testing.T) {
	haltest.Run(t, func(t *testing.T) *haltest.Lab {
		clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		fab, h := hmcFabric(t, clk, emu.HMCConfig{})
		sess := h.Connect("conformance")
		return &haltest.Lab{
			Primary:   route(t, sess, haltest.Primary),
			Secondary: route(t, sess, haltest.Secondary),
			Write:     fab.Write,
			Read:      fab.Read,
			CutPaths:  func(up bool) { fab.SetSystemPaths(haltest.Primary, up) },
			CutManager: func(up bool) {
				if err := h.SetLink(haltest.Primary, up); err != nil {
					t.Fatal(err)
				}
			},
			Pass: clk.Advance,
		}
	})
}

func TestNewHMCRefuses(t *testing.T) {
	t.Parallel()
	fab := emu.NewFabric(emu.Options{})
	if _, err := fab.AddSystem(emu.SystemConfig{Serial: "A", LSSs: []emu.LSSConfig{{LSS: 1, Type: hal.FB, Volumes: 1}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  emu.HMCConfig
	}{
		{"no-name", emu.HMCConfig{Systems: []hal.Serial{"A"}}},
		{"unknown-system", emu.HMCConfig{Name: "H", Systems: []hal.Serial{"B"}}},
		{"twice", emu.HMCConfig{Name: "H", Systems: []hal.Serial{"A", "A"}}},
		{"negative", emu.HMCConfig{Name: "H", Processing: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := emu.NewHMC(fab, tc.cfg); !errors.Is(err, emu.ErrHMC) {
				t.Fatalf("NewHMC = %v, want ErrHMC", err)
			}
		})
	}
}

// TestHMCTiming: a relayed command takes the HMC's processing time plus
// the private link both ways, on the storage clock.
func TestHMCTiming(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	_, h := hmcFabric(t, clk, emu.HMCConfig{Processing: emu.DefaultHMCProcessing, LinkLatency: emu.DefaultHMCLinkLatency})
	p := route(t, h.Connect("m"), haltest.Primary)
	done := make(chan error, 1)
	go func() { done <- p.Thaw(context.Background(), 1, []hal.LSS{haltest.FBLSS}) }()
	want := emu.DefaultHMCProcessing + 2*emu.DefaultHMCLinkLatency
	const step = 10 * time.Microsecond
	var passed time.Duration
	guard := time.Now().Add(10 * time.Second)
	for time.Now().Before(guard) {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if passed != want {
				t.Fatalf("relayed command took %v of storage time, want %v", passed, want)
			}
			return
		default:
		}
		if clk.Pending() == 0 { // the relay is between two waits
			runtime.Gosched()
			continue
		}
		clk.Advance(step)
		passed += step
	}
	t.Fatal("the relayed command never ended")
}

func TestHMCFaults(t *testing.T) {
	t.Parallel()
	_, h := hmcFabric(t, clock.Real(), emu.HMCConfig{})
	sess := h.Connect("m")
	p, s := route(t, sess, haltest.Primary), route(t, sess, haltest.Secondary)
	ctx := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	if _, err := sess.Route("LAB.NOPE"); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("route to a system the HMC does not front: %v", err)
	}

	// The private link to the primary: the primary is unreachable, the
	// secondary is not, and the HMC says so.
	if err := h.SetLink(haltest.Primary, false); err != nil {
		t.Fatal(err)
	}
	if _, err := p.QueryLSSs(ctx(), 1); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("query over a down private link: %v, want unreachable", err)
	}
	if _, err := s.QueryLSSs(ctx(), 1); err != nil {
		t.Fatalf("the other system: %v", err)
	}
	if got := h.Links(); got[0].Up || !got[1].Up {
		t.Fatalf("links %+v, want the primary's down", got)
	}
	if err := h.SetLink(haltest.Primary, true); err != nil {
		t.Fatal(err)
	}
	if err := h.SetLink("LAB.NOPE", true); !errors.Is(err, emu.ErrHMC) {
		t.Fatalf("link to a system the HMC does not front: %v", err)
	}

	h.SetMode(emu.LinkDown)
	if _, err := s.QueryLSSs(ctx(), 1); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("query through a down HMC: %v, want unreachable", err)
	}
	h.SetMode(emu.LinkBlackhole)
	if _, err := s.QueryLSSs(ctx(), 1); !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("query through a black-holed HMC: %v, want timeout", err)
	}
	h.SetMode(emu.LinkUp)
	if _, err := p.QueryLSSs(ctx(), 1); err != nil {
		t.Fatal(err)
	}
}

// TestHMCEventsAndCommandLog: the HMC forwards each attached system's
// events while its link is up, and the systems record the manager, not
// the HMC, as the sender of relayed commands.
func TestHMCEventsAndCommandLog(t *testing.T) {
	t.Parallel()
	fab, h := hmcFabric(t, clock.Real(), emu.HMCConfig{})
	sess := h.Connect("lockstep-a")
	p := route(t, sess, haltest.Primary)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events, err := sess.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lp, ckd := haltest.LSSPair(haltest.FBLSS), haltest.LSSPair(haltest.CKDLSS)
	if err := p.EstablishPaths(ctx, 3, []hal.PathSpec{{LSSPair: lp, ConsistencyGroup: true}, {LSSPair: ckd}}); err != nil {
		t.Fatal(err)
	}
	if err := p.EstablishPairs(ctx, 3, []hal.PairSpec{{VolumePair: haltest.Pair(haltest.FBLSS, 0)},
		{VolumePair: haltest.Pair(haltest.CKDLSS, 0)}}); err != nil {
		t.Fatal(err)
	}
	recs, _ := fab.Commands(0)
	if len(recs) == 0 || recs[0].Manager != "lockstep-a" || recs[0].Epoch != 3 {
		t.Fatalf("command log %+v, want the manager's name and epoch", recs)
	}

	// Link down: the suspend raised then is lost for this HMC; the
	// freeze's, raised once it is back, is the first event it forwards.
	if err := h.SetLink(haltest.Primary, false); err != nil {
		t.Fatal(err)
	}
	fab.SetPath(lp, false)
	if err := h.SetLink(haltest.Primary, true); err != nil {
		t.Fatal(err)
	}
	for {
		ps, err := p.QueryPairs(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 2 && ps[1].State == hal.FullDuplex {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.Freeze(ctx, 3, []hal.LSSPair{ckd}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev.Kind != hal.EventSuspend || ev.Serial != haltest.Primary || ev.Reason != hal.ReasonFreeze || ev.LSSPair != ckd {
			t.Fatalf("first event through the HMC %+v, want the freeze's, raised after the link came back", ev)
		}
	case <-ctx.Done():
		t.Fatal("no event through the HMC")
	}
}
