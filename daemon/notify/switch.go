package notify

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// Switch is a handler whose destination can be replaced while loggers
// derived from it (With, WithGroup) stay in use: a reload that changes the
// syslog target reaches every component's logger at once.
type Switch struct {
	cur    *atomic.Pointer[slog.Handler]
	attrs  []slog.Attr
	groups []string
}

// NewSwitch returns a Switch sending to h.
func NewSwitch(h slog.Handler) *Switch {
	s := &Switch{cur: &atomic.Pointer[slog.Handler]{}}
	s.Set(h)
	return s
}

// Set replaces the destination.
func (s *Switch) Set(h slog.Handler) { s.cur.Store(&h) }

func (s *Switch) target() slog.Handler {
	h := *s.cur.Load()
	for _, g := range s.groups {
		h = h.WithGroup(g)
	}
	if len(s.attrs) > 0 {
		h = h.WithAttrs(s.attrs)
	}
	return h
}

func (s *Switch) Enabled(ctx context.Context, l slog.Level) bool {
	return (*s.cur.Load()).Enabled(ctx, l)
}

func (s *Switch) Handle(ctx context.Context, r slog.Record) error { return s.target().Handle(ctx, r) }

func (s *Switch) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Switch{cur: s.cur, attrs: append(append([]slog.Attr{}, s.attrs...), attrs...), groups: s.groups}
}

func (s *Switch) WithGroup(name string) slog.Handler {
	return &Switch{cur: s.cur, attrs: s.attrs, groups: append(append([]string{}, s.groups...), name)}
}
