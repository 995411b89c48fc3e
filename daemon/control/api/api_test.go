package api

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

func TestStorageSpecValidate(t *testing.T) {
	t.Parallel()
	direct := ConnectionSpec{Name: "direct", Kind: Direct, Addresses: []string{"10.0.0.1:1750", "10.0.0.2:1750"}}
	zos := ConnectionSpec{Name: "zos", Kind: ZOS, Addresses: []string{"zos1:3000"}, Sysplex: "PLEX1"}
	with := func(c ConnectionSpec, f func(*ConnectionSpec)) ConnectionSpec {
		c.Addresses = slices.Clone(c.Addresses)
		f(&c)
		return c
	}
	tests := []struct {
		name string
		spec StorageSpec
		ok   bool
	}{
		{"zos is zos add's now", StorageSpec{"LAB.2107-75P0001", []ConnectionSpec{direct, zos}}, false},
		{"hmc is hmc add's now", StorageSpec{"S", []ConnectionSpec{{Name: "hmc", Kind: HMC, Addresses: []string{"hmc1:1751", "[fd00::2]:1751"}}}}, false},
		{"no serial", StorageSpec{"", []ConnectionSpec{direct}}, false},
		{"serial with a space", StorageSpec{"LAB 1", []ConnectionSpec{direct}}, false},
		{"no connection", StorageSpec{"S", nil}, false},
		{"unnamed connection", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Name = "" })}}, false},
		{"name twice", StorageSpec{"S", []ConnectionSpec{direct, direct}}, false},
		{"unknown kind", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Kind = "ficon" })}}, false},
		{"three addresses", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = append(c.Addresses, "h:1") })}}, false},
		{"no address", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = nil })}}, false},
		{"address without port", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"10.0.0.1"} })}}, false},
		{"zos without sysplex", StorageSpec{"S", []ConnectionSpec{with(zos, func(c *ConnectionSpec) { c.Sysplex = "" })}}, false},
		{"sysplex on direct", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Sysplex = "PLEX1" })}}, false},
		{"credentials", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.User, c.PasswordFile = "u", "/etc/lockstep/pw" })}}, true},
		// Issue 12 §3: refused input changes nothing, so it is refused
		// here, before any record.
		{"user without password file", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.User = "u" })}}, false},
		{"password file without user", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.PasswordFile = "/etc/lockstep/pw" })}}, false},
		{"relative password file", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.User, c.PasswordFile = "u", "pw" })}}, false},
		{"unclean password file", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.User, c.PasswordFile = "u", "/etc/../pw" })}}, false},
		{"user with a space", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.User, c.PasswordFile = "a b", "/pw" })}}, false},
		{"IPv6 address", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"[fd00::1]:1750"} })}}, true},
		{"host name", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"ds8k-a.example.com:1750"} })}}, true},
		{"port 65535", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"127.0.0.1:65535"} })}}, true},
		{"host with a space", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"ds8k a:1750"} })}}, false},
		{"empty host", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{":1750"} })}}, false},
		{"bad IPv4", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"300.1.1.1:1750"} })}}, false},
	}
	for _, port := range []string{"99999", "65536", "-1", "0", "1e9", "18446744073709551617", "+80", "0x50", "1_750", "", " 80", "８０"} {
		tests = append(tests, struct {
			name string
			spec StorageSpec
			ok   bool
		}{"port " + port, StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"127.0.0.1:" + port} })}}, false})
	}
	for _, tt := range tests {
		err := tt.spec.Validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: Validate() = %v, want ok %v (errors wrap ErrInvalid)", tt.name, err, tt.ok)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(HeartbeatGroupDoc{H: Duration(55 * time.Second)})
	if err != nil || !strings.Contains(string(b), `"h":"55s"`) {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	var g HeartbeatGroupDoc
	if err := json.Unmarshal(b, &g); err != nil || g.H != Duration(55*time.Second) {
		t.Fatalf("unmarshal: %v, %v", g.H, err)
	}
	if err := json.Unmarshal([]byte(`{"h":55}`), &g); err == nil {
		t.Error("a bare number was accepted as a duration")
	}
}

func TestJournalLine(t *testing.T) {
	t.Parallel()
	if got := JournalLine(JournalDoc{Writable: true}); got != "writable" {
		t.Errorf("writable: %q", got)
	}
	got := JournalLine(JournalDoc{Error: "persist: no space left for the state", Since: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)})
	if want := "CANNOT WRITE since 2026-12-02T10:00:00Z, changes are refused: persist: no space left for the state"; got != want {
		t.Errorf("unwritable: %q, want %q", got, want)
	}
}

// TestParseWords: the words of a session parse ignoring case, to the
// canonical word; anything else is refused with ErrInvalid, naming what
// was given and what is wanted.
func TestParseWords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		parse func(string) (string, error)
		in    string
		want  string // "" = refused
	}{
		{"type", str(ParseSessionType), "mm-failover-failback", "mm-failover-failback"},
		{"type, upper case", str(ParseSessionType), "MM-Single-Direction", "mm-single-direction"},
		{"type unknown", str(ParseSessionType), "xrc", ""},
		{"type empty", str(ParseSessionType), "", ""},
		{"policy", str(ParseSuspendPolicy), "release-io", "release-io"},
		{"policy, upper case", str(ParseSuspendPolicy), "HOLD-IO", "hold-io"},
		{"policy unknown", str(ParseSuspendPolicy), "maybe", ""},
		{"command", str(ParseSessionCommand), "start-h1-h2", "start-h1-h2"},
		{"command, upper case", str(ParseSessionCommand), "Release-IO", "release-io"},
		{"command unknown", str(ParseSessionCommand), "explode", ""},
		{"command with a space", str(ParseSessionCommand), "suspend ", ""},
		// Case is lowered, not folded: the long s is not an s.
		{"command, folded case", str(ParseSessionCommand), "\u017fuspend", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.parse(tc.in)
			switch {
			case tc.want == "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"`+tc.in+`"`)):
				t.Errorf("parse(%q) = %q, %v; want an error wrapping ErrInvalid that quotes the input", tc.in, got, err)
			case tc.want != "" && (err != nil || got != tc.want):
				t.Errorf("parse(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func str[T ~string](parse func(string) (T, error)) func(string) (string, error) {
	return func(s string) (string, error) {
		v, err := parse(s)
		return string(v), err
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{StateTargetAvailable.Label(), "Target Available"},
		{StateSuspendedPartial.Label(), "Suspended (Partial)"},
		{StatePrepared.Label(), "Prepared"},
		{SessionState("frozen-solid").Label(), "frozen-solid"}, // a newer server's state, as it came
		{StatusSevere.Label(), "Severe"},
		{StatusInactive.Label(), "Inactive"},
		{SessionStatus("grim").Label(), "grim"},
		{SessionStatus("").Label(), ""},
	} {
		if tc.got != tc.want {
			t.Errorf("label %q, want %q", tc.got, tc.want)
		}
	}
	if n := len(SessionStates()); n != 8 {
		t.Errorf("%d states, want 8", n)
	}
}

// TestCopySetJSON: the wire form is {"h1":"SERIAL/VVVV","h2":"SERIAL/VVVV"}
// and reads back to the same value; a malformed volume is an error.
func TestCopySetJSON(t *testing.T) {
	t.Parallel()
	cs := CopySet{H1: hal.VolumeRef{Serial: "LAB.2107-75P0001", Volume: 0x1001}, H2: hal.VolumeRef{Serial: "IBM/2107", Volume: 0x20FF}}
	b, err := json.Marshal(cs)
	if want := `{"h1":"LAB.2107-75P0001/1001","h2":"IBM/2107/20FF"}`; err != nil || string(b) != want {
		t.Fatalf("marshal: %s, %v; want %s", b, err, want)
	}
	var back CopySet
	if err := json.Unmarshal(b, &back); err != nil || back != cs {
		t.Fatalf("unmarshal: %+v, %v; want %+v", back, err, cs)
	}
	for _, bad := range []string{`{"h1":"A/10","h2":"B/1001"}`, `{"h1":"A1001","h2":"B/1001"}`, `{"h1":"A/1001","h2":"B/zzzz"}`, `[]`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

func TestParseVolumeRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want hal.VolumeRef
		ok   bool
	}{
		{"LAB.2107-75P0001/1001", hal.VolumeRef{Serial: "LAB.2107-75P0001", Volume: 0x1001}, true},
		{"a/b/fe01", hal.VolumeRef{Serial: "a/b", Volume: 0xFE01}, true},
		{"LAB.2107-75P0001/zz", hal.VolumeRef{}, false},
		{"LAB.2107-75P0001/10010", hal.VolumeRef{}, false},
		{"/1001", hal.VolumeRef{}, false},
		{"A/FF01", hal.VolumeRef{}, false}, // LSS FF is reserved
		{"A/+101", hal.VolumeRef{}, false},
		{"1001", hal.VolumeRef{}, false},
	} {
		got, err := ParseVolumeRef(tc.in)
		if (err == nil) != tc.ok || got != tc.want || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("ParseVolumeRef(%q) = %+v, %v; want %+v, ok %v (errors wrap ErrInvalid)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseVolumeRef: what it accepts writes back as it came, up to the
// case of the hex digits, and has a serial and a usable LSS.
func FuzzParseVolumeRef(f *testing.F) {
	for _, s := range []string{"LAB.2107-75P0001/1001", "a/b/fe01", "/1001", "A/FF01", "A/+101", "A/0x10", "A/1_01", "é/0000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseVolumeRef(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if r.Serial == "" || !r.Volume.LSS().Valid() || !strings.EqualFold(r.String(), s) {
			t.Fatalf("accepted %q as %+v (%s)", s, r, r)
		}
	})
}

func TestHMCSpecValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		spec HMCSpec
		ok   bool
	}{
		{"dual", HMCSpec{Name: "HMCS", Addresses: []string{"hmc1:1751", "[fd00::2]:1751"}, User: "u", PasswordFile: "/etc/p"}, true},
		{"single", HMCSpec{Name: "LAB-HMC1", Addresses: []string{"127.0.0.91:1751"}}, true},
		{"no name", HMCSpec{Addresses: []string{"hmc1:1751"}}, false},
		{"three", HMCSpec{Name: "H", Addresses: []string{"a:1", "b:1", "c:1"}}, false},
		{"bad port", HMCSpec{Name: "H", Addresses: []string{"a:99999"}}, false},
		{"user without file", HMCSpec{Name: "H", Addresses: []string{"a:1"}, User: "u"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.spec.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestZOSSpecValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		spec ZOSSpec
		ok   bool
	}{
		{"one system", ZOSSpec{Name: "SYSA", Addresses: []string{"127.0.0.1:5858"}, Sysplex: "PLEX1", User: "u",
			PasswordFile: "/etc/p", Systems: []hal.Serial{"LAB.2107-75ZOS01"}}, true},
		{"two systems", ZOSSpec{Name: "SYSA", Addresses: []string{"z:1"}, Sysplex: "PLEX1", Systems: []hal.Serial{"A", "B"}}, true},
		{"no systems", ZOSSpec{Name: "SYSA", Addresses: []string{"z:1"}, Sysplex: "PLEX1"}, false},
		{"system twice", ZOSSpec{Name: "SYSA", Addresses: []string{"z:1"}, Sysplex: "PLEX1", Systems: []hal.Serial{"A", "A"}}, false},
		{"bad serial", ZOSSpec{Name: "SYSA", Addresses: []string{"z:1"}, Sysplex: "PLEX1", Systems: []hal.Serial{"A B"}}, false},
		{"no sysplex", ZOSSpec{Name: "SYSA", Addresses: []string{"z:1"}, Systems: []hal.Serial{"A"}}, false},
		{"no name", ZOSSpec{Addresses: []string{"z:1"}, Sysplex: "PLEX1", Systems: []hal.Serial{"A"}}, false},
		{"three addresses", ZOSSpec{Name: "S", Addresses: []string{"a:1", "b:1", "c:1"}, Sysplex: "P", Systems: []hal.Serial{"A"}}, false},
		{"user without file", ZOSSpec{Name: "S", Addresses: []string{"a:1"}, Sysplex: "P", User: "u", Systems: []hal.Serial{"A"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.spec.Validate()
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
