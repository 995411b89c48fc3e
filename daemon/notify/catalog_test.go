package notify

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

func TestCatalogIsWellFormed(t *testing.T) {
	t.Parallel()
	codes, names := map[int]string{}, map[string]bool{}
	id := regexp.MustCompile(`^LS\d{4}[IWE]$`)
	for _, e := range Catalog {
		if prev, dup := codes[e.Code]; dup {
			t.Errorf("code %d used by %s and %s", e.Code, prev, e.Name)
		}
		codes[e.Code] = e.Name
		if names[e.Name] {
			t.Errorf("name %s used twice", e.Name)
		}
		names[e.Name] = true
		if !id.MatchString(e.ID()) || len(e.MessageID()) != 32 {
			t.Errorf("%s: id %q, MESSAGE_ID %q", e.Name, e.ID(), e.MessageID())
		}
		if e.Summary == "" {
			t.Errorf("%s has no summary", e.Name)
		}
	}
	if got := GroupPartial.ID(); got != "LS2103E" {
		t.Errorf("GroupPartial id %q: released ids must not change", got)
	}
}

func TestJournalHandlerFields(t *testing.T) {
	t.Parallel()
	var got map[string]string
	var gotMsg string
	var gotPri journal.Priority
	h := &journalHandler{level: slog.LevelInfo, send: func(m string, p journal.Priority, v map[string]string) error {
		gotMsg, gotPri, got = m, p, v
		return nil
	}}
	logger := slog.New(h).With("component", "freeze")
	Log(logger, GroupPartial, "consistency group not frozen everywhere", "group", "cg:prod", "serial", "LAB.2107-75P0002")
	if gotMsg != "consistency group not frozen everywhere" || gotPri != journal.PriErr {
		t.Fatalf("message %q priority %d", gotMsg, gotPri)
	}
	for k, v := range map[string]string{"MESSAGE_ID": GroupPartial.MessageID(), "LOCKSTEP_MSGID": "LS2103E",
		"COMPONENT": "freeze", "GROUP": "cg:prod", "SERIAL": "LAB.2107-75P0002", "SYSLOG_IDENTIFIER": "lockstepd"} {
		if got[k] != v {
			t.Errorf("field %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if err := h.Handle(context.Background(), slog.NewRecord(time.Unix(0, 0), slog.LevelDebug, "x", 0)); err != nil {
		t.Fatal(err)
	}
}

func TestTextHandlerHasIDsButNoTimestamps(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	Log(slog.New(NewHandler(&buf, slog.LevelInfo, true)), HeartbeatExpired, "heartbeat expired", "serial", "X")
	line := buf.String()
	if strings.Contains(line, "time=") || strings.Contains(line, "MESSAGE_ID") || !strings.Contains(line, "msgid=LS4001E") {
		t.Fatalf("stderr line %q", line)
	}
}
