package link

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/persist"
)

// Source is the active's journal, as the Sender reads it. A
// *persist.Journal is one (Store.Journal() gives the store's).
type Source interface {
	// ReadFrom returns a reader from index on (persist.ErrCompacted if
	// those records are gone: a snapshot is sent instead).
	ReadFrom(index uint64) (*persist.Reader, error)
	// LatestSnapshot is the newest snapshot (ok false: none, the state
	// at index 0 is empty).
	LatestSnapshot() (persist.Snapshot, bool, error)
	// LastIndex is the last durable record.
	LastIndex() uint64
}

var _ Source = (*persist.Journal)(nil)

// SenderOptions configure a Sender.
type SenderOptions struct {
	// Link names the link in the events reported.
	Link ha.LinkID
	// Report receives SyncRequested, SnapshotSent, StreamCaughtUp,
	// HigherEpochSeen (an EpochNotice from the standby) and SyncFailed
	// (the journal could not be read): the daemon passes ha.Loop.Post.
	// Called from the Sender's goroutines; must not block.
	Report func(ha.Event)
	// BatchBytes: records are sent in frames of about this size (default
	// 1 MiB; a larger record goes alone).
	BatchBytes int
	// ChunkBytes: the size of snapshot chunks (default 1 MiB).
	ChunkBytes int
	// AckTimeout: a standby that leaves records (or a snapshot)
	// unacknowledged for this long ends the link with ErrAckTimeout, so
	// that a standby whose disk hangs does not hang the active's clients
	// (default 10 s; its keepalives would keep the link up forever).
	AckTimeout time.Duration
	// Clock measures AckTimeout (nil: real time).
	Clock clock.Clock
}

const (
	defaultBatchBytes = 1 << 20
	defaultAckTimeout = 10 * time.Second
	maxBatchRecords   = 4096
)

// AckOverdue is the acknowledgement rule: what was sent at sent and is
// still unacknowledged at now is overdue once timeout has passed.
func AckOverdue(sent, now time.Time, timeout time.Duration) bool {
	return timeout > 0 && now.Sub(sent) >= timeout
}

// inflight is a frame the standby has not acknowledged yet: the last
// index it carries and when it was queued.
type inflight struct {
	last uint64
	at   time.Time
}

// Sender is the active's side of a link: it answers the standby's
// SyncRequest with a snapshot and/or records, streams every record as
// the journal makes it durable, and tracks the standby's Acks, which the
// standby sends only after its fsync. The HA state machine drives it:
// SendSnapshot and StartStream are its actions.
type Sender struct {
	c      *Conn
	src    Source
	opts   SenderOptions
	cmds   chan senderCmd
	nowait context.Context // already done: Reader.Next without waiting

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced when acked or err change
	acked     uint64        // the standby has every record up to it
	sent      uint64        // the last index sent (records or snapshot)
	req       *SyncRequest
	snapSent  bool
	next      uint64 // after a snapshot was sent: the first record to stream
	target    uint64 // the last record when the stream began
	targetSet bool
	caughtUp  bool
	inflight  []inflight // oldest first
	err       error      // why Run ended
}

type senderCmd int

const (
	cmdSnapshot senderCmd = iota
	cmdStream
)

// NewSender returns the Sender of link c reading src. Run it.
func NewSender(c *Conn, src Source, opts SenderOptions) *Sender {
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = defaultBatchBytes
	}
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = defaultBatchBytes
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = defaultAckTimeout
	}
	opts.Clock = clock.OrReal(opts.Clock)
	nowait, cancel := context.WithCancel(context.Background())
	cancel()
	return &Sender{c: c, src: src, opts: opts, cmds: make(chan senderCmd, 4), nowait: nowait, changed: make(chan struct{})}
}

// SendSnapshot asks Run to send the latest snapshot (the ha.SendSnapshot
// action). It returns at once.
func (s *Sender) SendSnapshot() { s.command(cmdSnapshot) }

// StartStream asks Run to stream records (the ha.StartStream action):
// after the snapshot sent, or else after the standby's last record if the
// journal still holds it and it matches (otherwise a snapshot first). It
// returns at once.
func (s *Sender) StartStream() { s.command(cmdStream) }

func (s *Sender) command(c senderCmd) {
	select {
	case s.cmds <- c:
	default: // the state machine sends each once per link
	}
}

// Acked is the last index the standby has made durable.
func (s *Sender) Acked() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// WaitAcked returns once the standby has fsynced every record up to
// index (nil), or the link has ended (ErrLinkDown), or ctx ended. The
// daemon calls it after a proposal's local fsync, while synchronized,
// before answering the client.
func (s *Sender) WaitAcked(ctx context.Context, index uint64) error {
	for {
		s.mu.Lock()
		if s.acked >= index {
			s.mu.Unlock()
			return nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return fmt.Errorf("%w: %w", ErrLinkDown, err)
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Sender) report(ev ha.Event) {
	if s.opts.Report != nil {
		s.opts.Report(ev)
	}
}

// notify wakes WaitAcked; s.mu is held.
func (s *Sender) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Run serves the link until it ends or ctx does, then closes the link
// (with the reason as goodbye) and returns why. A journal that cannot be
// read is also reported as ha.SyncFailed.
func (s *Sender) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { errc <- s.readLoop(ctx) })
	tick := s.opts.Clock.NewTicker(max(s.opts.AckTimeout/4, time.Millisecond))
	defer tick.Stop()
	streaming := false
	var err error
loop:
	for {
		select {
		case err = <-errc:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		case <-tick.C():
			// The clock, not the tick's stamp: a fake clock drops the
			// ticks of a long Advance.
			if err = s.overdue(s.opts.Clock.Now()); err != nil {
				break loop
			}
		case cmd := <-s.cmds:
			switch {
			case cmd == cmdSnapshot && !streaming:
				index, serr := s.sendSnapshot(ctx)
				if serr != nil {
					err = serr
					break loop
				}
				s.report(ha.SnapshotSent{Link: s.opts.Link, Index: index})
			case cmd == cmdStream && !streaming:
				streaming = true
				wg.Go(func() { errc <- s.stream(ctx) })
			}
		}
	}
	cancel()
	s.c.Close(err)
	wg.Wait()
	s.mu.Lock()
	s.err = err
	s.notify()
	s.mu.Unlock()
	if errors.Is(err, ErrSource) {
		s.report(ha.SyncFailed{Link: s.opts.Link, Err: err})
	}
	return err
}

func (s *Sender) readLoop(ctx context.Context) error {
	for {
		m, err := s.c.Recv(ctx)
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case Ack:
			if err := s.ack(m.Index); err != nil {
				return err
			}
		case SyncRequest:
			s.mu.Lock()
			dup := s.req != nil
			if !dup {
				s.req = &m
			}
			s.mu.Unlock()
			if dup {
				return fmt.Errorf("%w: a second sync request on one link", ErrProtocol)
			}
			s.report(ha.SyncRequested{Link: s.opts.Link, Full: m.Full})
		case EpochNotice:
			s.report(ha.HigherEpochSeen{Epoch: m.Epoch, From: "peer " + s.c.Peer().Name})
		default:
			return fmt.Errorf("%w: %s from the standby", ErrProtocol, m.Type())
		}
	}
}

func (s *Sender) ack(index uint64) error {
	s.mu.Lock()
	if index > s.sent {
		sent := s.sent
		s.mu.Unlock()
		return fmt.Errorf("%w: ack of %d, only %d was sent", ErrProtocol, index, sent)
	}
	if index > s.acked {
		s.acked = index
		s.notify()
	}
	i := 0
	for i < len(s.inflight) && s.inflight[i].last <= s.acked {
		i++
	}
	s.inflight = s.inflight[i:]
	caught := s.checkCaughtUp()
	s.mu.Unlock()
	if caught {
		s.report(ha.StreamCaughtUp{Link: s.opts.Link, Index: index})
	}
	return nil
}

// overdue ends the link when the oldest unacknowledged frame waits for
// longer than AckTimeout.
func (s *Sender) overdue(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.inflight) > 0 && AckOverdue(s.inflight[0].at, now, s.opts.AckTimeout) {
		return fmt.Errorf("%w: record %d unacknowledged for %v", ErrAckTimeout, s.inflight[0].last, now.Sub(s.inflight[0].at))
	}
	return nil
}

// sending notes a frame that the standby must acknowledge up to last.
func (s *Sender) sending(last uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = max(s.sent, last)
	s.inflight = append(s.inflight, inflight{last: last, at: s.opts.Clock.Now()})
}

// checkCaughtUp reports, once, that the standby has every record the
// journal held when the stream began; s.mu is held.
func (s *Sender) checkCaughtUp() bool {
	if !s.targetSet || s.caughtUp || s.acked < s.target {
		return false
	}
	s.caughtUp = true
	return true
}

// sendSnapshot sends the latest snapshot in chunks and returns its index.
func (s *Sender) sendSnapshot(ctx context.Context) (uint64, error) {
	snap, ok, err := s.src.LatestSnapshot()
	if err != nil {
		return 0, fmt.Errorf("%w: latest snapshot: %w", ErrSource, err)
	}
	if !ok {
		snap = persist.Snapshot{} // the empty state before record 1
	}
	total := len(snap.State)
	if total > MaxSnapshot {
		return 0, fmt.Errorf("%w: snapshot of %d bytes, the link carries at most %d", ErrSource, total, MaxSnapshot)
	}
	for off := 0; ; {
		n := min(s.opts.ChunkBytes, total-off)
		m := Snapshot{Index: snap.Index, Total: uint64(total), Offset: uint64(off), Data: snap.State[off : off+n]}
		if off+n >= total {
			// The ack can come only after the last chunk: the clock of
			// AckTimeout starts here, not with a long transfer.
			s.sending(snap.Index)
		}
		if err := s.c.Send(ctx, m); err != nil {
			return 0, err
		}
		if off += n; off >= total {
			break
		}
	}
	s.mu.Lock()
	s.snapSent, s.next = true, snap.Index+1
	s.mu.Unlock()
	return snap.Index, nil
}

// resume returns a reader after the standby's last record if the journal
// still holds that record and its payload is the standby's (nil if not:
// a snapshot is needed).
func (s *Sender) resume(req SyncRequest) (*persist.Reader, error) {
	if req.Full || req.Index > s.src.LastIndex() {
		return nil, nil
	}
	if req.Index == 0 {
		if req.Sum != ([32]byte{}) {
			return nil, nil
		}
		r, err := s.src.ReadFrom(1)
		if errors.Is(err, persist.ErrCompacted) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSource, err)
		}
		return r, nil
	}
	r, err := s.src.ReadFrom(req.Index)
	if errors.Is(err, persist.ErrCompacted) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSource, err)
	}
	e, err := r.Next(s.nowait)
	if err != nil || sha256.Sum256(e.Payload) != req.Sum {
		r.Close()
		return nil, nil // compacted meanwhile, or the standby's record differs
	}
	return r, nil
}

// stream sends every record from the right index on, as the journal
// makes them durable, until ctx ends or sending fails.
func (s *Sender) stream(ctx context.Context) error {
	s.mu.Lock()
	req, snapSent, next := s.req, s.snapSent, s.next
	s.mu.Unlock()
	if req == nil {
		return fmt.Errorf("%w: stream asked before the standby's sync request", ErrProtocol)
	}
	var r *persist.Reader
	defer func() {
		if r != nil {
			r.Close()
		}
	}()
	fallback := func() error {
		if r != nil {
			r.Close()
			r = nil
		}
		index, err := s.sendSnapshot(ctx)
		if err != nil {
			return err
		}
		s.report(ha.SnapshotSent{Link: s.opts.Link, Index: index})
		next = index + 1
		return nil
	}
	if !snapSent {
		var err error
		if r, err = s.resume(*req); err != nil {
			return err
		}
		if r == nil {
			if err := fallback(); err != nil {
				return err
			}
		} else {
			next = req.Index + 1
			s.mu.Lock()
			s.sent = max(s.sent, req.Index)
			s.acked = max(s.acked, req.Index)
			s.mu.Unlock()
		}
	}
	// open (re)opens the reader at next; a compacted index takes a newer
	// snapshot (compaction may race with us a few times, not forever).
	open := func() error {
		for attempt := 0; r == nil; attempt++ {
			var err error
			r, err = s.src.ReadFrom(next)
			if errors.Is(err, persist.ErrCompacted) && attempt < 3 {
				if err := fallback(); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("%w: reading from %d: %w", ErrSource, next, err)
			}
		}
		return nil
	}
	if err := open(); err != nil {
		return err
	}
	target := s.src.LastIndex()
	if err := s.c.Send(ctx, Records{First: next, Durable: target}); err != nil {
		return err
	}
	s.mu.Lock()
	s.target, s.targetSet = target, true
	caught := s.checkCaughtUp()
	acked := s.acked
	s.mu.Unlock()
	if caught {
		s.report(ha.StreamCaughtUp{Link: s.opts.Link, Index: acked})
	}

	for {
		e, err := r.Next(ctx)
		if errors.Is(err, persist.ErrCompacted) {
			if err := fallback(); err != nil {
				return err
			}
			if err := open(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %w", ErrSource, err)
		}
		if e.Index != next {
			return fmt.Errorf("%w: the journal gave record %d, %d was next", ErrSource, e.Index, next)
		}
		first := next
		batch, size := [][]byte{e.Payload}, len(e.Payload)
		next++
		for size < s.opts.BatchBytes && len(batch) < maxBatchRecords {
			e, err := r.Next(s.nowait)
			if err != nil {
				break // none durable yet (or compacted: the next Next says)
			}
			batch, size = append(batch, e.Payload), size+len(e.Payload)
			next++
		}
		s.sending(next - 1)
		if err := s.c.Send(ctx, Records{First: first, Durable: s.src.LastIndex(), Payloads: batch}); err != nil {
			return err
		}
	}
}
