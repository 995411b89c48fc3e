package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BootEnv turns the boot test on (make boot-test sets it): it needs root,
// about a minute the first time to build the Debian tree, and boots a
// container.
const BootEnv = "LOCKSTEP_BOOT_TEST"

// bootSuite and bootIncludes make the minimal Debian the packages are
// tried on: an init, a bus, what lockstep depends on (procps), and
// passwd for the test users. dpkg -i refuses the package if a dependency
// is missing from the tree.
const bootSuite = "bookworm"

// wedgeFile is daemon/freeze.BootcheckWedgeFile, which exists only in a
// build with the bootcheck tag.
const wedgeFile = "/run/lockstep/bootcheck-wedge-core"

var bootIncludes = []string{"systemd", "systemd-sysv", "dbus", "procps", "passwd"}

// TestBoot installs the lockstep .deb into a minimal Debian tree without
// a running init (a container image build), boots the tree with
// systemd-nspawn, and checks from inside the booted system what an
// administrator relies on: the daemon ready as user lockstep, the admin
// API for root and for an unprivileged user, reload, the watchdog, an
// upgrade that keeps state and an edited conffile, and purge.
//
// The packages are built here with -tags bootcheck, versions 0.1.0 and
// 0.1.1: that build has the hook that wedges the freeze core
// (daemon/freeze/bootcheck.go); release builds do not (TestDebBinaries).
func TestBoot(t *testing.T) {
	if os.Getenv(BootEnv) == "" {
		t.Skipf("$%s is not set: make boot-test runs this test", BootEnv)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the boot test needs root (mmdebstrap, systemd-nspawn, nsenter)")
	}
	for _, tool := range []struct{ name, pkg string }{
		{"mmdebstrap", "mmdebstrap"}, {"systemd-nspawn", "systemd-container"}, {"nsenter", "util-linux"},
	} {
		need(t, tool.name, tool.pkg)
	}
	start := time.Now()
	work, err := os.MkdirTemp("", "lockstep-boot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })

	// $LOCKSTEP_BOOT_PACKAGES may name a folder where earlier runs left
	// these packages, to try the boot alone again while debugging.
	pkgs := os.Getenv("LOCKSTEP_BOOT_PACKAGES")
	if pkgs == "" {
		pkgs = filepath.Join(work, "pkgs")
		for _, v := range []string{"0.1.0", "0.1.1"} {
			if _, err := build(options{Root: "..", Out: pkgs, Version: v, Tags: "bootcheck"}); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("packages 0.1.0 and 0.1.1 built (-tags bootcheck) in %v", time.Since(start).Round(time.Second))
	}

	tarball := debianTree(t)
	t.Run("install, boot, reload, watchdog, upgrade, purge", func(t *testing.T) {
		bootChecks(t, newTree(t, work, "tree", tarball, pkgs))
	})
	t.Run("the operations guide", func(t *testing.T) {
		bootGuide(t, newTree(t, work, "guide", tarball, pkgs), pkgs)
	})
	t.Logf("boot test done in %v", time.Since(start).Round(time.Second))
}

// newTree unpacks the Debian tree into work/name, with the packages in
// /root/pkgs.
func newTree(t *testing.T, work, name, tarball, pkgs string) string {
	t.Helper()
	tree := filepath.Join(work, name)
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tree) })
	runTool(t, "tar", "-C", tree, "-xf", tarball)
	if err := os.MkdirAll(filepath.Join(tree, "root/pkgs"), 0o755); err != nil {
		t.Fatal(err)
	}
	runTool(t, "cp", "-a", pkgs+"/.", filepath.Join(tree, "root/pkgs"))
	return tree
}

// bootChecks: the package installed offline, then booted, reloaded,
// wedged, upgraded and purged.
func bootChecks(t *testing.T, tree string) {
	// 1. Installed into the tree with no init running, as when a
	// container image is built: it must succeed, enable the unit, create
	// the user and the state directory, and start nothing.
	out := runTool(t, "systemd-nspawn", "-q", "-D", tree, "--register=no", "--keep-unit", "--private-network", "--console=pipe",
		"/bin/sh", "-c", "test ! -d /run/systemd/system && dpkg -i /root/pkgs/lockstep_0.1.0_amd64.deb /root/pkgs/lockstep-lab_0.1.0_amd64.deb 2>&1")
	t.Logf("offline dpkg -i:\n%s", out)
	if l, err := os.Readlink(filepath.Join(tree, "etc/systemd/system/multi-user.target.wants/lockstepd.service")); err != nil {
		t.Errorf("the unit is not enabled after an offline install: %v", err)
	} else if !strings.HasSuffix(l, "/lockstepd.service") {
		t.Errorf("the enable link points at %s", l)
	}
	if passwd, _ := os.ReadFile(filepath.Join(tree, "etc/passwd")); !regexp.MustCompile(`(?m)^lockstep:x:\d+:\d+:`).Match(passwd) {
		t.Error("no user lockstep after install")
	}
	if st, err := os.Stat(filepath.Join(tree, "var/lib/lockstep")); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("state directory after install: %v, %v; want drwxr-x---", st, err)
	}

	// 2. Boot.
	m := boot(t, tree, tree+".console.log")
	t.Logf("booted in %v", m.booted.Round(time.Second))

	// 3. The daemon is ready, as user lockstep, with its STATUS=.
	m.must("systemctl is-active lockstepd")
	pid := m.mainPID()
	uid := strings.TrimSpace(m.must("id -u lockstep"))
	if st := m.must("cat /proc/" + pid + "/status"); !regexp.MustCompile(`(?m)^Uid:\s+` + uid + `\s`).MatchString(st) {
		t.Errorf("lockstepd (pid %s) does not run as lockstep (uid %s):\n%s", pid, uid, st)
	}
	if st := m.must("systemctl status lockstepd --no-pager --lines=0"); !regexp.MustCompile(`(?m)^\s+Status: "role \S+.*heartbeat.*"$`).MatchString(st) {
		t.Errorf("systemctl status shows no STATUS= of lockstepd:\n%s", st)
	}

	// 4. The admin API on the real system bus: root reads and changes;
	// another user reads and is refused every change by the shipped
	// D-Bus policy; a member of group lockstep may change.
	if st := m.must("lockstepctl status"); !strings.Contains(st, "(0.1.0)") || !strings.Contains(st, "HA state") {
		t.Errorf("lockstepctl status as root:\n%s", st)
	}
	m.must("useradd --create-home alice && useradd --create-home --groups lockstep bob")
	if st := m.must("runuser -u alice -- lockstepctl --json status"); !strings.Contains(st, `"version": "0.1.0"`) {
		t.Errorf("lockstepctl status as alice:\n%s", st)
	}
	m.must("runuser -u alice -- lockstepctl storage list")
	for _, change := range []string{"heartbeat on", "storage add LAB.2107-75P0009 --addr 127.0.0.1:1790", "session create nope", "backup create", "ha reconnect"} {
		code, out := m.sh("runuser -u alice -- lockstepctl " + change)
		if code != 1 || !strings.Contains(out, "access denied") {
			t.Errorf("alice: lockstepctl %s: exit %d, want 1 and access denied:\n%s", change, code, out)
		}
	}
	m.must("runuser -u bob -- lockstepctl heartbeat off")

	// 5. Reload: a new heartbeat interval applies; a file with an unknown
	// key is refused and the old configuration stays.
	m.must(`sed -i 's/^interval = "1s"$/interval = "2s"/' /etc/lockstep/lockstep.toml && grep -q '^interval = "2s"$' /etc/lockstep/lockstep.toml`)
	m.must("systemctl reload lockstepd")
	m.eventually("heartbeat every 2s after reload", 30*time.Second, "lockstepctl heartbeat show", func(out string) bool {
		return strings.Contains(out, "every 2s")
	})
	m.must(`cp /etc/lockstep/lockstep.toml /root/good.toml && sed -i 's/^\[heartbeat\]$/[heartbeat]\nfrobnicate = true/' /etc/lockstep/lockstep.toml && grep -q frobnicate /etc/lockstep/lockstep.toml`)
	m.must("systemctl reload lockstepd")
	// Event LS6002E (configRefused), naming the key.
	m.eventually("the refusal in the journal", 30*time.Second, "journalctl -u lockstepd -b --no-pager -o verbose LOCKSTEP_MSGID=LS6002E", func(out string) bool {
		return strings.Contains(out, "frobnicate")
	})
	m.must("systemctl is-active lockstepd")
	if hb := m.must("lockstepctl heartbeat show"); !strings.Contains(hb, "every 2s") {
		t.Errorf("after a refused reload the interval is not the old one:\n%s", hb)
	}
	if p := m.mainPID(); p != pid {
		t.Errorf("a reload restarted the daemon: pid %s, then %s", pid, p)
	}
	m.must("cp /root/good.toml /etc/lockstep/lockstep.toml") // the edit stays: the upgrade must keep it

	// 6. The watchdog: wedge the freeze core's loop (the bootcheck hook)
	// while the rest of the daemon runs; systemd must kill it and start
	// it again.
	restarts := m.must("systemctl show -p NRestarts --value lockstepd")
	m.must("touch " + wedgeFile)
	m.eventually("a restart by the watchdog", 60*time.Second, "systemctl show -p NRestarts --value lockstepd; systemctl is-active lockstepd", func(out string) bool {
		f := strings.Fields(out)
		return len(f) == 2 && f[0] != strings.TrimSpace(restarts) && f[1] == "active"
	})
	journal := m.must("journalctl -b --no-pager -o cat")
	for _, want := range []string{"bootcheck: the freeze core loop wedges on purpose", "withholding the watchdog ping", "Watchdog timeout"} {
		if !strings.Contains(journal, want) {
			t.Errorf("the journal has no %q", want)
		}
	}
	if p := m.mainPID(); p == pid {
		t.Errorf("the daemon was not restarted (pid %s)", p)
	}
	m.eventually("the admin API back", 60*time.Second, "lockstepctl status", func(out string) bool { return strings.Contains(out, "(0.1.0)") })

	// 7. Upgrade 0.1.0 -> 0.1.1: state (a storage system, a session) and
	// the edited conffile are kept, the daemon runs the new version.
	// Storage needs [storage] ca_file first (docs/architecture.md, Trust).
	writeCA(t, filepath.Join(tree, "root/storage-ca.pem"))
	m.must(`install -D -m 0644 /root/storage-ca.pem /etc/lockstep/tls/storage-ca.pem && ` +
		`sed -i 's|^# ca_file = "/etc/lockstep/tls/storage-ca.pem"$|ca_file = "/etc/lockstep/tls/storage-ca.pem"|' /etc/lockstep/lockstep.toml && ` +
		`grep -q '^ca_file = "/etc/lockstep/tls/storage-ca.pem"$' /etc/lockstep/lockstep.toml && systemctl restart lockstepd`)
	m.eventually("the admin API after the restart", 60*time.Second, "lockstepctl status", func(out string) bool { return strings.Contains(out, "(0.1.0)") })
	for _, c := range []string{
		"storage add LAB.2107-75P0001 --addr 127.0.0.1:1750,127.0.0.1:1751",
		"storage add LAB.2107-75P0002 --addr 127.0.0.1:1752,127.0.0.1:1753",
		"session create prod --type mm-failover-failback --cg prod-cg",
		"session add-copyset prod LAB.2107-75P0001/1001 LAB.2107-75P0002/1001",
	} {
		m.must("lockstepctl " + c)
	}
	before := m.must("lockstepctl --json session show prod")
	pid = m.mainPID()
	t.Logf("online dpkg -i 0.1.1:\n%s", m.must("dpkg -i /root/pkgs/lockstep_0.1.1_amd64.deb /root/pkgs/lockstep-lab_0.1.1_amd64.deb </dev/null 2>&1"))
	m.eventually("0.1.1 running", 60*time.Second, "lockstepctl status", func(out string) bool { return strings.Contains(out, "(0.1.1)") })
	if p := m.mainPID(); p == pid {
		t.Errorf("the upgrade did not restart the daemon (pid %s)", p)
	}
	if after := m.must("lockstepctl --json session show prod"); after != before {
		t.Errorf("session prod changed across the upgrade:\n%s\nthen\n%s", before, after)
	}
	if st := m.must("lockstepctl storage list"); !strings.Contains(st, "LAB.2107-75P0001") || !strings.Contains(st, "LAB.2107-75P0002") {
		t.Errorf("storage lost across the upgrade:\n%s", st)
	}
	m.must(`grep -q '^interval = "2s"$' /etc/lockstep/lockstep.toml`)
	m.must("test ! -e /etc/lockstep/lockstep.toml.dpkg-dist && test ! -e /etc/lockstep/lockstep.toml.dpkg-new")
	if hb := m.must("lockstepctl heartbeat show"); !strings.Contains(hb, "every 2s") {
		t.Errorf("after the upgrade the edited interval is not in force:\n%s", hb)
	}
	m.must("lockstep-lab help >/dev/null")

	// 8. Remove keeps the state, purge removes it.
	m.must("dpkg -r lockstep </dev/null")
	if code, out := m.sh(`systemctl is-active lockstepd || for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = lockstepd ] && exit 0; done; exit 1`); code == 0 {
		t.Errorf("lockstepd still runs after dpkg -r:\n%s", out)
	}
	m.must("test -d /var/lib/lockstep/journal && test -f /etc/lockstep/lockstep.toml")
	m.must("dpkg -P lockstep </dev/null")
	m.must("test ! -e /var/lib/lockstep && test ! -e /etc/lockstep/lockstep.toml && test ! -e /etc/systemd/system/multi-user.target.wants/lockstepd.service")

	m.poweroff()
}

// bootGuide runs every "sh" block of docs/operations.md, in order, on a
// freshly booted tree, as root in the folder holding the package; before
// the section on upgrades the folder gets the newer package.
func bootGuide(t *testing.T, tree, pkgs string) {
	download := filepath.Join(tree, "root/download")
	if err := os.Mkdir(download, 0o755); err != nil {
		t.Fatal(err)
	}
	place := func(version string) {
		old, _ := filepath.Glob(filepath.Join(download, "*.deb"))
		for _, f := range old {
			os.Remove(f)
		}
		runTool(t, "cp", filepath.Join(pkgs, debFormat.fileName("lockstep", version)), download)
	}
	place("0.1.0")
	// The guide's "storage-ca.pem": a CA of storage systems the tree
	// never reaches (the storage commands only journal), but a real PEM
	// certificate, as lockstepd reads it at start.
	writeCA(t, filepath.Join(download, "storage-ca.pem"))
	m := boot(t, tree, tree+".console.log")
	n := 0
	var blocks []block
	for _, b := range guideBlocks(t) {
		if b.Info == "sh" {
			blocks = append(blocks, b)
		}
	}
	for i, b := range blocks {
		if b.Section == "Upgrades" && !strings.Contains(m.must("lockstepctl status"), "(0.1.1)") {
			place("0.1.1")
		}
		n++
		out := m.must("cd /root/download && set -e\n" + b.Text + "</dev/null")
		t.Logf("guide, %s, block %d:\n%s", b.Section, n, tail([]byte(out), 1500))
		if i+1 < len(blocks) && blocks[i+1].Section == b.Section {
			continue // a section's checks follow its last block
		}
		switch b.Section {
		case "Install":
			m.must("systemctl is-active lockstepd && lockstepctl status | grep -q '(0.1.0)'")
		case "First configuration":
			if !strings.Contains(m.must("lockstepctl status"), "lockstep-a (0.1.0)") {
				t.Error("the server is not named lockstep-a after the first configuration")
			}
		case "Adding storage":
			m.must("lockstepctl storage show IBM.2107-75XYZ02")
		case "A session":
			m.must("lockstepctl session show prod | grep -q 'copy sets *2$'")
		case "The heartbeat":
			m.must("lockstepctl status | grep -q 'heartbeat *on'")
		case "Scheduled tasks":
			m.must("lockstepctl task list | grep -q 'nightly-pit *yes *daily 02:00 *Europe/Berlin'")
		case "Upgrades":
			m.must("lockstepctl status | grep -q '(0.1.1)' && lockstepctl session show prod && grep -q '^name = \"lockstep-a\"$' /etc/lockstep/lockstep.toml")
		case "Logs, events and traps":
			if strings.Contains(b.Text, "journalctl") {
				m.must("journalctl -u lockstepd --no-pager -o cat LOCKSTEP_MSGID=LS1001I | grep -q .")
			} else {
				// systemctl reload returns once SIGHUP is sent; the unit
				// is "reloading" until lockstepd says READY=1 again.
				m.eventually("the reload done", 30*time.Second, "systemctl is-active lockstepd; lockstepctl events",
					func(out string) bool { return strings.HasPrefix(out, "active\n") && strings.Contains(out, "LS6001") })
			}
		case "Removing":
			m.must("test ! -e /var/lib/lockstep && test ! -e /etc/lockstep/lockstep.toml")
		}
	}
	m.poweroff()
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debianTree returns the tarball of the minimal Debian tree, built by
// mmdebstrap from the machine's apt sources and cached (by a hash of what
// goes into it) under $LOCKSTEP_BOOT_CACHE, else /var/cache/lockstep-boot.
func debianTree(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("LOCKSTEP_BOOT_CACHE")
	if cache == "" {
		cache = "/var/cache/lockstep-boot"
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	sources := aptSources(t)
	h := sha256.New()
	fmt.Fprintf(h, "v1 %s minbase %s\n", bootSuite, strings.Join(bootIncludes, ","))
	for _, s := range sources {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s\n%s\n", s, b)
	}
	tarball := filepath.Join(cache, bootSuite+"-"+hex.EncodeToString(h.Sum(nil))[:16]+".tar")
	if _, err := os.Stat(tarball); err == nil {
		t.Logf("Debian tree from the cache: %s", tarball)
		return tarball
	}
	start := time.Now()
	tmp := tarball + ".tmp.tar"
	args := []string{"--variant=minbase", "--include=" + strings.Join(bootIncludes, ","), "--aptopt=Acquire::Retries \"3\"", bootSuite, tmp}
	runTool(t, "mmdebstrap", append(args, sources...)...)
	if err := os.Rename(tmp, tarball); err != nil {
		t.Fatal(err)
	}
	// Trees of earlier inputs (other sources, packages) are stale.
	stale, _ := filepath.Glob(filepath.Join(cache, bootSuite+"-*.tar"))
	for _, f := range stale {
		if f != tarball {
			os.Remove(f)
		}
	}
	t.Logf("Debian tree built in %v: %s", time.Since(start).Round(time.Second), tarball)
	return tarball
}

// aptSources are the machine's apt source files, which mmdebstrap pastes
// into the tree: the mirror this machine can reach.
func aptSources(t *testing.T) []string {
	t.Helper()
	var out []string
	if st, err := os.Stat("/etc/apt/sources.list"); err == nil && st.Size() > 0 {
		if b, _ := os.ReadFile("/etc/apt/sources.list"); regexp.MustCompile(`(?m)^deb `).Match(b) {
			out = append(out, "/etc/apt/sources.list")
		}
	}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	list, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	more = append(more, list...)
	sort.Strings(more)
	out = append(out, more...)
	if len(out) == 0 {
		t.Fatal("no apt sources in /etc/apt: mmdebstrap needs a mirror")
	}
	return out
}

// machine is the booted container.
type machine struct {
	t      *testing.T
	cmd    *exec.Cmd
	pid    int // the container's init, as the host sees it
	booted time.Duration
	done   chan error
}

// boot starts systemd-nspawn -b on tree and waits until the system has
// finished booting. Here nspawn needs a tmpfs on /run/systemd/nspawn and
// must neither register with machined nor move into its own scope.
func boot(t *testing.T, tree, console string) *machine {
	t.Helper()
	if err := os.MkdirAll("/run/systemd/nspawn", 0o755); err != nil {
		t.Fatal(err)
	}
	if exec.Command("mountpoint", "-q", "/run/systemd/nspawn").Run() != nil {
		runTool(t, "mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run/systemd/nspawn")
		t.Cleanup(func() { exec.Command("umount", "/run/systemd/nspawn").Run() })
	}
	logf, err := os.Create(console)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command("systemd-nspawn", "-q", "-D", tree, "-b", "--register=no", "--keep-unit", "--private-network",
		"--machine=lockstep-boot", "--console=read-only")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &machine{t: t, cmd: cmd, done: make(chan error, 1)}
	go func() { m.done <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			cmd.Process.Signal(syscall.SIGKILL)
			<-m.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(console)
			t.Logf("container console (last 8 KiB):\n%s", tail(b, 8192))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for m.pid == 0 {
		m.pid = containerInit(cmd.Process.Pid)
		if time.Now().After(deadline) {
			t.Fatal("systemd-nspawn started no init")
		}
		select {
		case err := <-m.done:
			b, _ := os.ReadFile(console)
			t.Fatalf("systemd-nspawn exited: %v\n%s", err, tail(b, 4096))
		case <-time.After(100 * time.Millisecond):
		}
	}
	// systemctl needs PID 1's private socket, which comes a moment
	// after the init itself.
	code, out := m.shWithin(3*time.Minute, "while [ ! -S /run/systemd/private ]; do sleep 0.1; done; systemctl is-system-running --wait")
	state := strings.TrimSpace(out)
	if code != 0 && state != "degraded" {
		t.Fatalf("the container did not finish booting: %q (exit %d)", state, code)
	}
	if state == "degraded" {
		t.Logf("booted degraded; failed units:\n%s", m.must("systemctl --failed --no-pager"))
	}
	m.booted = time.Since(start)
	return m
}

// containerInit finds the container's PID 1 among the descendants of
// systemd-nspawn: a process named systemd in another PID namespace.
func containerInit(nspawn int) int {
	ours, _ := os.Readlink("/proc/self/ns/pid")
	queue := []int{nspawn}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, p))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			child, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child))
			ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", child))
			if strings.TrimSpace(string(comm)) == "systemd" && ns != ours {
				return child
			}
			queue = append(queue, child)
		}
	}
	return 0
}

// sh runs a shell command inside the booted system (every namespace of
// its init, its root) and returns the exit code and the combined output.
func (m *machine) sh(script string) (int, string) {
	return m.shWithin(2*time.Minute, script)
}

func (m *machine) shWithin(d time.Duration, script string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--target", strconv.Itoa(m.pid), "--mount", "--uts", "--ipc", "--net", "--pid",
		"--root", "--wd", "--", "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/root",
		"/bin/sh", "-c", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok && ctx.Err() == nil {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		return -1, fmt.Sprintf("%s\n(%v)", out.String(), err)
	}
	return 0, out.String()
}

// must runs script inside and fails the test unless it exits 0.
func (m *machine) must(script string) string {
	m.t.Helper()
	code, out := m.sh(script)
	if code != 0 {
		_, j := m.sh("systemctl status lockstepd --no-pager --lines=0; journalctl -u lockstepd -b --no-pager -n 40 -o short-monotonic")
		m.t.Fatalf("in the container: %s: exit %d\n%s\nlockstepd's status and journal:\n%s", script, code, out, j)
	}
	return out
}

func (m *machine) mainPID() string {
	m.t.Helper()
	return strings.TrimSpace(m.must("systemctl show -p MainPID --value lockstepd"))
}

// eventually runs script until ok accepts its output, for at most d.
func (m *machine) eventually(what string, d time.Duration, script string, ok func(string) bool) {
	m.t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, out := m.sh(script)
		if ok(out) {
			return
		}
		if time.Now().After(deadline) {
			_, j := m.sh("systemctl status lockstepd --no-pager --lines=0; journalctl -u lockstepd -b --no-pager -n 40 -o short-monotonic")
			m.t.Fatalf("%s: not within %v; last output of %q:\n%s\nlockstepd's status and journal:\n%s", what, d, script, out, j)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// poweroff shuts the container down and waits for nspawn to exit.
func (m *machine) poweroff() {
	m.t.Helper()
	m.sh("systemctl poweroff")
	select {
	case err := <-m.done:
		m.done <- err // for the cleanup
		if err != nil {
			m.t.Errorf("systemd-nspawn: %v", err)
		}
	case <-time.After(90 * time.Second):
		m.t.Error("the container did not power off within 90s")
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// writeCA writes a self-signed CA certificate (PEM) to path.
func writeCA(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "storage CA of the boot test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
