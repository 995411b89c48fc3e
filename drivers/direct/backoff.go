package direct

import "time"

// Backoff is the pause after the attempt-th failed round of dials (both
// endpoints), attempt >= 1: first, doubling, capped at limit.
func Backoff(attempt int, first, limit time.Duration) time.Duration {
	d := first
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
