package freeze

import (
	"errors"
	"fmt"
	"time"
)

// Timings are the core's clocks.
type Timings struct {
	// Interval between heartbeats to each storage system (default 1 s).
	Interval time.Duration
	// DetectionWindow: a system that answered no heartbeat for this long
	// is a possible freeze event (default 2 × Interval).
	DetectionWindow time.Duration
	// RequestTimeout bounds every command to a storage system (default 2 s).
	RequestTimeout time.Duration
	// PollInterval between queries of every system's pairs (default 5 s).
	PollInterval time.Duration
	// RetryInterval between attempts to freeze a system that has not
	// acknowledged (default 500 ms).
	RetryInterval time.Duration
}

// DefaultTimings are the defaults of DESIGN.md §5.
func DefaultTimings() Timings {
	return Timings{
		Interval:        time.Second,
		DetectionWindow: 2 * time.Second,
		RequestTimeout:  2 * time.Second,
		PollInterval:    5 * time.Second,
		RetryInterval:   500 * time.Millisecond,
	}
}

// ErrTiming reports heartbeat timings that cannot be safe.
var ErrTiming = errors.New("freeze: unsafe heartbeat timing")

// Margin is what H must leave before the lowest CG timeout: detection,
// one loop tick, the freeze fan-out and a heartbeat in flight.
func (t Timings) Margin() time.Duration {
	return t.DetectionWindow + t.Interval + 2*t.RequestTimeout
}

// Validate checks the timings on their own.
func (t Timings) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", t.Interval}, {"detection window", t.DetectionWindow}, {"request timeout", t.RequestTimeout},
		{"poll interval", t.PollInterval}, {"retry interval", t.RetryInterval}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%w: %s must be positive", ErrTiming, d.name))
		}
	}
	if t.DetectionWindow < t.Interval {
		errs = append(errs, fmt.Errorf("%w: detection window %v is shorter than the heartbeat interval %v: "+
			"one late heartbeat would freeze", ErrTiming, t.DetectionWindow, t.Interval))
	}
	return errors.Join(errs...)
}

// DeriveH is the storage-side heartbeat timeout for a group whose lowest
// CG timeout is lowestCG: lowestCG − Margin. It refuses an H too short
// for the heartbeat to keep a healthy system armed: at least three
// intervals plus a request timeout.
func DeriveH(lowestCG time.Duration, t Timings) (time.Duration, error) {
	if err := t.Validate(); err != nil {
		return 0, err
	}
	h := lowestCG - t.Margin()
	floor := 3*t.Interval + t.RequestTimeout
	if h < floor {
		return 0, fmt.Errorf("%w: lowest CG timeout %v leaves H = %v after the margin of %v "+
			"(detection %v + interval %v + 2 × request timeout %v); H must be at least %v: "+
			"shorten the interval or the request timeout, or raise the CG timeout",
			ErrTiming, lowestCG, h, t.Margin(), t.DetectionWindow, t.Interval, t.RequestTimeout, floor)
	}
	return h, nil
}

// SafeAt is when a storage system that has not acknowledged a freeze has
// certainly frozen itself: its last heartbeat may have arrived up to a
// request timeout after it was sent, and it expires H after that.
func SafeAt(lastSent time.Time, h, requestTimeout time.Duration) time.Time {
	return lastSent.Add(h + requestTimeout)
}

// Doubtful reports whether a system that last answered a heartbeat at
// lastReply must be treated as a possible freeze event at now.
func Doubtful(now, lastReply time.Time, window time.Duration) bool {
	return now.Sub(lastReply) >= window
}

// SystemFreeze is what the thaw rule knows of one system of a frozen group.
type SystemFreeze struct {
	Acked    bool      // acknowledged the freeze (or reported its own expiry)
	Armed    bool      // its heartbeat was armed with H
	LastSent time.Time // last heartbeat sent to it, whatever came of it
}

// Certainty applies the thaw rule to a frozen group at now. It reports
// whether every system is known frozen, and if not, the earliest instant
// it will be (zero when never: a system that is not acknowledged and has
// no armed heartbeat can never be known safe).
func Certainty(now time.Time, systems map[string]SystemFreeze, heartbeat bool, h, requestTimeout time.Duration) (certain bool, at time.Time) {
	latest := time.Time{}
	for _, s := range systems {
		if s.Acked {
			continue
		}
		if !heartbeat || !s.Armed {
			return false, time.Time{}
		}
		if t := SafeAt(s.LastSent, h, requestTimeout); t.After(latest) {
			latest = t
		}
	}
	if latest.IsZero() || !now.Before(latest) {
		return true, time.Time{}
	}
	return false, latest
}
