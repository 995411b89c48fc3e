package wire

import (
	"context"
	"errors"
	"fmt"

	"github.com/lockstep-io/lockstep/hal"
)

// The HyperSwap ops of the z/OS extension (version 3): a z/OS host agent
// carries hal.SwapHost on a discovery connection (a Hello naming no
// storage system) and pushes its swaps as SwapEvent frames. See the
// package comment, section "HyperSwap".

// MaxSwapPairs bounds the pairs of one session in load-swap and
// swap-status: a session holds at most every volume of 255 LSSs.
const MaxSwapPairs = 65280

// minSwapState is the smallest SwapState: empty session, empty list,
// two bools, empty text.
const minSwapState = 1 + 4 + 1 + 1 + 2

// SwapEvent frame bodies.

// EncodeSwapEvent returns the body of a SwapEvent frame.
func EncodeSwapEvent(ev hal.SwapEvent) ([]byte, error) {
	e := encoder{what: "swap-event"}
	e.name("session", ev.Session)
	e.boolean(ev.Planned)
	e.text("trigger", ev.Trigger)
	e.name("host", ev.Host)
	e.time("at", ev.At)
	return e.done()
}

// DecodeSwapEvent decodes the body of a SwapEvent frame.
func DecodeSwapEvent(b []byte) (hal.SwapEvent, error) {
	d := decoder{what: "swap-event", b: b}
	ev := hal.SwapEvent{Session: d.name(), Planned: d.boolean("planned"), Trigger: d.text(), Host: d.name(), At: d.time()}
	if err := d.finish(); err != nil {
		return hal.SwapEvent{}, err
	}
	return ev, nil
}

func putSwapStates(e *encoder, states []hal.SwapState) {
	putList(e, "swap states", states, func(s hal.SwapState) {
		e.name("session", s.Session)
		if len(s.Pairs) > MaxSwapPairs {
			e.fail("session %s: %d pairs, limit %d", s.Session, len(s.Pairs), MaxSwapPairs)
		}
		putList(e, "pairs", s.Pairs, e.volumePair)
		e.boolean(s.Swapped)
		e.boolean(s.Ready)
		e.text("why", s.Why)
	})
}

func getSwapStates(d *decoder) []hal.SwapState {
	return list(d, "swap states", minSwapState, func() hal.SwapState {
		s := hal.SwapState{Session: d.name()}
		s.Pairs = list(d, "pairs", minVolumePair, d.volumePair)
		if d.err == nil && len(s.Pairs) > MaxSwapPairs {
			d.fail("session %s: %d pairs, limit %d", s.Session, len(s.Pairs), MaxSwapPairs)
		}
		s.Swapped = d.boolean("swapped")
		s.Ready = d.boolean("ready")
		s.Why = d.text()
		return s
	})
}

// swapHost is what a request's swap op needs from the served system.
func swapHost(sys hal.StorageSystem, op Op) (hal.SwapHost, error) {
	h, ok := sys.(hal.SwapHost)
	if !ok {
		return nil, fmt.Errorf("%w: %s: this endpoint runs no HyperSwap (only a z/OS host's discovery connection does)", hal.ErrUnsupported, op)
	}
	return h, nil
}

func dispatchSwap(ctx context.Context, sys hal.StorageSystem, epoch hal.Epoch, op Op, a Args) (Result, error) {
	var r Result
	h, err := swapHost(sys, op)
	if err != nil {
		return r, err
	}
	switch op {
	case OpLoadSwap:
		err = h.LoadSwap(ctx, epoch, a.Session, a.VolumePairs)
	case OpUnloadSwap:
		err = h.UnloadSwap(ctx, epoch, a.Session)
	case OpSwap:
		err = h.Swap(ctx, epoch, a.Session)
	case OpSwapStatus:
		r.Swaps, err = h.SwapStatus(ctx, epoch)
	}
	return r, err
}

// forwardSwapEvents sends a z/OS host's swaps as SwapEvent frames until
// the connection ends.
func (s *serverConn) forwardSwapEvents(ctx context.Context, events <-chan hal.SwapEvent) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() == nil {
					s.fail(errors.New("the z/OS host ended its swap events"))
				}
				return
			}
			body, err := EncodeSwapEvent(ev)
			if err != nil {
				s.log.Warn("dropped a swap event that cannot be encoded", "session", ev.Session, "err", err)
				continue
			}
			if s.write(MsgSwapEvent, body) != nil {
				return
			}
		case <-s.closed:
			return
		}
	}
}

// takeSwapEvent delivers a SwapEvent frame to SwapEvents: a connection
// that did not ask for them is broken by one.
func (c *Client) takeSwapEvent(body []byte) error {
	if c.swaps == nil {
		return fmt.Errorf("%w: server sent a %s on a connection that takes none", ErrMalformed, MsgSwapEvent)
	}
	ev, err := DecodeSwapEvent(body)
	if err != nil {
		return err
	}
	select {
	case c.swaps <- ev:
	default:
		if n := c.dropped.Add(1); n&(n-1) == 0 {
			c.opts.Logger.Warn("dropped swap events: consumer too slow", "session", ev.Session, "dropped", n)
		}
	}
	return nil
}

// SwapEvents delivers a z/OS host's swap reports (ClientOptions.SwapEvents);
// nil on a connection that takes none. It is closed when the connection
// ends.
func (c *Client) SwapEvents() <-chan hal.SwapEvent { return c.swaps }

// LoadSwap gives the z/OS host a session's pairs (hal.SwapHost).
func (c *Client) LoadSwap(ctx context.Context, epoch hal.Epoch, session string, pairs []hal.VolumePair) error {
	return c.command(ctx, epoch, OpLoadSwap, Args{Session: session, VolumePairs: pairs})
}

// UnloadSwap makes the z/OS host forget a session (hal.SwapHost).
func (c *Client) UnloadSwap(ctx context.Context, epoch hal.Epoch, session string) error {
	return c.command(ctx, epoch, OpUnloadSwap, Args{Session: session})
}

// Swap is the planned HyperSwap of a session (hal.SwapHost).
func (c *Client) Swap(ctx context.Context, epoch hal.Epoch, session string) error {
	return c.command(ctx, epoch, OpSwap, Args{Session: session})
}

// SwapStatus lists the sessions the z/OS host holds (hal.SwapHost).
func (c *Client) SwapStatus(ctx context.Context, epoch hal.Epoch) ([]hal.SwapState, error) {
	r, err := c.query(ctx, epoch, OpSwapStatus)
	return r.Swaps, err
}
