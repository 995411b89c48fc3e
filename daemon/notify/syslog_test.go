package notify

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSyslogOverUDPAndTCP(t *testing.T) {
	t.Parallel()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	h := NewSyslogHandler("udp", udp.LocalAddr().String(), "lockstepd", slog.LevelInfo, nil)
	Log(slog.New(h), GroupPartial, "consistency group not recoverable", "group", "cg:prod")
	buf := make([]byte, 2048)
	udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := udp.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	got := string(buf[:n])
	// <27>: facility daemon (3) * 8 + severity error (3).
	if !strings.HasPrefix(got, "<27>1 ") || !strings.Contains(got, " lockstepd ") ||
		!strings.Contains(got, " LS2103E - consistency group not recoverable group=cg:prod") {
		t.Fatalf("datagram %q", got)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	th := NewSyslogHandler("tcp", ln.Addr().String(), "lockstepd", slog.LevelInfo, nil)
	go Log(slog.New(th), HeartbeatExpired, "heartbeat expired", "serial", "P1")
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rd := bufio.NewReader(c)
	count, err := rd.ReadString(' ')
	if err != nil {
		t.Fatal(err)
	}
	n, err = strconv.Atoi(strings.TrimSpace(count))
	if err != nil {
		t.Fatalf("octet count %q: %v", count, err)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(rd, msg); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(msg), "<27>1 ") || !strings.Contains(string(msg), " LS4001E - heartbeat expired serial=P1") {
		t.Fatalf("tcp message %q", msg)
	}
}

func TestSwitchReachesDerivedLoggers(t *testing.T) {
	t.Parallel()
	var a, b strings.Builder
	sw := NewSwitch(slog.NewTextHandler(&a, nil))
	logger := slog.New(sw).With("component", "freeze")
	logger.Info("one")
	sw.Set(slog.NewTextHandler(&b, nil))
	logger.Info("two")
	if !strings.Contains(a.String(), "msg=one component=freeze") || strings.Contains(a.String(), "two") {
		t.Fatalf("first destination: %q", a.String())
	}
	if !strings.Contains(b.String(), "msg=two component=freeze") {
		t.Fatalf("second destination: %q", b.String())
	}
}
