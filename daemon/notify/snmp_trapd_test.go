package notify

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
)

// trapd is a private snmptrapd (Debian package snmptrapd) that logs every
// notification it accepts as one line on its stdout:
//
//	LOCKSTEP-TRAP TRAP2, SNMP v2c, community public|OID = TYPE: value<TAB>...
type trapd struct {
	port int
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []string
	times []time.Time   // when each line was read
	grew  chan struct{} // closed and replaced on every new line
}

// received is one notification as snmptrapd logged it.
type received struct {
	header string            // "TRAP2, SNMP v3, user lsuser, context "
	vars   map[string]string // numeric OID -> value as printed, strings unquoted
	at     time.Time         // when snmptrapd's line was read
}

// needTool skips a test whose peer binary is missing, except in CI,
// where a missing peer is a failure (make deps installs it).
func needTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		path, err = exec.LookPath("/usr/sbin/" + name)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (make deps installs it): %v", name, err)
		}
		t.Skipf("%s is not installed (make deps installs it)", name)
	}
	return path
}

// freeUDPPort finds a loopback port nobody listens on.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// startTrapd runs snmptrapd on port (0: a free one) with conf appended
// to a config that logs in the format above.
func startTrapd(t testing.TB, port int, conf string) *trapd {
	t.Helper()
	bin := needTool(t, "snmptrapd")
	if port == 0 {
		port = freeUDPPort(t)
	}
	dir := t.TempDir()
	confPath := filepath.Join(dir, "snmptrapd.conf")
	full := "format2 LOCKSTEP-TRAP %P|%v\\n\n" + conf
	if err := os.WriteFile(confPath, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	// -f foreground, -Lo log to stdout, -C only our config, -n numeric
	// addresses, -On numeric OIDs, -m "" no MIBs (the IETF ones are not
	// in Debian).
	cmd := exec.Command(bin, "-f", "-Lo", "-C", "-c", confPath, "-n", "-On", "-m", "",
		fmt.Sprintf("udp:127.0.0.1:%d", port))
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+filepath.Join(dir, "persist"), "MIBS=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &trapd{port: port, cmd: cmd, grew: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			d.times = append(d.times, time.Now())
			close(d.grew)
			d.grew = make(chan struct{})
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		<-done
		if t.Failed() {
			t.Logf("snmptrapd said:\n%s", strings.Join(d.snapshot(), "\n"))
		}
	})
	d.waitLine(t, func(l string) bool { return strings.Contains(l, "NET-SNMP version") }, "snmptrapd start")
	return d
}

func (d *trapd) snapshot() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.lines...)
}

// wait waits until cond holds, looking again at every line logged.
func (d *trapd) wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		grew := d.grew
		d.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-grew:
		case <-deadline.C:
			t.Fatalf("waiting for %s: not logged by snmptrapd within 10s", what)
		}
	}
}

// waitLine waits for a line that match accepts and returns it.
func (d *trapd) waitLine(t testing.TB, match func(string) bool, what string) string {
	t.Helper()
	var found string
	d.wait(t, what, func() bool {
		for _, l := range d.snapshot() {
			if match(l) {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

// notifications are the notifications logged so far.
func (d *trapd) notifications() []received {
	d.mu.Lock()
	lines, times := d.lines, d.times
	d.mu.Unlock()
	var out []received
	for i, l := range lines {
		if r, ok := parseTrapdLine(l); ok {
			r.at = times[i]
			out = append(out, r)
		}
	}
	return out
}

// count is the number of notifications logged so far, cheaply.
func (d *trapd) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.lines {
		if strings.HasPrefix(l, "LOCKSTEP-TRAP ") {
			n++
		}
	}
	return n
}

// waitNotifications waits until n notifications have been logged.
func (d *trapd) waitNotifications(t testing.TB, n int) []received {
	t.Helper()
	d.wait(t, fmt.Sprintf("%d notifications", n), func() bool { return d.count() >= n })
	return d.notifications()
}

func parseTrapdLine(l string) (received, bool) {
	rest, ok := strings.CutPrefix(l, "LOCKSTEP-TRAP ")
	if !ok {
		return received{}, false
	}
	header, vbs, _ := strings.Cut(rest, "|")
	r := received{header: header, vars: map[string]string{}}
	for _, vb := range strings.Split(vbs, "\t") {
		oid, val, ok := strings.Cut(vb, " = ")
		if !ok {
			continue
		}
		typ, v, typed := strings.Cut(val, ": ")
		if !typed { // an empty string prints as ""
			typ, v = "STRING", val
		}
		switch typ {
		case "STRING":
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
		case "Timeticks": // "(1234) 0:00:12.34"
			v = strings.TrimPrefix(strings.Fields(v)[0], "(")
			v = strings.TrimSuffix(v, ")")
		}
		r.vars[oid] = v
	}
	return r, true
}

// obj is the value of one of our objects in a received notification.
func (r received) obj(prefix config.OID, arc uint32) string { return r.vars[objectOID(prefix, arc)] }

// trapOID is the received snmpTrapOID.0 without its leading dot.
func (r received) trapOID() string { return strings.TrimPrefix(r.vars[oidSnmpTrapOID], ".") }

// snmpRig writes key files and builds an SNMP sender for the managers.
type snmpRig struct {
	dir    string
	cfg    config.SNMP
	prefix config.OID
}

func newSNMPRig(t testing.TB) *snmpRig {
	dir := t.TempDir()
	cfg := config.Default().SNMP
	cfg.EngineIDFile = filepath.Join(dir, "snmp-engine-id")
	return &snmpRig{dir: dir, cfg: cfg, prefix: cfg.EnterpriseOID}
}

func (r *snmpRig) file(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (r *snmpRig) v2c(t testing.TB, port int, note config.Notification, community string) config.Manager {
	return config.Manager{Address: config.Addr{Scheme: config.UDP, Host: "127.0.0.1", Port: uint32(port)},
		Version: config.V2c, Notification: note, CommunityFile: r.file(t, "community-"+community, community),
		Retries: config.DefaultRetries, Timeout: config.DefaultTimeout, Queue: config.DefaultQueue}
}

func (r *snmpRig) v3(t testing.TB, port int, note config.Notification, user string, auth config.AuthProtocol,
	priv config.PrivProtocol, authPass, privPass string) config.Manager {
	return config.Manager{Address: config.Addr{Scheme: config.UDP, Host: "127.0.0.1", Port: uint32(port)},
		Version: config.V3, Notification: note, User: user, AuthProtocol: auth, PrivProtocol: priv,
		AuthKeyFile: r.file(t, user+"-"+authPass+".auth", authPass), PrivKeyFile: r.file(t, user+"-"+privPass+".priv", privPass),
		Retries: config.DefaultRetries, Timeout: config.DefaultTimeout, Queue: config.DefaultQueue}
}

// engineHex is the engine ID NewSNMP created, as snmptrapd's createUser
// -e wants it.
func (r *snmpRig) engineHex(t testing.TB) string {
	t.Helper()
	id, err := os.ReadFile(r.cfg.EngineIDFile)
	if err != nil {
		t.Fatal(err)
	}
	return "0x" + hex.EncodeToString(id)
}

// eventually polls cond for a peer process that cannot tell us when it
// is done (an acknowledgement counted, a retry armed).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
