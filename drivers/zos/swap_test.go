package zos_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/drivers/zos"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/haltest"
	"github.com/lockstep-io/lockstep/internal/lab"
)

const swapSession = "HS1"

// swapHostFor opens the HyperSwap connection to the lab's host through
// the factory the daemon uses.
func swapHostFor(t *testing.T, srv *lab.Server) hal.SwapHostConn {
	t.Helper()
	h, err := zos.OpenSwapHost(t.Context(), hal.ConnectionSpec{Name: host,
		Addresses: []string{srv.ZOSEndpoint(host)}, Sysplex: sysplex, Manager: "test-manager",
		User: "zosuser", Password: "zos-pw", Roots: pool(t, srv)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// fbPairs are the pairs establish sets up.
func fbPairs() []hal.VolumePair {
	var out []hal.VolumePair
	for n := range uint8(haltest.Volumes) {
		out = append(out, haltest.Pair(haltest.FBLSS, n))
	}
	return out
}

func swapStatus(t *testing.T, ctx context.Context, h hal.SwapHost) []hal.SwapState {
	t.Helper()
	st, err := h.SwapStatus(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func nextSwap(t *testing.T, ctx context.Context, events <-chan hal.SwapEvent) hal.SwapEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("swap events closed")
		}
		return ev
	case <-ctx.Done():
		t.Fatal("no swap event")
	}
	return hal.SwapEvent{}
}

// TestOpenSwapHostRefusesASerial: the HyperSwap connection names no
// storage system; a spec that names one is a configuration error, as are
// the specs Factory refuses.
func TestOpenSwapHostRefusesASerial(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	roots := pool(t, srv)
	for _, tc := range []struct {
		name string
		spec hal.ConnectionSpec
		want error
	}{
		{name: "serial", spec: hal.ConnectionSpec{Serial: "A", Name: host, Roots: roots, Addresses: []string{"127.0.0.1:1"}}, want: zos.ErrBadAddress},
		{name: "no CA", spec: hal.ConnectionSpec{Name: host, Addresses: []string{"127.0.0.1:1"}}, want: zos.ErrNoCA},
		{name: "no host", spec: hal.ConnectionSpec{Roots: roots, Addresses: []string{"127.0.0.1:1"}}, want: zos.ErrBadAddress},
		{name: "two addresses", spec: hal.ConnectionSpec{Name: host, Roots: roots,
			Addresses: []string{"127.0.0.1:1", "127.0.0.1:2"}}, want: zos.ErrBadAddress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := zos.OpenSwapHost(t.Context(), tc.spec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenSwapHost = %v, %v; want %v", h, err, tc.want)
			}
		})
	}
}

// TestSwapHostPlannedSwap: over loopback TLS to the lab's host, a loaded
// session is swap-ready; a planned swap moves the host's I/O to H2, status
// says Swapped and the manager hears the planned event; unload forgets it.
func TestSwapHostPlannedSwap(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	establish(t, driverFor(t, srv, haltest.Primary, nil))
	h := swapHostFor(t, srv)
	ctx := ctxFor(t, 20*time.Second)
	events, err := h.SwapEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LoadSwap(ctx, 1, swapSession, fbPairs()); err != nil {
		t.Fatal(err)
	}
	st := swapStatus(t, ctx, h)
	if len(st) != 1 || st[0].Session != swapSession || !slices.Equal(st[0].Pairs, fbPairs()) || !st[0].Ready || st[0].Swapped {
		t.Fatalf("status after load: %+v", st)
	}
	if err := h.Swap(ctx, 1, swapSession); err != nil {
		t.Fatal(err)
	}
	if st := swapStatus(t, ctx, h); len(st) != 1 || !st[0].Swapped {
		t.Fatalf("status after the swap: %+v", st)
	}
	ev := nextSwap(t, ctx, events)
	if ev.Session != swapSession || !ev.Planned || ev.Host != host || ev.Trigger != "hyperswap command" {
		t.Fatalf("swap event %+v", ev)
	}
	io := srv.ZOSHost(host)
	for _, vp := range fbPairs() {
		if got := io.Device(vp.Source); got != vp.Target {
			t.Fatalf("host I/O to %s goes to %s, want %s", vp.Source, got, vp.Target)
		}
	}
	// Again (a lost answer resent): no error.
	if err := h.Swap(ctx, 1, swapSession); err != nil {
		t.Fatalf("second swap: %v", err)
	}
	if err := h.UnloadSwap(ctx, 1, swapSession); err != nil {
		t.Fatal(err)
	}
	if st := swapStatus(t, ctx, h); len(st) != 0 {
		t.Fatalf("status after unload: %+v", st)
	}
	if err := h.Swap(ctx, 1, swapSession); !errors.Is(err, hal.ErrRefused) {
		t.Fatalf("swap of an unloaded session: %v, want refused", err)
	}
}

// TestSwapHostReconnectsAndResubscribes: the host goes down and comes
// back; the driver reconnects on its own, the session is still loaded,
// and the swap the host then makes on its own (its channels to H1 fail
// under a write) reaches the subscriber it had before: swap events are
// resubscribed on the new connection.
func TestSwapHostReconnectsAndResubscribes(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	establish(t, driverFor(t, srv, haltest.Primary, nil))
	h := swapHostFor(t, srv)
	ctx := ctxFor(t, 30*time.Second)
	events, err := h.SwapEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LoadSwap(ctx, 1, swapSession, fbPairs()); err != nil {
		t.Fatal(err)
	}
	inject(t, srv, lab.Fault{Kind: "zos", Host: host, Mode: "down"})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = h.SwapStatus(short, 1)
	cancel()
	if !hal.Retryable(err) {
		t.Fatalf("status with the host down: %v, want retryable", err)
	}
	dials := h.(*zos.SwapHost).Dials()
	inject(t, srv, lab.Fault{Kind: "zos", Host: host, Mode: "up"})
	st := swapStatus(t, ctx, h)
	if len(st) != 1 || !st[0].Ready {
		t.Fatalf("status after the host came back: %+v", st)
	}
	if h.(*zos.SwapHost).Dials() <= dials {
		t.Fatal("the driver answered without reconnecting")
	}
	// A channel loss is a primary failure: the host swaps under the write.
	inject(t, srv, lab.Fault{Kind: "channel", Host: host, System: string(haltest.Primary), Mode: "down"})
	src := fbPairs()[0].Source
	if err := srv.ZOSHost(host).Write(ctx, src, 0, []byte("after the channel loss")); err != nil {
		t.Fatalf("write through the host: %v", err)
	}
	ev := nextSwap(t, ctx, events)
	if ev.Session != swapSession || ev.Planned || ev.Trigger == "" {
		t.Fatalf("swap event %+v", ev)
	}
	if st := swapStatus(t, ctx, h); !st[0].Swapped {
		t.Fatalf("status after the unplanned swap: %+v", st)
	}
}

// TestSwapHostClosesItsSubscriptions: Close ends every SwapEvents channel.
func TestSwapHostClosesItsSubscriptions(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	h := swapHostFor(t, srv)
	events, err := h.SwapEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, ok := <-events; ok {
		t.Fatal("an event after Close")
	}
}

// hostileAgent is a z/OS host agent with a good certificate that answers
// badly: its first connection pushes a swap event that does not decode;
// its second answers swap-status with a result that does not decode; the
// later ones answer well and push one good event.
type hostileAgent struct {
	ln    net.Listener
	roots *wire.SelfSigned
	mu    sync.Mutex
	conns int
}

func startHostile(t *testing.T) *hostileAgent {
	t.Helper()
	ss, err := wire.NewSelfSigned(time.Now(), time.Hour, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ss.IssueZOSHost(host, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", wire.ServerTLSConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	a := &hostileAgent{ln: ln, roots: ss}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns++
			n := a.conns
			a.mu.Unlock()
			wg.Go(func() { defer c.Close(); a.serve(c, n) })
		}
	})
	return a
}

func (a *hostileAgent) serve(c net.Conn, n int) {
	br := bufio.NewReader(c)
	f, err := wire.ReadFrame(br, wire.MaxFrameSize)
	if err != nil || f.Type != wire.MsgHello {
		return
	}
	body, _ := wire.EncodeHelloOK(wire.HelloOK{Version: wire.Version})
	if wire.WriteFrame(c, wire.Frame{Type: wire.MsgHelloOK, Body: body}) != nil {
		return
	}
	if n == 1 {
		// A swap event whose session name runs past the body.
		wire.WriteFrame(c, wire.Frame{Type: wire.MsgSwapEvent, Body: []byte{0xff, 'H', 'S'}})
		drain(br)
		return
	}
	good, _ := wire.EncodeSwapEvent(hal.SwapEvent{Session: swapSession, Trigger: "storage system A crashed", Host: host,
		At: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)})
	if n > 2 {
		wire.WriteFrame(c, wire.Frame{Type: wire.MsgSwapEvent, Body: good})
	}
	for {
		f, err := wire.ReadFrame(br, wire.MaxFrameSize)
		if err != nil {
			return
		}
		req, err := wire.DecodeRequest(f.Body)
		if err != nil {
			return
		}
		result := []byte{0xff, 0xff, 0xff, 0xff} // a list of 4 billion swap states in four bytes
		if n > 2 {
			result, _ = wire.EncodeResult(req.Op, wire.Result{Swaps: []hal.SwapState{{Session: swapSession,
				Pairs: fbPairs(), Swapped: true}}})
		}
		resp, _ := wire.EncodeResponse(wire.Response{ID: req.ID, Status: wire.StatusOK, Result: result})
		if wire.WriteFrame(c, wire.Frame{Type: wire.MsgResponse, Body: resp}) != nil {
			return
		}
	}
}

func drain(br *bufio.Reader) {
	for {
		if _, err := br.ReadByte(); err != nil {
			return
		}
	}
}

// TestSwapHostHostileAnswers: a swap event that does not decode breaks
// the connection (the driver reconnects) and reaches no subscriber; a
// swap-status result that does not decode is a clear malformed error, not
// a panic nor a huge allocation; a good connection then serves both.
func TestSwapHostHostileAnswers(t *testing.T) {
	t.Parallel()
	a := startHostile(t)
	h := zos.NewSwapHost(t.Context(), zos.Options{Host: host, Addr: a.ln.Addr().String(), Sysplex: sysplex,
		Manager: "m", User: "u", Password: "p", TLS: wire.ClientTLSConfig(a.roots.Pool, ""),
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, StableAfter: time.Hour})
	t.Cleanup(func() { h.Close() })
	ctx := ctxFor(t, 20*time.Second)
	events, err := h.SwapEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sawMalformed bool
	for {
		st, err := h.SwapStatus(ctx, 1)
		if errors.Is(err, wire.ErrMalformed) {
			// Reported, and the driver drops that connection.
			sawMalformed = true
			continue
		}
		if err != nil {
			t.Fatalf("swap-status: %v", err)
		}
		if len(st) != 1 || !st[0].Swapped {
			t.Fatalf("status %+v", st)
		}
		break
	}
	if !sawMalformed {
		t.Fatal("the malformed swap-status result was never reported")
	}
	if h.Dials() < 3 {
		t.Fatalf("%d dials: the bad connections were not replaced", h.Dials())
	}
	ev := nextSwap(t, ctx, events)
	if ev.Session != swapSession || ev.Planned {
		t.Fatalf("event %+v: want the good one only", ev)
	}
}
