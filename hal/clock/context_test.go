package clock

import (
	"context"
	"testing"
	"time"
)

// TestWithShare: two connections left share what remains of the
// deadline, not the deadline; one, or a context without a deadline, is
// left alone.
func TestWithShare(t *testing.T) {
	epoch := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	f := NewFake(epoch)
	ctx, cancel := WithTimeout(context.Background(), f, 10*time.Second)
	defer cancel()
	f.Advance(2 * time.Second) // 8 s left

	sub, cancelSub := WithShare(ctx, f, 2)
	defer cancelSub()
	if d, _ := sub.Deadline(); !d.Equal(epoch.Add(6 * time.Second)) {
		t.Fatalf("share of 2 ends at %v, want %v", d, epoch.Add(6*time.Second))
	}
	f.Advance(4 * time.Second)
	if sub.Err() == nil || ctx.Err() != nil {
		t.Fatalf("after the share: share %v, command %v; want the share over and the command not", sub.Err(), ctx.Err())
	}

	if one, c := WithShare(ctx, f, 1); one != ctx {
		c()
		t.Fatal("a share of 1 is not the command's own context")
	}
	bg := context.Background()
	if none, c := WithShare(bg, f, 2); none != bg {
		c()
		t.Fatal("a context without a deadline was given one")
	}
}

// BenchmarkWithTimeout: what a command's deadline costs, on the real
// clock (every request of lockstepd) and on a fake one (tests).
func BenchmarkWithTimeout(b *testing.B) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range []struct {
		name  string
		clock Clock
	}{{"real", Real()}, {"fake", NewFake(time.Unix(0, 0))}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, stop := WithTimeout(parent, c.clock, time.Second)
				stop()
			}
		})
	}
}
