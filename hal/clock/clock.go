package clock

import (
	"context"
	"time"
)

// Clock is the source of time and timers.
type Clock interface {
	Now() time.Time
	Since(t time.Time) time.Duration
	// NewTimer returns a timer that sends the time on C once d has passed.
	NewTimer(d time.Duration) Timer
	// NewTicker returns a ticker that sends on C every d (d > 0).
	NewTicker(d time.Duration) Ticker
	// AfterFunc calls f in its own goroutine (Real, Scaled) or in the
	// caller of Advance (Fake) once d has passed. The returned timer's C
	// is nil.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a one-shot timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was armed.
	Stop() bool
	// Reset re-arms the timer to fire after d; it reports whether it was armed.
	Reset(d time.Duration) bool
}

// Ticker is a periodic timer.
type Ticker interface {
	C() <-chan time.Time
	Stop()
	Reset(d time.Duration)
}

// OrReal returns c, or the real clock when c is nil, so that a zero value
// in a constructor's options means real time.
func OrReal(c Clock) Clock {
	if c == nil {
		return Real()
	}
	return c
}

// Sleep waits for d on c, or until ctx is done.
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
