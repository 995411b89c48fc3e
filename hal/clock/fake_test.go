package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFakeFiresInTimeOrder(t *testing.T) {
	t.Parallel()
	f := NewFake(epoch)
	var got []string
	at := func(name string) func() {
		return func() { got = append(got, name+"@"+f.Since(epoch).String()) }
	}
	f.AfterFunc(3*time.Second, at("c"))
	f.AfterFunc(time.Second, at("a"))
	f.AfterFunc(2*time.Second, at("b1"))
	f.AfterFunc(2*time.Second, at("b2")) // same instant: creation order
	f.AfterFunc(10*time.Second, at("late"))

	f.Advance(3 * time.Second)
	want := []string{"a@1s", "b1@2s", "b2@2s", "c@3s"}
	if len(got) != len(want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("fired %v, want %v", got, want)
		}
	}
	if f.Pending() != 1 {
		t.Fatalf("pending = %d, want 1", f.Pending())
	}
}

func TestFakeExactDeadline(t *testing.T) {
	t.Parallel()
	f := NewFake(epoch)
	timer := f.NewTimer(60 * time.Second)
	f.Advance(60*time.Second - time.Nanosecond)
	select {
	case <-timer.C():
		t.Fatal("timer fired a nanosecond early")
	default:
	}
	f.Advance(time.Nanosecond)
	select {
	case at := <-timer.C():
		if !at.Equal(epoch.Add(60 * time.Second)) {
			t.Fatalf("fired at %v", at)
		}
	default:
		t.Fatal("timer did not fire at its deadline")
	}
}

func TestFakeCallbackArmsTimerWithinAdvance(t *testing.T) {
	t.Parallel()
	f := NewFake(epoch)
	var fired []time.Duration
	f.AfterFunc(time.Second, func() {
		fired = append(fired, f.Since(epoch))
		f.AfterFunc(time.Second, func() { fired = append(fired, f.Since(epoch)) })
	})
	f.Advance(5 * time.Second)
	if len(fired) != 2 || fired[0] != time.Second || fired[1] != 2*time.Second {
		t.Fatalf("fired at %v, want [1s 2s]", fired)
	}
	if got := f.Since(epoch); got != 5*time.Second {
		t.Fatalf("now = %v, want 5s", got)
	}
}

func TestFakeStopAndReset(t *testing.T) {
	t.Parallel()
	f := NewFake(epoch)
	n := 0
	timer := f.AfterFunc(time.Second, func() { n++ })
	if !timer.Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}
	if timer.Stop() {
		t.Fatal("second Stop reported true")
	}
	f.Advance(2 * time.Second)
	if n != 0 {
		t.Fatal("stopped timer fired")
	}
	timer.Reset(time.Second)
	f.Advance(time.Second)
	if n != 1 {
		t.Fatalf("reset timer fired %d times, want 1", n)
	}
}

func TestFakeTicker(t *testing.T) {
	t.Parallel()
	f := NewFake(epoch)
	tk := f.NewTicker(time.Second)
	var ticks []time.Duration
	for range 3 {
		f.Advance(time.Second)
		ticks = append(ticks, (<-tk.C()).Sub(epoch))
	}
	if ticks[0] != time.Second || ticks[2] != 3*time.Second {
		t.Fatalf("ticks %v", ticks)
	}
	tk.Reset(5 * time.Second)
	f.Advance(4 * time.Second)
	select {
	case <-tk.C():
		t.Fatal("ticker fired before its new period")
	default:
	}
	f.Advance(time.Second)
	<-tk.C()
	tk.Stop()
	if f.Pending() != 0 {
		t.Fatalf("stopped ticker still armed")
	}
}

func TestWithTimeoutOnFakeClock(t *testing.T) {
	t.Parallel()
	f := NewFake(epoch)
	ctx, cancel := WithTimeout(context.Background(), f, 500*time.Millisecond)
	defer cancel()
	if d, _ := ctx.Deadline(); !d.Equal(epoch.Add(500 * time.Millisecond)) {
		t.Fatalf("deadline %v", d)
	}
	f.Advance(499 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatal("context done early")
	}
	f.Advance(time.Millisecond)
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", ctx.Err())
	}
}

func TestWithTimeoutFollowsParentAndCancel(t *testing.T) {
	t.Parallel()
	f := NewFake(epoch)
	parent, cancelParent := context.WithCancel(context.Background())
	ctx, cancel := WithTimeout(parent, f, time.Hour)
	defer cancel()
	cancelParent()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("err = %v, want canceled", ctx.Err())
	}
	f2 := NewFake(epoch)
	ctx2, cancel2 := WithTimeout(context.Background(), f2, time.Hour)
	cancel2()
	<-ctx2.Done()
	if f2.Pending() != 0 {
		t.Fatal("cancel left the deadline timer armed")
	}
}

func TestScaledRunsFaster(t *testing.T) {
	t.Parallel()
	s := NewScaled(1000)
	start := s.Now()
	timer := s.NewTimer(10 * time.Second) // 10 ms of wall time
	at := <-timer.C()
	if got := at.Sub(start); got < 10*time.Second {
		t.Fatalf("scaled timer fired after %v of scaled time, want >= 10s", got)
	}
}

// TestScaledTickerFiresBeforeNewTickerReturns: a period shorter than the
// time NewTicker takes to return makes the first tick run at once; it
// must find the ticker whole (the race detector checks it).
func TestScaledTickerFiresBeforeNewTickerReturns(t *testing.T) {
	t.Parallel()
	s := NewScaled(1e9)
	for range 200 {
		k := s.NewTicker(time.Nanosecond)
		<-k.C()
		<-k.C() // the first tick re-armed it
		k.Stop()
	}
}
