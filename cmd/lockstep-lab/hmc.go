package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/lockstep-io/lockstep/internal/lab"
)

// hmcFault builds the faults of an HMC:
//
//	fault hmc NAME down|up|blackhole
//	fault hmc NAME latency DURATION
//	fault hmc-link NAME SERIAL down|up|blackhole
func hmcFault(pos []string) (lab.Request, error) {
	usage := func() (lab.Request, error) {
		return lab.Request{}, fmt.Errorf("%w: fault %s: wrong arguments %q: see lockstep-lab help",
			errUsage, pos[0], strings.Join(pos[1:], " "))
	}
	f := lab.Fault{Kind: pos[0], Endpoint: -1}
	switch {
	case f.Kind == "hmc" && len(pos) == 3 && pos[2] != "latency":
		f.HMC, f.Mode = pos[1], pos[2]
	case f.Kind == "hmc" && len(pos) == 4 && pos[2] == "latency":
		f.HMC, f.Latency = pos[1], pos[3]
	case f.Kind == "hmc-link" && len(pos) == 4 && (pos[3] == "up" || pos[3] == "down"):
		f.HMC, f.System, f.Up = pos[1], pos[2], pos[3] == "up"
	case f.Kind == "hmc-link" && len(pos) == 4 && pos[3] == "blackhole":
		f.HMC, f.System, f.Mode = pos[1], pos[2], pos[3]
	default:
		return usage()
	}
	return lab.Request{Op: "fault", Fault: &f}, nil
}

// printHMCs is the HMC part of status: one line per HMC, then one per
// private link.
func printHMCs(out io.Writer, hmcs []lab.HMCStatus) {
	for _, h := range hmcs {
		state := strings.ToUpper(h.Mode)
		if h.Mode == "up" {
			state = "up"
		}
		latency := ""
		if h.Latency != "" {
			latency = "  latency +" + h.Latency
		}
		fmt.Fprintf(out, "hmc %-16s %-9s %-22s %d systems%s\n", h.Name, state, h.Endpoint, len(h.Systems), latency)
		for _, l := range h.Systems {
			link := "link up"
			switch {
			case l.Mode == "blackhole":
				link = "link BLACKHOLE" // the HMC thinks it up
			case !l.Up:
				link = "link DOWN"
			}
			fmt.Fprintf(out, "    %-20s %s\n", l.Serial, link)
		}
	}
}
