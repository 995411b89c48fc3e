package zos

import (
	"context"
	"fmt"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
)

// swapEventBuffer is how many swap events one connection holds for the
// forwarder; a host swaps a handful of sessions at most at once.
const swapEventBuffer = 64

// SwapHost is the HyperSwap side of a z/OS connection (hal.SwapHostConn):
// one connection to the host agent whose Hello names no storage system
// (the host's discovery connection), kept live like a System's, which
// carries the swap commands and on which the host pushes its swaps.
//
// Each new connection is subscribed to the host's swaps anew (the host
// subscribes a connection when it opens), so SwapEvents goes on across a
// reconnect; a swap the host makes while no connection is up is lost, and
// SwapStatus is the backstop.
type SwapHost struct {
	sys *System
}

var (
	_ hal.SwapHostConn    = (*SwapHost)(nil)
	_ hal.SwapHostFactory = OpenSwapHost
)

// NewSwapHost starts the HyperSwap connection to the z/OS host of opt
// (opt.Serial is ignored: the connection names no storage system); it
// connects in the background until ctx ends or Close, which waits for it.
func NewSwapHost(ctx context.Context, opt Options) *SwapHost {
	return &SwapHost{sys: start(ctx, opt, true)}
}

// OpenSwapHost opens the HyperSwap side of a z/OS connection (a
// hal.SwapHostFactory). spec.Serial must be empty; spec.Name is the z/OS
// host (its certificate must name it, urn:lockstep:zos:NAME, or match
// spec.Pin), spec.Addresses its one agent address (port 5858 when left
// out), spec.Sysplex the sysplex this manager states at login,
// spec.Reachability hears when the host becomes reachable or not.
func OpenSwapHost(ctx context.Context, spec hal.ConnectionSpec) (hal.SwapHostConn, error) {
	what := "HyperSwap connection to z/OS host " + spec.Name
	if spec.Serial != "" {
		return nil, fmt.Errorf("%w: %s: names storage system %s; a HyperSwap connection names none",
			ErrBadAddress, what, spec.Serial)
	}
	opt, err := specOptions(spec, what)
	if err != nil {
		return nil, err
	}
	return NewSwapHost(ctx, opt), nil
}

// Close stops the connection and waits for its goroutines; every
// SwapEvents channel is closed.
func (h *SwapHost) Close() error {
	err := h.sys.Close()
	// The forwarder has ended: nothing sends any more.
	s := h.sys
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.swapSubs {
		delete(s.swapSubs, ch)
		close(ch)
	}
	return err
}

// Via names the host agent while it answers ("" while it does not).
func (h *SwapHost) Via() string { return h.sys.Via() }

// Dials is the number of connection attempts so far.
func (h *SwapHost) Dials() int { return h.sys.Dials() }

// LoadSwap gives the host a session's pairs (hal.SwapHost).
func (h *SwapHost) LoadSwap(ctx context.Context, epoch hal.Epoch, session string, pairs []hal.VolumePair) error {
	return h.sys.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.LoadSwap(ctx, epoch, session, pairs) })
}

// UnloadSwap makes the host forget a session (hal.SwapHost).
func (h *SwapHost) UnloadSwap(ctx context.Context, epoch hal.Epoch, session string) error {
	return h.sys.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.UnloadSwap(ctx, epoch, session) })
}

// Swap is the planned HyperSwap of a loaded session (hal.SwapHost). Sent
// again on a new connection if the one it went out on died: a session
// already swapped is no error.
func (h *SwapHost) Swap(ctx context.Context, epoch hal.Epoch, session string) error {
	return h.sys.call(ctx, func(ctx context.Context, c *wire.Client) error { return c.Swap(ctx, epoch, session) })
}

// SwapStatus lists the sessions the host holds (hal.SwapHost).
func (h *SwapHost) SwapStatus(ctx context.Context, epoch hal.Epoch) (out []hal.SwapState, err error) {
	err = h.sys.call(ctx, func(ctx context.Context, c *wire.Client) error {
		out, err = c.SwapStatus(ctx, epoch)
		return err
	})
	return out, err
}

// SwapEvents subscribes to the host's swaps until ctx is done or the
// connection is closed; the channel is closed then. A subscriber that does
// not keep up loses events (SwapStatus is the backstop).
func (h *SwapHost) SwapEvents(ctx context.Context) (<-chan hal.SwapEvent, error) {
	s := h.sys
	ch := make(chan hal.SwapEvent, swapEventBuffer)
	s.mu.Lock()
	s.swapSubs[ch] = struct{}{}
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	context.AfterFunc(ctx, func() {
		stop()
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.swapSubs[ch]; ok { // not closed by Close already
			delete(s.swapSubs, ch)
			close(ch)
		}
	})
	return ch, nil
}

func (s *System) publishSwap(ev hal.SwapEvent) {
	s.log.Info("z/OS host swapped", "session", ev.Session, "planned", ev.Planned, "trigger", ev.Trigger)
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.swapSubs {
		select {
		case sub <- ev:
		default: // a subscriber that does not keep up loses it; SwapStatus catches up
		}
	}
}
