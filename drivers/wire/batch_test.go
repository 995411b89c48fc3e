package wire

import (
	"context"
	"fmt"
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
		ch <- hal.Event{Kind: hal.EventSuspend, Serial: q.serial, Seq: uint64(i + 1), LSSPair: lssPairA}
	}
	return ch, nil // never closed: the subscription lives with the connection
}

// TestQueuedEventsArriveInOrder: events sent in batches (several per
// write, batches cut at maxSendBatch) all arrive, once, in order.
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
				if ev.Seq != uint64(i+1) {
					t.Fatalf("event %d has seq %d", i+1, ev.Seq)
				}
			}
		})
	}
}
