package scenario

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// Fault is one step of a random schedule.
type Fault struct {
	At     time.Duration // after the workload started
	Kind   string        // paths | manager | both | crash | hmc | hmc-link | zos | channel
	System hal.Serial    // "" for hmc and zos
	HMC    string        // hmc, hmc-link: which HMC
	// Blackhole, for hmc-link, black-holes the private link instead of
	// taking it down: the HMC, which still answers, holds the system's
	// commands until their deadline.
	Blackhole bool
	Up        bool // restores what an earlier fault of the same kind took
}

func (f Fault) String() string {
	dir := "down"
	switch {
	case f.Up:
		dir = "up"
	case f.Blackhole:
		dir = "blackhole"
	}
	switch f.Kind {
	case "hmc":
		return fmt.Sprintf("t+%v hmc %s %s", f.At, dir, f.HMC)
	case "hmc-link":
		return fmt.Sprintf("t+%v hmc-link %s %s %s", f.At, dir, f.HMC, f.System)
	case "zos":
		return fmt.Sprintf("t+%v zos %s %s", f.At, dir, labZOSHost)
	case "channel":
		return fmt.Sprintf("t+%v channel %s %s %s", f.At, dir, labZOSHost, f.System)
	}
	if f.Kind == "crash" {
		dir = map[bool]string{false: "crash", true: "restart"}[f.Up]
		return fmt.Sprintf("t+%v %s %s", f.At, dir, f.System)
	}
	return fmt.Sprintf("t+%v %s %s %s", f.At, f.Kind, dir, f.System)
}

// ViaHMCs reports whether the schedule of seed runs with every storage
// system reached only through a dual HMC (half the seeds, independent of
// the release-I/O choice the tests make by seed parity).
func ViaHMCs(seed uint64) bool { return (seed/2)%2 == 1 }

// WithZOS reports whether the schedule of seed runs with a z/OS host that
// has every system online, reached after the TCP/IP connection (half the
// seeds, independent of ViaHMCs and of the seed's parity).
func WithZOS(seed uint64) bool { return (seed/4)%2 == 1 }

// Schedule draws one to three faults, each on a random primary or
// secondary: its paths, its manager connection, both at once, or a crash;
// with a dual HMC (ViaHMCs) also one HMC dying, or one HMC's private link
// to a system going down or silent (black-holed); with a z/OS host (WithZOS) also the host dying, or its
// channel to a system; some are restored later. Times fall both on and between
// the workload's write instants (multiples of think), so faults land at
// every phase of the chains' writes.
func Schedule(seed uint64, think time.Duration) []Fault {
	rng := rand.New(rand.NewPCG(seed, 0x6c6f636b73746570))
	kinds := []string{"paths", "manager", "both", "crash"}
	if ViaHMCs(seed) {
		kinds = append(kinds, "hmc", "hmc-link")
	}
	if WithZOS(seed) {
		kinds = append(kinds, "zos", "channel")
	}
	var out []Fault
	for range 1 + rng.IntN(3) {
		var serial hal.Serial
		if rng.IntN(4) == 0 {
			serial = topology.SecondarySerial(rng.IntN(4))
		} else {
			serial = topology.PrimarySerial(rng.IntN(4))
		}
		at := time.Duration(1+rng.IntN(20)) * time.Second
		if think > 0 && rng.IntN(2) == 0 {
			at = time.Duration(rng.Int64N(int64(20*time.Second)/int64(think))) * think
		} else {
			at += time.Duration(rng.IntN(1000)) * time.Millisecond
		}
		f := Fault{At: at, Kind: kinds[rng.IntN(len(kinds))], System: serial}
		switch f.Kind {
		case "hmc":
			f.System, f.HMC = "", labHMCs[rng.IntN(len(labHMCs))]
		case "hmc-link":
			f.HMC, f.Blackhole = labHMCs[rng.IntN(len(labHMCs))], rng.IntN(2) == 0
		case "zos":
			f.System = ""
		}
		out = append(out, f)
		if rng.IntN(3) == 0 {
			back := f
			back.Up, back.At = true, f.At+time.Duration(100+rng.IntN(90_000))*time.Millisecond
			out = append(out, back)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// Replay is the command that runs a seed again.
func Replay(seed uint64) string {
	return fmt.Sprintf("lockstep-lab scenario random --heartbeat on --seed %d", seed)
}

// RunSchedule runs the schedule of a seed with the real core.
func RunSchedule(ctx context.Context, opt Options) (*Result, []Fault, error) {
	opt.defaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opt.hmcs, opt.zos = ViaHMCs(opt.Seed), WithZOS(opt.Seed)
	l, err := setup(ctx, opt)
	if err != nil {
		return nil, nil, err
	}
	faults := Schedule(opt.Seed, opt.Think)
	var desc []string
	for _, f := range faults {
		desc = append(desc, f.String())
	}
	l.logf("schedule of seed %d: %s", opt.Seed, strings.Join(desc, "; "))
	opt.Before = time.Millisecond
	res, err := l.play(ctx, opt, func() {
		go func() {
			start := l.clk.Now()
			for _, f := range faults {
				if clock.Sleep(ctx, l.clk, f.At-l.clk.Since(start)) != nil {
					return
				}
				l.apply(f)
			}
		}()
	})
	return res, faults, err
}

func (l *lab) apply(f Fault) {
	s := l.fab.System(f.System)
	mode := emu.LinkDown
	if f.Up {
		mode = emu.LinkUp
	}
	// With a dual HMC the manager reaches a system through the HMCs'
	// private links: cutting the manager off it cuts both.
	managerLink := func() {
		if l.hmcs == nil {
			s.SetManagerLink(manager, mode)
			return
		}
		for _, h := range l.hmcs {
			_ = h.SetLink(f.System, f.Up)
		}
	}
	switch f.Kind {
	case "paths":
		l.fab.SetSystemPaths(f.System, f.Up)
	case "manager":
		managerLink()
	case "both":
		managerLink()
		l.fab.SetSystemPaths(f.System, f.Up)
	case "hmc":
		l.hmcByName(f.HMC).SetMode(mode)
	case "hmc-link":
		if f.Blackhole && !f.Up {
			mode = emu.LinkBlackhole
		}
		_ = l.hmcByName(f.HMC).SetLinkMode(f.System, mode)
	case "zos":
		l.zos.setDown(!f.Up)
	case "channel":
		l.zos.setChannel(f.System, f.Up)
	case "crash":
		if f.Up {
			s.Restart()
		} else {
			s.Crash()
		}
	}
	l.logf("FAULT: %s", f)
}

func (l *lab) hmcByName(name string) *emu.HMC {
	for _, h := range l.hmcs {
		if h.Name() == name {
			return h
		}
	}
	panic("scenario: no HMC " + name)
}
