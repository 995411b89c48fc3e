package notify

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/internal/smibase"
)

// shippedMIB is the MIB the packages install.
const shippedMIB = "../../etc/mib/LOCKSTEP-MIB.txt"

func defaultMIB(t *testing.T) []byte {
	t.Helper()
	prefix, err := config.ParseOID(config.DefaultEnterpriseOID)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteMIB(&buf, prefix); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestShippedMIBIsGenerated keeps etc/mib/LOCKSTEP-MIB.txt equal to what
// WriteMIB makes of the catalogue. LOCKSTEP_UPDATE_MIB=1 rewrites it.
func TestShippedMIBIsGenerated(t *testing.T) {
	want := defaultMIB(t)
	if os.Getenv("LOCKSTEP_UPDATE_MIB") == "1" {
		if err := os.MkdirAll(filepath.Dir(shippedMIB), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(shippedMIB, want, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s rewritten", shippedMIB)
		return
	}
	got, err := os.ReadFile(shippedMIB)
	if err != nil {
		t.Fatalf("%v (LOCKSTEP_UPDATE_MIB=1 go test ./daemon/notify -run TestShippedMIB writes it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from the catalogue at line %d (-want +got):\n-%s\n+%s\n"+
					"regenerate it: LOCKSTEP_UPDATE_MIB=1 go test ./daemon/notify -run TestShippedMIB "+
					"(and bump MIBRevision if notifications changed)", shippedMIB, i+1, w, g)
			}
		}
	}
}

// TestMIBNotificationsMatchTheCode reads the shipped file as a NMS would:
// every notification the code sends is in it, under its OID, and it has
// no other.
func TestMIBNotificationsMatchTheCode(t *testing.T) {
	t.Parallel()
	text, err := os.ReadFile(shippedMIB)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?ms)^(\w+) NOTIFICATION-TYPE$.*?::= \{ lockstepNotifications (\d+) \}`)
	inMIB := map[string]int{}
	for _, m := range re.FindAllStringSubmatch(string(text), -1) {
		code, _ := strconv.Atoi(m[2])
		inMIB[m[1]] = code
	}
	if n := strings.Count(string(text), "NOTIFICATION-TYPE\n"); n != len(inMIB) {
		t.Fatalf("%d NOTIFICATION-TYPE macros, %d parsed", n, len(inMIB))
	}
	inCode := map[string]int{}
	for _, e := range Notifications() {
		inCode[NotificationName(e)] = e.Code
	}
	for name, code := range inCode {
		if got, ok := inMIB[name]; !ok || got != code {
			t.Errorf("%s (code %d) is sent but the MIB has it as %d (present %v)", name, code, got, ok)
		}
	}
	for name := range inMIB {
		if _, ok := inCode[name]; !ok {
			t.Errorf("the MIB has %s, which the code never sends", name)
		}
	}
	if !strings.Contains(string(text), "61942") || !strings.Contains(string(text), "placeholder") {
		t.Error("the MIB does not document its placeholder enterprise")
	}
}

func TestMIBRootForOtherPrefixes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prefix, want string
	}{
		{"1.3.6.1.4.1.61942", "enterprises 61942 1"},
		{"1.3.6.1.4.1.8072.9.9", "enterprises 8072 9 9 1"},
		{"1.3.6.1.3.77", "iso 3 6 1 3 77 1"},
	} {
		prefix, _ := config.ParseOID(tc.prefix)
		if got, err := mibRoot(prefix); err != nil || got != tc.want {
			t.Errorf("mibRoot(%s) = %q, %v; want %q", tc.prefix, got, err, tc.want)
		}
	}
	if _, err := mibRoot(config.OID{2, 999}); err == nil {
		t.Error("a prefix under joint-iso-itu-t was accepted")
	}
}

// smilint runs `smilint -l 3 -s` on a MIB file and returns what it
// reported: smilint exits 0 whatever it finds, so its output is the
// verdict.
func smilint(t *testing.T, mib string) string {
	t.Helper()
	bin := needTool(t, "smilint")
	base := t.TempDir()
	if err := smibase.Write(base); err != nil {
		t.Fatal(err)
	}
	// -c /dev/null: not the system's smi.conf, whose paths hold no IETF
	// modules and whose level would hide nothing.
	cmd := exec.Command(bin, "-c", "/dev/null", "-l", "3", "-s", mib)
	cmd.Env = append(os.Environ(), "SMIPATH="+base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("smilint: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestMIBPassesSmilint(t *testing.T) {
	t.Parallel()
	if out := smilint(t, shippedMIB); out != "" {
		t.Fatalf("smilint -l 3 reports on %s:\n%s", shippedMIB, out)
	}
	// A site's own enterprise arc gives a MIB just as clean.
	prefix, _ := config.ParseOID("1.3.6.1.4.1.8072.9.9")
	var buf bytes.Buffer
	if err := WriteMIB(&buf, prefix); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "LOCKSTEP-MIB.txt")
	if err := os.WriteFile(other, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := smilint(t, other); out != "" {
		t.Fatalf("smilint -l 3 reports on the MIB for %s:\n%s", prefix, out)
	}
}

// TestSmilintCatchesErrors proves the check above can fail: a MIB with a
// notification object that does not exist is reported.
func TestSmilintCatchesErrors(t *testing.T) {
	t.Parallel()
	bad := strings.Replace(string(defaultMIB(t)), "        lockstepRole,\n", "        lockstepRole, lockstepNoSuchObject,\n", 1)
	path := filepath.Join(t.TempDir(), "LOCKSTEP-MIB.txt")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := smilint(t, path); !strings.Contains(out, "lockstepNoSuchObject") {
		t.Fatalf("smilint did not report the unknown object: %q", out)
	}
}
