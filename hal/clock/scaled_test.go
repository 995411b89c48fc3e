package clock

import (
	"testing"
	"time"
)

// TestScaledTickerFiresBeforeNewTickerReturns: with a period that is
// nothing in wall time, the first tick can fire before NewTicker has
// stored its timer; fire must not read the field unlocked (the race
// detector caught it in TestScenariosOverTheWire under load).
func TestScaledTickerFiresBeforeNewTickerReturns(t *testing.T) {
	t.Parallel()
	s := NewScaled(1e9)
	for range 2000 {
		tk := s.NewTicker(time.Nanosecond)
		tk.Stop()
	}
}
