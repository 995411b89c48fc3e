package compose

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// fake is one connection: it answers every command with err and records
// the calls; its events come from ev.
type fake struct {
	hal.StorageSystem // nil: only the methods below are called
	name              string
	via               string
	heartbeat         bool
	err               error
	ev                chan hal.Event

	mu     sync.Mutex
	calls  *[]string
	closed bool
}

func (f *fake) record(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.calls = append(*f.calls, f.name+" "+op)
	return f.err
}
func (f *fake) Serial() hal.Serial                                     { return "S" }
func (f *fake) Capabilities() hal.Capabilities                         { return hal.Capabilities{Heartbeat: f.heartbeat} }
func (f *fake) Via() string                                            { return f.via }
func (f *fake) Close() error                                           { f.mu.Lock(); f.closed = true; f.mu.Unlock(); return nil }
func (f *fake) Freeze(context.Context, hal.Epoch, []hal.LSSPair) error { return f.record("freeze") }
func (f *fake) Heartbeat(context.Context, hal.Epoch, string) error     { return f.record("heartbeat") }
func (f *fake) QueryPairs(context.Context, hal.Epoch) ([]hal.PairStatus, error) {
	return []hal.PairStatus{{State: hal.FullDuplex}}, f.record("query")
}
func (f *fake) Events(ctx context.Context) (<-chan hal.Event, error) {
	out := make(chan hal.Event)
	go func() {
		defer close(out)
		for {
			select {
			case ev := <-f.ev:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func TestFailover(t *testing.T) {
	t.Parallel()
	unreachable := fmt.Errorf("no cluster: %w", hal.ErrUnreachable)
	timedOut := fmt.Errorf("cluster 0: %w", hal.ErrTimeout)
	refused := fmt.Errorf("no such LSS: %w", hal.ErrRefused)
	for _, tc := range []struct {
		name      string
		direct    *fake
		hmc       *fake
		op        string
		wantCalls []string
		wantErr   error
	}{
		{name: "direct first when both are connected", direct: &fake{via: "cluster 0"}, hmc: &fake{via: "HMC A"},
			op: "freeze", wantCalls: []string{"direct freeze"}},
		{name: "unreachable direct: the HMC carries it", direct: &fake{via: "cluster 0", err: unreachable},
			hmc: &fake{via: "HMC A"}, op: "freeze", wantCalls: []string{"direct freeze", "hmc freeze"}},
		{name: "timed out direct: sent again through the HMC (idempotent)", direct: &fake{via: "cluster 0", err: timedOut},
			hmc: &fake{via: "HMC A"}, op: "freeze", wantCalls: []string{"direct freeze", "hmc freeze"}},
		{name: "a refusal is the system's answer: not sent again", direct: &fake{via: "cluster 0", err: refused},
			hmc: &fake{via: "HMC A"}, op: "freeze", wantCalls: []string{"direct freeze"}, wantErr: hal.ErrRefused},
		{name: "a connected HMC before a disconnected direct", direct: &fake{err: unreachable},
			hmc: &fake{via: "HMC A"}, op: "query", wantCalls: []string{"hmc query"}},
		{name: "none connected: each tried, in order", direct: &fake{err: unreachable}, hmc: &fake{err: unreachable},
			op: "freeze", wantCalls: []string{"direct freeze", "hmc freeze"}, wantErr: hal.ErrUnreachable},
		{name: "heartbeat skips a connection that cannot carry it", direct: &fake{via: "host A"},
			hmc: &fake{via: "HMC A", heartbeat: true}, op: "heartbeat", wantCalls: []string{"hmc heartbeat"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls []string
			a, b := tc.direct, tc.hmc
			a.name, b.name, a.calls, b.calls = "direct", "hmc", &calls, &calls
			if tc.op != "heartbeat" {
				a.heartbeat, b.heartbeat = true, true
			}
			d, err := New("S", []hal.Driver{a, b}, []string{"direct", "hmc H"})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			switch tc.op {
			case "freeze":
				err = d.Freeze(ctx, 1, nil)
			case "query":
				_, err = d.QueryPairs(ctx, 1)
			case "heartbeat":
				err = d.Heartbeat(ctx, 1, "s")
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(calls, tc.wantCalls) {
				t.Fatalf("calls = %q, want %q", calls, tc.wantCalls)
			}
		})
	}
}

func TestViaAndClose(t *testing.T) {
	t.Parallel()
	var calls []string
	a, b := &fake{name: "direct", calls: &calls}, &fake{name: "hmc", via: "HMC LAB-HMC2", calls: &calls}
	d, err := New("S", []hal.Driver{a, b}, []string{"direct", "hmc LAB-HMCS"})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Via(); got != "hmc LAB-HMCS: HMC LAB-HMC2" {
		t.Errorf("Via = %q", got)
	}
	a.via = "cluster 1"
	if got := d.Via(); got != "direct: cluster 1" {
		t.Errorf("Via = %q", got)
	}
	if err := d.Close(); err != nil || !a.closed || !b.closed {
		t.Errorf("Close = %v, closed %v %v", err, a.closed, b.closed)
	}
	if _, err := New("S", nil, nil); !errors.Is(err, ErrNoDriver) {
		t.Errorf("New(no driver) = %v", err)
	}
}

// TestEventsOnce: an event both connections forward is delivered once;
// one without a number passes each time.
func TestEventsOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls []string
		a := &fake{name: "direct", calls: &calls, ev: make(chan hal.Event)}
		b := &fake{name: "hmc", calls: &calls, ev: make(chan hal.Event)}
		d, _ := New("S", []hal.Driver{a, b}, []string{"direct", "hmc"})
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := d.Events(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, seq := range []uint64{1, 2} {
			ev := hal.Event{Kind: hal.EventSuspend, Serial: "S", Seq: seq}
			a.ev <- ev
			b.ev <- ev
		}
		b.ev <- hal.Event{Kind: hal.EventFenced, Serial: "S"}
		a.ev <- hal.Event{Kind: hal.EventFenced, Serial: "S"}
		synctest.Wait()
		cancel()
		var got []string
		for ev := range ch {
			got = append(got, fmt.Sprintf("%d/%d", ev.Kind, ev.Seq))
		}
		slices.Sort(got)
		want := []string{
			fmt.Sprintf("%d/0", hal.EventFenced), fmt.Sprintf("%d/0", hal.EventFenced),
			fmt.Sprintf("%d/1", hal.EventSuspend), fmt.Sprintf("%d/2", hal.EventSuspend),
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
	})
}

// silent is a connection that believes it is connected but never
// answers (a black hole it has not noticed yet): each command waits for
// its context and reports when that context would have ended.
type silent struct {
	fake
	deadlines *[]time.Duration
	start     time.Time
}

func (s *silent) Freeze(ctx context.Context, _ hal.Epoch, _ []hal.LSSPair) error {
	d, _ := ctx.Deadline()
	s.mu.Lock()
	*s.deadlines = append(*s.deadlines, d.Sub(s.start))
	s.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

// TestSilentConnectionLeavesTheOtherItsShare: a freeze with a 1 s
// deadline over a black-holed direct connection and a working z/OS one
// used to spend the whole second on the direct one and fail; now the
// direct one gets half, and the z/OS one freezes in the other half.
func TestSilentConnectionLeavesTheOtherItsShare(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var calls []string
		var deadlines []time.Duration
		start := time.Now()
		direct := &silent{fake: fake{name: "direct", via: "cluster 0", calls: &calls}, deadlines: &deadlines, start: start}
		zos := &fake{name: "zos", via: "SYSA", calls: &calls}
		d, err := New("S", []hal.Driver{direct, zos}, []string{"direct", "zos"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := d.Freeze(ctx, 1, nil); err != nil {
			t.Fatalf("freeze: %v; want it carried by the z/OS connection", err)
		}
		if !slices.Equal(deadlines, []time.Duration{500 * time.Millisecond}) || !slices.Equal(calls, []string{"zos freeze"}) {
			t.Fatalf("direct's deadlines %v, calls %v; want [500ms] then the z/OS freeze", deadlines, calls)
		}
		if took := time.Since(start); took != 500*time.Millisecond {
			t.Fatalf("the freeze took %v; want 500ms (direct's share)", took)
		}
	})
}
