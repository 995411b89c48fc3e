package link

import "time"

// Silent is the keepalive rule: a peer last heard from at last (any
// frame counts), which promised a frame every interval, is declared down
// at now once misses intervals have passed without one.
func Silent(last, now time.Time, interval time.Duration, misses int) bool {
	if interval <= 0 || misses <= 0 {
		return false
	}
	return now.Sub(last) >= time.Duration(misses)*interval
}
