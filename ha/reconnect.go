package ha

import "time"

// NextReconnect is the automatic reconnection rule: after
// attempts attempts in the current series, the last one started (or the
// link lost) at last, the next attempt is due one ReconnectInterval after
// last, until ReconnectAttempts attempts were made; then none (ok false)
// until a manual reconnect starts a new series.
//
// Nothing but the start of the previous attempt (or the loss) enters the
// rule: an attempt that fails at once does not bring the next one closer,
// so there is never more than one attempt per interval.
func NextReconnect(attempts int, last time.Time, cfg Config) (time.Time, bool) {
	cfg = cfg.normalized()
	if attempts >= cfg.ReconnectAttempts {
		return time.Time{}, false
	}
	return last.Add(cfg.ReconnectInterval), true
}

// reconnecting reports a state in which the automatic schedule runs: an
// active server, no link, and a partner whose state is consistent or not
// yet known.
func reconnecting(s State) bool {
	return s.Role == Active && s.Link == 0 && (s.Conn == Unknown || s.Conn == DisconnectedConsistent)
}

// Wakeup is when the Loop must step a Tick for s: the next automatic
// reconnection attempt, if one is due at all.
func Wakeup(s State) (time.Time, bool) {
	if !reconnecting(s) || s.Dialing || s.Reconnect.Next.IsZero() {
		return time.Time{}, false
	}
	return s.Reconnect.Next, true
}

// schedule starts a new series at now: no attempt made yet, the first due
// one interval later.
func schedule(s *State, now time.Time, cfg Config) {
	s.Reconnect = Schedule{Last: now}
	s.Reconnect.Next, _ = NextReconnect(0, now, cfg)
}

// reschedule keeps the series but moves its reference to now (a link lost
// after an attempt connected): the next attempt comes one interval later.
func reschedule(s *State, now time.Time, cfg Config) {
	if now.After(s.Reconnect.Last) {
		s.Reconnect.Last = now
	}
	s.Reconnect.Next, _ = NextReconnect(s.Reconnect.Attempts, s.Reconnect.Last, cfg)
}
