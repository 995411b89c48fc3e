package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/internal/lab"
)

// zosFault builds the faults of the emulated z/OS hosts:
//
//	fault zos HOST down|up|blackhole
//	fault zos HOST latency DURATION
//	fault channel HOST SERIAL down|up
func zosFault(pos []string) (lab.Request, error) {
	usage := func(format string, a ...any) (lab.Request, error) {
		return lab.Request{}, fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
	}
	f := lab.Fault{Kind: pos[0], Host: pos[1], Endpoint: -1}
	switch {
	case f.Kind == "zos" && len(pos) == 3 && (pos[2] == "down" || pos[2] == "up" || pos[2] == "blackhole"):
		f.Mode = pos[2]
	case f.Kind == "zos" && len(pos) == 4 && pos[2] == "latency":
		if d, err := time.ParseDuration(pos[3]); err != nil || d < 0 {
			return usage("fault zos %s latency: %q is not a duration", f.Host, pos[3])
		}
		f.Latency = pos[3]
	case f.Kind == "channel" && len(pos) == 4 && (pos[3] == "down" || pos[3] == "up"):
		f.System, f.Mode = pos[2], pos[3]
	default:
		return usage("fault %s: wrong arguments %q: fault zos HOST down|up|blackhole|latency D, fault channel HOST SERIAL down|up",
			f.Kind, strings.Join(pos[1:], " "))
	}
	return lab.Request{Op: "fault", Fault: &f}, nil
}

// printZOS lists the z/OS hosts of a status answer.
func printZOS(out io.Writer, hosts []lab.ZOSStatus) {
	for _, h := range hosts {
		extra := ""
		if h.Latency != "" {
			extra = " latency +" + h.Latency
		}
		fmt.Fprintf(out, "z/OS %-15s %-9s sysplex %-8s agent %-22s connections %d messages %d dropped %d%s\n",
			h.Name, h.Mode, h.Sysplex, h.Endpoint, h.Connections, h.Messages, h.Dropped, extra)
		for _, o := range h.Online {
			state := "up"
			if !o.Up {
				state = "DOWN"
			}
			fmt.Fprintf(out, "  online %-20s channels %-12s %-4s lpars %s\n",
				o.Serial, strings.Join(o.Channels, ","), state, strings.Join(o.LPARs, ","))
		}
	}
}
