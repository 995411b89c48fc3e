package snmpagent

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/internal/smibase"
)

// Community is the read-only v2c community of the agent.
const Community = "lockstep-test"

// Tool finds a net-snmp program, or skips the test (fails it under CI,
// where make deps installs it).
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		path, err = exec.LookPath("/usr/sbin/" + name)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (make deps installs it): %v", name, err)
		}
		t.Skipf("%s is not installed (make deps installs it)", name)
	}
	return path
}

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// Lockstepctl builds cmd/lockstepctl once per test binary and returns
// its path: snmpd runs it as a program.
func Lockstepctl(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lockstepctl-")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "lockstepctl")
		out, err := exec.Command("go", "build", "-o", built, "github.com/lockstep-io/lockstep/cmd/lockstepctl").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build lockstepctl: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// Agent is a running snmpd.
type Agent struct {
	// Addr is its address for net-snmp's tools: udp:127.0.0.1:port.
	Addr string
	// MIBDir holds LOCKSTEP-MIB and the base modules it imports.
	MIBDir string
	log    *bytes.Buffer
	logMu  *sync.Mutex
}

// Start runs snmpd on a free loopback port, serving subtree by the
// pass_persist program command (a command line), with the MIB file mib
// for name resolution. It is stopped when the test ends.
func Start(t testing.TB, subtree, command, mib string) *Agent {
	t.Helper()
	snmpd := Tool(t, "snmpd")
	Tool(t, "snmpget")
	dir := t.TempDir()
	mibs := filepath.Join(dir, "mibs")
	if err := os.Mkdir(mibs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := smibase.Write(mibs); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(mib)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mibs, "LOCKSTEP-MIB"), text, 0o644); err != nil {
		t.Fatal(err)
	}
	var a *Agent
	for attempt := 0; ; attempt++ {
		port := freeUDPPort(t)
		conf := filepath.Join(dir, "snmpd.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(
			"agentaddress udp:127.0.0.1:%d\ndontLogTCPWrappersConnects yes\nrocommunity %s 127.0.0.1\npass_persist %s %s\n",
			port, Community, subtree, command)), 0o644); err != nil {
			t.Fatal(err)
		}
		persist := filepath.Join(dir, "persist")
		if err := os.MkdirAll(persist, 0o755); err != nil {
			t.Fatal(err)
		}
		// -C: no other configuration file; -f -Lo: foreground, log to
		// stdout; -I: no optional MIB module that reads the host.
		cmd := exec.Command(snmpd, "-f", "-Lo", "-C", "-c", conf, "-M", mibs, "-m", "",
			"-I", "-hr_system,hr_storage,hr_device,hr_other,hr_proc,hr_network,hr_disk,hr_filesys,hr_swrun,hr_swinst,ucd_snmp,disman/event,disman/schedule,if-mib,ip-mib,tcp-mib,udp-mib,sctp-mib,mibII/ipv6,mibII/icmp,etherlike-mib,rmon-mib,notification-log-mib,target,ucd-snmp/dlmod,agent/nsDebug,agent/nsCache,agent/nsLogging,agent/nsModuleTable,agent/nsTransactionTable,agent/nsVacmAccessTable,ip-forward-mib,tunnel,util_funcs")
		cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+persist, "MIBS=", "MIBDIRS="+mibs)
		a = &Agent{Addr: fmt.Sprintf("udp:127.0.0.1:%d", port), MIBDir: mibs, log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatalf("snmpd: %v", err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				a.logMu.Lock()
				a.log.WriteString(sc.Text() + "\n")
				a.logMu.Unlock()
			}
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("snmpd's log:\n%s", a.Log())
			}
		})
		if a.ready(done) {
			return a
		}
		if attempt == 2 {
			t.Fatalf("snmpd did not answer on %s:\n%s", a.Addr, a.Log())
		}
		_ = cmd.Process.Kill() // the port was taken meanwhile: another
	}
}

// ready waits until snmpd answers sysUpTime, or exits.
func (a *Agent) ready(exited <-chan struct{}) bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		out, err := exec.Command("snmpget", "-v2c", "-c", Community, "-t", "0.5", "-r", "0", "-m", "", "-On", a.Addr,
			".1.3.6.1.2.1.1.3.0").CombinedOutput()
		if err == nil && strings.Contains(string(out), "Timeticks") {
			return true
		}
	}
	return false
}

// Log is what snmpd wrote so far.
func (a *Agent) Log() string {
	a.logMu.Lock()
	defer a.logMu.Unlock()
	return a.log.String()
}

// Var is one line of a walk.
type Var struct {
	OID   string // numeric, with the leading dot
	Value string // as snmpwalk -Oq prints it (strings unquoted)
}

// Walk walks oid with snmpwalk, numerically (-On) with values bare
// (-Oqe, no MIB: a string that is not printable shows in hex), and
// returns the lines in order.
func (a *Agent) Walk(t testing.TB, oid string) []Var {
	t.Helper()
	return a.WalkWith(t, "snmpwalk", oid)
}

// WalkWith is Walk by tool: snmpwalk (GETNEXT) or snmpbulkwalk
// (GETBULK, as NMSes poll tables).
func (a *Agent) WalkWith(t testing.TB, tool, oid string) []Var {
	t.Helper()
	out := a.run(t, tool, "-m", "", "-On", "-Oq", "-Oe", oid)
	var vars []Var
	for l := range strings.Lines(out) {
		l = strings.TrimRight(l, "\n")
		if l == "" {
			continue
		}
		o, v, _ := strings.Cut(l, " ")
		if strings.HasPrefix(v, "\"") && strings.HasSuffix(v, "\"") && len(v) >= 2 {
			v = v[1 : len(v)-1]
		}
		vars = append(vars, Var{OID: o, Value: strings.TrimSpace(v)})
	}
	return vars
}

// Named walks oid with LOCKSTEP-MIB loaded and returns snmpwalk's output:
// names and enumerations resolved.
func (a *Agent) Named(t testing.TB, oid string) string {
	t.Helper()
	return a.run(t, "snmpwalk", "-M", a.MIBDir, "-m", "LOCKSTEP-MIB", oid)
}

func (a *Agent) run(t testing.TB, tool string, args ...string) string {
	t.Helper()
	bin := Tool(t, tool)
	args = append([]string{"-v2c", "-c", Community, "-t", "5", "-r", "1"}, args...)
	args = append(args[:len(args)-1], a.Addr, args[len(args)-1])
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MIBS=", "MIBDIRS="+a.MIBDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}
