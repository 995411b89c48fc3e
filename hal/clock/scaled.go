package clock

import (
	"sync"
	"time"
)

// Scaled is real time running Factor times faster: a 60 s timer fires after
// 60 s / Factor of wall time, and Now advances Factor seconds per second.
// Scenarios use it to run minutes of storage timers in seconds while every
// goroutine, socket and lock behaves as in production.
type Scaled struct {
	factor float64
	origin time.Time // the wall-clock instant the scaled clock started
}

// NewScaled returns a clock running factor times faster than real time
// (factor >= 1), starting now.
func NewScaled(factor float64) *Scaled {
	return &Scaled{factor: max(factor, 1), origin: time.Now()}
}

// Factor is how many times faster than real time the clock runs.
func (s *Scaled) Factor() float64 { return s.factor }

func (s *Scaled) real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.factor)
}

func (s *Scaled) Now() time.Time {
	elapsed := time.Since(s.origin)
	return s.origin.Add(time.Duration(float64(elapsed) * s.factor))
}

func (s *Scaled) Since(t time.Time) time.Duration { return s.Now().Sub(t) }

// NewTimer sends the scaled time, not the wall time, on C.
func (s *Scaled) NewTimer(d time.Duration) Timer {
	ch := make(chan time.Time, 1)
	t := &scaledTimer{s: s, c: ch}
	t.t = time.AfterFunc(s.real(d), func() {
		select {
		case ch <- s.Now():
		default:
		}
	})
	return t
}

func (s *Scaled) AfterFunc(d time.Duration, f func()) Timer {
	return &scaledTimer{s: s, t: time.AfterFunc(s.real(d), f)}
}

func (s *Scaled) NewTicker(d time.Duration) Ticker {
	t := &scaledTicker{s: s, c: make(chan time.Time, 1), period: d}
	// Under mu: a short period can fire before AfterFunc returns, and
	// fire reads t.t.
	t.mu.Lock()
	t.t = time.AfterFunc(s.real(d), t.fire)
	t.mu.Unlock()
	return t
}

type scaledTimer struct {
	s *Scaled
	t *time.Timer
	c chan time.Time // nil for AfterFunc timers
}

func (t *scaledTimer) C() <-chan time.Time        { return t.c }
func (t *scaledTimer) Stop() bool                 { return t.t.Stop() }
func (t *scaledTimer) Reset(d time.Duration) bool { return t.t.Reset(t.s.real(d)) }

type scaledTicker struct {
	s      *Scaled
	c      chan time.Time
	mu     sync.Mutex
	t      *time.Timer
	period time.Duration
	off    bool
}

func (t *scaledTicker) fire() {
	select {
	case t.c <- t.s.Now():
	default: // a slow reader drops ticks, as time.Ticker does
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.off {
		t.t.Reset(t.s.real(t.period))
	}
}

func (t *scaledTicker) C() <-chan time.Time { return t.c }

func (t *scaledTicker) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.off = true
	t.t.Stop()
}

func (t *scaledTicker) Reset(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.off, t.period = false, d
	t.t.Reset(t.s.real(d))
}
