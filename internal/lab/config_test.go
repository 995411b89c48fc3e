package lab

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

const goodSystem = `
[[system]]
serial = "A"
user = "u"
password = "p"
endpoints = ["127.0.0.1:0", "127.0.0.1:0"]
  [[system.lss]]
  id = "10"
  type = "FB"
  volumes = 2
`

func TestShippedLabFileParses(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig("../../etc/lab.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Systems) != 8 || len(cfg.Topology.Pairs) != 4*16 || len(cfg.Topology.Paths) != 16 {
		t.Fatalf("%d systems, %d pairs, %d paths", len(cfg.Systems), len(cfg.Topology.Pairs), len(cfg.Topology.Paths))
	}
	if cfg.Systems[0].LSSs[3].CGTimeout != 120*time.Second || cfg.CopyPerBlock != 100*time.Microsecond {
		t.Fatalf("durations not read: %+v", cfg.Systems[0].LSSs[3])
	}
	// Every cluster of every system on an address of its own: the
	// managers tell the systems' traps apart by address.
	hosts := map[string]hal.Serial{}
	for _, s := range cfg.Systems {
		for _, ep := range s.Endpoints {
			h, _, err := net.SplitHostPort(ep)
			if err != nil || net.ParseIP(h) == nil || !net.ParseIP(h).IsLoopback() {
				t.Fatalf("%s: endpoint %q is not a loopback address", s.Serial, ep)
			}
			if other, dup := hosts[h]; dup {
				t.Fatalf("%s and %s share the address %s", other, s.Serial, h)
			}
			hosts[h] = s.Serial
		}
	}
}

func TestBadLabFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text, want string
	}{
		{"unknown key", "colour = 1\n" + goodSystem, `unknown key "colour"`},
		{"wrong case", "Speed = 2\n" + goodSystem, `key "Speed" must be lower case`},
		{"bare integer duration", "copy_per_block = 100\n" + goodSystem, `must be a string such as "60s"`},
		{"bad duration", `copy_per_block = "fast"` + "\n" + goodSystem, `invalid duration`},
		{"no systems", "speed = 2\n", "no [[system]]"},
		{"one endpoint", strings.Replace(goodSystem, `, "127.0.0.1:0"]`, "]", 1), "endpoints must list the two cluster addresses"},
		{"bad LSS", strings.Replace(goodSystem, `id = "10"`, `id = "FF"`, 1), `LSS "FF" is not 00 to FE`},
		{"bad type", strings.Replace(goodSystem, `"FB"`, `"NVMe"`, 1), `type "NVMe" is not FB or CKD`},
		{"no password", strings.Replace(goodSystem, `password = "p"`, "", 1), "user and password are required"},
		{"duplicate serial", goodSystem + goodSystem, "serial defined twice"},
		{"mirror to nowhere", goodSystem + "[[mirror]]\nsource = \"A\"\ntarget = \"B\"\n", `"A" -> "B" must name two defined systems`},
		{"mirror without the LSS", goodSystem + strings.Replace(strings.Replace(goodSystem, `"A"`, `"B"`, 1), `"10"`, `"11"`, 1) +
			"[[mirror]]\nsource = \"A\"\ntarget = \"B\"\n", "B has no LSS 10"},
		{"syntax", "speed = = 2", "bad lab file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig(tc.text)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestEveryProblemReported(t *testing.T) {
	t.Parallel()
	_, err := ParseConfig("colour = 1\nspeed = 0.5\n")
	for _, want := range []string{"colour", "speed = 0.5", "no [[system]]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}
