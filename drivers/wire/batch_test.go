package wire

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
)

// queuedStorage is a fake whose event subscription already holds n
// events when it is opened: the server's forwarder finds them queued and
// sends them in batches.
type queuedStorage struct {
	*fakeStorage
	n int
}

func (q queuedStorage) Events(ctx context.Context) (<-chan hal.Event, error) {
	ch := make(chan hal.Event, q.n)
	for i := range q.n {
		ch <- queuedEvent(q.serial, i)
	}
	return ch, nil // never closed: the subscription lives with the connection
}

// queuedEvent is the i-th event of a queuedStorage: sessions of
// different lengths, so that an event decoded from a body the next one
// overwrote (the read loop reuses one buffer) shows.
func queuedEvent(serial hal.Serial, i int) hal.Event {
	ev := hal.Event{Kind: hal.EventSuspend, Serial: serial, Seq: uint64(i + 1), LSSPair: lssPairA,
		Session: fmt.Sprintf("cg-%s%d", strings.Repeat("x", i%5), i)}
	ev.Volumes.Add(uint8(i))
	return ev
}

// TestQueuedEventsArriveInOrder: events sent in batches (several per
// write, batches cut at maxSendBatch) all arrive, once, in order, each
// whole.
func TestQueuedEventsArriveInOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
	}{
		{name: "one", n: 1},
		{name: "one batch", n: maxSendBatch},
		{name: "batches and a rest", n: 2*maxSendBatch + 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sys := queuedStorage{fakeStorage: newFake(serialP), n: tt.n}
			srv := startServer(t, func(h Hello) (HelloOK, hal.StorageSystem, error) {
				ok, _, err := acceptFake(sys.fakeStorage, heartbeatCaps)(h)
				return ok, sys, err
			}, ServerOptions{})
			c := srv.mustConnect(t, ClientOptions{EventBuffer: tt.n})
			for i := range tt.n {
				ev := wait(t, c.Events(), fmt.Sprintf("event %d of %d", i+1, tt.n))
				if want := queuedEvent(serialP, i); ev.Seq != want.Seq || ev.Session != want.Session || ev.Volumes != want.Volumes {
					t.Fatalf("event %d is seq %d session %q volumes %v, want %d %q %v",
						i+1, ev.Seq, ev.Session, ev.Volumes, want.Seq, want.Session, want.Volumes)
				}
			}
		})
	}
}
