package eventsub

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/lockstep-io/lockstep/hal"
)

// offerSeqs offers events numbered from, from+1, ... to q.
func offerSeqs(q *Subscription, from, n int) {
	for i := range n {
		q.Offer(hal.Event{Kind: hal.EventSuspend, Serial: "S", Seq: uint64(from + i)})
	}
}

// drain reads what q holds now (the feeder given its turns), and checks
// that it comes in sequence from want.
func drain(t *testing.T, q *Subscription, want uint64) (next uint64, open bool) {
	t.Helper()
	for {
		synctest.Wait()
		select {
		case ev, ok := <-q.C():
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

// subscribe is a subscription closed when ctx ends, as the drivers make
// them.
func subscribe(ctx context.Context) *Subscription {
	q := New(ctx)
	context.AfterFunc(ctx, q.Close)
	return q
}

// TestOrderThroughABurst: a burst larger than the channel, offered
// while the subscriber reads nothing, reaches it whole and in order, and
// events offered while the burst is still being handed over come after
// it; once it is, the spill is gone and events go straight to the
// channel again.
func TestOrderThroughABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := subscribe(t.Context())
		offerSeqs(q, 1, 600)
		synctest.Wait()
		for i := range 100 { // read some of it; the rest is still spilled
			if ev := <-q.C(); ev.Seq != uint64(i+1) {
				t.Fatalf("event %d, want %d", ev.Seq, i+1)
			}
		}
		offerSeqs(q, 601, 100)
		if next, _ := drain(t, q, 101); next != 701 {
			t.Fatalf("read 1..%d, want 1..700", next-1)
		}
		q.mu.Lock()
		spilling, spill := q.spilling, q.spill
		q.mu.Unlock()
		if spilling || spill != nil {
			t.Fatalf("after the burst: spilling %v, spill of %d events kept", spilling, cap(spill))
		}
		offerSeqs(q, 701, 1)
		if len(q.C()) != 1 {
			t.Fatalf("an event after the burst is not in the channel at once (%d there)", len(q.C()))
		}
	})
}

// TestBeyondTheBoundDropped: a subscriber that reads nothing gets the
// first MaxQueued events of a longer burst (one more if the feeder held
// one in hand when the count was taken), and Offer never waits for it.
func TestBeyondTheBoundDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := subscribe(t.Context())
		offerSeqs(q, 1, MaxQueued+500)
		if next, _ := drain(t, q, 1); next != MaxQueued+1 && next != MaxQueued+2 {
			t.Fatalf("got events 1..%d, want 1..%d (or one more)", next-1, MaxQueued)
		}
		offerSeqs(q, 5000, 1) // room again
		if next, _ := drain(t, q, 5000); next != 5001 {
			t.Fatal("no room after the subscriber caught up")
		}
	})
}

// TestEndWhileSpilling: a subscription that ends in a burst closes its
// channel once the feeder stopped (what was in the channel can still be
// read, in order), and events offered after it go nowhere, without a
// panic on the closed channel.
func TestEndWhileSpilling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		q := subscribe(ctx)
		offerSeqs(q, 1, 500)
		synctest.Wait()
		cancel()
		offerSeqs(q, 501, 10)
		next, open := drain(t, q, 1)
		if open || next < Buffer+1 || next > 501 {
			t.Fatalf("after the end: read 1..%d, channel open %v; want at least the %d buffered, then closed",
				next-1, open, Buffer)
		}
	})
}
