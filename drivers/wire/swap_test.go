package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

var sampleSwapEvents = []hal.SwapEvent{
	{Session: "hs", Planned: true, Trigger: "hyperswap command", Host: "SYSA", At: time.Unix(100, 5).UTC()},
	{Session: "prod", Trigger: "storage system LAB.2107-75P0001 crashed", Host: "SYSB", At: time.Unix(1, 0).UTC()},
}

// TestSwapEventRoundTrip: every field survives the frame.
func TestSwapEventRoundTrip(t *testing.T) {
	t.Parallel()
	for _, ev := range sampleSwapEvents {
		b, err := EncodeSwapEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeSwapEvent(b)
		if err != nil || !reflect.DeepEqual(got, ev) {
			t.Fatalf("round trip of %+v: %+v, %v", ev, got, err)
		}
	}
}

// TestSwapMalformed: short, long and bad bodies are refused as
// malformed; a list of pairs beyond the limit is refused either way.
func TestSwapMalformed(t *testing.T) {
	t.Parallel()
	good, _ := EncodeSwapEvent(sampleSwapEvents[0])
	tests := []struct {
		name string
		dec  func() error
	}{
		{"event/empty", func() error { _, err := DecodeSwapEvent(nil); return err }},
		{"event/truncated", func() error { _, err := DecodeSwapEvent(good[:len(good)-1]); return err }},
		{"event/trailing", func() error { _, err := DecodeSwapEvent(append(good, 0)); return err }},
		{"event/bad-bool", func() error {
			b := append([]byte{}, good...)
			b[1+len("hs")] = 2
			_, err := DecodeSwapEvent(b)
			return err
		}},
		{"status/huge-count", func() error {
			_, err := DecodeResult(OpSwapStatus, []byte{0xFF, 0xFF, 0xFF, 0xFF})
			return err
		}},
		{"load-swap/no-session", func() error { _, err := DecodeArgs(OpLoadSwap, nil); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.dec(); !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want malformed", err)
			}
		})
	}
	many := make([]hal.VolumePair, MaxSwapPairs+1)
	if _, err := EncodeArgs(OpLoadSwap, Args{Session: "hs", VolumePairs: many}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("encode of %d pairs: %v", len(many), err)
	}
}

func FuzzDecodeSwapEvent(f *testing.F) {
	seed(f, encodeAll(f, EncodeSwapEvent, sampleSwapEvents...)...)
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzCanonical(t, b, DecodeSwapEvent, EncodeSwapEvent)
	})
}

// fakeSwapHost is a storage fake that also runs HyperSwap.
type fakeSwapHost struct {
	*fakeStorage
	mu    sync.Mutex
	calls []string
	subs  []chan hal.SwapEvent // one per connection, in order
	// subscribed gets one token per SwapEvents call.
	subscribed chan struct{}
}

// push sends ev to the n-th connection's subscription, once it exists.
func (f *fakeSwapHost) push(t *testing.T, n int, ev hal.SwapEvent) {
	t.Helper()
	for {
		f.mu.Lock()
		var ch chan hal.SwapEvent
		if len(f.subs) > n {
			ch = f.subs[n]
		}
		f.mu.Unlock()
		if ch != nil {
			ch <- ev
			return
		}
		select {
		case <-f.subscribed:
		case <-t.Context().Done():
			t.Fatalf("connection %d never subscribed", n)
		}
	}
}

func (f *fakeSwapHost) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeSwapHost) LoadSwap(_ context.Context, e hal.Epoch, s string, p []hal.VolumePair) error {
	f.record(fmt.Sprintf("load %d %s %d", e, s, len(p)))
	return nil
}
func (f *fakeSwapHost) UnloadSwap(_ context.Context, e hal.Epoch, s string) error {
	f.record(fmt.Sprintf("unload %d %s", e, s))
	return nil
}
func (f *fakeSwapHost) Swap(_ context.Context, e hal.Epoch, s string) error {
	if s == "stale" {
		return fmt.Errorf("%w: below", hal.ErrFenced)
	}
	f.record(fmt.Sprintf("swap %d %s", e, s))
	return nil
}
func (f *fakeSwapHost) SwapEvents(ctx context.Context) (<-chan hal.SwapEvent, error) {
	ch := make(chan hal.SwapEvent, 1)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	f.subscribed <- struct{}{}
	return ch, nil
}
func (f *fakeSwapHost) SwapStatus(context.Context, hal.Epoch) ([]hal.SwapState, error) {
	return []hal.SwapState{{Session: "hs", Pairs: []hal.VolumePair{volPairA}, Ready: true}}, nil
}

// TestSwapOpsOverTLS: the four ops and a pushed swap event reach a
// served SwapHost and come back; an endpoint that runs no HyperSwap
// answers unsupported; a client that did not ask for swap events is cut
// off by one.
func TestSwapOpsOverTLS(t *testing.T) {
	t.Parallel()
	host := &fakeSwapHost{fakeStorage: newFake(serialP), subscribed: make(chan struct{}, 8)}
	anyHost := func(tls.ConnectionState) error { return nil } // the fake's certificate names localhost
	srv := startServer(t, func(h Hello) (HelloOK, hal.StorageSystem, error) {
		if err := CheckCredentials(h, "admin", "secret"); err != nil {
			return HelloOK{}, nil, err
		}
		return HelloOK{}, host, nil
	}, ServerOptions{})
	c, _, err := srv.connect(t, Hello{Manager: "m", User: "admin", Password: "secret"}, ClientOptions{SwapEvents: 4, Identity: anyHost})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := c.LoadSwap(ctx, 3, "hs", []hal.VolumePair{volPairA, volPairB}); err != nil {
		t.Fatal(err)
	}
	if err := c.Swap(ctx, 3, "hs"); err != nil {
		t.Fatal(err)
	}
	if err := c.Swap(ctx, 3, "stale"); !errors.Is(err, hal.ErrFenced) {
		t.Fatalf("fenced swap: %v", err)
	}
	if err := c.UnloadSwap(ctx, 4, "hs"); err != nil {
		t.Fatal(err)
	}
	st, err := c.SwapStatus(ctx, 4)
	if err != nil || len(st) != 1 || st[0].Session != "hs" || !st[0].Ready || st[0].Pairs[0] != volPairA {
		t.Fatalf("status %+v, %v", st, err)
	}
	host.mu.Lock()
	calls := slices.Clone(host.calls)
	host.mu.Unlock()
	if want := []string{"load 3 hs 2", "swap 3 hs", "unload 4 hs"}; !slices.Equal(calls, want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
	host.push(t, 0, sampleSwapEvents[0])
	select {
	case ev := <-c.SwapEvents():
		if !reflect.DeepEqual(ev, sampleSwapEvents[0]) {
			t.Fatalf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no swap event")
	}

	plain := startServer(t, acceptFake(newFake(serialP), heartbeatCaps), ServerOptions{})
	pc := plain.mustConnect(t, ClientOptions{})
	if err := pc.Swap(ctx, 1, "hs"); !errors.Is(err, hal.ErrUnsupported) {
		t.Fatalf("swap on a storage endpoint: %v", err)
	}

	deaf, _, err := srv.connect(t, Hello{Manager: "m", User: "admin", Password: "secret"}, ClientOptions{Identity: anyHost})
	if err != nil {
		t.Fatal(err)
	}
	host.push(t, 1, sampleSwapEvents[1])
	select {
	case <-deaf.Done():
		if !errors.Is(deaf.Err(), ErrMalformed) {
			t.Fatalf("connection ended with %v, want malformed", deaf.Err())
		}
	case <-ctx.Done():
		t.Fatal("a connection that takes no swap events survived one")
	}
}
