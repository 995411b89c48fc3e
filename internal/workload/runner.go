package workload

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Host issues host writes to primary (H1) volumes. Write blocks until the
// write completed; it may block for a long time (extended long busy).
type Host interface {
	Write(ctx context.Context, vol hal.VolumeRef, block uint32, data []byte) error
}

// DefaultRetryDelay is how long a chain waits after a failed write before
// it issues the same write again, when Options.RetryDelay is zero.
const DefaultRetryDelay = 10 * time.Millisecond

// Options tune a workload run.
type Options struct {
	// Clock paces think time and retries; nil means real time.
	Clock clock.Clock
	// Think is the pause between two writes of a chain; 0 means none.
	Think time.Duration
	// RetryDelay is the wait after a failed write before the same write is
	// issued again; 0 means DefaultRetryDelay.
	RetryDelay time.Duration
	// MaxSeq stops each chain after this write; 0 means unbounded.
	MaxSeq uint64
}

// Run is a running workload: one goroutine per chain, each issuing write
// seq only after seq-1 completed, like an application that logs before it
// writes data.
type Run struct {
	cancel  context.CancelFunc
	done    chan struct{}
	acked   []atomic.Uint64 // per chain: last acknowledged seq
	writes  atomic.Uint64
	errors  atomic.Uint64
	maxWait atomic.Int64 // the longest write, in nanoseconds
}

// Status is a snapshot of a run.
type Status struct {
	// Running is false once every chain has stopped (MaxSeq reached, Stop
	// called, or the parent context done).
	Running bool `json:"running"`
	// Acked holds, per chain, the last write the host acknowledged.
	Acked []uint64 `json:"acked"`
	// Writes is the number of acknowledged writes over all chains.
	Writes uint64 `json:"writes"`
	// Errors is the number of failed write attempts (each retry counts).
	Errors uint64 `json:"errors"`
	// MaxWait is the longest one write waited, from its first attempt
	// to its acknowledgement (or to the end of the run, for a write still
	// held then): how long an application was held.
	MaxWait time.Duration `json:"max_wait"`
}

// Start runs the workload of l against host until ctx is done, Stop is
// called, or every chain has written MaxSeq.
//
// A failed write is retried with the same seq after RetryDelay: an
// application waits for its write, it never skips one. A write whose
// failure comes with ctx done ends the chain unacknowledged; it may or may
// not have reached the volumes. A write that returned nil is acknowledged
// even if ctx ended meanwhile.
func Start(ctx context.Context, host Host, l *Layout, opt Options) *Run {
	ctx, cancel := context.WithCancel(ctx)
	r := &Run{
		cancel: cancel,
		done:   make(chan struct{}),
		acked:  make([]atomic.Uint64, len(l.chains)),
	}
	if opt.RetryDelay <= 0 {
		opt.RetryDelay = DefaultRetryDelay
	}
	opt.Clock = clock.OrReal(opt.Clock)
	var wg sync.WaitGroup
	for c, chain := range l.chains {
		wg.Go(func() { r.chain(ctx, host, c, chain, opt) })
	}
	go func() {
		wg.Wait()
		cancel()
		close(r.done)
	}()
	return r
}

// chain writes chain c's writes in order.
func (r *Run) chain(ctx context.Context, host Host, c int, pairs []hal.VolumePair, opt Options) {
	n := uint64(len(pairs))
	for seq := uint64(1); opt.MaxSeq == 0 || seq <= opt.MaxSeq; seq++ {
		vol := pairs[(seq-1)%n].Source
		data := EncodePayload(uint32(c), seq)
		began := opt.Clock.Now()
		// A write still held when the run stops counts for what it
		// waited so far: the application was held at least that long.
		held := func() { r.waited(opt.Clock.Since(began)) }
		for {
			if ctx.Err() != nil {
				held()
				return
			}
			err := host.Write(ctx, vol, uint32(c), data)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				held()
				return
			}
			r.errors.Add(1)
			if clock.Sleep(ctx, opt.Clock, opt.RetryDelay) != nil {
				held()
				return
			}
		}
		r.acked[c].Store(seq)
		r.writes.Add(1)
		r.waited(opt.Clock.Since(began))
		if opt.Think > 0 && seq != opt.MaxSeq {
			if clock.Sleep(ctx, opt.Clock, opt.Think) != nil {
				return
			}
		}
	}
}

// waited records that one write waited d.
func (r *Run) waited(d time.Duration) {
	for {
		old := r.maxWait.Load()
		if int64(d) <= old || r.maxWait.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// Stop cancels the run and waits until every chain has stopped. It may be
// called more than once.
func (r *Run) Stop() {
	r.cancel()
	<-r.done
}

// Done is closed once every chain has stopped.
func (r *Run) Done() <-chan struct{} { return r.done }

// Status reports progress. While the run is going the per-chain figures are
// read one after another, not as one atomic snapshot.
func (r *Run) Status() Status {
	s := Status{Acked: make([]uint64, len(r.acked))}
	select {
	case <-r.done:
	default:
		s.Running = true
	}
	for c := range r.acked {
		s.Acked[c] = r.acked[c].Load()
	}
	s.Writes = r.writes.Load()
	s.Errors = r.errors.Load()
	s.MaxWait = time.Duration(r.maxWait.Load())
	return s
}
