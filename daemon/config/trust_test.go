package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const fp = "5e9b3f2a00112233445566778899aabbccddeeff00112233445566778899aabb"

func TestTrustKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		text string
		want func(c *Config) bool
	}{
		{"ca file", "[storage]\nca_file = \"/etc/lockstep/tls/storage-ca.pem\"\n",
			func(c *Config) bool { return c.Storage.CAFile == "/etc/lockstep/tls/storage-ca.pem" }},
		{"pins", "[[storage.pin]]\nserial = \"A\"\nsha256 = \"" + fp + "\"\n[[storage.pin]]\nserial = \"B\"\nsha256 = \"" +
			strings.ToUpper(fp[:2]) + ":" + fp[2:4] + fp[4:] + "\"\n",
			func(c *Config) bool { return len(c.Storage.Pins) == 2 && c.Storage.Pins["B"][0] == 0x5e }},
		{"v2c community", "[snmp]\ntrap_listen = \"udp://127.0.0.1:10162\"\ntrap_community_file = \"/c\"\n",
			func(c *Config) bool { return c.SNMP.TrapAuth.CommunityFile == "/c" && c.SNMP.TrapAuth.User == "" }},
		{"v3 user with defaults", "[snmp]\ntrap_listen = \"udp://127.0.0.1:10162\"\ntrap_user = \"storage\"\n" +
			"trap_auth_key_file = \"/a\"\ntrap_priv_key_file = \"/p\"\n",
			func(c *Config) bool {
				return c.SNMP.TrapAuth == TrapAuth{User: "storage", AuthProtocol: SHA256, PrivProtocol: AES, AuthKeyFile: "/a", PrivKeyFile: "/p"}
			}},
		{"v3 user, AES-128 is AES", "[snmp]\ntrap_listen = \"udp://127.0.0.1:10162\"\ntrap_user = \"s\"\ntrap_auth_protocol = \"SHA-512\"\n" +
			"trap_priv_protocol = \"AES-128\"\ntrap_auth_key_file = \"/a\"\ntrap_priv_key_file = \"/p\"\n",
			func(c *Config) bool {
				return c.SNMP.TrapAuth.AuthProtocol == SHA512 && c.SNMP.TrapAuth.PrivProtocol == AES
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(cfg) {
				t.Fatalf("got storage %+v, snmp trap auth %+v", cfg.Storage, cfg.SNMP.TrapAuth)
			}
		})
	}
}

func TestBadTrustKeys(t *testing.T) {
	t.Parallel()
	const listen = "[snmp]\ntrap_listen = \"udp://127.0.0.1:10162\"\n"
	for _, tc := range []struct {
		name string
		text string
		kind error
		key  string
		line int
	}{
		{"relative ca file", "[storage]\nca_file = \"ca.pem\"\n", ErrValue, "storage.ca_file", 2},
		{"pin without serial", "[[storage.pin]]\nsha256 = \"" + fp + "\"\n", ErrRequired, "storage.pin[0].serial", 1},
		{"pin without fingerprint", "[[storage.pin]]\nserial = \"A\"\n", ErrRequired, "storage.pin[0].sha256", 1},
		{"short fingerprint", "[[storage.pin]]\nserial = \"A\"\nsha256 = \"" + fp[:60] + "\"\n", ErrValue, "storage.pin[0].sha256", 3},
		{"serial with a space", "[[storage.pin]]\nserial = \"A B\"\nsha256 = \"" + fp + "\"\n", ErrValue, "storage.pin[0].serial", 2},
		{"pinned twice", "[[storage.pin]]\nserial = \"A\"\nsha256 = \"" + fp + "\"\n[[storage.pin]]\nserial = \"A\"\nsha256 = \"" + fp + "\"\n",
			ErrDuplicate, "storage.pin[1].serial", 5},
		{"listener without credentials", listen, ErrRequired, "snmp.trap_listen", 2},
		{"v3 user without key files", listen + "trap_user = \"s\"\n", ErrRequired, "snmp.trap_auth_key_file", 0},
		{"v3 keys without user", listen + "trap_community_file = \"/c\"\ntrap_priv_key_file = \"/p\"\n", ErrConflict, "snmp.trap_priv_key_file", 4},
		{"unknown auth protocol", listen + "trap_user = \"s\"\ntrap_auth_protocol = \"MD5\"\ntrap_auth_key_file = \"/a\"\ntrap_priv_key_file = \"/p\"\n",
			ErrValue, "snmp.trap_auth_protocol", 4},
		{"user too long", listen + "trap_user = \"" + strings.Repeat("u", 33) + "\"\ntrap_auth_key_file = \"/a\"\ntrap_priv_key_file = \"/p\"\n",
			ErrValue, "snmp.trap_user", 3},
		{"community not a path", listen + "trap_community_file = \"public\"\n", ErrValue, "snmp.trap_community_file", 3},
		{"unknown key", "[storage]\ncafile = \"/x\"\n", ErrUnknownKey, "storage.cafile", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tc.text)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse = %v, want problems", err)
			}
			i := slices.IndexFunc(ps, func(p Problem) bool { return p.Key == tc.key })
			if i < 0 || !errors.Is(ps[i], tc.kind) || (tc.line != 0 && ps[i].Line != tc.line) {
				t.Fatalf("problems:\n%v\nwant %v on %s line %d", err, tc.kind, tc.key, tc.line)
			}
		})
	}
}

func TestTrapCredentialsWithoutListenerWarn(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("[snmp]\ntrap_community_file = \"/c\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Key != "snmp.trap_community_file" {
		t.Fatalf("warnings %v, want one on snmp.trap_community_file", cfg.Warnings)
	}
}
