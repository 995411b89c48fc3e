package snmpagent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Trapd is a private snmptrapd (Debian snmptrapd) that accepts every
// v2c notification and logs each as one line:
//
//	LOCKSTEP-TRAP INFORM, SNMP v2c, community public|OID = TYPE: value<TAB>...
type Trapd struct {
	// Port is its loopback UDP port.
	Port int

	mu    sync.Mutex
	lines []string
}

// StartTrapd runs snmptrapd on a free loopback port until the test ends.
func StartTrapd(t testing.TB) *Trapd {
	t.Helper()
	bin := Tool(t, "snmptrapd")
	dir := t.TempDir()
	conf := filepath.Join(dir, "snmptrapd.conf")
	if err := os.WriteFile(conf, []byte("format2 LOCKSTEP-TRAP %P|%v\\n\ndisableAuthorization yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Trapd{Port: freeUDPPort(t)}
	cmd := exec.Command(bin, "-f", "-Lo", "-C", "-c", conf, "-n", "-On", "-m", "", fmt.Sprintf("udp:127.0.0.1:%d", d.Port))
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+filepath.Join(dir, "persist"), "MIBS=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		<-done
		if t.Failed() {
			t.Logf("snmptrapd said:\n%s", strings.Join(d.Lines(), "\n"))
		}
	})
	if err := d.Wait(context.Background(), 20*time.Second, func(l string) bool { return strings.Contains(l, "NET-SNMP version") }); err != nil {
		t.Fatalf("snmptrapd did not start: %v", err)
	}
	return d
}

// Lines is what snmptrapd logged so far.
func (d *Trapd) Lines() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.lines...)
}

// Wait waits until a line matches, polling every 10 ms.
func (d *Trapd) Wait(ctx context.Context, within time.Duration, match func(string) bool) error {
	deadline := time.Now().Add(within)
	for {
		for _, l := range d.Lines() {
			if match(l) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no matching notification within %s", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
