package clock

import (
	"container/heap"
	"sync"
	"time"
)

// Fake is a clock that moves only when told to. Advance fires every timer
// that falls due, in time order (ties in creation order), with Now reading
// each timer's own instant while it fires. AfterFunc callbacks run in the
// goroutine that called Advance, so a test sees their effects as soon as
// Advance returns.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64 // orders timers that fall due at the same instant
	timers fakeHeap
}

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{clock: f, c: make(chan time.Time, 1)}
	f.arm(t, d)
	return t
}

func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{clock: f, fn: fn}
	f.arm(t, d)
	return t
}

func (f *Fake) NewTicker(d time.Duration) Ticker {
	t := &fakeTimer{clock: f, c: make(chan time.Time, 1), period: d}
	f.arm(t, d)
	return fakeTicker{t}
}

// Advance moves the clock forward by d, firing due timers in order.
func (f *Fake) Advance(d time.Duration) {
	f.AdvanceTo(f.Now().Add(d))
}

// AdvanceTo moves the clock forward to t (never backwards), firing due
// timers in order. Timers armed by a callback that fall due before t fire
// in the same call.
func (f *Fake) AdvanceTo(target time.Time) {
	for {
		f.mu.Lock()
		if len(f.timers) == 0 || f.timers[0].when.After(target) {
			if target.After(f.now) {
				f.now = target
			}
			f.mu.Unlock()
			return
		}
		t := heap.Pop(&f.timers).(*fakeTimer)
		t.index = -1
		if t.when.After(f.now) {
			f.now = t.when
		}
		now := f.now
		if t.period > 0 {
			t.when = now.Add(t.period)
			f.push(t)
		}
		f.mu.Unlock()
		t.fire(now)
	}
}

// Pending is the number of armed timers and tickers.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Next is the instant the earliest armed timer falls due.
func (f *Fake) Next() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.timers) == 0 {
		return time.Time{}, false
	}
	return f.timers[0].when, true
}

func (f *Fake) arm(t *fakeTimer, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.period > 0 {
		t.period = d
	}
	t.when = f.now.Add(max(d, 0))
	f.push(t)
}

// push adds t to the heap; f.mu must be held.
func (f *Fake) push(t *fakeTimer) {
	f.seq++
	t.seq = f.seq
	heap.Push(&f.timers, t)
}

// disarm removes t from the heap and reports whether it was armed.
func (f *Fake) disarm(t *fakeTimer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&f.timers, t.index)
	t.index = -1
	return true
}

type fakeTimer struct {
	clock  *Fake
	when   time.Time
	seq    uint64
	index  int           // position in the heap, -1 when not armed
	period time.Duration // > 0 for tickers; guarded by clock.mu
	c      chan time.Time
	fn     func()
}

func (t *fakeTimer) fire(now time.Time) {
	if t.fn != nil {
		t.fn()
		return
	}
	select {
	case t.c <- now:
	default: // like the time package, a full channel drops the tick
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool { return t.clock.disarm(t) }

// Reset re-arms a timer, or restarts a ticker with period d.
func (t *fakeTimer) Reset(d time.Duration) bool {
	was := t.clock.disarm(t)
	t.clock.arm(t, d)
	return was
}

// fakeTicker adapts fakeTimer to Ticker, whose Stop and Reset return nothing.
type fakeTicker struct{ t *fakeTimer }

func (k fakeTicker) C() <-chan time.Time   { return k.t.c }
func (k fakeTicker) Stop()                 { k.t.Stop() }
func (k fakeTicker) Reset(d time.Duration) { k.t.Reset(d) }

type fakeHeap []*fakeTimer

func (h fakeHeap) Len() int { return len(h) }
func (h fakeHeap) Less(i, j int) bool {
	if h[i].when.Equal(h[j].when) {
		return h[i].seq < h[j].seq
	}
	return h[i].when.Before(h[j].when)
}
func (h fakeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *fakeHeap) Push(x any) {
	t := x.(*fakeTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *fakeHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
