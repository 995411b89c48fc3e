package scripted

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/hal/emu"
	"github.com/lockstep-io/lockstep/hal/emu/topology"
	"github.com/lockstep-io/lockstep/hal/emu/workload"
)

// Options shape one S1 run.
type Options struct {
	Clock     clock.Clock // the run's time (fake in tests, scaled in the demo)
	Heartbeat bool
	Chains    int           // dependent-write chains (default 16)
	Think     time.Duration // pause between writes of a chain
	Before    time.Duration // workload time before the fault (default 5 s)
	After     time.Duration // time after the fault (default: longest CG timeout + 30 s)
}

// Result is what the run proved.
type Result struct {
	Report   workload.Report
	Writes   uint64   // acknowledged host writes
	Timeline []string // what happened, with storage times
}

const manager = "scripted-manager"

// RunS1 runs scenario S1: 4 primaries and 4 secondaries, a workload
// across all of them, then primary 1 loses its paths and its connection
// to the manager at the same instant.
func RunS1(ctx context.Context, opt Options) (*Result, error) {
	clk := clock.OrReal(opt.Clock)
	if opt.Chains == 0 {
		opt.Chains = 16
	}
	if opt.Before == 0 {
		opt.Before = 5 * time.Second
	}
	topo := topology.Standard(4, topology.DefaultLSSs())
	if opt.After == 0 {
		opt.After = longestCGTimeout(topo) + 30*time.Second
	}
	fab := emu.NewFabric(emu.Options{Clock: clk})
	if err := topo.Build(fab); err != nil {
		return nil, err
	}
	res := &Result{}
	start := clk.Now()
	var mu sync.Mutex
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		res.Timeline = append(res.Timeline,
			fmt.Sprintf("t=%7.3fs  %s", clk.Since(start).Seconds(), fmt.Sprintf(format, args...)))
	}

	conns := map[hal.Serial]hal.StorageSystem{}
	for _, s := range fab.Systems() {
		conns[s.Serial()] = s.Connect(manager)
	}
	if err := topo.Establish(ctx, clk, conns, 1, time.Minute); err != nil {
		return nil, err
	}
	logf("%d pairs full-duplex from 4 primaries to 4 secondaries, paths with the consistency-group option",
		len(topo.Pairs))

	obsCtx, stopObserving := context.WithCancel(ctx)
	defer stopObserving()
	observeStorage(obsCtx, fab, logf)

	primaries := map[hal.Serial]hal.StorageSystem{}
	for _, serial := range topo.Sources() {
		primaries[serial] = conns[serial]
	}
	ctrl := &Controller{
		Clock: clk, Conns: primaries, Pairs: topo.LSSPairs(), Epoch: 1,
		Heartbeat: opt.Heartbeat, Interval: time.Second,
		Timeout:        longestSafeHeartbeat(topo),
		RequestTimeout: 2 * time.Second, Log: logf,
	}
	ctrlCtx, stopCtrl := context.WithCancel(ctx)
	defer stopCtrl()
	ctrlDone := make(chan error, 1)
	go func() { ctrlDone <- ctrl.Run(ctrlCtx) }()

	layout, err := workload.NewLayout(topo.Pairs, opt.Chains, 8)
	if err != nil {
		return nil, err
	}
	run := workload.Start(ctx, fab, layout, workload.Options{Clock: clk, Think: opt.Think})
	logf("workload: %d chains of dependent writes, consecutive writes on different primaries", opt.Chains)
	if err := clock.Sleep(ctx, clk, opt.Before); err != nil {
		return nil, err
	}

	victim := topology.PrimarySerial(0)
	// The connection goes first so that not even the suspend event of the
	// path failure gets out: "at the same instant".
	fab.System(victim).SetManagerLink(manager, emu.LinkDown)
	fab.SetSystemPaths(victim, false)
	logf("FAULT: %s loses its replication paths and its connection to the manager at once", victim)

	if err := clock.Sleep(ctx, clk, opt.After); err != nil {
		return nil, err
	}
	run.Stop()
	stopCtrl()
	if err := <-ctrlDone; err != nil {
		return nil, err
	}
	st := run.Status()
	res.Writes = st.Writes
	logf("workload stopped after %d acknowledged writes", st.Writes)
	img, err := workload.Capture(fab, layout)
	if err != nil {
		return nil, err
	}
	res.Report = workload.Check(layout, img)
	return res, nil
}

// observeStorage logs, from the lab's side, what the storage systems do
// on their own: the first suspend of each reason per system, and every
// heartbeat expiry. The lab's own connection is never cut.
func observeStorage(ctx context.Context, fab *emu.Fabric, logf func(string, ...any)) {
	for _, s := range fab.Systems() {
		events, err := s.Connect("lab-observer").Events(ctx)
		if err != nil {
			continue
		}
		go func() {
			seen := map[string]bool{}
			for ev := range events {
				key := fmt.Sprintf("%s %s %s", ev.Serial, ev.Kind, ev.Reason)
				switch {
				case ev.Kind == hal.EventHeartbeatExpiry:
					logf("storage %s: no heartbeat for the storage timeout: it freezes its own pairs and holds writes", ev.Serial)
				case ev.Kind == hal.EventSuspend && ev.Reason != hal.ReasonFreeze && !seen[key]:
					seen[key] = true
					logf("storage %s: pairs suspended (%s), host writes held for the CG timeout", ev.Serial, ev.Reason)
				}
			}
		}()
	}
}

func longestCGTimeout(t *topology.Topology) time.Duration {
	var longest time.Duration
	for _, s := range t.Systems {
		for _, l := range s.LSSs {
			longest = max(longest, cgTimeout(l))
		}
	}
	return longest
}

// longestSafeHeartbeat is the lowest CG timeout of the layout minus a
// margin for detection, fan-out and request timeout (DESIGN.md §5).
func longestSafeHeartbeat(t *topology.Topology) time.Duration {
	var cgs []time.Duration
	for _, s := range t.Systems {
		for _, l := range s.LSSs {
			cgs = append(cgs, cgTimeout(l))
		}
	}
	sort.Slice(cgs, func(i, j int) bool { return cgs[i] < cgs[j] })
	return cgs[0] - 10*time.Second
}

func cgTimeout(l emu.LSSConfig) time.Duration {
	if l.CGTimeout > 0 {
		return l.CGTimeout
	}
	return hal.DefaultCGTimeout(l.Type)
}
