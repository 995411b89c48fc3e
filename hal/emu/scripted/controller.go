package scripted

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Controller freezes the whole layout on any sign of trouble it can see.
type Controller struct {
	Clock clock.Clock
	Conns map[hal.Serial]hal.StorageSystem // the primaries
	Pairs map[hal.Serial][]hal.LSSPair     // what to freeze on each
	Epoch hal.Epoch
	// Heartbeat arms the storage systems' heartbeat with Timeout and
	// refreshes it every Interval.
	Heartbeat         bool
	Interval, Timeout time.Duration
	RequestTimeout    time.Duration
	// Log receives the controller's timeline.
	Log func(format string, args ...any)

	once sync.Once
}

const session = "demo"

// Run arms the heartbeat if asked, then reacts to events and heartbeat
// failures until ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	trouble := make(chan string, 64)
	serials := slices.Sorted(maps.Keys(c.Conns))
	for _, serial := range serials {
		ev, err := c.Conns[serial].Events(ctx)
		if err != nil {
			return err
		}
		go func() {
			for e := range ev {
				if e.Kind == hal.EventSuspend && e.Reason != hal.ReasonFreeze ||
					e.Kind == hal.EventHeartbeatExpiry {
					select {
					case trouble <- fmt.Sprintf("%s event from %s (%s)", e.Kind, e.Serial, e.Reason):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	var tick <-chan time.Time
	if c.Heartbeat {
		for _, serial := range serials {
			spec := hal.HeartbeatSpec{Session: session, Timeout: c.Timeout, Pairs: c.Pairs[serial]}
			if err := c.call(ctx, func(ctx context.Context) error {
				return c.Conns[serial].EnableHeartbeat(ctx, c.Epoch, spec)
			}); err != nil {
				return fmt.Errorf("arming the heartbeat on %s: %w", serial, err)
			}
		}
		t := c.Clock.NewTicker(c.Interval)
		defer t.Stop()
		tick = t.C()
		c.Log("heartbeat armed on %d primaries: every %v, storage timeout %v", len(serials), c.Interval, c.Timeout)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case why := <-trouble:
			c.freezeAll(ctx, why)
		case <-tick:
			for _, serial := range serials {
				err := c.call(ctx, func(ctx context.Context) error {
					return c.Conns[serial].Heartbeat(ctx, c.Epoch, session)
				})
				if err != nil {
					c.freezeAll(ctx, fmt.Sprintf("heartbeat to %s failed: %v", serial, err))
				}
			}
		}
	}
}

func (c *Controller) call(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := clock.WithTimeout(ctx, c.Clock, c.RequestTimeout)
	defer cancel()
	return fn(ctx)
}

// freezeAll freezes every primary it can reach, concurrently, once.
func (c *Controller) freezeAll(ctx context.Context, why string) {
	c.once.Do(func() {
		c.Log("manager: %s -> freezing every primary", why)
		var wg sync.WaitGroup
		for serial, conn := range c.Conns {
			wg.Go(func() {
				err := c.call(ctx, func(ctx context.Context) error {
					return conn.Freeze(ctx, c.Epoch, c.Pairs[serial])
				})
				if err != nil {
					c.Log("manager: freeze of %s failed: %v", serial, err)
				} else {
					c.Log("manager: %s frozen", serial)
				}
			})
		}
		wg.Wait()
	})
}
