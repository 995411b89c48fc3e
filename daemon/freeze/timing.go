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

// DefaultTimings are the heartbeat timings lockstepd uses unless configured.
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
	if lowestCG <= 0 {
		return 0, fmt.Errorf("%w: the lowest CG timeout of the group is unknown (a storage system could not be asked)", ErrTiming)
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
	// H is the timeout it was armed with (zero: the group's h).
	H time.Duration
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
		hs := h
		if s.H > 0 {
			hs = s.H
		}
		if t := SafeAt(s.LastSent, hs, requestTimeout); t.After(latest) {
			latest = t
		}
	}
	if latest.IsZero() || !now.Before(latest) {
		return true, time.Time{}
	}
	return false, latest
}

// Tolerance is how late the core may be on its own schedule (a tick, a
// heartbeat sent, an answer handled) before it counts as the core's own
// lateness rather than jitter: half an interval.
func (t Timings) Tolerance() time.Duration { return t.Interval / 2 }

// WokeLate reports whether the loop, handling a tick at now after the
// previous one at prev, missed at least one tick: the core itself was
// not running on schedule (CPU starvation, a stopped process, a swapped
// page), so silence measured across that gap proves nothing about storage.
func WokeLate(now, prev time.Time, t Timings) bool {
	return !prev.IsZero() && now.Sub(prev) > t.Interval+t.Tolerance()
}

// RanLate reports whether something the core scheduled at planned only
// happened at actual: a heartbeat sent late, a request whose own timeout
// fired late, an answer handled late. Each is the core's lateness.
func RanLate(planned, actual time.Time, t Timings) bool {
	return !planned.IsZero() && actual.Sub(planned) > t.Tolerance()
}

// Verdict is what the heartbeat rule makes of one armed storage system.
type Verdict uint8

const (
	// Healthy: it answered within the detection window.
	Healthy Verdict = iota
	// Recheck: it did not, but the core itself was late within the
	// window, so its silence may be the core's: heartbeat now and judge
	// the answers, instead of freezing.
	Recheck
	// Silent: it did not answer for a detection window in which the core
	// was on time: a possible freeze event (freeze-on-doubt).
	Silent
	// MayHaveExpired: whatever the reason of the silence, its last
	// acknowledged heartbeat + H has passed, so it may have frozen itself:
	// freeze the group.
	MayHaveExpired
)

func (v Verdict) String() string {
	return [...]string{"healthy", "recheck", "silent", "may have expired"}[v]
}

// Judge applies the heartbeat rule to one armed system at now. lastReply
// is when its last heartbeat answer came; ackedSent is when the last
// acknowledged heartbeat (or the arm) was sent: the system restarted its
// timer of H no earlier than that. lateAt is the last time the core found
// itself late (zero: never). A silence counts only from the later of the
// last reply and the core's last lateness, but never beyond ackedSent + H.
func Judge(now, lastReply, ackedSent, lateAt time.Time, h time.Duration, t Timings) Verdict {
	switch {
	case !Doubtful(now, lastReply, t.DetectionWindow):
		return Healthy
	case !now.Before(ackedSent.Add(h)):
		return MayHaveExpired
	case lateAt.After(lastReply) && !Doubtful(now, lateAt, t.DetectionWindow):
		return Recheck
	}
	return Silent
}

// ContactLost reports whether a system last known fine at lastContact
// has been out of contact longer than the lowest CG timeout of its group
// at now: a suspension the core never heard of may have ended its hold,
// and writes may have gone on unmirrored while the others mirrored.
func ContactLost(now, lastContact time.Time, lowestCG time.Duration) bool {
	return !lastContact.IsZero() && now.Sub(lastContact) > lowestCG
}

// Hold is what the core knows of how a storage system's hold of host
// writes (extended long busy) may have started after a freeze.
type Hold struct {
	// LastFreezeSent: the last freeze sent to it; it reaches the system
	// at most a request timeout later and holds for the CG timeout.
	LastFreezeSent time.Time
	// Armed: its heartbeat was armed when the freeze began and may still
	// expire, which holds for a full CG timeout from the expiry.
	Armed bool
	// LastHeartbeatSent: the last heartbeat sent to it.
	LastHeartbeatSent time.Time
	// HighestCG: the highest CG timeout of its LSSs in the group; zero
	// when unknown.
	HighestCG time.Duration
}

// HoldEnds is the instant by which a system that has not acknowledged a
// thaw certainly holds no more writes: the latest moment a hold can have
// started, plus its highest CG timeout. ok is false when that cannot be
// known (the CG timeout is unknown, or no freeze was ever sent).
func HoldEnds(hd Hold, h, requestTimeout time.Duration) (end time.Time, ok bool) {
	if hd.HighestCG <= 0 || hd.LastFreezeSent.IsZero() {
		return time.Time{}, false
	}
	start := hd.LastFreezeSent.Add(requestTimeout)
	if hd.Armed {
		if exp := SafeAt(hd.LastHeartbeatSent, h, requestTimeout); exp.After(start) {
			start = exp
		}
	}
	return start.Add(hd.HighestCG), true
}
