package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// timeline records, in order, what the drivers saw: a freeze sent to a
// system and its answer, and each driver's Close.
type timeline struct {
	mu     sync.Mutex
	events []string
	sent   map[hal.Serial]chan struct{} // closed at a system's first freeze
}

func (tl *timeline) add(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.events = append(tl.events, fmt.Sprintf(format, args...))
}

func (tl *timeline) snapshot() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.events)
}

// freezeSent is closed once a freeze was sent to serial.
func (tl *timeline) freezeSent(serial hal.Serial) chan struct{} {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.sent[serial] == nil {
		tl.sent[serial] = make(chan struct{})
	}
	return tl.sent[serial]
}

// timedDriver is the direct driver, with its freezes and its Close on
// the timeline.
type timedDriver struct {
	hal.Driver
	tl *timeline
}

func (d *timedDriver) Freeze(ctx context.Context, epoch hal.Epoch, pairs []hal.LSSPair) error {
	serial := d.Serial()
	d.tl.add("freeze sent %s", serial)
	ch := d.tl.freezeSent(serial)
	d.tl.mu.Lock()
	select {
	case <-ch:
	default:
		close(ch)
	}
	d.tl.mu.Unlock()
	err := d.Driver.Freeze(ctx, epoch, pairs)
	if err != nil {
		d.tl.add("freeze failed %s: %v", serial, err)
	} else {
		d.tl.add("freeze acked %s", serial)
	}
	return err
}

func (d *timedDriver) Close() error {
	d.tl.add("close %s", d.Serial())
	return d.Driver.Close()
}

// TestStopFinishesTheFreezeInFlight: lockstepd is stopped while a freeze
// is in flight (primary 1 is 1 s away each way: every command takes 2 s; the freeze
// of the group has been sent to it); the stop waits for the freeze: every
// primary of the group acknowledged it before any driver closed. An order
// that closes the drivers first loses primary 1's answer.
func TestStopFinishesTheFreezeInFlight(t *testing.T) {
	r := newLabRig(t, 5*time.Second)
	tl := &timeline{sent: map[hal.Serial]chan struct{}{}}
	r.drivers = Drivers{hal.Direct: func(ctx context.Context, spec hal.ConnectionSpec) (hal.Driver, error) {
		d, err := direct.Factory(ctx, spec)
		if err != nil {
			return nil, err
		}
		return &timedDriver{Driver: d, tl: tl}, nil
	}}
	// The request timeout leaves the late primary time to answer.
	c, stop := r.start("interval = \"200ms\"\ndetection_window = \"500ms\"\nrequest_timeout = \"4s\"\n"+
		"poll_interval = \"1s\"\nretry_interval = \"250ms\"\n", &countingNotifier{})
	r.defineSession(c, "prod", "cgx", 0, 1)
	p0, p1 := topology.PrimarySerial(0), topology.PrimarySerial(1)
	if err := r.lab.Inject(lab.Fault{Kind: "latency", System: string(p1), Endpoint: -1, Latency: "1s"}); err != nil {
		t.Fatal(err)
	}
	// A path failure on primary 0: the core freezes the group on both
	// primaries at once.
	if err := r.lab.Inject(lab.Fault{Kind: "paths", System: string(p0)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tl.freezeSent(p1):
	case <-time.After(30 * time.Second):
		t.Fatalf("no freeze sent to %s; timeline %q", p1, tl.snapshot())
	}
	tl.add("stop")
	stop()

	events := tl.snapshot()
	t.Logf("timeline %q", events)
	at := func(prefix string) int {
		return slices.IndexFunc(events, func(e string) bool { return strings.HasPrefix(e, prefix) })
	}
	stopAt, firstClose := at("stop"), at("close ")
	if firstClose < 0 {
		t.Fatalf("no driver closed at stop; timeline %q", events)
	}
	if acked := at("freeze acked " + string(p1)); acked >= 0 && acked < stopAt {
		t.Fatalf("the freeze of %s was answered before the stop (not in flight); timeline %q", p1, events)
	}
	for _, p := range []hal.Serial{p0, p1} {
		if acked := at("freeze acked " + string(p)); acked < 0 || acked > firstClose {
			t.Errorf("%s did not acknowledge the freeze before the drivers closed; timeline %q", p, events)
		}
	}
}
