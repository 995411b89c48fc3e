package wire

import (
	"context"
	"sync"

	"github.com/lockstep-io/lockstep/hal"
)

// fakeStorage is a hal.StorageSystem that records every command it gets,
// answers queries with canned data, and pushes the events a test gives it.
type fakeStorage struct {
	serial hal.Serial

	// hook, if set, runs at the start of every command and query; its
	// error is the command's. Set before serving.
	hook func(ctx context.Context, method string, epoch hal.Epoch) error

	pairs []hal.PairStatus
	paths []hal.PathStatus
	lsss  []hal.LSSStatus
	// lsssFor, if set, answers QueryLSSs instead of lsss.
	lsssFor func(epoch hal.Epoch) []hal.LSSStatus

	mu    sync.Mutex
	calls []fakeCall
	subs  map[*fakeSub]struct{}
}

var _ hal.StorageSystem = (*fakeStorage)(nil)

type fakeCall struct {
	Method string
	Epoch  hal.Epoch
	Args   any
}

func newFake(serial hal.Serial) *fakeStorage {
	return &fakeStorage{serial: serial, subs: make(map[*fakeSub]struct{})}
}

func (f *fakeStorage) record(ctx context.Context, method string, epoch hal.Epoch, args any) error {
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{method, epoch, args})
	f.mu.Unlock()
	if f.hook != nil {
		return f.hook(ctx, method, epoch)
	}
	return nil
}

func (f *fakeStorage) Calls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

func (f *fakeStorage) Serial() hal.Serial { return f.serial }
func (f *fakeStorage) Capabilities() hal.Capabilities {
	return hal.Capabilities{Heartbeat: true}
}

func (f *fakeStorage) EstablishPaths(ctx context.Context, epoch hal.Epoch, paths []hal.PathSpec) error {
	return f.record(ctx, "EstablishPaths", epoch, paths)
}

func (f *fakeStorage) EstablishPairs(ctx context.Context, epoch hal.Epoch, pairs []hal.PairSpec) error {
	return f.record(ctx, "EstablishPairs", epoch, pairs)
}

func (f *fakeStorage) Freeze(ctx context.Context, epoch hal.Epoch, pairs []hal.LSSPair) error {
	return f.record(ctx, "Freeze", epoch, pairs)
}

func (f *fakeStorage) Thaw(ctx context.Context, epoch hal.Epoch, lsss []hal.LSS) error {
	return f.record(ctx, "Thaw", epoch, lsss)
}

func (f *fakeStorage) Suspend(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return f.record(ctx, "Suspend", epoch, pairs)
}

func (f *fakeStorage) Recover(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return f.record(ctx, "Recover", epoch, pairs)
}

func (f *fakeStorage) Failback(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return f.record(ctx, "Failback", epoch, pairs)
}

func (f *fakeStorage) RemovePairs(ctx context.Context, epoch hal.Epoch, pairs []hal.VolumePair) error {
	return f.record(ctx, "RemovePairs", epoch, pairs)
}

func (f *fakeStorage) RemovePaths(ctx context.Context, epoch hal.Epoch, paths []hal.LSSPair) error {
	return f.record(ctx, "RemovePaths", epoch, paths)
}

func (f *fakeStorage) EnableHeartbeat(ctx context.Context, epoch hal.Epoch, hb hal.HeartbeatSpec) error {
	return f.record(ctx, "EnableHeartbeat", epoch, hb)
}

func (f *fakeStorage) Heartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return f.record(ctx, "Heartbeat", epoch, session)
}

func (f *fakeStorage) DisableHeartbeat(ctx context.Context, epoch hal.Epoch, session string) error {
	return f.record(ctx, "DisableHeartbeat", epoch, session)
}

func (f *fakeStorage) QueryPairs(ctx context.Context, epoch hal.Epoch) ([]hal.PairStatus, error) {
	if err := f.record(ctx, "QueryPairs", epoch, nil); err != nil {
		return nil, err
	}
	return f.pairs, nil
}

func (f *fakeStorage) QueryPaths(ctx context.Context, epoch hal.Epoch) ([]hal.PathStatus, error) {
	if err := f.record(ctx, "QueryPaths", epoch, nil); err != nil {
		return nil, err
	}
	return f.paths, nil
}

func (f *fakeStorage) QueryLSSs(ctx context.Context, epoch hal.Epoch) ([]hal.LSSStatus, error) {
	if err := f.record(ctx, "QueryLSSs", epoch, nil); err != nil {
		return nil, err
	}
	if f.lsssFor != nil {
		return f.lsssFor(epoch), nil
	}
	return f.lsss, nil
}

// Events hands out a channel fed by push. A relay goroutine, the only
// sender, closes it when ctx ends.
func (f *fakeStorage) Events(ctx context.Context) (<-chan hal.Event, error) {
	out := make(chan hal.Event)
	sb := &fakeSub{ctx: ctx, in: make(chan hal.Event), ack: make(chan struct{})}
	f.mu.Lock()
	f.subs[sb] = struct{}{}
	f.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			f.mu.Lock()
			delete(f.subs, sb)
			f.mu.Unlock()
		}()
		for {
			select {
			case ev := <-sb.in:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
				select {
				case sb.ack <- struct{}{}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

type fakeSub struct {
	ctx context.Context
	in  chan hal.Event
	ack chan struct{} // the server's forwarder took the event
}

// push gives ev to every subscriber and returns once each subscriber's
// reader (the server's event forwarder) has taken it, or the subscription
// ended.
func (f *fakeStorage) push(ev hal.Event) {
	f.mu.Lock()
	subs := make([]*fakeSub, 0, len(f.subs))
	for sb := range f.subs {
		subs = append(subs, sb)
	}
	f.mu.Unlock()
	for _, sb := range subs {
		select {
		case sb.in <- ev:
		case <-sb.ctx.Done():
			continue
		}
		select {
		case <-sb.ack:
		case <-sb.ctx.Done():
		}
	}
}

// subscribers is how many event subscriptions are open.
func (f *fakeStorage) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}
