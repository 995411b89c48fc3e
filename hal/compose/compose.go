package compose

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// ErrNoDriver: New was given no driver.
var ErrNoDriver = errors.New("compose: no driver")

// Driver is one storage system reached through several connections.
type Driver struct {
	serial  hal.Serial
	drivers []hal.Driver
	names   []string
	clock   clock.Clock
}

// Option sets an option of New.
type Option func(*Driver)

// WithClock sets the clock that shares a command's deadline between the
// connections (default: real time).
func WithClock(c clock.Clock) Option { return func(d *Driver) { d.clock = c } }

var _ hal.Driver = (*Driver)(nil)

// New joins drivers of the storage system serial, in failover order;
// names label them in Via ("direct", "hmc LAB-HMCS"). It owns the
// drivers: Close closes them all.
func New(serial hal.Serial, drivers []hal.Driver, names []string, opts ...Option) (*Driver, error) {
	if len(drivers) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoDriver, serial)
	}
	if len(names) != len(drivers) {
		return nil, fmt.Errorf("compose: %s: %d names for %d drivers", serial, len(names), len(drivers))
	}
	d := &Driver{serial: serial, drivers: drivers, names: names}
	for _, o := range opts {
		o(d)
	}
	d.clock = clock.OrReal(d.clock)
	return d, nil
}

func (d *Driver) Serial() hal.Serial { return d.serial }

// Capabilities are the union: the heartbeat works when some connection
// carries it.
func (d *Driver) Capabilities() hal.Capabilities {
	var c hal.Capabilities
	for _, dr := range d.drivers {
		if dr.Capabilities().Heartbeat {
			c.Heartbeat = true
		}
	}
	return c
}

// Via names the connection that carries commands now and its endpoint
// ("direct: cluster 0", "hmc LAB-HMCS: HMC LAB-HMC1"); "" while none
// answers.
func (d *Driver) Via() string {
	for i, dr := range d.drivers {
		if v := dr.Via(); v != "" {
			return d.names[i] + ": " + v
		}
	}
	return ""
}

// Close closes every driver.
func (d *Driver) Close() error {
	var errs []error
	for _, dr := range d.drivers {
		errs = append(errs, dr.Close())
	}
	return errors.Join(errs...)
}

// order is the order to try the drivers now: the connected ones first,
// each group in the configured order; up counts the connected ones.
func (d *Driver) order() (order []int, up int) {
	var down []int
	for i, dr := range d.drivers {
		if dr.Via() != "" {
			order = append(order, i)
		} else {
			down = append(down, i)
		}
	}
	return append(order, down...), len(order)
}

// call runs fn on the drivers in order until one answers with something
// other than a contact failure, or the command's context ends. eligible
// (nil: all) says which drivers can carry the command at all.
//
// A connected, eligible driver followed by other connected, eligible
// ones gets an equal share of what is left of the deadline, not all of
// it: one that went silent without knowing it yet (a black hole) would
// otherwise spend the whole deadline of a freeze, and the connection
// that works would get none. A driver not connected fails at once
// (unreachable), so it takes no share.
func (d *Driver) call(ctx context.Context, eligible func(hal.Driver) bool, fn func(ctx context.Context, s hal.StorageSystem) error) error {
	var errs []string
	var last error
	order, up := d.order()
	live := 0 // connected, eligible drivers not tried yet
	for _, i := range order[:up] {
		if eligible == nil || eligible(d.drivers[i]) {
			live++
		}
	}
	for k, i := range order {
		var err error
		if k < up && (eligible == nil || eligible(d.drivers[i])) {
			err = d.share(ctx, live, func(ctx context.Context) error { return fn(ctx, d.drivers[i]) })
			live--
		} else {
			err = fn(ctx, d.drivers[i])
		}
		if err == nil || !hal.Retryable(err) || ctx.Err() != nil {
			return err
		}
		last = err
		errs = append(errs, d.names[i]+": "+err.Error())
	}
	if len(errs) == 1 {
		return last
	}
	return fmt.Errorf("%w: every connection failed: %s", last, strings.Join(errs, "; "))
}

// share runs fn with 1/live of what is left of ctx's deadline (all of it
// when live <= 1 or ctx has none).
func (d *Driver) share(ctx context.Context, live int, fn func(ctx context.Context) error) error {
	start := d.clock.Now()
	sub, cancel := clock.WithShare(ctx, d.clock, live)
	defer cancel()
	err := fn(sub)
	if err != nil && !hal.Retryable(err) && sub.Err() != nil && ctx.Err() == nil {
		// Its share ran out, not the command's deadline: the next
		// connection gets the rest.
		deadline, _ := sub.Deadline()
		err = fmt.Errorf("%w: no answer within its share (%v) of the deadline: %w", hal.ErrTimeout, deadline.Sub(start), err)
	}
	return err
}

func (d *Driver) EstablishPaths(ctx context.Context, e hal.Epoch, paths []hal.PathSpec) error {
	return d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) error { return s.EstablishPaths(ctx, e, paths) })
}

func (d *Driver) EstablishPairs(ctx context.Context, e hal.Epoch, pairs []hal.PairSpec) error {
	return d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) error { return s.EstablishPairs(ctx, e, pairs) })
}

func (d *Driver) Freeze(ctx context.Context, e hal.Epoch, pairs []hal.LSSPair) error {
	return d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) error { return s.Freeze(ctx, e, pairs) })
}

func (d *Driver) Thaw(ctx context.Context, e hal.Epoch, lsss []hal.LSS) error {
	return d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) error { return s.Thaw(ctx, e, lsss) })
}

func (d *Driver) Suspend(ctx context.Context, e hal.Epoch, pairs []hal.VolumePair) error {
	return d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) error { return s.Suspend(ctx, e, pairs) })
}

func (d *Driver) RemovePairs(ctx context.Context, e hal.Epoch, pairs []hal.VolumePair) error {
	return d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) error { return s.RemovePairs(ctx, e, pairs) })
}

func (d *Driver) RemovePaths(ctx context.Context, e hal.Epoch, paths []hal.LSSPair) error {
	return d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) error { return s.RemovePaths(ctx, e, paths) })
}

func (d *Driver) Recover(ctx context.Context, e hal.Epoch, pairs []hal.VolumePair) error {
	return d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) error { return s.Recover(ctx, e, pairs) })
}

func (d *Driver) Failback(ctx context.Context, e hal.Epoch, pairs []hal.VolumePair) error {
	return d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) error { return s.Failback(ctx, e, pairs) })
}

// heartbeatCall is call over the drivers that carry the heartbeat (a
// z/OS connection answers ErrUnsupported, which is not retryable).
func (d *Driver) heartbeatCall(ctx context.Context, fn func(ctx context.Context, s hal.StorageSystem) error) error {
	carries := func(s hal.Driver) bool { return s.Capabilities().Heartbeat }
	return d.call(ctx, carries, func(ctx context.Context, s hal.StorageSystem) error {
		if !s.Capabilities().Heartbeat {
			return fmt.Errorf("%w: %w", hal.ErrUnreachable, hal.ErrUnsupported)
		}
		return fn(ctx, s)
	})
}

func (d *Driver) EnableHeartbeat(ctx context.Context, e hal.Epoch, hb hal.HeartbeatSpec) error {
	return d.heartbeatCall(ctx, func(ctx context.Context, s hal.StorageSystem) error { return s.EnableHeartbeat(ctx, e, hb) })
}

func (d *Driver) Heartbeat(ctx context.Context, e hal.Epoch, session string) error {
	return d.heartbeatCall(ctx, func(ctx context.Context, s hal.StorageSystem) error { return s.Heartbeat(ctx, e, session) })
}

func (d *Driver) DisableHeartbeat(ctx context.Context, e hal.Epoch, session string) error {
	return d.heartbeatCall(ctx, func(ctx context.Context, s hal.StorageSystem) error { return s.DisableHeartbeat(ctx, e, session) })
}

func (d *Driver) QueryPairs(ctx context.Context, e hal.Epoch) (out []hal.PairStatus, err error) {
	err = d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) (err error) {
		out, err = s.QueryPairs(ctx, e)
		return err
	})
	return out, err
}

func (d *Driver) QueryPaths(ctx context.Context, e hal.Epoch) (out []hal.PathStatus, err error) {
	err = d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) (err error) {
		out, err = s.QueryPaths(ctx, e)
		return err
	})
	return out, err
}

func (d *Driver) QueryLSSs(ctx context.Context, e hal.Epoch) (out []hal.LSSStatus, err error) {
	err = d.call(ctx, nil, func(ctx context.Context, s hal.StorageSystem) (err error) { out, err = s.QueryLSSs(ctx, e); return err })
	return out, err
}

// dedupWindow is how many recent event numbers are remembered to drop
// the copy another connection delivers.
const dedupWindow = 4096

// Events merges every driver's events, each numbered one once.
func (d *Driver) Events(ctx context.Context) (<-chan hal.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	var ins []<-chan hal.Event
	for i, dr := range d.drivers {
		ch, err := dr.Events(ctx)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("compose: %s: events of %s: %w", d.serial, d.names[i], err)
		}
		ins = append(ins, ch)
	}
	out := make(chan hal.Event, 1024)
	var (
		mu   sync.Mutex
		seen = map[uint64]struct{}{}
		ring = make([]uint64, 0, dedupWindow)
		next int
		wg   sync.WaitGroup
	)
	fresh := func(seq uint64) bool {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := seen[seq]; ok {
			return false
		}
		if len(ring) < cap(ring) {
			ring = append(ring, seq)
		} else {
			delete(seen, ring[next])
			ring[next] = seq
			next = (next + 1) % len(ring)
		}
		seen[seq] = struct{}{}
		return true
	}
	for _, in := range ins {
		wg.Go(func() {
			for ev := range in {
				if ev.Seq != 0 && !fresh(ev.Seq) {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
				}
			}
		})
	}
	go func() {
		wg.Wait()
		cancel()
		close(out)
	}()
	return out, nil
}
