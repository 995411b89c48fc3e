package lab

import (
	"fmt"
	"maps"
	"slices"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
)

// HMC is one emulated HMC of the lab file and how it is served.
type HMC struct {
	emu.HMCConfig         // name, attached systems, processing time, link latency
	User, Password string // the HMC's own credentials
	Endpoint       string // listen address
}

// rawHMC is an [[hmc]] table.
type rawHMC struct {
	Name        string      `toml:"name"`
	User        string      `toml:"user"`
	Password    string      `toml:"password"`
	Endpoint    string      `toml:"endpoint"`
	Systems     []string    `toml:"systems"`
	Processing  rawDuration `toml:"processing"`
	LinkLatency rawDuration `toml:"link_latency"`
}

// maxHMCsPerSystem: a storage system sits behind one HMC or two (dual
// HMC), as on the real hardware.
const maxHMCsPerSystem = 2

// parseHMCs validates the [[hmc]] tables against the defined systems and
// returns them with every problem found.
func parseHMCs(raws []rawHMC, systems map[hal.Serial]*System) ([]HMC, []string) {
	var out []HMC
	var problems []string
	names := map[string]bool{}
	behind := map[hal.Serial][]string{}
	for i, r := range raws {
		where := fmt.Sprintf("hmc[%d] %q", i, r.Name)
		h := HMC{User: r.User, Password: r.Password, Endpoint: r.Endpoint}
		h.Name = r.Name
		switch {
		case r.Name == "":
			problems = append(problems, where+": name is required")
		case names[r.Name]:
			problems = append(problems, where+": name defined twice")
		}
		names[r.Name] = true
		if r.User == "" || r.Password == "" {
			problems = append(problems, where+": user and password are required")
		}
		if r.Endpoint == "" {
			problems = append(problems, where+": endpoint is required")
		}
		if len(r.Systems) == 0 {
			problems = append(problems, where+": systems must list the storage systems it fronts")
		}
		for _, s := range r.Systems {
			serial := hal.Serial(s)
			switch {
			case systems[serial] == nil:
				problems = append(problems, fmt.Sprintf("%s: system %q is not defined", where, s))
				continue
			case slices.Contains(h.Systems, serial):
				problems = append(problems, fmt.Sprintf("%s: system %q listed twice", where, s))
				continue
			}
			h.Systems = append(h.Systems, serial)
			behind[serial] = append(behind[serial], r.Name)
		}
		h.Processing, h.LinkLatency = emu.DefaultHMCProcessing, emu.DefaultHMCLinkLatency
		if r.Processing.set {
			h.Processing = r.Processing.d
		}
		if r.LinkLatency.set {
			h.LinkLatency = r.LinkLatency.d
		}
		out = append(out, h)
	}
	for _, serial := range slices.Sorted(maps.Keys(behind)) {
		if hs := behind[serial]; len(hs) > maxHMCsPerSystem {
			problems = append(problems, fmt.Sprintf("system %q sits behind %d HMCs (%v): at most %d",
				serial, len(hs), hs, maxHMCsPerSystem))
		}
	}
	return out, problems
}
