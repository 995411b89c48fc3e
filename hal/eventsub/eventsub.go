package eventsub

import (
	"context"
	"sync"

	"github.com/lockstep-io/lockstep/hal"
)

// Buffer is the capacity of a subscription's channel; MaxQueued
// bounds the events it holds in all: a storage system raises one
// suspend event per LSS pair at once (up to 255 for one wave), and the
// subscriber may be waiting on its own consumer.
const (
	Buffer    = 64
	MaxQueued = 1024
)

// Subscription is one Events subscriber. Events go straight into its
// channel while it has room; a burst beyond it is queued in spill, which
// a goroutine of its own (the feeder, running only while spill is not
// empty) hands to the channel in order. Beyond MaxQueued events queued
// (one more while the feeder holds one in hand: it is counted in
// neither), events are dropped.
type Subscription struct {
	ch  chan hal.Event
	ctx context.Context // the subscriber's: its end stops the feeder

	mu       sync.Mutex
	spill    []hal.Event
	spilling bool // the feeder runs: new events go behind spill, never around it
	closed   bool
	feeder   sync.WaitGroup
}

// New makes a subscription that ends with ctx: its owner calls Close
// then (context.AfterFunc).
func New(ctx context.Context) *Subscription {
	return &Subscription{ch: make(chan hal.Event, Buffer), ctx: ctx}
}

// C is what the subscriber reads; it is closed by Close.
func (q *Subscription) C() <-chan hal.Event { return q.ch }

// Offer queues ev for the subscriber without blocking (a driver's read
// loop calls it); calls come in the order of the events.
func (q *Subscription) Offer(ev hal.Event) {
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
	if len(q.ch)+len(q.spill) >= MaxQueued {
		return // dropped
	}
	q.spill = append(q.spill, ev)
}

// feed hands spill to ch in order until spill is empty or the
// subscription's context ends.
func (q *Subscription) feed() {
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

// Close ends the subscription once its context has ended: nothing is
// queued after it, and C is closed once the feeder has stopped (the
// events already in it can still be read).
func (q *Subscription) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.feeder.Wait()
	close(q.ch)
}
