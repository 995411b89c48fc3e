package scenario

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/lockstep-io/lockstep/hal"
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
	Descriptions["hyperswap-planned"] = "HyperSwap session: the manager's hyperswap command (freeze the group, then the z/OS host swaps to H2) mid-workload"
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
// carries it out: freeze the session's consistency group through the
// freeze core (every H1 LSS pair suspended, the application's writes held
// in ELB; no thaw, so none of them completes on H1 alone), then have the
// z/OS host swap, which abandons the held writes and re-drives them on
// H2. The daemon's engine does the same two steps.
func HyperSwap(ctx context.Context, core Freezer, group string, host hal.SwapHost, epoch hal.Epoch, session string) error {
	if err := core.Freeze(ctx, group, "hyperswap command"); err != nil {
		return fmt.Errorf("hyperswap %s: freeze of %s: %w", session, group, err)
	}
	if err := host.Swap(ctx, epoch, session); err != nil {
		return fmt.Errorf("hyperswap %s: %w", session, err)
	}
	return nil
}

// withHost puts the in-process z/OS host in front of the workload and
// loads the session.
func (l *lab) withHost(ctx context.Context) error {
	var online []hal.Serial
	for _, s := range l.fab.Systems() {
		online = append(online, s.Serial())
	}
	h, err := l.fab.NewHost(emu.HostConfig{Name: labZOSHost, Online: online})
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
		l.logf("COMMAND: hyperswap %s (freeze the group, then the z/OS host swaps)", hyperSwapSession)
		if err := HyperSwap(l.ctx, l.core, group, l.host, 1, hyperSwapSession); err != nil {
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
