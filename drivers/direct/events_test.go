package direct

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/lockstep-io/lockstep/hal"
)

// publishSeqs publishes events numbered from, from+1, ... to s.
func publishSeqs(s *System, from, n int) {
	for i := range n {
		s.publish(hal.Event{Kind: hal.EventSuspend, Serial: "S", Seq: uint64(from + i)})
	}
}

// drain reads what events holds now (the feeder given its turns), and
// checks that it comes in sequence from want.
func drain(t *testing.T, events <-chan hal.Event, want uint64) (next uint64, open bool) {
	t.Helper()
	for {
		synctest.Wait()
		select {
		case ev, ok := <-events:
			if !ok {
				return want, false
			}
			if ev.Seq != want {
				t.Fatalf("event %d, want %d: out of order", ev.Seq, want)
			}
			want++
		default:
			return want, true
		}
	}
}

// TestEventsKeepTheirOrderThroughABurst: a burst larger than the
// subscription's channel, published while the subscriber reads nothing,
// reaches it whole and in order, and events published while the burst
// is still being handed over come after it; once it is, the spill is
// gone and events go straight to the channel again.
func TestEventsKeepTheirOrderThroughABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &System{}
		events, _ := s.Events(t.Context())
		publishSeqs(s, 1, 600)
		synctest.Wait()
		var got []hal.Event
		for range 100 { // read some of it; the rest is still spilled
			got = append(got, <-events)
		}
		publishSeqs(s, 601, 100)
		next, _ := drain(t, events, got[len(got)-1].Seq+1)
		if got[0].Seq != 1 || next != 701 {
			t.Fatalf("read %d..%d, want 1..700", got[0].Seq, next-1)
		}
		sub := s.subs[0]
		sub.mu.Lock()
		spilling, spill := sub.spilling, sub.spill
		sub.mu.Unlock()
		if spilling || spill != nil {
			t.Fatalf("after the burst: spilling %v, spill %d events kept", spilling, cap(spill))
		}
		publishSeqs(s, 701, 1)
		if len(events) != 1 {
			t.Fatalf("an event after the burst is not in the channel at once (%d there)", len(events))
		}
	})
}

// TestEventsBeyondTheBoundAreDropped: a subscriber that reads nothing
// gets the first subscriberMaxQueued events of a longer burst (one more
// if the feeder held one in hand when the count was taken), and the
// read loop never waits for it.
func TestEventsBeyondTheBoundAreDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &System{}
		events, _ := s.Events(t.Context())
		publishSeqs(s, 1, subscriberMaxQueued+500)
		if next, _ := drain(t, events, 1); next != subscriberMaxQueued+1 && next != subscriberMaxQueued+2 {
			t.Fatalf("got events 1..%d, want 1..%d (or one more)", next-1, subscriberMaxQueued)
		}
		publishSeqs(s, 5000, 1) // room again
		if next, _ := drain(t, events, 5000); next != 5001 {
			t.Fatal("no room after the subscriber caught up")
		}
	})
}

// TestEventsEndWhileSpilling: a subscription that ends in a burst
// closes its channel once the feeder stopped (what was in the channel
// can still be read, in order), and events published after it go
// nowhere, without a panic on the closed channel.
func TestEventsEndWhileSpilling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &System{}
		ctx, cancel := context.WithCancel(t.Context())
		events, _ := s.Events(ctx)
		publishSeqs(s, 1, 500)
		synctest.Wait()
		cancel()
		publishSeqs(s, 501, 10)
		next, open := drain(t, events, 1)
		if open || next < subscriberBuffer+1 || next > 501 {
			t.Fatalf("after the end: read 1..%d, channel open %v; want at least the %d buffered, then closed",
				next-1, open, subscriberBuffer)
		}
		if len(s.subs) != 0 {
			t.Fatalf("%d subscribers left", len(s.subs))
		}
	})
}
