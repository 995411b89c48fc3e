package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/ha"
)

const referenceFile = "../../etc/lockstep/lockstep.toml"

// diffConfig reports the first differences between two configs as
// (-want +got) lines, field by field.
func diffConfig(want, got *Config) string {
	var out []string
	var walk func(path string, w, g reflect.Value)
	walk = func(path string, w, g reflect.Value) {
		if reflect.DeepEqual(w.Interface(), g.Interface()) {
			return
		}
		if w.Kind() == reflect.Struct {
			for i := 0; i < w.NumField(); i++ {
				walk(path+"."+w.Type().Field(i).Name, w.Field(i), g.Field(i))
			}
			return
		}
		if w.Kind() == reflect.Pointer && !w.IsNil() && !g.IsNil() {
			walk(path, w.Elem(), g.Elem())
			return
		}
		out = append(out, fmt.Sprintf("%s:\n\t-%+v\n\t+%+v", path, w.Interface(), g.Interface()))
	}
	walk("Config", reflect.ValueOf(*want), reflect.ValueOf(*got))
	return strings.Join(out, "\n")
}

func TestReferenceFileIsTheDefaults(t *testing.T) {
	t.Parallel()
	got, err := Load(referenceFile)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", referenceFile, err)
	}
	if d := diffConfig(Default(), got); d != "" {
		t.Errorf("reference file differs from the defaults (-want +got):\n%s", d)
	}
	if cfg, err := Parse(""); err != nil || diffConfig(Default(), cfg) != "" {
		t.Errorf("Parse(\"\") = %v, %v; want the defaults", cfg, err)
	}
}

// Uncommenting every commented-out key of the reference file (and the
// example [[snmp.manager]] headers) gives a valid file with those values:
// the examples in the file work as shown.
func TestReferenceFileExamples(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	example := regexp.MustCompile(`(?m)^# ([a-z_0-9]+ = .*|\[\[(snmp\.manager|storage\.pin)\]\])$`)
	text := example.ReplaceAllString(string(b), "$1")
	cfg, err := Parse(text)
	if err != nil {
		t.Fatalf("reference file with its examples uncommented:\n%v\n%s", err, text)
	}
	want := Default()
	want.Server.Name = "lockstep-a"
	want.HA.ListenSet = true
	want.HA.TLS = &TLSFiles{CertFile: "/etc/lockstep/tls/server.pem", KeyFile: "/etc/lockstep/tls/server.key", CAFile: "/etc/lockstep/tls/ca.pem"}
	want.HA.SourcePorts = &PortRange{40000, 40009}
	want.HA.Advertise = &Addr{Scheme: TCP, Host: "db1.example.com", Port: 9730}
	want.HA.PartnerName = "db2.example.com"
	want.Server.Sysplex = "PLEX1"
	want.HA.PartnerFingerprint, _ = ha.ParseFingerprint(strings.Repeat("3fa2910cd47e55b8", 4))
	want.Syslog.Target = &Addr{Scheme: UDP, Host: "syslog.example.net", Port: 514}
	want.SNMP.TrapListen = &Addr{Scheme: UDP, Host: "0.0.0.0", Port: 10162}
	want.SNMP.TrapAuth = TrapAuth{CommunityFile: "/etc/lockstep/snmp/storage.community", User: "storage",
		AuthProtocol: SHA256, PrivProtocol: AES,
		AuthKeyFile: "/etc/lockstep/snmp/storage.auth", PrivKeyFile: "/etc/lockstep/snmp/storage.priv"}
	want.Storage = Storage{CAFile: "/etc/lockstep/tls/storage-ca.pem", Pins: map[string][]byte{"LAB.2107-75P0001": {
		0x5e, 0x9b, 0x3f, 0x2a, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
		0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb}},
		KeepAlive: DefaultKeepAlive}
	want.SNMP.Managers = []Manager{{
		Address: Addr{Scheme: UDP, Host: "nms.example.net", Port: 162}, Version: V2c, Notification: Inform,
		CommunityFile: "/etc/lockstep/snmp/nms.community", AuthProtocol: SHA256, PrivProtocol: AES,
		Retries: 3, Timeout: time.Second, Queue: 1000,
	}, {
		Address: Addr{Scheme: UDP, Host: "2001:db8::162", Port: 162}, Version: V3, Notification: Trap,
		User: "lockstep", AuthProtocol: SHA256, PrivProtocol: AES,
		AuthKeyFile: "/etc/lockstep/snmp/lockstep.auth", PrivKeyFile: "/etc/lockstep/snmp/lockstep.priv",
		Retries: 3, Timeout: time.Second, Queue: 1000,
	}}
	if d := diffConfig(want, cfg); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// Every key of the reference file (examples included) has a SIGHUP rule.
func TestEveryKeyHasAReloadRule(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^# ([a-z_0-9]+ = .*|\[\[(snmp\.manager|storage\.pin)\]\])$`).ReplaceAllString(string(b), "$1")
	rules := map[string]bool{}
	for _, s := range settings() {
		rules[s.key] = true
	}
	for _, k := range scanKeys(text) {
		key := k.key.String()
		if len(k.key) < 2 || strings.HasPrefix(key, "snmp.manager") || strings.HasPrefix(key, "storage.pin") {
			continue // tables; manager and pin keys are covered by "snmp.manager" and "storage.pin"
		}
		if !rules[key] {
			t.Errorf("key %s (line %d) has no entry in settings()", key, k.line)
		}
	}
	if !rules["snmp.manager"] {
		t.Error("snmp.manager has no entry in settings()")
	}
}

func TestGoodFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		text  string
		check func(*Config) string
	}{{
		name: "vsock listener with TLS",
		text: "[ha]\nlisten = \"vsock://any:9730\"\ncert_file = \"/c\"\nkey_file = \"/k\"\nca_file = \"/a\"\n",
		check: func(c *Config) string {
			if c.HA.Listen != (Addr{Scheme: VSock, CID: VSockAnyCID, Port: 9730}) || c.HAAvailable() != nil {
				return fmt.Sprintf("HA = %+v, available: %v", c.HA, c.HAAvailable())
			}
			return ""
		},
	}, {
		name: "partner name and fingerprint",
		text: "[ha]\npartner_name = \"db2.example.com\"\npartner_fingerprint = \"SHA256 Fingerprint=" +
			strings.TrimSuffix(strings.Repeat("AB:", 32), ":") + "\"\n",
		check: func(c *Config) string {
			if c.HA.PartnerName != "db2.example.com" || c.HA.PartnerFingerprint.String() != strings.Repeat("ab", 32) {
				return fmt.Sprintf("partner %q %s", c.HA.PartnerName, c.HA.PartnerFingerprint)
			}
			return ""
		},
	}, {
		name: "no TLS: standalone",
		text: "[ha]\nreconnect_attempts = 0\n",
		check: func(c *Config) string {
			if err := c.HAAvailable(); !errors.Is(err, ErrHAUnavailable) || c.HA.ReconnectAttempts != 0 {
				return fmt.Sprintf("HAAvailable() = %v, attempts %d", err, c.HA.ReconnectAttempts)
			}
			return ""
		},
	}, {
		name: "basic edition, empty [ha] table",
		text: "[server]\nedition = \"basic\"\n[ha]\n",
		check: func(c *Config) string {
			if err := c.HAAvailable(); err == nil || !strings.Contains(err.Error(), "basic edition") {
				return fmt.Sprintf("HAAvailable() = %v", err)
			}
			return ""
		},
	}, {
		name: "heartbeat timings at the edge of H",
		// margin 2+1+4 = 7 s leaves H = 53 s; a 10 s interval with a 10 s
		// window and 2 s requests leaves 60-24 = 36 >= 3*10+2.
		text: "[heartbeat]\ninterval = \"10s\"\ndetection_window = \"10s\"\n",
		check: func(c *Config) string {
			if h, err := freeze.DeriveH(LowestCGTimeout, c.Heartbeat); err != nil || h != 36*time.Second {
				return fmt.Sprintf("H = %v, %v", h, err)
			}
			return ""
		},
	}, {
		name: "session bus, debug text logs, state dir moves the engine id",
		text: "[server]\nstate_dir = \"/srv/lockstep/\"\n[control]\nbus = \"session\"\n[log]\nlevel = \"debug\"\nformat = \"text\"\n",
		check: func(c *Config) string {
			if c.Control.Bus != SessionBus || c.Log.Level != slog.LevelDebug || c.Log.Format != LogText ||
				c.Server.StateDir != "/srv/lockstep" || c.SNMP.EngineIDFile != "/srv/lockstep/snmp-engine-id" {
				return fmt.Sprintf("%+v", c)
			}
			return ""
		},
	}, {
		name: "bus address",
		text: "[control]\nbus = \"unix:path=/run/x,guid=0123abc;tcp:host=127.0.0.1,port=1234\"\n",
		check: func(c *Config) string {
			if c.Control.Bus != AddressBus || c.Control.String() != "unix:path=/run/x,guid=0123abc;tcp:host=127.0.0.1,port=1234" {
				return fmt.Sprintf("%+v", c.Control)
			}
			return ""
		},
	}, {
		name: "inline manager table, AES-128 alias, SHA-512",
		text: "[snmp]\nmanager = [{address = \"udp://NMS:162\", version = \"v3\", user = \"u\", auth_key_file = \"/a\", " +
			"priv_key_file = \"/p\", priv_protocol = \"AES-128\", auth_protocol = \"SHA-512\", notification = \"inform\"}]\n",
		check: func(c *Config) string {
			m := c.SNMP.Managers
			if len(m) != 1 || m[0].PrivProtocol != AES || m[0].AuthProtocol != SHA512 || m[0].Address.Host != "nms" {
				return fmt.Sprintf("%+v", m)
			}
			return ""
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse(tc.text)
			if err != nil {
				t.Fatalf("Parse:\n%v", err)
			}
			if msg := tc.check(cfg); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// badFile is a case of TestBadFiles: the file must be refused with a
// problem of this kind, key and line (among possibly others).
type badFile struct {
	name string
	text string
	kind error
	key  string
	line int
	msg  string // a part of the message
}

func badFiles() []badFile {
	const tlsOK = "cert_file = \"/c\"\nkey_file = \"/k\"\nca_file = \"/a\"\n"
	const v3 = "[[snmp.manager]]\naddress = \"udp://nms:162\"\nversion = \"v3\"\nuser = \"u\"\n"
	cases := []badFile{
		{"unknown key", "[server]\nname = \"a\"\nnmae = \"b\"\n", ErrUnknownKey, "server.nmae", 3, "unknown key"},
		{"unknown top-level key", "debug = true\n", ErrUnknownKey, "debug", 1, "unknown key"},
		{"unknown section", "\n[servre]\nname = \"b\"\n", ErrUnknownKey, "servre", 2, "unknown key"},
		{"unknown key in second manager",
			"[[snmp.manager]]\naddress = \"udp://a:162\"\nversion = \"v2c\"\ncommunity_file = \"/c\"\n" +
				"[[snmp.manager]]\naddress = \"udp://b:162\"\nversion = \"v2c\"\ncomunity_file = \"/c\"\n",
			ErrUnknownKey, "snmp.manager[1].comunity_file", 8, "unknown key"},
		{"unknown key in inline table", "[snmp]\nmanager = [{address = \"udp://a:162\", version = \"v2c\",\n community_file = \"/c\", x = 1}]\n",
			ErrUnknownKey, "snmp.manager[0].x", 3, "unknown key"},
		{"unknown dotted key", "[ha]\ntls.cert = \"/c\"\n", ErrUnknownKey, "ha.tls.cert", 2, "unknown key"},
		{"unknown key after a multi-line string", "[server]\nname = \"a\"\n# x\nstate_dir = '''\n/x\n'''\nbogus = 1\n",
			ErrUnknownKey, "server.bogus", 7, "unknown key"},
		{"fuzz: quoted key with a TOML 1.1 escape", "\"\\e\" = 0\n", ErrUnknownKey, `"\u001b"`, 1, "unknown key"},
		{"wrong case", "[heartbeat]\nInterval = \"1s\"\n", ErrKeyCase, "heartbeat.Interval", 2, `write "interval", not "Interval"`},
		{"wrong case table", "[HeartBeat]\ninterval = \"1s\"\n", ErrKeyCase, "HeartBeat", 1, `write "heartbeat"`},
		{"wrong case dotted", "Log.level = \"info\"\n", ErrKeyCase, "Log.level", 1, `write "log"`},
		{"bare integer duration", "[heartbeat]\ninterval = 1\n", ErrDuration, "heartbeat.interval", 2, "bare number 1 is not a duration"},
		{"bare float duration", "[heartbeat]\n\nretry_interval = 0.5\n", ErrDuration, "heartbeat.retry_interval", 3, "bare number 0.5"},
		{"duration without unit", "[ha]\nreconnect_interval = \"60\"\n", ErrDuration, "ha.reconnect_interval", 2, `"60" is not a duration`},
		{"zero duration", "[heartbeat]\npoll_interval = \"0s\"\n", ErrDuration, "heartbeat.poll_interval", 2, "more than zero"},
		{"negative duration", "[[snmp.manager]]\naddress = \"udp://a:162\"\nversion = \"v2c\"\ncommunity_file = \"/c\"\ntimeout = \"-1s\"\n",
			ErrDuration, "snmp.manager[0].timeout", 5, "more than zero"},
		{"duration of the wrong type", "[heartbeat]\ninterval = [1]\n", ErrType, "heartbeat.interval", 2, "not an array"},
		{"impossible heartbeat: interval 30s", "[heartbeat]\ninterval = \"30s\"\n", ErrTiming, "heartbeat", 1, "shorter than the heartbeat interval"},
		{"impossible heartbeat: no H for FB", "# timings\n[heartbeat]\ninterval = \"5s\"\ndetection_window = \"10s\"\nrequest_timeout = \"15s\"\n",
			ErrTiming, "heartbeat", 2, "lowest CG timeout 1m0s leaves H = 15s"},
		{"impossible heartbeat, dotted keys", "\nheartbeat.interval = \"30s\"\n[server]\nedition = \"full\"\n", ErrTiming, "heartbeat", 2, "shorter than the heartbeat interval"},
		{"reconnect interval too short", "[ha]\nreconnect_interval = \"10ms\"\n", ErrValue, "ha.reconnect_interval", 2, "at least 1s"},
		// Floors of every duration (issue 12 §3: "1ns" passed --check-config).
		{"poll interval of 1ns", "[heartbeat]\npoll_interval = \"1ns\"\n", ErrValue, "heartbeat.poll_interval", 2, "at least 1s"},
		{"heartbeat interval of 1ms", "[heartbeat]\ninterval = \"1ms\"\ndetection_window = \"2s\"\n", ErrValue, "heartbeat.interval", 2, "at least 100ms"},
		{"detection window of 10ms", "[heartbeat]\ninterval = \"100ms\"\ndetection_window = \"10ms\"\n", ErrValue, "heartbeat.detection_window", 3, "at least 500ms"},
		{"request timeout of 1µs", "[heartbeat]\nrequest_timeout = \"1us\"\n", ErrValue, "heartbeat.request_timeout", 2, "at least 100ms"},
		{"retry interval of 1ns", "[heartbeat]\nretry_interval = \"1ns\"\n", ErrValue, "heartbeat.retry_interval", 2, "at least 100ms"},
		{"inform timeout of 1ms", "[[snmp.manager]]\naddress = \"udp://a:162\"\nversion = \"v2c\"\ncommunity_file = \"/c\"\nnotification = \"inform\"\ntimeout = \"1ms\"\n",
			ErrValue, "snmp.manager[0].timeout", 6, "at least 100ms"},
		// A number the decoder cannot hold: the key too, not only the line.
		{"huge reconnect attempts", "[ha]\nreconnect_attempts = 99999999999999999999\n", ErrValue, "ha.reconnect_attempts", 2, "out of range"},
		{"huge dotted reconnect attempts", "\nha.reconnect_attempts = 0x1ffffffffffffffff\n", ErrValue, "ha.reconnect_attempts", 2, "out of range"},
		{"huge retries in the second manager",
			"[[snmp.manager]]\nretries = 1\n[[snmp.manager]]\nretries = 99999999999999999999\n",
			ErrValue, "snmp.manager[1].retries", 4, "out of range"},
		{"huge float", "[[snmp.manager]]\nretries = 1e999\n", ErrValue, "snmp.manager[0].retries", 2, "out of range"},
		{"wrong type", "[server]\nname = 5\n", ErrType, "server.name", 2, "must be a string, not the integer 5"},
		{"bad server name", "[server]\nname = \"a b\"\n", ErrValue, "server.name", 2, "character ' '"},
		{"lower-case sysplex", "[server]\nsysplex = \"plex1\"\n", ErrValue, "server.sysplex", 2, "upper-case letters"},
		{"long sysplex", "[server]\nsysplex = \"PLEX12345\"\n", ErrValue, "server.sysplex", 2, "1 to 8 characters"},
		{"empty sysplex", "[server]\nsysplex = \"\"\n", ErrValue, "server.sysplex", 2, "1 to 8 characters"},
		{"bad edition", "[server]\nedition = \"pro\"\n", ErrValue, "server.edition", 2, `"pro" is not "full" or "basic"`},
		{"keep-alive too short", "[storage]\nkeepalive = \"10ms\"\n", ErrValue, "storage.keepalive", 2, "from 100ms to 30s"},
		{"keep-alive too long", "[storage]\nkeepalive = \"1m\"\n", ErrValue, "storage.keepalive", 2, "from 100ms to 30s"},
		{"keep-alive without unit", "[storage]\nkeepalive = 2\n", ErrDuration, "storage.keepalive", 2, "bare number"},
		{"relative state dir", "[server]\nstate_dir = \"var/lib/x\"\n", ErrValue, "server.state_dir", 2, "absolute path"},
		{"bad log level", "[log]\nlevel = \"warning\"\n", ErrValue, "log.level", 2, `"debug", "info", "warn" or "error"`},
		{"bad bus", "[control]\nbus = \"/run/bus\"\n", ErrValue, "control.bus", 2, "D-Bus address"},
		{"bad admin group", "[control]\nadmin_group = \"ops team\"\n", ErrValue, "control.admin_group", 2, "a group name"},
		{"bad bus escape", "[control]\nbus = \"unix:path=/run/a b\"\n", ErrValue, "control.bus", 2, "escaped"},
		{"bad OID", "[snmp]\nenterprise_oid = \"1.3.6.x\"\n", ErrValue, "snmp.enterprise_oid", 2, "OID"},
		{"bad source ports", "[ha]\nsource_ports = \"40009-40000\"\n", ErrValue, "ha.source_ports", 2, "backwards"},
		{"privileged source ports", "[ha]\nsource_ports = \"1000-1010\"\n", ErrValue, "ha.source_ports", 2, "below 1024"},
		{"bad advertise", "[ha]\nadvertise = \"udp://a:1\"\n", ErrAddress, "ha.advertise", 2, "udp"},
		{"bad partner name", "[ha]\npartner_name = \"db 2\"\n", ErrValue, "ha.partner_name", 2, "without spaces"},
		{"bad partner fingerprint", "[ha]\n\npartner_fingerprint = \"ab:cd\"\n", ErrValue, "ha.partner_fingerprint", 3, "64 hex digits"},
		{"bad app name", "[syslog]\napp_name = \"lock stepd\"\n", ErrValue, "syslog.app_name", 2, "RFC 5424"},
		{"partial TLS", "[ha]\ncert_file = \"/c\"\n", ErrRequired, "ha.key_file", 1, "go together"},
		{"listen without TLS", "[ha]\nlisten = \"tcp://0.0.0.0:9730\"\n", ErrRequired, "ha.ca_file", 1, "ha.listen is set"},
		{"relative TLS file", "[ha]\ncert_file = \"c.pem\"\nkey_file = \"/k\"\nca_file = \"/a\"\n", ErrValue, "ha.cert_file", 2, "absolute"},
		{"basic edition with HA keys", "[server]\nedition = \"basic\"\n\n[ha]\n" + tlsOK, ErrConflict, "ha", 4, "basic edition has no HA"},
		{"basic edition with a dotted HA key", "ha.reconnect_attempts = 3\n[server]\nedition = \"basic\"\n",
			ErrConflict, "ha.reconnect_attempts", 1, "sets reconnect_attempts"},
		{"v3 manager without auth_key_file", "[snmp]\n\n" + v3 + "priv_key_file = \"/p\"\n",
			ErrRequired, "snmp.manager[0].auth_key_file", 3, "required for v3"},
		{"v3 manager with a community", v3 + "auth_key_file = \"/a\"\npriv_key_file = \"/p\"\ncommunity_file = \"/c\"\n",
			ErrConflict, "snmp.manager[0].community_file", 7, "for v2c managers"},
		{"v2c manager with a user", "[[snmp.manager]]\naddress = \"udp://a:162\"\nversion = \"v2c\"\ncommunity_file = \"/c\"\nuser = \"u\"\n",
			ErrConflict, "snmp.manager[0].user", 5, "for v3 managers"},
		{"v2c manager without community", "[[snmp.manager]]\naddress = \"udp://a:162\"\nversion = \"v2c\"\n",
			ErrRequired, "snmp.manager[0].community_file", 1, "required for v2c"},
		{"manager without address", "[[snmp.manager]]\nversion = \"v2c\"\ncommunity_file = \"/c\"\n",
			ErrRequired, "snmp.manager[0].address", 1, "required"},
		{"manager without version", "[[snmp.manager]]\naddress = \"udp://a:162\"\n", ErrRequired, "snmp.manager[0].version", 1, "required"},
		{"bad manager version", "[[snmp.manager]]\naddress = \"udp://a:162\"\nversion = \"v1\"\n", ErrValue, "snmp.manager[0].version", 3, `"v2c" or "v3"`},
		{"bad auth protocol", v3 + "auth_key_file = \"/a\"\npriv_key_file = \"/p\"\nauth_protocol = \"MD5\"\n",
			ErrValue, "snmp.manager[0].auth_protocol", 7, "SHA-256"},
		{"queue out of range", "[[snmp.manager]]\naddress = \"udp://a:162\"\nversion = \"v2c\"\ncommunity_file = \"/c\"\nqueue = 0\n",
			ErrValue, "snmp.manager[0].queue", 5, "out of range"},
		{"duplicate manager addresses",
			"[[snmp.manager]]\naddress = \"udp://nms:162\"\nversion = \"v2c\"\ncommunity_file = \"/c\"\n\n" +
				"[[snmp.manager]]\naddress = \"udp://NMS:162\"\nversion = \"v2c\"\ncommunity_file = \"/d\"\n",
			ErrDuplicate, "snmp.manager[1].address", 7, "already the address of snmp.manager[0] (line 1)"},
		{"syntax error", "[server]\nname = \"a\n", ErrSyntax, "server.name", 2, "newlines"},
		{"table expected", "server = 5\n", ErrSyntax, "server", 1, "must be a table, not an integer"},
		{"table instead of array of tables", "[snmp.manager]\naddress = \"udp://a:162\"\n", ErrSyntax, "snmp.manager", 1, "must be an array of tables ([[snmp.manager]]), not a table"},
		{"duplicate key", "[log]\nlevel = \"info\"\nlevel = \"debug\"\n", ErrSyntax, "log.level", 3, "already been defined"},
	}
	for _, a := range []struct {
		name, key, value, msg string
	}{
		{"missing scheme", "ha.listen", "0.0.0.0:9730", "missing scheme"},
		{"scheme not allowed here", "ha.listen", "udp://0.0.0.0:9730", `scheme "udp" is not "tcp" or "vsock"`},
		{"unknown scheme", "syslog.target", "http://logs:514", `scheme "http"`},
		{"missing port", "ha.listen", "tcp://0.0.0.0", "missing port"},
		{"missing port after brackets", "ha.listen", "tcp://[::1]", "missing port"},
		{"IPv6 without brackets", "ha.listen", "tcp://::1:9730", "IPv6 address goes in brackets"},
		{"port out of range", "ha.listen", "tcp://0.0.0.0:99999", "from 1 to 65535"},
		{"port zero", "snmp.trap_listen", "udp://0.0.0.0:0", "from 1 to 65535"},
		{"port not a number", "syslog.target", "tcp://logs:syslog", "from 1 to 65535"},
		{"missing host", "ha.listen", "tcp://:9730", "missing host"},
		{"bad host", "syslog.target", "udp://lo_gs!:514", "not a host name"},
		{"bad IPv4", "syslog.target", "udp://300.1.1.1:514", "not an IP address"},
		{"path", "ha.listen", "tcp://0.0.0.0:9730/x", "no path"},
		{"vsock CID not a number", "ha.listen", "vsock://host:9730", "CID"},
		{"vsock without port", "ha.listen", "vsock://2", "missing port"},
		{"empty", "syslog.target", "", "missing scheme"},
	} {
		section, key, _ := strings.Cut(a.key, ".")
		cases = append(cases, badFile{"bad address: " + a.name,
			fmt.Sprintf("[%s]\n%s = %q\n", section, key, a.value), ErrAddress, a.key, 2, a.msg})
	}
	return cases
}

func TestBadFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range badFiles() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse(tc.text)
			if err == nil {
				t.Fatalf("Parse accepted:\n%s\n=> %+v", tc.text, cfg)
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error %T is not a Problems: %v", err, err)
			}
			for _, p := range ps {
				if errors.Is(p, tc.kind) && p.Key == tc.key && p.Line == tc.line && strings.Contains(p.Msg, tc.msg) {
					if !errors.Is(err, tc.kind) {
						t.Errorf("errors.Is(Problems, %v) = false", tc.kind)
					}
					return
				}
			}
			t.Errorf("want a problem %q at line %d, key %q, saying %q; got:\n%v", tc.kind, tc.line, tc.key, tc.msg, err)
		})
	}
}

// A problem is reported once, where it is, not again for its children.
func TestUnknownTableReportedOnce(t *testing.T) {
	t.Parallel()
	_, err := Parse("[servre]\nname = \"b\"\nstate_dir = \"/x\"\n[servre.sub]\nx = 1\n")
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 {
		t.Fatalf("want exactly one problem, got:\n%v", err)
	}
}

func TestImpossibleTimingIsTheFreezeError(t *testing.T) {
	t.Parallel()
	_, err := Parse("[heartbeat]\ninterval = \"30s\"\n")
	if !errors.Is(err, freeze.ErrTiming) || !errors.Is(err, ErrTiming) {
		t.Fatalf("want freeze.ErrTiming and config.ErrTiming, got %v", err)
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	t.Parallel()
	text := `[server]
Name = "a"
edition = "pro"

[heartbeat]
interval = 1
poll_interval = "5 s"

[ha]
listen = "0.0.0.0:9730"
bogus = true

[[snmp.manager]]
address = "udp://nms:162"
version = "v3"
user = "u"
`
	_, err := Parse(text)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	want := []struct {
		line int
		key  string
		kind error
	}{
		{2, "server.Name", ErrKeyCase},
		{3, "server.edition", ErrValue},
		{6, "heartbeat.interval", ErrDuration},
		{7, "heartbeat.poll_interval", ErrDuration},
		{10, "ha.listen", ErrAddress},
		{11, "ha.bogus", ErrUnknownKey},
		{13, "snmp.manager[0].auth_key_file", ErrRequired},
		{13, "snmp.manager[0].priv_key_file", ErrRequired},
	}
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%d %s %v", p.Line, p.Key, p.Kind))
	}
	var wantS []string
	for _, w := range want {
		wantS = append(wantS, fmt.Sprintf("%d %s %v", w.line, w.key, w.kind))
	}
	if !slices.Equal(wantS, got) {
		t.Errorf("problems (-want +got):\n-%s\n+%s", strings.Join(wantS, "\n-"), strings.Join(got, "\n+"))
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) {
		t.Errorf("Error() has %d lines, want one per problem:\n%s", len(lines), err)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "lockstep.toml")
	if err := os.WriteFile(path, []byte("[heartbeat]\ninterval = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `:2: heartbeat.interval: the bare number 1 is not a duration: write it as a string with a unit, such as "1s" or "1ms"`
	if err == nil || err.Error() != want {
		t.Errorf("Load error:\n got %v\nwant %s", err, want)
	}
	_, err = Load(filepath.Join(dir, "missing.toml"))
	if !errors.Is(err, ErrFile) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v; want ErrFile wrapping os.ErrNotExist", err)
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		text string
		key  string
		line int
	}{
		{"privileged trap listener", "[snmp]\ntrap_listen = \"udp://0.0.0.0:162\"\ntrap_community_file = \"/c\"\n", "snmp.trap_listen", 2},
		{"privileged HA listener", "[ha]\nlisten = \"tcp://[::]:973\"\ncert_file = \"/c\"\nkey_file = \"/k\"\nca_file = \"/a\"\n", "ha.listen", 2},
		{"retries for traps", "[[snmp.manager]]\naddress = \"udp://a:162\"\nversion = \"v2c\"\ncommunity_file = \"/c\"\nretries = 5\n",
			"snmp.manager[0].retries", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Warnings) != 1 || cfg.Warnings[0].Key != tc.key || cfg.Warnings[0].Line != tc.line {
				t.Errorf("warnings = %v; want one for %s at line %d", cfg.Warnings, tc.key, tc.line)
			}
		})
	}
}

func TestReloadable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		reload  []string
		restart []string
	}{
		{"nothing", func(*Config) {}, nil, nil},
		{"log level", func(c *Config) { c.Log.Level = slog.LevelDebug }, []string{"log.level"}, nil},
		{"heartbeat", func(c *Config) { c.Heartbeat.Interval = 2 * time.Second; c.Heartbeat.DetectionWindow = 4 * time.Second },
			[]string{"heartbeat.interval", "heartbeat.detection_window"}, nil},
		{"syslog target", func(c *Config) { c.Syslog.Target = &Addr{Scheme: UDP, Host: "l", Port: 514} }, []string{"syslog.target"}, nil},
		{"managers", func(c *Config) { c.SNMP.Managers = []Manager{{Version: V2c}} }, []string{"snmp.manager"}, nil},
		{"state dir", func(c *Config) { c.Server.StateDir = "/srv" }, nil, []string{"server.state_dir"}},
		{"server name", func(c *Config) { c.Server.Name = "other" }, nil, []string{"server.name"}},
		{"sysplex", func(c *Config) { c.Server.Sysplex = "PLEX2" }, nil, []string{"server.sysplex"}},
		{"ha listen", func(c *Config) { c.HA.Listen.Port = 1 }, nil, []string{"ha.listen"}},
		{"control bus", func(c *Config) { c.Control.Bus = SessionBus }, nil, []string{"control.bus"}},
		{"admin group", func(c *Config) { c.Control.AdminGroup = "ops" }, nil, []string{"control.admin_group"}},
		{"tls", func(c *Config) { c.HA.TLS = &TLSFiles{CertFile: "/c", KeyFile: "/k", CAFile: "/a"} }, nil,
			[]string{"ha.cert_file", "ha.key_file", "ha.ca_file"}},
		{"both kinds", func(c *Config) { c.Log.Level = slog.LevelError; c.Log.Format = LogText },
			[]string{"log.level"}, []string{"log.format"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			old, new := Default(), Default()
			tc.change(new)
			if got := Reloadable(old, new); !slices.Equal(got, tc.reload) {
				t.Errorf("Reloadable = %q, want %q", got, tc.reload)
			}
			if got := RestartRequired(old, new); !slices.Equal(got, tc.restart) {
				t.Errorf("RestartRequired = %q, want %q", got, tc.restart)
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Addr
		str  string
	}{
		{"tcp://0.0.0.0:9730", Addr{Scheme: TCP, Host: "0.0.0.0", Port: 9730}, "tcp://0.0.0.0:9730"},
		{"tcp://[::]:9730", Addr{Scheme: TCP, Host: "::", Port: 9730}, "tcp://[::]:9730"},
		{"tcp://[2001:DB8::1]:1", Addr{Scheme: TCP, Host: "2001:db8::1", Port: 1}, "tcp://[2001:db8::1]:1"},
		{"udp://NMS.Example.net:162", Addr{Scheme: UDP, Host: "nms.example.net", Port: 162}, "udp://nms.example.net:162"},
		{"vsock://2:9730", Addr{Scheme: VSock, CID: 2, Port: 9730}, "vsock://2:9730"},
		{"vsock://any:9730", Addr{Scheme: VSock, CID: VSockAnyCID, Port: 9730}, "vsock://any:9730"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAddr(tc.in)
			if err != nil || got != tc.want || got.String() != tc.str {
				t.Errorf("ParseAddr(%q) = %+v (%s), %v; want %+v (%s)", tc.in, got, got, err, tc.want, tc.str)
			}
		})
	}
}

func TestLogJournal(t *testing.T) {
	t.Parallel()
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "JOURNAL_STREAM" {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		format LogFormat
		env    string
		want   bool
	}{
		{LogAuto, "", false}, {LogAuto, "8:1234", true}, {LogJournal, "", true}, {LogText, "8:1234", false},
	} {
		if got := (Log{Format: tc.format}).Journal(env(tc.env)); got != tc.want {
			t.Errorf("Log{%s}.Journal(JOURNAL_STREAM=%q) = %v, want %v", tc.format, tc.env, got, tc.want)
		}
	}
}

func TestScanKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		text string
		want map[string]int
	}{{
		name: "tables and arrays of tables",
		text: "a = 1\n[t]\nb = 2\n[[m]]\nc = 3\n[[m]]\nc = 4\n[m.sub]\nd = 5\n",
		want: map[string]int{"a": 1, "t": 2, "t.b": 3, "m[0]": 4, "m[0].c": 5, "m[1]": 6, "m[1].c": 7, "m[1].sub": 8, "m[1].sub.d": 9},
	}, {
		name: "multi-line values",
		text: "s = \"\"\"\nx = 1\n\"\"\"\"\nl = '''\n[t]\n'''\narr = [\n 1, # c\n [2,\n 3],\n]\nafter = 1\n",
		want: map[string]int{"s": 1, "l": 4, "arr": 7, "after": 12},
	}, {
		name: "inline tables and dotted, quoted keys",
		text: "[t]\n\"q.k\" = 1\n'lit' = 2\na . b = {c = 1, d = {e = 2}}\nl = [{x = 1}, {y = 2}]\n",
		want: map[string]int{"t": 1, `t."q.k"`: 2, "t.lit": 3, "t.a.b": 4, "t.a.b.c": 4, "t.a.b.d.e": 4, "t.l[0].x": 5, "t.l[1].y": 5},
	}, {
		name: "strings with brackets and hashes",
		text: "a = \"[x] # y \\\" ]\"\nb = 'c:\\dir' # ]\n[t] # comment\nc = 1\n",
		want: map[string]int{"a": 1, "b": 2, "t": 3, "t.c": 4},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := linesOf(scanKeys(tc.text))
			for k, line := range tc.want {
				if got[k] != line {
					t.Errorf("line of %s = %d, want %d (all: %v)", k, got[k], line, got)
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(referenceFile); err == nil {
		f.Add(string(b))
	}
	for _, tc := range badFiles() {
		f.Add(tc.text)
	}
	f.Add("[snmp]\nmanager = [{address = \"udp://a:162\", version = \"v2c\", community_file = \"/c\"}]\n")
	f.Add("a = \"\"\"\\\n\"\"\"\nb = '''x''''\n")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := Parse(text)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 || cfg != nil {
				t.Fatalf("Parse error %T %v with config %v", err, err, cfg)
			}
			for _, p := range ps {
				if p.Kind == nil || p.Msg == "" {
					t.Fatalf("problem without kind or message: %#v", p)
				}
				if p.Kind == ErrUnknownKey && p.Line == 0 {
					t.Fatalf("unknown key without a line: %v", p)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config without error")
		}
		if _, err := freeze.DeriveH(LowestCGTimeout, cfg.Heartbeat); err != nil {
			t.Fatalf("accepted timings with no H: %v", err)
		}
	})
}

// TestSysplex: none by default; a valid name is kept.
func TestSysplex(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, text, want string }{
		{name: "default none", text: "", want: ""},
		{name: "set", text: "[server]\nsysplex = \"PLEX1\"\n", want: "PLEX1"},
		{name: "national characters", text: "[server]\nsysplex = \"P@#$1\"\n", want: "P@#$1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Server.Sysplex != tc.want {
				t.Fatalf("Server.Sysplex = %q, want %q", cfg.Server.Sysplex, tc.want)
			}
		})
	}
}
