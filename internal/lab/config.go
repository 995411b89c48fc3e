package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// ErrConfig reports a lab file that cannot be used.
var ErrConfig = errors.New("lab: bad lab file")

// Config is a validated lab file.
type Config struct {
	Speed         float64       // storage time runs this many times faster than real time
	CopyPerBlock  time.Duration // establish/resync copy time per block
	ControlSocket string        // unix socket of the lab control API
	CertFile      string        // TLS server certificate (PEM); generated when empty
	KeyFile       string
	CAOut         string // where to write the CA managers must trust ("" = nowhere)
	Systems       []System
	HMCs          []HMC              // emulated HMCs and the systems each fronts (hmc_config.go)
	Topology      *topology.Topology // systems, plus the mirror layout the workload and oracle use
	ZOSHosts      []ZOSHost          // emulated z/OS hosts (zos_config.go)
}

// System is one emulated storage system and how it is served.
type System struct {
	emu.SystemConfig
	User, Password string
	Endpoints      [2]string // cluster 0 and cluster 1 listen addresses
}

// The raw file, decoded strictly.
type rawConfig struct {
	Speed         float64     `toml:"speed"`
	CopyPerBlock  rawDuration `toml:"copy_per_block"`
	ControlSocket string      `toml:"control_socket"`
	TLS           struct {
		CertFile string `toml:"cert_file"`
		KeyFile  string `toml:"key_file"`
		CAOut    string `toml:"ca_out"`
	} `toml:"tls"`
	Systems []struct {
		Serial    string   `toml:"serial"`
		User      string   `toml:"user"`
		Password  string   `toml:"password"`
		Endpoints []string `toml:"endpoints"`
		LSSs      []struct {
			ID        string      `toml:"id"`
			Type      string      `toml:"type"`
			Volumes   int         `toml:"volumes"`
			CGTimeout rawDuration `toml:"cg_timeout"`
		} `toml:"lss"`
	} `toml:"system"`
	Mirrors []struct {
		Source string `toml:"source"`
		Target string `toml:"target"`
	} `toml:"mirror"`
	HMCs []rawHMC     `toml:"hmc"`
	ZOS  []rawZOSHost `toml:"zos"`
}

// rawDuration is a duration written as a string ("60s"); a bare integer
// is refused rather than read as nanoseconds.
type rawDuration struct {
	d   time.Duration
	set bool
}

func (r *rawDuration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("duration must be a string such as \"60s\", not %v", v)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	r.d, r.set = d, true
	return nil
}

// LoadConfig reads and validates a lab file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return ParseConfig(string(b))
}

// ParseConfig decodes and validates a lab file's text. Every problem is
// reported, not just the first.
func ParseConfig(text string) (*Config, error) {
	var raw rawConfig
	md, err := toml.Decode(text, &raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var problems []string
	for _, k := range md.Undecoded() {
		problems = append(problems, fmt.Sprintf("unknown key %q", k.String()))
	}
	// toml matches keys case-insensitively; ours are all lower case.
	for _, k := range md.Keys() {
		if s := k.String(); s != strings.ToLower(s) {
			problems = append(problems, fmt.Sprintf("key %q must be lower case", s))
		}
	}
	cfg := &Config{
		Speed: raw.Speed, CopyPerBlock: raw.CopyPerBlock.d, ControlSocket: raw.ControlSocket,
		CertFile: raw.TLS.CertFile, KeyFile: raw.TLS.KeyFile, CAOut: raw.TLS.CAOut,
		Topology: &topology.Topology{},
	}
	if !md.IsDefined("speed") {
		cfg.Speed = 1
	}
	if cfg.Speed < 1 {
		problems = append(problems, fmt.Sprintf("speed = %g: must be 1 or more", cfg.Speed))
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		problems = append(problems, "tls: cert_file and key_file go together")
	}
	serials := map[hal.Serial]*System{}
	for i, rs := range raw.Systems {
		where := fmt.Sprintf("system[%d] %q", i, rs.Serial)
		s := System{User: rs.User, Password: rs.Password}
		s.Serial = hal.Serial(rs.Serial)
		if rs.Serial == "" {
			problems = append(problems, where+": serial is required")
		} else if serials[s.Serial] != nil {
			problems = append(problems, where+": serial defined twice")
		}
		if rs.User == "" || rs.Password == "" {
			problems = append(problems, where+": user and password are required")
		}
		if len(rs.Endpoints) != 2 {
			problems = append(problems, where+": endpoints must list the two cluster addresses")
		} else {
			s.Endpoints = [2]string{rs.Endpoints[0], rs.Endpoints[1]}
		}
		for j, rl := range rs.LSSs {
			lwhere := fmt.Sprintf("%s lss[%d]", where, j)
			id, err := hal.ParseLSS(rl.ID)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", lwhere, err))
			}
			var typ hal.LSSType
			switch rl.Type {
			case "FB":
				typ = hal.FB
			case "CKD":
				typ = hal.CKD
			default:
				problems = append(problems, fmt.Sprintf("%s: type %q is not FB or CKD", lwhere, rl.Type))
			}
			if rl.Volumes < 1 || rl.Volumes > 256 {
				problems = append(problems, fmt.Sprintf("%s: volumes = %d: 1 to 256", lwhere, rl.Volumes))
			}
			s.LSSs = append(s.LSSs, emu.LSSConfig{LSS: id, Type: typ, Volumes: rl.Volumes, CGTimeout: rl.CGTimeout.d})
		}
		if len(s.LSSs) == 0 {
			problems = append(problems, where+": no lss")
		}
		cfg.Systems = append(cfg.Systems, s)
		serials[s.Serial] = &cfg.Systems[len(cfg.Systems)-1]
		cfg.Topology.Systems = append(cfg.Topology.Systems, s.SystemConfig)
	}
	if len(cfg.Systems) == 0 {
		problems = append(problems, "no [[system]]")
	}
	var hmcProblems []string
	cfg.HMCs, hmcProblems = parseHMCs(raw.HMCs, serials)
	problems = append(problems, hmcProblems...)
	for i, m := range raw.Mirrors {
		src, tgt := serials[hal.Serial(m.Source)], serials[hal.Serial(m.Target)]
		if src == nil || tgt == nil || src == tgt {
			problems = append(problems, fmt.Sprintf("mirror[%d]: %q -> %q must name two defined systems", i, m.Source, m.Target))
			continue
		}
		problems = append(problems, cfg.Topology.AddMirror(src.SystemConfig, tgt.SystemConfig)...)
	}
	problems = append(problems, cfg.parseZOS(raw.ZOS, serials)...)
	problems = append(problems, cfg.sharedListenAddresses()...)
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w:\n  %s", ErrConfig, strings.Join(problems, "\n  "))
	}
	return cfg, nil
}

// sharedListenAddresses names the fixed listen addresses (port not 0) that
// two listeners of the lab file — cluster endpoints, HMCs, z/OS hosts —
// both claim: the second would fail to start with "address in use", and
// the file is the place to say which.
func (cfg *Config) sharedListenAddresses() []string {
	var problems []string
	owner := map[string]string{}
	claim := func(addr, who string) {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
			return // a bad address is reported where it is parsed; port 0 never clashes
		}
		if first, ok := owner[addr]; ok {
			problems = append(problems, fmt.Sprintf("%s: listen address %s is also %s's", who, addr, first))
			return
		}
		owner[addr] = who
	}
	for _, s := range cfg.Systems {
		for i, ep := range s.Endpoints {
			claim(ep, fmt.Sprintf("system %s cluster %d", s.Serial, i))
		}
	}
	for _, h := range cfg.HMCs {
		claim(h.Endpoint, "hmc "+h.Name)
	}
	for _, h := range cfg.ZOSHosts {
		claim(h.Endpoint, "zos "+h.Name)
	}
	return problems
}
