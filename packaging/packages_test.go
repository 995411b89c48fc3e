package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// PackagesEnv names the folder of built packages the tests below check
// (make package sets it to dist after building). Without it they are
// skipped: building the packages is make package's job, not go test's.
const PackagesEnv = "LOCKSTEP_PACKAGES"

// built is the four packages of one version in a folder.
type built struct {
	Version     string
	Deb, LabDeb string
	RPM, LabRPM string
}

func packages(t *testing.T) built {
	t.Helper()
	dir := os.Getenv(PackagesEnv)
	if dir == "" {
		t.Skipf("$%s is not set: make package builds the packages and runs this test on them", PackagesEnv)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "lockstep_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("%s: want exactly one lockstep_*_amd64.deb, found %q", dir, debs)
	}
	v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(debs[0]), "lockstep_"), "_amd64.deb")
	b := built{Version: v}
	for _, f := range []struct {
		dst  *string
		name string
	}{
		{&b.Deb, debFormat.fileName("lockstep", v)}, {&b.LabDeb, debFormat.fileName("lockstep-lab", v)},
		{&b.RPM, rpmFormat.fileName("lockstep", v)}, {&b.LabRPM, rpmFormat.fileName("lockstep-lab", v)},
	} {
		*f.dst = filepath.Join(dir, f.name)
		if _, err := os.Stat(*f.dst); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// What the lockstep package installs, deb and rpm alike (the unit's
// folder apart).
var lockstepFiles = []string{
	"/usr/bin/lockstepd",
	"/usr/bin/lockstepctl",
	"/etc/lockstep/lockstep.toml",
	"/usr/lib/sysusers.d/lockstep.conf",
	"/usr/lib/tmpfiles.d/lockstep.conf",
	"/usr/share/dbus-1/system.d/org.lockstep.Manager1.conf",
	"/usr/share/snmp/mibs/LOCKSTEP-MIB.txt",
	"/usr/share/man/man8/lockstepd.8.gz",
	"/usr/share/man/man8/lockstepctl.8.gz",
	"/usr/share/man/man8/lockstepctl-ha-takeover.8.gz",
	"/usr/share/man/man5/lockstep.toml.5.gz",
	"/usr/share/bash-completion/completions/lockstepctl",
}

// lintian: no error, no warning, with every override carrying a reason.
func TestDebLintian(t *testing.T) {
	t.Parallel()
	b := packages(t)
	lintian := need(t, "lintian", "lintian")
	cmd := exec.Command(lintian, "--pedantic", "--no-tag-display-limit", "--show-overrides", b.Deb, b.LabDeb)
	out, _ := cmd.CombinedOutput() // lintian's exit status follows --fail-on; the lines say it all
	var bad []string
	overridden := 0
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "E: "), strings.HasPrefix(l, "W: "):
			bad = append(bad, l)
		case strings.HasPrefix(l, "O: "):
			overridden++
		}
	}
	if len(bad) > 0 {
		t.Errorf("lintian:\n%s", strings.Join(bad, "\n"))
	}
	// Every override has the comment that says why.
	for _, pkg := range []string{"lockstep", "lockstep-lab"} {
		text, err := os.ReadFile("files/" + pkg + ".lintian-overrides")
		if err != nil {
			t.Fatal(err)
		}
		comment := false
		for _, l := range strings.Split(string(text), "\n") {
			switch {
			case strings.HasPrefix(l, "#"):
				comment = true
			case l == "":
				comment = false
			case !comment:
				t.Errorf("%s.lintian-overrides: %q has no comment above it saying why", pkg, l)
			}
		}
	}
	if overridden == 0 {
		t.Errorf("no override was used: remove the overrides file, or lintian no longer reads it:\n%s", out)
	}
}

func TestDebContents(t *testing.T) {
	t.Parallel()
	b := packages(t)
	dpkgDeb := need(t, "dpkg-deb", "dpkg")
	var paths []string
	for _, l := range strings.Split(output(t, dpkgDeb, "-c", b.Deb), "\n") {
		if f := strings.Fields(l); len(f) >= 6 {
			paths = append(paths, strings.TrimPrefix(f[5], "."))
		}
	}
	for _, want := range append(slices.Clone(lockstepFiles), "/lib/systemd/system/lockstepd.service",
		"/usr/share/doc/lockstep/copyright", "/usr/share/doc/lockstep/changelog.gz", "/usr/share/lintian/overrides/lockstep") {
		if !slices.Contains(paths, want) {
			t.Errorf("lockstep deb lacks %s", want)
		}
	}
	for _, p := range paths {
		if strings.HasPrefix(p, "/var/lib/lockstep") {
			t.Errorf("the deb ships %s: the state directory belongs to the daemon, not to the package", p)
		}
	}
	fields := map[string]string{"Package": "lockstep", "Version": b.Version, "Architecture": "amd64",
		"Depends": "systemd-sysusers, systemd-tmpfiles, default-dbus-system-bus | dbus-system-bus, procps"}
	for k, want := range fields {
		if got := strings.TrimSpace(output(t, dpkgDeb, "-f", b.Deb, k)); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if got := strings.TrimSpace(output(t, dpkgDeb, "-I", b.Deb, "conffiles")); got != "/etc/lockstep/lockstep.toml" {
		t.Errorf("conffiles: %q", got)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		want, err := os.ReadFile("scripts/deb-" + s)
		if err != nil {
			t.Fatal(err)
		}
		if got := output(t, dpkgDeb, "-I", b.Deb, s); got != string(want) {
			t.Errorf("the deb's %s is not scripts/deb-%s", s, s)
		}
	}
	lab := output(t, dpkgDeb, "-c", b.LabDeb)
	for _, want := range []string{"./usr/bin/lockstep-lab", "./usr/share/man/man1/lockstep-lab.1.gz", "./usr/share/doc/lockstep-lab/copyright"} {
		if !strings.Contains(lab, want) {
			t.Errorf("lockstep-lab deb lacks %s", want)
		}
	}
}

// The binaries are the release build: the version of the package, and
// not the boot test's wedge hook (daemon/freeze/bootcheck.go). The man
// pages are what the command tree gives today.
func TestDebBinaries(t *testing.T) {
	t.Parallel()
	b := packages(t)
	dpkgDeb := need(t, "dpkg-deb", "dpkg")
	root := t.TempDir()
	output(t, dpkgDeb, "-x", b.Deb, root)
	for _, name := range []string{"lockstepd", "lockstepctl"} {
		bin := filepath.Join(root, "usr/bin", name)
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("bootcheck-wedge-core")) {
			t.Errorf("%s holds the boot test's wedge hook: built with -tags bootcheck", name)
		}
	}
	if got := strings.TrimSpace(output(t, filepath.Join(root, "usr/bin/lockstepd"), "--version")); got != b.Version {
		t.Errorf("lockstepd --version = %q, want %q", got, b.Version)
	}
	if got := strings.TrimSpace(output(t, filepath.Join(root, "usr/bin/lockstepctl"), "--version")); got != "lockstepctl "+b.Version {
		t.Errorf("lockstepctl --version = %q, want %q", got, "lockstepctl "+b.Version)
	}
	c, err := headCommit("..")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := lockstepctlPages(manual{Version: b.Version, Date: c.Time})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		f, err := os.Open(filepath.Join(root, "usr/share/man/man8", p.file()+".gz"))
		if err != nil {
			t.Errorf("%s: %v", p.file(), err)
			continue
		}
		z, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(z)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p.Roff) {
			t.Errorf("%s in the package differs from the command tree's (rebuild with make package)", p.file())
		}
	}
}

// rpmlint, as an unprivileged user: no error. Filters carry their reason
// in files/lockstep.rpmlintrc.
func TestRPMLint(t *testing.T) {
	t.Parallel()
	b := packages(t)
	rpmlint := need(t, "rpmlint", "rpmlint")
	cpio := need(t, "cpio", "cpio")
	runuser := need(t, "runuser", "util-linux")
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot run rpmlint as another user (it must not run as root: see below)")
	}
	// nfpm writes the payload with absolute names and rpmlint unpacks it
	// with "cpio -id": as root that writes into /. Here rpmlint runs as
	// nobody, through a cpio that keeps the names relative, in a folder
	// nobody may write.
	// A folder nobody can reach (t.TempDir's parent is private to root),
	// holding the packages, the rpmlintrc and the cpio wrapper.
	dir, err := os.MkdirTemp("", "lockstep-rpmlint-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "bin")
	if err := os.Mkdir(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wrapper, "cpio"), []byte("#!/bin/sh\nexec "+cpio+" --no-absolute-filenames \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile := func(src string) string {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(src))
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	rc := copyFile("files/lockstep.rpmlintrc")
	// Both at once: a filter unused by every package is an error.
	cmd := exec.Command(runuser, "-u", "nobody", "--", "env", "HOME="+dir, "TMPDIR="+dir, "PATH="+wrapper+":/usr/bin:/bin",
		rpmlint, "-r", rc, copyFile(b.RPM), copyFile(b.LabRPM))
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput() // exit status 64 for errors, 66 for badness: the summary says which
	sum := regexp.MustCompile(`2 packages and 0 specfiles checked; (\d+) errors, (\d+) warnings`).FindSubmatch(out)
	if sum == nil || string(sum[1]) != "0" || bytes.Contains(out, []byte(": E: ")) {
		t.Errorf("rpmlint:\n%s", out)
	}
}

func TestRPMQueries(t *testing.T) {
	t.Parallel()
	b := packages(t)
	rpm := need(t, "rpm", "rpm")
	list := strings.Fields(output(t, rpm, "-qpl", b.RPM))
	for _, want := range append(slices.Clone(lockstepFiles), "/usr/lib/systemd/system/lockstepd.service",
		"/usr/lib/systemd/system-preset/90-lockstep.preset", "/usr/share/licenses/lockstep/copyright") {
		if !slices.Contains(list, want) {
			t.Errorf("rpm -qpl: no %s", want)
		}
	}
	if got := strings.Fields(output(t, rpm, "-qp", "--configfiles", b.RPM)); !slices.Equal(got, []string{"/etc/lockstep/lockstep.toml"}) {
		t.Errorf("rpm --configfiles: %q", got)
	}
	flags := output(t, rpm, "-qp", "--qf", `[%{FILEFLAGS:fflags} %{FILENAMES}\n]`, b.RPM)
	if !strings.Contains(flags, "cn /etc/lockstep/lockstep.toml\n") {
		t.Errorf("the config is not %%config(noreplace):\n%s", flags)
	}
	if !strings.Contains(flags, "d /usr/share/man/man8/lockstepd.8.gz\n") {
		t.Errorf("the man pages are not %%doc:\n%s", flags)
	}
	scripts := output(t, rpm, "-qp", "--scripts", b.RPM)
	for _, s := range []struct{ header, file string }{
		{"postinstall scriptlet (using /bin/sh):", "scripts/rpm-post"},
		{"preuninstall scriptlet (using /bin/sh):", "scripts/rpm-preun"},
		{"postuninstall scriptlet (using /bin/sh):", "scripts/rpm-postun"},
	} {
		body, err := os.ReadFile(s.file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(scripts, s.header+"\n"+strings.TrimRight(string(body), "\n")) {
			t.Errorf("rpm --scripts: no %q holding %s:\n%s", s.header, s.file, scripts)
		}
	}
	if got := strings.TrimSpace(output(t, rpm, "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH} %{LICENSE}", b.RPM)); got != "lockstep "+b.Version+" x86_64 "+license {
		t.Errorf("rpm header: %q", got)
	}
	if !strings.Contains(output(t, rpm, "-qp", "--changelog", b.RPM), b.Version+"-1") {
		t.Error("rpm --changelog does not name the version")
	}
}

// rpm installs the package into a scratch root: the files land with
// their modes, the conffile is marked, and verification finds the
// conffile edited once it is.
func TestRPMScratchRoot(t *testing.T) {
	t.Parallel()
	b := packages(t)
	rpm := need(t, "rpm", "rpm")
	root := t.TempDir()
	output(t, rpm, "--root", root, "--initdb")
	// --noscripts: the scratch root has no /bin/sh to run %post with;
	// the scriptlets are run by TestMaintainerScripts.
	output(t, rpm, "--root", root, "-i", "--nodeps", "--noscripts", b.RPM)
	for path, mode := range map[string]os.FileMode{
		"/usr/bin/lockstepd": 0o755, "/usr/bin/lockstepctl": 0o755, "/etc/lockstep/lockstep.toml": 0o644,
		"/usr/lib/systemd/system/lockstepd.service": 0o644, "/usr/share/dbus-1/system.d/org.lockstep.Manager1.conf": 0o644,
	} {
		st, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Error(err)
			continue
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), mode)
		}
	}
	if got := strings.TrimSpace(output(t, rpm, "--root", root, "-qc", "lockstep")); got != "/etc/lockstep/lockstep.toml" {
		t.Errorf("rpm -qc lockstep: %q", got)
	}
	if out, err := exec.Command(rpm, "--root", root, "-V", "--nodeps", "lockstep").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("rpm -V after install: %v\n%s", err, out)
	}
	conf := filepath.Join(root, "etc/lockstep/lockstep.toml")
	if err := os.WriteFile(conf, []byte("[heartbeat]\ninterval = \"2s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(rpm, "--root", root, "-V", "--nodeps", "lockstep").CombinedOutput()
	if !regexp.MustCompile(`(?m)^S\.5\S*\s+c /etc/lockstep/lockstep.toml$`).Match(out) {
		t.Errorf("rpm -V does not report the edited conffile as a config file (c):\n%s", out)
	}
	// Erasing keeps the edited configuration aside (.rpmsave).
	output(t, rpm, "--root", root, "-e", "--noscripts", "lockstep")
	if _, err := os.Stat(conf + ".rpmsave"); err != nil {
		t.Errorf("the edited configuration was not kept on erase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/lockstepd")); err == nil {
		t.Error("lockstepd is still there after erase")
	}
}
