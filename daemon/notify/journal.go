package notify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
)

// NewHandler returns the daemon's log handler: native journald fields
// when stderr is connected to the journal (systemd sets $JOURNAL_STREAM),
// plain text on w (without timestamps) otherwise.
func NewHandler(w io.Writer, level slog.Leveler, forceText bool) slog.Handler {
	if !forceText {
		if ok, err := journal.StderrIsJournalStream(); err == nil && ok {
			return &journalHandler{level: level, send: journal.Send}
		}
	}
	return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == AttrMessageID) {
				return slog.Attr{} // journald and terminals stamp lines; the 128-bit id is for journald
			}
			return a
		}})
}

// journalHandler writes each record as one journald entry: MESSAGE,
// PRIORITY, MESSAGE_ID, and every attribute as an upper-case field.
type journalHandler struct {
	level  slog.Leveler
	attrs  []slog.Attr
	prefix string // group prefix for field names
	send   func(msg string, p journal.Priority, vars map[string]string) error
	mu     sync.Mutex
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{"SYSLOG_IDENTIFIER": "lockstepd"}
	add := func(prefix string, a slog.Attr) { addField(vars, prefix, a) }
	for _, a := range h.attrs {
		add("", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		add(h.prefix, a)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.send(r.Message, priority(r.Level), vars)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := &journalHandler{level: h.level, prefix: h.prefix, send: h.send}
	n.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return n
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{level: h.level, attrs: h.attrs, prefix: h.prefix + name + "_", send: h.send}
}

// addField turns an attribute into a journald field: upper case, only
// A-Z, 0-9 and underscore, not starting with an underscore.
func addField(vars map[string]string, prefix string, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, ga := range a.Value.Group() {
			addField(vars, prefix+a.Key+"_", ga)
		}
		return
	}
	key := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, prefix+a.Key)
	key = strings.TrimLeft(key, "_")
	if key == "" {
		return
	}
	if key == "MSGID" {
		key = "LOCKSTEP_MSGID"
	}
	vars[key] = fmt.Sprint(a.Value.Resolve().Any())
}

func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
