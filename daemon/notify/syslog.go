package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
)

// SyslogHandler sends every record as an RFC 5424 message to a remote
// collector over UDP (one datagram each) or TCP (octet-counted framing,
// RFC 6587), with the event's id as MSGID. A collector that is down costs
// the messages sent meanwhile, never the daemon's progress: writes have a
// short deadline and a broken TCP connection is dialled again on the
// next message.
type SyslogHandler struct {
	network, addr, app, host string
	level                    slog.Leveler
	clock                    clock.Clock
	attrs                    []slog.Attr

	mu   *sync.Mutex
	conn *net.Conn
}

// NewSyslogHandler returns a handler for network "udp" or "tcp" and a
// host:port.
func NewSyslogHandler(network, addr, app string, level slog.Leveler, clk clock.Clock) *SyslogHandler {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "-"
	}
	var conn net.Conn
	return &SyslogHandler{network: network, addr: addr, app: app, host: host, level: level,
		clock: clock.OrReal(clk), mu: &sync.Mutex{}, conn: &conn}
}

func (h *SyslogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *SyslogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &n
}

func (h *SyslogHandler) WithGroup(string) slog.Handler { return h }

// severity is the RFC 5424 severity of a level; facility is daemon (3).
func severity(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

// Format renders one RFC 5424 message (without transport framing).
func (h *SyslogHandler) Format(r slog.Record) string {
	msgid := "-"
	var kv []string
	add := func(a slog.Attr) {
		switch a.Key {
		case AttrID:
			msgid = a.Value.String()
		case AttrMessageID:
		default:
			kv = append(kv, fmt.Sprintf("%s=%v", a.Key, a.Value.Resolve().Any()))
		}
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	at := r.Time
	if at.IsZero() {
		at = h.clock.Now()
	}
	msg := r.Message
	if len(kv) > 0 {
		msg += " " + strings.Join(kv, " ")
	}
	return fmt.Sprintf("<%d>1 %s %s %s %d %s - %s", 3*8+severity(r.Level), at.UTC().Format(time.RFC3339Nano),
		h.host, h.app, os.Getpid(), msgid, msg)
}

func (h *SyslogHandler) Handle(_ context.Context, r slog.Record) error {
	line := h.Format(r)
	h.mu.Lock()
	defer h.mu.Unlock()
	if *h.conn == nil {
		c, err := net.DialTimeout(h.network, h.addr, time.Second)
		if err != nil {
			return nil // the collector is down: this message is lost, the daemon goes on
		}
		*h.conn = c
	}
	c := *h.conn
	frame := line
	if h.network == "tcp" {
		frame = fmt.Sprintf("%d %s", len(line), line)
	}
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(frame)); err != nil {
		c.Close()
		*h.conn = nil
	}
	return nil
}
