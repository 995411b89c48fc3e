package notify

import (
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort finds a free loopback port for network ("udp" or "tcp").
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestSyslogIntoRsyslog sends RFC 5424 messages over UDP and TCP to a real
// rsyslogd (Debian package rsyslog) and checks that it parsed the event id
// as MSGID and the app name.
func TestSyslogIntoRsyslog(t *testing.T) {
	if _, err := exec.LookPath("rsyslogd"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("rsyslogd missing (Debian package rsyslog; make deps installs it)")
		}
		t.Skip("rsyslogd missing")
	}
	dir := t.TempDir()
	udpPort, tcpPort := freePort(t, "udp"), freePort(t, "tcp")
	out := filepath.Join(dir, "out.log")
	conf := filepath.Join(dir, "rsyslog.conf")
	os.WriteFile(conf, []byte(`global(workDirectory="`+dir+`")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="`+strconv.Itoa(udpPort)+`")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="`+strconv.Itoa(tcpPort)+`")
template(name="parsed" type="string" string="msgid=%msgid% app=%app-name% sev=%syslogseverity-text% msg=%msg%\n")
*.* action(type="omfile" file="`+out+`" template="parsed")
`), 0o644)
	cmd := exec.Command("rsyslogd", "-n", "-f", conf, "-i", filepath.Join(dir, "pid"))
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// rsyslogd is ready when its TCP port accepts.
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(tcpPort)); err == nil {
			c.Close()
			break
		}
		if i == 200 {
			t.Fatalf("rsyslogd did not start: %s", errb.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	udp := slog.New(NewSyslogHandler("udp", "127.0.0.1:"+strconv.Itoa(udpPort), "lockstepd", slog.LevelInfo, nil))
	tcp := slog.New(NewSyslogHandler("tcp", "127.0.0.1:"+strconv.Itoa(tcpPort), "lockstepd", slog.LevelInfo, nil))
	Log(udp, GroupPartial, "over udp", "group", "cg:prod")
	Log(tcp, HeartbeatExpired, "over tcp", "serial", "P1")
	want := []string{
		"msgid=LS2103E app=lockstepd sev=err msg=over udp group=cg:prod",
		"msgid=LS4001E app=lockstepd sev=err msg=over tcp serial=P1",
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := os.ReadFile(out)
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(string(got), w)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote:\n%s\nwant lines:\n%s", got, strings.Join(want, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
