package firewall

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/config"
)

// fakeRange writes a kernel port range file and returns its path.
func fakeRange(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ip_local_port_range")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(text)
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	cfg.Server.Name = "lockstep-a"
	return cfg
}

// A full config: HA with TLS and fixed source ports, a trap listener,
// an IPv4 v2c and an IPv6 v3 manager, a syslog collector by name.
const fullConfig = `[ha]
cert_file = "/etc/lockstep/tls/server.pem"
key_file = "/etc/lockstep/tls/server.key"
ca_file = "/etc/lockstep/tls/ca.pem"
source_ports = "40000-40009"
[syslog]
target = "tcp://logs.example.net:601"
[snmp]
trap_listen = "udp://0.0.0.0:10162"
trap_community_file = "/etc/lockstep/snmp/storage.community"
[[snmp.manager]]
address = "udp://192.0.2.162:162"
version = "v2c"
notification = "inform"
community_file = "/etc/lockstep/snmp/nms.community"
[[snmp.manager]]
address = "udp://[2001:db8::162]:162"
version = "v3"
user = "lockstep"
auth_key_file = "/etc/lockstep/snmp/a"
priv_key_file = "/etc/lockstep/snmp/p"
`

// Two clusters of one system, an IPv6 system, and a third system on the
// first one's address (merged into one rule).
func endpoints() []Endpoint {
	return []Endpoint{
		{"LAB.2107-75P0001", "192.0.2.10:1750"},
		{"LAB.2107-75P0001", "192.0.2.11:1750"},
		{"LAB.2107-75P0002", "[2001:DB8::20]:1750"},
		{"LAB.2107-75P0003", "192.0.2.10:1750"},
	}
}

// The kernel range is deliberately not Linux's default, to show it is
// the file's.
const kernelRange = "35000\t35999\n"

func fullRuleset(t *testing.T) (*Ruleset, string) {
	t.Helper()
	rangeFile := fakeRange(t, kernelRange)
	rs, err := Hints{Config: parse(t, fullConfig), PortRangeFile: rangeFile}.Rules(endpoints(), "tcp://10.0.0.2:9730")
	if err != nil {
		t.Fatal(err)
	}
	return rs, rangeFile
}

func render(t *testing.T, rs *Ruleset, f Format) string {
	t.Helper()
	var b bytes.Buffer
	if err := rs.Render(&b, f); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The outputs are compared with testdata/*.golden, in which the range
// file's path reads RANGEFILE. LOCKSTEP_UPDATE_GOLDEN=1 rewrites them.
func TestRenderGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		format Format
		golden string
	}{
		{"nft", NFT, "full.nft"},
		{"iptables", IPTables, "full.iptables"},
		{"ip6tables", IP6Tables, "full.ip6tables"},
		{"text", Text, "full.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs, rangeFile := fullRuleset(t)
			got := strings.ReplaceAll(render(t, rs, tc.format), rangeFile, "RANGEFILE")
			path := filepath.Join("testdata", tc.golden+".golden")
			if os.Getenv("LOCKSTEP_UPDATE_GOLDEN") == "1" {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s (-want +got):\n%s", path, lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff lists the lines that differ, as -want/+got.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			out = append(out, "-"+a, "+"+b)
		}
	}
	return strings.Join(out, "\n")
}

func TestRules(t *testing.T) {
	t.Parallel()
	const tls = "cert_file = \"/c\"\nkey_file = \"/k\"\nca_file = \"/a\"\n"
	for _, tc := range []struct {
		name    string
		config  string
		storage []Endpoint
		peer    string
		want    []string // Rule.String of every rule
	}{{
		name:   "standalone: no TLS, no listener",
		config: "", storage: []Endpoint{{"S1", "storage1.example:1750"}},
		want: []string{"out tcp storage1.example port 1750 from local ports 35000-35999 (storage S1)"},
	}, {
		name: "basic edition: no listener", config: "[server]\nedition = \"basic\"\n",
		want: nil,
	}, {
		name: "listener open to any host without a peer", config: "[ha]\n" + tls,
		want: []string{"in tcp from any host to local port 9730 (ha listener)"},
	}, {
		name: "listener on one address, peer, kernel source ports", config: "[ha]\nlisten = \"tcp://192.0.2.1:9730\"\n" + tls,
		peer: "tcp://192.0.2.2:9731",
		want: []string{
			"in tcp from 192.0.2.2 to local port 9730 (ha listener, from the peer)",
			"out tcp 192.0.2.2 port 9731 from local ports 35000-35999 (ha peer)",
		},
	}, {
		name: "IPv4 listener, IPv6 peer: the listener rule is not narrowed to the peer", config: "[ha]\nlisten = \"tcp://192.0.2.1:9730\"\n" + tls,
		peer: "tcp://[2001:db8::2]:9731",
		want: []string{
			"in tcp from any host to local port 9730 (ha listener)",
			"out tcp 2001:db8::2 port 9731 from local ports 35000-35999 (ha peer)",
		},
	}, {
		name: "vsock listener and peer", config: "[ha]\nlisten = \"vsock://any:9730\"\n" + tls,
		peer: "vsock://2:9730",
		want: []string{
			"in vsock from any host to local port 9730 (ha listener)",
			"out vsock cid 2 port 9730 (ha peer)",
		},
	}, {
		name: "udp syslog", config: "[syslog]\ntarget = \"udp://[::1]:514\"\n",
		want: []string{"out udp ::1 port 514 from local ports 35000-35999 (syslog)"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs, err := Hints{Config: parse(t, tc.config), PortRangeFile: fakeRange(t, kernelRange)}.Rules(tc.storage, tc.peer)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs.Rules {
				got = append(got, r.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("rules (-want +got):\n-%s\n+%s", strings.Join(tc.want, "\n-"), strings.Join(got, "\n+"))
			}
		})
	}
}

func TestVSockHasNoNetfilterRule(t *testing.T) {
	t.Parallel()
	cfg := parse(t, "[ha]\nlisten = \"vsock://any:9730\"\ncert_file = \"/c\"\nkey_file = \"/k\"\nca_file = \"/a\"\n")
	rs, err := Hints{Config: cfg, PortRangeFile: fakeRange(t, kernelRange)}.Rules(nil, "vsock://2:9730")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{NFT, IPTables, IP6Tables} {
		out := render(t, rs, f)
		if strings.Contains(out, "vsock") && !strings.Contains(out, "# out vsock cid 2 port 9730 (ha peer): vsock is not filtered by netfilter") {
			t.Errorf("%s: want the vsock peer as a comment:\n%s", f, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "accept") && strings.Contains(line, "9730") || strings.HasPrefix(line, "-A ") {
				t.Errorf("%s: a netfilter rule for vsock: %s", f, line)
			}
		}
	}
	if txt := render(t, rs, Text); !strings.Contains(txt, "ha peer (vsock: not filtered by netfilter)") {
		t.Errorf("text:\n%s", txt)
	}
}

func TestRulesReportsEveryBadInput(t *testing.T) {
	t.Parallel()
	h := Hints{Config: parse(t, ""), PortRangeFile: fakeRange(t, kernelRange)}
	_, err := h.Rules([]Endpoint{{"S1", "192.0.2.1"}, {"S2", "192.0.2.2:0"}, {"S3", ":1750"}}, "192.0.2.9:9730")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"S1", "S2", "S3", "HA peer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if !errors.Is(err, ErrEndpoint) || !errors.Is(err, config.ErrAddress) {
		t.Errorf("want ErrEndpoint and config.ErrAddress: %v", err)
	}
}

func TestEphemeralPorts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		want       config.PortRange
		ok         bool
	}{
		{"linux default", "32768\t60999\n", config.PortRange{First: 32768, Last: 60999}, true},
		{"spaces", "1024 65535", config.PortRange{First: 1024, Last: 65535}, true},
		{"one port", "40000 40000\n", config.PortRange{First: 40000, Last: 40000}, true},
		{"empty", "", config.PortRange{}, false},
		{"one number", "32768\n", config.PortRange{}, false},
		{"backwards", "60999 32768\n", config.PortRange{}, false},
		{"not numbers", "a b\n", config.PortRange{}, false},
		{"too big", "1 70000\n", config.PortRange{}, false},
		{"zero", "0 10\n", config.PortRange{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := EphemeralPorts(fakeRange(t, tc.text))
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("EphemeralPorts(%q) = %v, %v; want %v (ok %v)", tc.text, got, err, tc.want, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrPortRange) {
				t.Errorf("error %v is not ErrPortRange", err)
			}
		})
	}
	if _, err := EphemeralPorts(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRuleForAndTimeoutHint(t *testing.T) {
	t.Parallel()
	cfg := parse(t, fullConfig)
	h := Hints{Config: cfg, PortRangeFile: fakeRange(t, kernelRange)}
	r, err := h.RuleFor(Endpoint{"LAB.2107-75P0001", "192.0.2.10:1750"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.String(), "out tcp 192.0.2.10 port 1750 from local ports 35000-35999 (storage LAB.2107-75P0001)"; got != want {
		t.Errorf("RuleFor = %s, want %s", got, want)
	}
	if got, want := r.Commands(IPTables), []string{
		`iptables -I OUTPUT -p tcp -d 192.0.2.10 --sport 35000:35999 --dport 1750 -m comment --comment "storage LAB.2107-75P0001" -j ACCEPT`,
		`iptables -I INPUT -p tcp -s 192.0.2.10 --sport 1750 --dport 35000:35999 -m comment --comment "storage LAB.2107-75P0001 (replies)" -j ACCEPT`,
	}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Commands(iptables) (-want +got):\n-%s\n+%s", strings.Join(want, "\n-"), strings.Join(got, "\n+"))
	}

	for _, tc := range []struct {
		name string
		hint string
		want string
	}{{
		name: "storage endpoint, nft",
		hint: h.TimeoutHint("192.0.2.10:1750", NFT),
		want: "connection to 192.0.2.10:1750 timed out: a firewall may be dropping it; to let it through: " +
			`nft 'add rule inet lockstep output ip daddr 192.0.2.10 tcp sport 35000-35999 tcp dport 1750 accept comment "lockstepd"'; ` +
			`nft 'add rule inet lockstep input ip saddr 192.0.2.10 tcp sport 1750 tcp dport 35000-35999 accept comment "lockstepd (replies)"'`,
	}, {
		name: "IPv6 manager, iptables picks ip6tables",
		hint: h.TimeoutHint("udp://[2001:db8::162]:162", IPTables),
		want: "connection to udp://[2001:db8::162]:162 timed out: a firewall may be dropping it; to let it through: " +
			`ip6tables -I OUTPUT -p udp -d 2001:db8::162 --sport 35000:35999 --dport 162 -m comment --comment "lockstepd" -j ACCEPT; ` +
			`ip6tables -I INPUT -p udp -s 2001:db8::162 --sport 162 --dport 35000:35999 -m comment --comment "lockstepd (replies)" -j ACCEPT`,
	}, {
		name: "HA peer from the fixed source ports",
		hint: h.PeerTimeoutHint("tcp://10.0.0.2:9730", Text),
		want: "connection to tcp://10.0.0.2:9730 timed out: a firewall may be dropping it; to let it through: " +
			"out tcp 10.0.0.2 port 9730 from local ports 40000-40009 (ha peer), and its replies",
	}, {
		name: "vsock peer",
		hint: h.PeerTimeoutHint("vsock://2:9730", NFT),
		want: "connection to vsock://2:9730 timed out: vsock is not filtered by netfilter; is the peer listening, and is its CID right?",
	}, {
		name: "unreadable kernel range: any local port",
		hint: Hints{Config: cfg, PortRangeFile: "/nonexistent"}.TimeoutHint("192.0.2.10:1750", Text),
		want: "connection to 192.0.2.10:1750 timed out: a firewall may be dropping it; to let it through: " +
			"out tcp 192.0.2.10 port 1750 (lockstepd), and its replies",
	}, {
		name: "not an address",
		hint: h.TimeoutHint("nonsense", NFT),
		want: "connection to nonsense timed out",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.hint != tc.want {
				t.Errorf("hint:\n got %s\nwant %s", tc.hint, tc.want)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"nft", "iptables", "ip6tables", "text"} {
		f, err := ParseFormat(name)
		if err != nil || f.String() != name {
			t.Errorf("ParseFormat(%q) = %v, %v", name, f, err)
		}
	}
	if _, err := ParseFormat("pf"); !errors.Is(err, ErrFormat) {
		t.Errorf("ParseFormat(pf) = %v", err)
	}
}

// tool finds a validating peer binary. Missing: a skip, or a failure
// under CI=true (make deps installs nftables and iptables).
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if p := filepath.Join(dir, name); fileExists(p) {
				return p
			}
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (Debian package %s); CI must have it", name, pkg)
		}
		t.Skipf("%s not installed (Debian package %s): output not validated", name, pkg)
	}
	return path
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// probe runs a trivially valid input through the checker: when even that
// fails, the checker cannot run here (no netlink, no CAP_NET_ADMIN in this
// container) and the test is skipped, CI or not, with the reason.
func probe(t *testing.T, input string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("%s cannot run here (%v: %s); output not validated", name, err, bytes.TrimSpace(out))
	}
}

func TestNFTAcceptsTheRuleset(t *testing.T) {
	t.Parallel()
	nft := tool(t, "nft", "nftables")
	dir := t.TempDir()
	probeFile := filepath.Join(dir, "probe.nft")
	if err := os.WriteFile(probeFile, []byte("table inet lockstep_probe {\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	probe(t, "", nft, "-c", "-f", probeFile)
	rs, _ := fullRuleset(t)
	// nft resolves names when it loads them: keep to addresses here.
	var rules []Rule
	for _, r := range rs.Rules {
		if r.Remote != "logs.example.net" {
			rules = append(rules, r)
		}
	}
	rs.Rules = rules
	file := filepath.Join(dir, "lockstep.nft")
	if err := os.WriteFile(file, []byte(render(t, rs, NFT)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nft, "-c", "-f", file).CombinedOutput(); err != nil {
		t.Errorf("nft -c -f refused the ruleset: %v\n%s", err, out)
	}
	// The single-rule commands are valid against that table.
	for _, r := range rs.Rules {
		for _, c := range r.Commands(NFT) {
			rule := strings.TrimSuffix(strings.TrimPrefix(c, "nft '"), "'")
			in := render(t, rs, NFT) + rule + "\n"
			if err := os.WriteFile(file, []byte(in), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(nft, "-c", "-f", file).CombinedOutput(); err != nil {
				t.Errorf("nft refused %q: %v\n%s", c, err, out)
			}
		}
	}
}

func TestIPTablesRestoreAcceptsTheRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		format Format
	}{{"iptables-restore", IPTables}, {"ip6tables-restore", IP6Tables}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bin := tool(t, tc.name, "iptables")
			probe(t, "*filter\nCOMMIT\n", bin, "--test", "--noflush")
			rs, _ := fullRuleset(t)
			var rules []Rule
			for _, r := range rs.Rules {
				if r.Remote != "logs.example.net" { // no name resolution in tests
					rules = append(rules, r)
				}
			}
			rs.Rules = rules
			cmd := exec.Command(bin, "--test", "--noflush")
			cmd.Stdin = strings.NewReader(render(t, rs, tc.format))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s --test refused the rules: %v\n%s", tc.name, err, out)
			}
		})
	}
}
