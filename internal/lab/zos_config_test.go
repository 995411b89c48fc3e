package lab

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

const goodZOS = `
[[zos]]
name = "SYSA"
sysplex = "PLEX1"
endpoint = "127.0.0.1"
user = "z"
password = "zp"
lpars = ["L1", "L2"]
  [[zos.online]]
  system = "A"
  channels = ["40"]
`

func TestZOSHostParses(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(goodSystem + goodZOS)
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.ZOSHosts[0]
	if h.Endpoint != "127.0.0.1:5858" || h.ChannelLatency != time.Millisecond || h.Sysplex != "PLEX1" ||
		len(h.Online) != 1 || h.Online[0].Serial != "A" || strings.Join(h.Online[0].LPARs, ",") != "L1,L2" {
		t.Fatalf("host %+v", h)
	}
	cfg, err = LoadConfig("../../etc/lab.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ZOSHosts) != 1 || len(cfg.ZOSHosts[0].Online) != 8 || cfg.ZOSHosts[0].Online[4].Serial != hal.Serial("LAB.2107-75S0001") ||
		strings.Join(cfg.ZOSHosts[0].Online[4].LPARs, ",") != "SYSA2" {
		t.Fatalf("shipped z/OS hosts %+v", cfg.ZOSHosts)
	}
}

func TestBadZOSHosts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text, want string
	}{
		{"no sysplex", strings.Replace(goodZOS, `sysplex = "PLEX1"`, "", 1), "sysplex is required"},
		{"no name", strings.Replace(goodZOS, `name = "SYSA"`, "", 1), "name is required"},
		{"twice", goodZOS + goodZOS, "name defined twice"},
		{"no password", strings.Replace(goodZOS, `password = "zp"`, "", 1), "user and password are required"},
		{"bad port", strings.Replace(goodZOS, `"127.0.0.1"`, `"127.0.0.1:http"`, 1), `port "http" is not a port number`},
		{"no endpoint", strings.Replace(goodZOS, `endpoint = "127.0.0.1"`, "", 1), "endpoint: required"},
		{"no lpars", strings.Replace(goodZOS, `lpars = ["L1", "L2"]`, "", 1), "at least one LPAR"},
		{"unknown system", strings.Replace(goodZOS, `system = "A"`, `system = "B"`, 1), "not a [[system]] of this lab"},
		{"bad chpid", strings.Replace(goodZOS, `["40"]`, `["4G0"]`, 1), `channel "4G0" is not a CHPID`},
		{"no channel", strings.Replace(goodZOS, `channels = ["40"]`, "", 1), "at least one CHPID"},
		{"foreign lpar", strings.Replace(goodZOS, `channels = ["40"]`, "channels = [\"40\"]\n  lpars = [\"L9\"]", 1), `lpar "L9" is not an LPAR of the host`},
		{"nothing online", goodZOS[:strings.Index(goodZOS, "  [[zos.online]]")], "no [[zos.online]]"},
		{"bare integer latency", strings.Replace(goodZOS, `lpars =`, "channel_latency = 1\nlpars =", 1), `must be a string such as "60s"`},
		{"unknown key", strings.Replace(goodZOS, `lpars =`, "colour = 1\nlpars =", 1), `unknown key "zos.colour"`},
		{"listen address of a cluster", strings.Replace(goodZOS, `"127.0.0.1"`, `"127.0.0.1:7000"`, 1) + strings.NewReplacer(`"A"`, `"B"`, `["127.0.0.1:0", "127.0.0.1:0"]`, `["127.0.0.1:7000", "127.0.0.2:0"]`).Replace(goodSystem),
			"listen address 127.0.0.1:7000 is also"},
		{"cert without key", strings.Replace(goodZOS, `lpars =`, "cert_file = \"c.pem\"\nlpars =", 1), "cert_file and key_file go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig(goodSystem + tc.text)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestShippedLabListenersHaveOwnAddresses: in etc/lab.toml every listener
// (cluster, HMC, z/OS host) has a loopback address of its own, so that
// what leaves a listener (traps, answers) is told apart by its source
// address; and the shipped lab has both the dual HMC and the z/OS host.
func TestShippedLabListenersHaveOwnAddresses(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig("../../etc/lab.toml")
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string]string{}
	claim := func(addr, who string) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if first, ok := owner[host]; ok {
			t.Errorf("%s and %s both listen on %s", first, who, host)
		}
		owner[host] = who
	}
	for _, s := range cfg.Systems {
		for i, ep := range s.Endpoints {
			claim(ep, fmt.Sprintf("%s cluster %d", s.Serial, i))
		}
	}
	var hmcs []string
	for _, h := range cfg.HMCs {
		claim(h.Endpoint, "hmc "+h.Name)
		hmcs = append(hmcs, h.Name)
	}
	for _, h := range cfg.ZOSHosts {
		claim(h.Endpoint, "zos "+h.Name)
	}
	if strings.Join(hmcs, ",") != "LAB-HMC1,LAB-HMC2" || len(cfg.ZOSHosts) != 1 ||
		cfg.ZOSHosts[0].Name != "SYSA" || cfg.ZOSHosts[0].Sysplex != "PLEX1" {
		t.Fatalf("shipped HMCs %v, z/OS hosts %+v", hmcs, cfg.ZOSHosts)
	}
}
