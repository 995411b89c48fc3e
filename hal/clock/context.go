package clock

import (
	"context"
	"sync"
	"time"
)

// WithTimeout is context.WithTimeout on an injected clock: the returned
// context is done when d has passed on c, with Err() reporting
// context.DeadlineExceeded, so request deadlines follow fake time in tests.
func WithTimeout(parent context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := c.(realClock); ok {
		// The same on the wall clock, for half the allocations: every
		// storage command lockstepd sends has a deadline (BenchmarkWithTimeout).
		return context.WithTimeout(parent, d)
	}
	ctx := &deadlineCtx{Context: parent, deadline: c.Now().Add(d), done: make(chan struct{})}
	timer := c.AfterFunc(d, func() { ctx.finish(context.DeadlineExceeded) })
	stop := context.AfterFunc(parent, func() { ctx.finish(parent.Err()) })
	return ctx, func() {
		timer.Stop()
		stop()
		ctx.finish(context.Canceled)
	}
}

type deadlineCtx struct {
	context.Context
	deadline time.Time
	once     sync.Once
	mu       sync.Mutex
	err      error
	done     chan struct{}
}

func (c *deadlineCtx) finish(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	})
}

// Deadline reports the deadline on the injected clock's time line.
func (c *deadlineCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.done }

func (c *deadlineCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// WithShare bounds ctx by 1/n of what is left of its deadline on c, for
// a command that n connections could carry, tried one after the other:
// one gone silent without knowing it would otherwise spend the whole
// deadline, and the one that works would get none. ctx itself (with a
// no-op cancel) when n <= 1, ctx has no deadline, or none is left.
func WithShare(ctx context.Context, c Clock, n int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return ctx, func() {}
	}
	left := deadline.Sub(c.Now())
	if left <= 0 {
		return ctx, func() {}
	}
	return WithTimeout(ctx, c, left/time.Duration(n))
}
