package netdelay

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
)

// readWithin reads what has reached the far end of a pipe, or "" if
// nothing came within a short real wait.
func readWithin(t *testing.T, far net.Conn, n int) string {
	t.Helper()
	far.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, n)
	got, err := io.ReadFull(far, buf)
	if err != nil && got == 0 {
		return ""
	}
	return string(buf[:got])
}

// waitPending waits until the drain goroutine sleeps on the fake clock.
func waitPending(t *testing.T, fc *clock.Fake) {
	t.Helper()
	for i := 0; fc.Pending() == 0; i++ {
		if i > 5000 {
			t.Fatal("the delayed writer never waited on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWriterHoldsBytesForTheLatencyInOrder(t *testing.T) {
	near, far := net.Pipe()
	defer far.Close()
	fc := clock.NewFake(time.Unix(0, 0))
	var latency atomic.Int64
	latency.Store(int64(time.Millisecond))
	w := newWriter(near, fc, func() time.Duration { return time.Duration(latency.Load()) })
	defer w.Close()

	if _, err := w.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	fc.Advance(500 * time.Microsecond)
	if _, err := w.Write([]byte("event")); err != nil {
		t.Fatal(err)
	}
	// The latency fault is lifted while bytes are on the way: the next
	// write must not overtake them.
	latency.Store(0)
	if _, err := w.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	waitPending(t, fc)
	if got := readWithin(t, far, 1); got != "" {
		t.Fatalf("%q reached the manager before the latency ran out", got)
	}
	fc.Advance(500 * time.Microsecond) // the first write's latency is over
	if got := readWithin(t, far, len("answer")); got != "answer" {
		t.Fatalf("after 1 ms: got %q, want %q", got, "answer")
	}
	waitPending(t, fc)
	fc.Advance(500 * time.Microsecond)
	if got := readWithin(t, far, len("eventlate")); got != "eventlate" {
		t.Fatalf("after 1.5 ms: got %q, want the rest in order", got)
	}
	// Nothing queued and no latency: straight through.
	done := make(chan string)
	go func() { done <- readWithin(t, far, 3) }()
	if _, err := w.Write([]byte("now")); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != "now" {
		t.Fatalf("without latency: got %q", got)
	}
}

func TestWriterClosesTheConnectionItCannotWrite(t *testing.T) {
	near, far := net.Pipe()
	fc := clock.NewFake(time.Unix(0, 0))
	w := newWriter(near, fc, func() time.Duration { return time.Millisecond })
	defer w.Close()
	far.Close()
	if _, err := w.Write([]byte("lost")); err != nil {
		t.Fatal(err) // accepted into the "send buffer"
	}
	waitPending(t, fc)
	fc.Advance(time.Millisecond)
	for i := 0; ; i++ {
		if _, err := w.Write([]byte("more")); err != nil {
			break // the link is gone
		}
		if i > 5000 {
			t.Fatal("writes still accepted after the connection failed")
		}
		time.Sleep(time.Millisecond)
	}
}
