package lab

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
)

// DefaultChannelLatency is the time a z/OS host's channel adds to every
// command it carries in-band to a storage system.
const DefaultChannelLatency = time.Millisecond

// ZOSHost is one emulated z/OS host: a member of a sysplex that has
// storage systems online through its channels and carries managers'
// commands to them in-band.
type ZOSHost struct {
	Name     string // the host's name; its certificate names it (urn:lockstep:zos:NAME)
	Sysplex  string // only managers stating this sysplex are served
	Endpoint string // host:port the agent listens on (port DefaultZOSPort when left out)
	User     string
	Password string
	// CertFile and KeyFile, when set, are the agent's certificate;
	// otherwise the lab's CA issues one naming the host.
	CertFile, KeyFile string
	// ChannelLatency is added to every command (DefaultChannelLatency
	// when not set).
	ChannelLatency time.Duration
	LPARs          []string
	Online         []ZOSOnline
}

// ZOSOnline is a storage system a z/OS host has online.
type ZOSOnline struct {
	Serial   hal.Serial
	Channels []string // the CHPIDs reaching it
	LPARs    []string // the LPARs with its devices online (default: every LPAR of the host)
}

type rawZOSHost struct {
	Name           string      `toml:"name"`
	Sysplex        string      `toml:"sysplex"`
	Endpoint       string      `toml:"endpoint"`
	User           string      `toml:"user"`
	Password       string      `toml:"password"`
	CertFile       string      `toml:"cert_file"`
	KeyFile        string      `toml:"key_file"`
	ChannelLatency rawDuration `toml:"channel_latency"`
	LPARs          []string    `toml:"lpars"`
	Online         []struct {
		System   string   `toml:"system"`
		Channels []string `toml:"channels"`
		LPARs    []string `toml:"lpars"`
	} `toml:"online"`
}

// parseZOS validates the [[zos]] hosts of a lab file.
func (cfg *Config) parseZOS(raws []rawZOSHost, systems map[hal.Serial]*System) []string {
	var problems []string
	names := map[string]bool{}
	for i, r := range raws {
		where := fmt.Sprintf("zos[%d] %q", i, r.Name)
		h := ZOSHost{Name: r.Name, Sysplex: r.Sysplex, User: r.User, Password: r.Password,
			CertFile: r.CertFile, KeyFile: r.KeyFile, ChannelLatency: r.ChannelLatency.d, LPARs: r.LPARs}
		if !r.ChannelLatency.set {
			h.ChannelLatency = DefaultChannelLatency
		}
		switch {
		case r.Name == "":
			problems = append(problems, where+": name is required")
		case len(r.Name) > wire.MaxName:
			problems = append(problems, where+": name is longer than 255 bytes")
		case names[r.Name]:
			problems = append(problems, where+": name defined twice")
		}
		names[r.Name] = true
		if r.Sysplex == "" || len(r.Sysplex) > wire.MaxName {
			problems = append(problems, where+": sysplex is required (1 to 255 bytes)")
		}
		if r.User == "" || r.Password == "" {
			problems = append(problems, where+": user and password are required")
		}
		if (r.CertFile == "") != (r.KeyFile == "") {
			problems = append(problems, where+": cert_file and key_file go together")
		}
		if r.CertFile == "" && cfg.CertFile != "" {
			problems = append(problems, where+": cert_file and key_file are required when [tls] has a cert_file (the lab makes no CA then)")
		}
		ep, err := zosEndpoint(r.Endpoint)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: endpoint: %v", where, err))
		}
		h.Endpoint = ep
		if len(r.LPARs) == 0 {
			problems = append(problems, where+": lpars: at least one LPAR")
		}
		if len(r.LPARs) > wire.MaxLPARs {
			problems = append(problems, fmt.Sprintf("%s: lpars: at most %d", where, wire.MaxLPARs))
		}
		for _, l := range r.LPARs {
			if l == "" || len(l) > wire.MaxName {
				problems = append(problems, fmt.Sprintf("%s: lpar %q: 1 to 255 bytes", where, l))
			}
		}
		online := map[hal.Serial]bool{}
		for j, ro := range r.Online {
			owhere := fmt.Sprintf("%s online[%d] %q", where, j, ro.System)
			o := ZOSOnline{Serial: hal.Serial(ro.System), Channels: ro.Channels, LPARs: ro.LPARs}
			if systems[o.Serial] == nil {
				problems = append(problems, owhere+": not a [[system]] of this lab")
			}
			if online[o.Serial] {
				problems = append(problems, owhere+": online twice")
			}
			online[o.Serial] = true
			if len(ro.Channels) == 0 {
				problems = append(problems, owhere+": channels: at least one CHPID")
			}
			for _, c := range ro.Channels {
				if _, err := strconv.ParseUint(c, 16, 8); err != nil || len(c) != 2 {
					problems = append(problems, fmt.Sprintf("%s: channel %q is not a CHPID (two hex digits)", owhere, c))
				}
			}
			if len(o.LPARs) == 0 {
				o.LPARs = slices.Clone(r.LPARs)
			}
			for _, l := range o.LPARs {
				if !slices.Contains(r.LPARs, l) {
					problems = append(problems, fmt.Sprintf("%s: lpar %q is not an LPAR of the host", owhere, l))
				}
			}
			h.Online = append(h.Online, o)
		}
		if len(h.Online) == 0 {
			problems = append(problems, where+": no [[zos.online]] storage system")
		}
		cfg.ZOSHosts = append(cfg.ZOSHosts, h)
	}
	return problems
}

// zosEndpoint checks a z/OS agent's listen address, adding the default
// port when none is written.
func zosEndpoint(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("required (host:port; the port defaults to %d)", wire.DefaultZOSPort)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the host alone (an IPv6 address in brackets or not).
		h := s
		if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
			h = h[1 : len(h)-1]
		}
		return net.JoinHostPort(h, strconv.Itoa(wire.DefaultZOSPort)), nil
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return "", fmt.Errorf("port %q is not a port number", port)
	}
	return net.JoinHostPort(host, port), nil
}
