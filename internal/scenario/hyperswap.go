package scenario

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
	"github.com/lockstep-io/lockstep/internal/workload"
)

// HyperSwapNames are the scenarios of a Metro Mirror Failover/Failback
// with HyperSwap session: the workload runs on an in-process z/OS host
// (emu.Host) that has every H1 and H2 system online and the session
// loaded. They run in-process only.
var HyperSwapNames = []string{"hyperswap-planned", "hyperswap-unplanned", "hyperswap-unplanned-channel", "hyperswap-pathloss"}

// hyperSwapSession is the session the z/OS host holds.
const hyperSwapSession = "hs"

func init() {
	Descriptions["hyperswap-planned"] = "HyperSwap session: the manager's hyperswap command (the z/OS host swaps to H2, then the group is frozen) mid-workload"
	Descriptions["hyperswap-unplanned"] = "HyperSwap session: one H1 storage system crashes mid-workload; the z/OS host swaps to H2 by itself"
	Descriptions["hyperswap-unplanned-channel"] = "HyperSwap session: the z/OS host's channels to one H1 storage system fail mid-workload; it swaps to H2 by itself"
	Descriptions["hyperswap-pathloss"] = "HyperSwap session: one H1 storage system loses its replication paths (no swap trigger: the manager freezes)"
}

// Freezer is the part of the freeze core (daemon/freeze.Core) the
// hyperswap command uses.
type Freezer interface {
	Freeze(ctx context.Context, group, reason string) error
}

// HyperSwap is the planned HyperSwap as the manager's hyperswap command
// carries it out: the z/OS host swaps first (it holds the session's host
// I/O, freezes the session's LSS pairs, recovers H2 and re-drives its
// I/O there), then the freeze core freezes the whole consistency group
// (the rest of its scope; the session's own pairs are frozen already).
//
// Not the other way round: a freeze through the core first leaves the
// application writing to H1 until the host's swap begins, and a group
// whose policy is release I/O is thawed as soon as the freeze is
// certain, so writes in that window complete on H1 alone, are
// acknowledged, and are lost when the application moves to H2. The
// host is the one that can hold its I/O first. The daemon's engine does
// the same two steps in the same order.
func HyperSwap(ctx context.Context, core Freezer, group string, host hal.SwapHost, epoch hal.Epoch, session string) error {
	return hyperSwap(ctx, core, group, host, epoch, session, nil)
}

// hyperSwap is HyperSwap with between (if set) run between its two steps:
// the time a manager takes between them, under load.
func hyperSwap(ctx context.Context, core Freezer, group string, host hal.SwapHost, epoch hal.Epoch, session string, between func()) error {
	swapErr := host.Swap(ctx, epoch, session)
	if between != nil {
		between()
	}
	// Frozen whatever the swap's outcome: a host that failed midway may
	// have frozen part of the session.
	if err := core.Freeze(ctx, group, "hyperswap command"); err != nil {
		return errors.Join(swapErr, fmt.Errorf("hyperswap %s: freeze of %s: %w", session, group, err))
	}
	if swapErr != nil {
		return fmt.Errorf("hyperswap %s: %w", session, swapErr)
	}
	return nil
}

// atSwap is the oracle at the instant of a swap (emu.HostConfig.AtSwap):
// the host has frozen H1 and recovered H2 and holds the session's I/O, so
// H2 must hold every write the application was told is done, and be
// consistent. Judging only the image at the end would miss a write lost
// at the swap once later writes of its chain overwrote its slot.
func (l *lab) atSwap(string) {
	l.mu.Lock()
	layout, run := l.layout, l.run
	l.mu.Unlock()
	if layout == nil || run == nil {
		return
	}
	acked := run.Status().Acked
	var rep workload.Report // not consistent, until read
	snap, err := l.fab.Snapshot(layout.Targets())
	var img *workload.Image
	if err == nil {
		img, err = workload.Capture(snap, layout)
	}
	if err == nil {
		rep, err = workload.CheckAcked(layout, img, acked)
	}
	if err != nil {
		l.logf("oracle at the swap: H2 could not be judged: %v", err)
	}
	l.mu.Lock()
	l.res.AtSwap, l.res.AtSwapChecked = rep, true
	l.mu.Unlock()
	l.logf("oracle at the swap: %s", rep)
}

// withHost puts the in-process z/OS host in front of the workload and
// loads the session.
func (l *lab) withHost(ctx context.Context) error {
	var online []hal.Serial
	for _, s := range l.fab.Systems() {
		online = append(online, s.Serial())
	}
	h, err := l.fab.NewHost(emu.HostConfig{Name: labZOSHost, Online: online, AtSwap: l.atSwap})
	if err != nil {
		return err
	}
	l.host = h
	if err := h.LoadSwap(ctx, 1, hyperSwapSession, l.topo.Pairs); err != nil {
		return err
	}
	st, err := h.SwapStatus(ctx, 1)
	if err != nil {
		return err
	}
	if len(st) != 1 || !st[0].Ready {
		return fmt.Errorf("scenario: HyperSwap session not swap-ready after start: %+v", st)
	}
	l.logf("z/OS host %s runs the workload; HyperSwap session %s loaded with %d pairs, swap-ready", labZOSHost, hyperSwapSession, len(l.topo.Pairs))
	return nil
}

// watchSwaps records the host's swaps and how far the workload had got.
func (l *lab) watchSwaps(ctx context.Context, run *workload.Run) {
	events, err := l.host.SwapEvents(ctx)
	if err != nil {
		return
	}
	go func() {
		for ev := range events {
			writes := run.Status().Writes
			l.mu.Lock()
			l.res.Swapped = true
			l.res.SwapTrigger = ev.Trigger
			l.res.WritesAtSwap = writes
			l.mu.Unlock()
			kind := "unplanned"
			if ev.Planned {
				kind = "planned"
			}
			l.logf("z/OS host %s: %s HyperSwap of %s (%s): the workload writes to H2 now", ev.Host, kind, ev.Session, ev.Trigger)
		}
	}()
}

var hyperSwapFaults = map[string]func(l *lab){
	"hyperswap-planned": func(l *lab) {
		l.logf("COMMAND: hyperswap %s (the z/OS host swaps, then the group is frozen)", hyperSwapSession)
		var between func()
		if l.swapLatency > 0 {
			between = func() { _ = clock.Sleep(l.ctx, l.clk, l.swapLatency) }
		}
		if err := hyperSwap(l.ctx, l.core, group, l.host, 1, hyperSwapSession, between); err != nil {
			l.logf("hyperswap failed: %v", err)
		}
	},
	"hyperswap-unplanned": func(l *lab) {
		p := topology.PrimarySerial(0)
		l.fab.System(p).Crash()
		l.logf("FAULT: H1 storage system %s crashes", p)
	},
	"hyperswap-unplanned-channel": func(l *lab) {
		p := topology.PrimarySerial(0)
		l.host.SetChannel(p, false)
		l.logf("FAULT: z/OS host %s loses its channels to H1 storage system %s", labZOSHost, p)
	},
	"hyperswap-pathloss": func(l *lab) {
		p := topology.PrimarySerial(0)
		l.cutPaths(p)
		l.logf("FAULT: %s loses its replication paths (host I/O to it still works)", p)
	},
}

// HyperSwapOK is the verdict of a HyperSwap scenario: the oracle finds the
// H2 image consistent with no acknowledged write lost, and the swap
// happened (and the workload wrote at least minAfter writes after it), or,
// for hyperswap-pathloss, did not (then H2 is the frozen image, consistent,
// and the application goes on writing on H1).
func HyperSwapOK(name string, r *Result, minAfter uint64) error {
	if !r.Report.Sound() {
		return fmt.Errorf("oracle: %s", r.Report)
	}
	if r.Swapped && !r.AtSwapChecked {
		return fmt.Errorf("oracle: H2 was not judged at the swap")
	}
	if r.AtSwapChecked && !r.AtSwap.Sound() {
		return fmt.Errorf("oracle at the swap: %s", r.AtSwap)
	}
	if r.Swapped && !r.Report.AckedChecked {
		return fmt.Errorf("oracle: the lost-write rule was not checked")
	}
	if name == "hyperswap-pathloss" {
		if r.Swapped {
			return fmt.Errorf("the z/OS host swapped on a path loss (%s)", r.SwapTrigger)
		}
		if !r.Froze {
			return fmt.Errorf("the manager did not freeze")
		}
		return nil
	}
	if !r.Swapped {
		return fmt.Errorf("the z/OS host did not swap")
	}
	if after := r.Writes - r.WritesAtSwap; after < minAfter {
		return fmt.Errorf("only %d writes after the swap, want at least %d", after, minAfter)
	}
	return nil
}

func isHyperSwap(name string) bool { return slices.Contains(HyperSwapNames, name) }

// hyperSwapAfter is the default time after the fault: the workload keeps
// writing on H2 well past the lowest CG timeout (when an ELB-held write
// would complete on H1).
const hyperSwapAfter = 90 * time.Second
