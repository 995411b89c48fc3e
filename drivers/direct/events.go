package direct

import (
	"context"
	"sync"

	"github.com/lockstep-io/lockstep/hal"
)

// Sizes of an Events subscription: a channel of subscriberBuffer
// events, and up to subscriberMaxQueued events queued in all.
//
// The channel is small because a channel's buffer is scanned whole by
// the garbage collector at every cycle, empty or not, and hal.Event
// holds pointers: a buffer of 1024 events (168 KiB) per storage system
// was a third of the live heap of the loopback freeze bench of 32
// systems, and its marking fell beside freezes. The bound stays 1024:
// a storage system raises one suspend event per LSS pair at once (up to
// 255 for one wave), and the core's intake may be waiting for the loop.
const (
	subscriberBuffer    = 64
	subscriberMaxQueued = 1024
)

// subscription is one Events subscriber. Events go straight into ch
// while it has room; a burst beyond it is queued in spill, which a
// goroutine of its own (the feeder, running only while spill is not
// empty) hands to ch in order. Beyond subscriberMaxQueued events queued
// (one more while the feeder holds one in hand: it is counted in
// neither), events are dropped, as a full channel dropped them before:
// offer runs in the connection's read loop and never blocks; polls
// catch up.
type subscription struct {
	ch  chan hal.Event
	ctx context.Context // the subscriber's: its end stops the feeder

	mu       sync.Mutex
	spill    []hal.Event
	spilling bool // the feeder runs: new events go behind spill, never around it
	closed   bool
	feeder   sync.WaitGroup
}

func newSubscription(ctx context.Context) *subscription {
	return &subscription{ch: make(chan hal.Event, subscriberBuffer), ctx: ctx}
}

// offer queues ev for the subscriber without blocking; calls come in
// the order of the events.
func (q *subscription) offer(ev hal.Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if !q.spilling {
		select {
		case q.ch <- ev:
			return
		default:
		}
		q.spilling = true
		q.feeder.Add(1)
		go q.feed()
	}
	if len(q.ch)+len(q.spill) >= subscriberMaxQueued {
		return // dropped
	}
	q.spill = append(q.spill, ev)
}

// feed hands spill to ch in order until spill is empty or the
// subscription's context ends.
func (q *subscription) feed() {
	defer q.feeder.Done()
	for {
		q.mu.Lock()
		if len(q.spill) == 0 || q.ctx.Err() != nil {
			// nil, not [:0]: the burst's memory goes with it.
			q.spilling, q.spill = false, nil
			q.mu.Unlock()
			return
		}
		ev := q.spill[0]
		q.spill = q.spill[1:]
		q.mu.Unlock()
		select {
		case q.ch <- ev:
		case <-q.ctx.Done():
		}
	}
}

// close ends the subscription once its context has ended: nothing is
// queued after it, and ch is closed once the feeder has stopped (the
// events already in ch can still be read).
func (q *subscription) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.feeder.Wait()
	close(q.ch)
}
