package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lockstep-io/lockstep/cmd/lockstepctl/cli"
)

var testManual = manual{Version: "1.2.3", Date: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)}

// need finds a tool: missing, the test is skipped, or fails when CI=true.
func need(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (Debian package %s); CI must have it", name, pkg)
	}
	t.Skipf("%s is not installed (Debian package %s)", name, pkg)
	return ""
}

// manWarnings formats a page the way lintian does and returns what groff
// and man complain about.
func manWarnings(t *testing.T, p page) string {
	t.Helper()
	man := need(t, "man", "man-db")
	path := filepath.Join(t.TempDir(), p.file())
	if err := os.WriteFile(path, p.Roff, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(man, "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MANROFFSEQ=", "MANWIDTH=80")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return err.Error() + ": " + errb.String()
	}
	return errb.String()
}

// Every key of the reference configuration (set or commented out, the
// examples' included) is an entry of lockstep.toml(5), in its section.
func TestConfigPageHasEveryKey(t *testing.T) {
	t.Parallel()
	ref, err := os.ReadFile("../etc/lockstep/lockstep.toml")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	section := ""
	for _, l := range strings.Split(string(ref), "\n") {
		if m := regexp.MustCompile(`^\[([a-z]+)\]$`).FindStringSubmatch(l); m != nil {
			section = m[1]
		}
		if m := regexp.MustCompile(`^(?:# )?([a-z_]+) = `).FindStringSubmatch(l); m != nil {
			key := section + "." + m[1]
			if table := exampleTable(ref, l); table != "" {
				key = table + "." + m[1]
			}
			if !slices.Contains(want, key) {
				want = append(want, key)
			}
		}
	}
	p, keys, err := configPage(testManual, ref, "/etc/lockstep/lockstep.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range want {
		if !slices.Contains(keys, k) {
			t.Errorf("key %s of the reference file is not in lockstep.toml(5)", k)
		}
		name := k[strings.LastIndex(k, ".")+1:]
		shown := `\fB` + esc(name) + `\fR = ` // an entry of its own
		if strings.Count(k, ".") > 1 {        // a key of a [[table]] example
			shown = "\n" + esc(name) + " = " // a line of an example
		}
		if !bytes.Contains(p.Roff, []byte(shown)) {
			t.Errorf("lockstep.toml(5) does not show %s", k)
		}
	}
	if len(want) < 30 {
		t.Errorf("found only %d keys in the reference file: %q", len(want), want)
	}
	for _, s := range []string{"server", "heartbeat", "ha", "control", "log", "syslog", "snmp"} {
		if !bytes.Contains(p.Roff, []byte(`.SH \fB[`+s+`]\fR`)) {
			t.Errorf("lockstep.toml(5) has no section [%s]", s)
		}
	}
	if w := manWarnings(t, p); w != "" {
		t.Errorf("man --warnings:\n%s", w)
	}
}

// exampleTable is the table of the commented-out [[table]] example
// that line l lies in, "" if none.
func exampleTable(ref []byte, l string) string {
	for _, block := range strings.Split(string(ref), "\n\n") {
		table := ""
		for _, bl := range strings.Split(block, "\n") {
			if m := regexp.MustCompile(`^# \[\[([a-z.]+)\]\]$`).FindStringSubmatch(bl); m != nil {
				table = m[1]
			}
			if bl == l && table != "" {
				return table
			}
		}
	}
	return ""
}

// Every command of lockstepctl has its page, with its description and
// every flag it takes.
func TestLockstepctlPages(t *testing.T) {
	t.Parallel()
	pages, err := lockstepctlPages(testManual)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]page{}
	for _, p := range pages {
		byName[p.Name] = p
	}
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		n++
		name := strings.ReplaceAll(c.CommandPath(), " ", "-")
		p, ok := byName[name]
		if !ok {
			t.Errorf("no man page %s(8)", name)
			return
		}
		text := string(p.Roff)
		for _, want := range []string{`.TH "` + strings.ToUpper(name) + `" "8" "Nov 2026" "lockstep 1.2.3" "lockstep Manual"`, c.Short} {
			if !strings.Contains(text, want) {
				t.Errorf("%s(8): no %q in:\n%.300s", name, want, text)
			}
		}
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(text, `\fB--`+f.Name+`\fP`) {
				t.Errorf("%s(8) lacks --%s", name, f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cli.New(nil, nil, nil))
	if len(pages) != n {
		t.Errorf("%d pages for %d commands", len(pages), n)
	}
	for _, name := range []string{"lockstepctl", "lockstepctl-status", "lockstepctl-ha-takeover", "lockstepctl-session-cmd"} {
		if w := manWarnings(t, byName[name]); w != "" {
			t.Errorf("%s(8): man --warnings:\n%s", name, w)
		}
	}
}

func TestParseFlagHelp(t *testing.T) {
	t.Parallel()
	good := "usage: d [--config FILE]\n       d --version\n\nFlags:\n  -config FILE\n    \tthe `FILE`\n    \tsecond line (default \"x\")\n  -version\n    \tprint the version\n"
	h, err := parseFlagHelp(good)
	if err != nil {
		t.Fatal(err)
	}
	wantSyn := []string{"d [--config FILE]", "d --version"}
	wantOpt := []option{{"config", "FILE", "the `FILE` second line (default \"x\")"}, {"version", "", "print the version"}}
	if !slices.Equal(h.Synopsis, wantSyn) || !slices.Equal(h.Options, wantOpt) {
		t.Errorf("parseFlagHelp = %+v; want %q and %+v", h, wantSyn, wantOpt)
	}
	for _, bad := range []string{"", "Usage of d:\n  -x\n    \tx\n", "usage: d\n"} {
		if _, err := parseFlagHelp(bad); err == nil {
			t.Errorf("parseFlagHelp(%q) accepted", bad)
		}
	}
}

// buildCmd builds one command of the module into dir.
func buildCmd(t *testing.T, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	if b, err := exec.Command("go", "build", "-o", out, "../cmd/"+name).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

// lockstepd(8) lists every option of lockstepd --help, with its
// argument; lockstep-lab(1) holds its --help.
func TestDaemonAndLabPages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmpl, err := os.ReadFile("files/lockstepd.8.in")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildCmd(t, dir, "lockstepd")
	p, err := lockstepdPage(testManual, bin, string(tmpl))
	if err != nil {
		t.Fatal(err)
	}
	help, err := exec.Command(bin, "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	flags := regexp.MustCompile(`(?m)^\s+-(\S+)(?: (\S+))?$`).FindAllStringSubmatch(string(help), -1)
	if len(flags) < 4 {
		t.Fatalf("lockstepd --help lists %d flags:\n%s", len(flags), help)
	}
	for _, f := range flags {
		want := `\fB\-\-` + esc(f[1]) + `\fR`
		if f[2] != "" {
			want += ` \fI` + f[2] + `\fR`
		}
		if !bytes.Contains(p.Roff, []byte(want)) {
			t.Errorf("lockstepd(8) lacks %q", want)
		}
	}
	if bytes.Contains(p.Roff, []byte("@")) {
		t.Errorf("lockstepd(8) keeps a placeholder:\n%s", p.Roff)
	}
	if w := manWarnings(t, p); w != "" {
		t.Errorf("lockstepd(8): man --warnings:\n%s", w)
	}
	lab, err := labPage(testManual, buildCmd(t, dir, "lockstep-lab"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scenario S1", "workload start", "demo"} {
		if !bytes.Contains(lab.Roff, []byte(esc(want))) {
			t.Errorf("lockstep-lab(1) lacks %q", want)
		}
	}
	if w := manWarnings(t, lab); w != "" {
		t.Errorf("lockstep-lab(1): man --warnings:\n%s", w)
	}
}
