package wire

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// AcceptFunc decides whether a Hello may proceed and which storage system
// the connection then serves; an HMC endpoint picks by hello.Serial. It
// runs before anything but the Hello has been read. Its error picks the
// reject code: one wrapping ErrUnknownSerial gives RejectUnknownSerial,
// hal.ErrUnreachable RejectUnavailable, anything else RejectAuth (whose
// text never says whether the user or the password was wrong).
//
// HelloOK.Capabilities is what the connection can carry: heartbeat ops on a
// connection without the heartbeat capability are answered
// StatusUnsupported without reaching the storage system.
type AcceptFunc func(hello Hello) (HelloOK, hal.StorageSystem, error)

// CheckCredentials compares hello's user and password with the expected
// ones in constant time, so that a refusal does not reveal how much of a
// guess matched. It returns an error wrapping hal.ErrAuth on mismatch.
func CheckCredentials(hello Hello, user, password string) error {
	u := subtle.ConstantTimeCompare([]byte(hello.User), []byte(user))
	p := subtle.ConstantTimeCompare([]byte(hello.Password), []byte(password))
	if u&p != 1 {
		return fmt.Errorf("%w: user %q", hal.ErrAuth, hello.User)
	}
	return nil
}

// ServerOptions tune Serve. The zero value is usable.
type ServerOptions struct {
	Logger *slog.Logger // nil: discard
	// Clock runs request deadlines (nil: real time).
	Clock clock.Clock
	// HandshakeTimeout bounds the time from accept to HelloOK (default
	// 10 s), so that idle or slow unauthenticated peers are dropped.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds the writing of one frame (default 10 s); a
	// client that stops reading is disconnected.
	WriteTimeout time.Duration
	// MaxInFlight bounds the requests handled at once per connection
	// (default 64); beyond it the server stops reading, and TCP flow
	// control slows the client.
	MaxInFlight int
	// MaxRequestTimeout caps the Timeout a request may ask for (default
	// 5 min).
	MaxRequestTimeout time.Duration
}

func (o ServerOptions) withDefaults() ServerOptions {
	o.Clock = clock.OrReal(o.Clock)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	if o.MaxRequestTimeout <= 0 {
		o.MaxRequestTimeout = 5 * time.Minute
	}
	return o
}

// Serve runs the server side of one connection until it ends, and closes
// conn. conn is normally a *tls.Conn from ServerTLSConfig. Serve reads the
// Hello, asks accept, then dispatches every request to the matching method
// of the accepted hal.StorageSystem (concurrently, up to MaxInFlight, each
// under a context of the request's Timeout) and forwards the system's
// Events as Event frames.
//
// A protocol violation (malformed or oversized frame, unknown message
// type, wrong version) closes the connection with the reason logged, and
// only that connection. Serve returns nil when the client closed the
// connection cleanly, otherwise the reason. Cancelling ctx closes the
// connection and cancels the requests in flight.
//
// A request in flight when the connection drops still runs to its end,
// as a command a real storage system received does; Serve returns after
// it.
func Serve(ctx context.Context, conn net.Conn, accept AcceptFunc, opts ServerOptions) error {
	opts = opts.withDefaults()
	s := &serverConn{
		conn:    conn,
		opts:    opts,
		log:     opts.Logger.With("remote", conn.RemoteAddr().String()),
		bw:      bufio.NewWriter(conn),
		answers: make(chan []byte, opts.MaxInFlight),
		closed:  make(chan struct{}),
	}
	stop := context.AfterFunc(ctx, func() { s.fail(fmt.Errorf("server stopping: %w", context.Cause(ctx))) })
	defer stop()
	err := s.run(ctx, accept)
	s.fail(err)
	<-s.closed
	switch {
	case errors.Is(s.reason, io.EOF):
		s.log.Info("manager disconnected")
		return nil
	case ctx.Err() != nil:
		s.log.Info("closed connection", "err", s.reason)
	default:
		s.log.Warn("closed connection", "err", s.reason)
	}
	return s.reason
}

type serverConn struct {
	conn net.Conn
	opts ServerOptions
	log  *slog.Logger // set before any goroutine starts

	wmu sync.Mutex // serializes frames from the send loop and the other forwarders
	bw  *bufio.Writer
	// answers are encoded responses for the send loop (buffered
	// MaxInFlight: a handler never waits on it while the loop lives).
	answers chan []byte

	failOnce sync.Once
	reason   error         // the first reason to close; read after closed
	closed   chan struct{} // closed by fail
}

// fail closes the connection; the first reason is the one logged.
func (s *serverConn) fail(err error) {
	s.failOnce.Do(func() {
		s.reason = err
		close(s.closed)
		s.conn.Close()
	})
}

func (s *serverConn) run(ctx context.Context, accept AcceptFunc) error {
	// The event subscription lives as long as the connection; requests
	// use ctx, the server's lifetime (see Serve).
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	br := bufio.NewReader(s.conn)
	hello, ok, sys, events, err := s.handshake(connCtx, br, accept)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	s.log = s.log.With("manager", hello.Manager, "serial", ok.Serial)
	if ok.HMC != "" {
		s.log = s.log.With("hmc", ok.HMC)
	}
	s.log.Info("manager connected", "user", hello.User, "heartbeat", ok.Capabilities.Heartbeat)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.sendLoop(connCtx, events)
	}()
	if src, isZOS := sys.(StateChangeSource); isZOS { // a z/OS host (zos.go)
		wg.Go(func() { s.forwardStateChanges(connCtx, src.StateChanges(connCtx)) })
	}
	if h, isSwap := sys.(hal.SwapHost); isSwap { // a z/OS host running HyperSwap (swap.go)
		if events, err := h.SwapEvents(connCtx); err == nil {
			wg.Go(func() { s.forwardSwapEvents(connCtx, events) })
		} else {
			s.log.Warn("no swap events from the z/OS host", "err", err)
		}
	}
	err = s.serveRequests(ctx, br, sys, ok, &wg)
	s.fail(err) // stops the forwarder and any blocked write
	cancel()
	wg.Wait()
	return err
}

// handshake reads and answers the Hello. On success the event
// subscription is already open, so no event raised after HelloOK is lost;
// it ends with ctx.
func (s *serverConn) handshake(ctx context.Context, br *bufio.Reader, accept AcceptFunc) (Hello, HelloOK, hal.StorageSystem, <-chan hal.Event, error) {
	s.conn.SetDeadline(time.Now().Add(s.opts.HandshakeTimeout))
	f, err := ReadFrame(br, MaxHandshakeFrame)
	if err != nil {
		return Hello{}, HelloOK{}, nil, nil, err
	}
	if f.Type != MsgHello {
		return Hello{}, HelloOK{}, nil, nil, fmt.Errorf("%w: first frame is a %s, want a hello", ErrMalformed, f.Type)
	}
	hello, err := DecodeHello(f.Body)
	if errors.Is(err, ErrBadVersion) {
		s.reject(RejectVersion, fmt.Sprintf("protocol version %d is not supported; this server speaks version %d", hello.Version, Version))
		return Hello{}, HelloOK{}, nil, nil, err
	}
	if err != nil {
		return Hello{}, HelloOK{}, nil, nil, err
	}
	ok, sys, err := accept(hello)
	if err == nil && sys == nil {
		err = fmt.Errorf("%w: no storage system to serve", hal.ErrUnreachable)
	}
	if err != nil {
		code, text := RejectAuth, "wrong user or password"
		switch {
		case errors.Is(err, ErrUnknownSerial):
			code, text = RejectUnknownSerial, err.Error()
		case errors.Is(err, hal.ErrUnreachable):
			code, text = RejectUnavailable, err.Error()
		case errors.Is(err, ErrSysplex):
			code, text = RejectSysplex, err.Error()
		}
		s.reject(code, text)
		return Hello{}, HelloOK{}, nil, nil, fmt.Errorf("refused %s (user %q, manager %q, serial %q): %w",
			code, hello.User, hello.Manager, hello.Serial, err)
	}
	_, isRouter := sys.(Router)
	switch {
	case hello.ToHMC && !isRouter:
		s.reject(RejectUnknownSerial, fmt.Sprintf("this endpoint is storage system %s, not an HMC", sys.Serial()))
		return Hello{}, HelloOK{}, nil, nil, fmt.Errorf("%w: a hello for an HMC reached a storage endpoint", ErrUnknownSerial)
	case !hello.ToHMC && isRouter:
		s.reject(RejectUnknownSerial, fmt.Sprintf("this endpoint is HMC %s: name the storage system on each request", ok.HMC))
		return Hello{}, HelloOK{}, nil, nil, fmt.Errorf("%w: a hello for a storage system reached an HMC", ErrUnknownSerial)
	}
	ok.Version = Version
	if ok.Serial == "" && !isRouter {
		ok.Serial = sys.Serial()
	}
	events, err := sys.Events(ctx)
	if err != nil {
		s.reject(RejectUnavailable, TruncateText("cannot subscribe to events: "+err.Error()))
		return Hello{}, HelloOK{}, nil, nil, fmt.Errorf("subscribe to events: %w", err)
	}
	body, err := EncodeHelloOK(ok)
	if err != nil {
		return Hello{}, HelloOK{}, nil, nil, err
	}
	if err := s.write(MsgHelloOK, body); err != nil {
		return Hello{}, HelloOK{}, nil, nil, err
	}
	s.conn.SetDeadline(time.Time{})
	return hello, ok, sys, events, nil
}

// reject sends a HelloReject, then lets the client read it: closing at
// once with unread input (a client that pipelined requests behind its
// Hello) would make the kernel reset the connection and could destroy the
// reject in flight. The input is discarded, never decoded.
func (s *serverConn) reject(code RejectCode, text string) {
	body, err := EncodeHelloReject(HelloReject{Code: code, Text: TruncateText(text)})
	if err != nil || s.write(MsgHelloReject, body) != nil {
		return
	}
	s.conn.SetReadDeadline(time.Now().Add(time.Second))
	io.CopyN(io.Discard, s.conn, 64<<10) // until the client closes, 1 s or 64 KiB
}

// serveRequests reads requests until the connection fails and hands each
// to its own goroutine (counted in wg), at most MaxInFlight at once.
func (s *serverConn) serveRequests(ctx context.Context, br *bufio.Reader, sys hal.StorageSystem, ok HelloOK, wg *sync.WaitGroup) error {
	inFlight := make(chan struct{}, s.opts.MaxInFlight)
	for {
		f, err := ReadFrame(br, MaxFrameSize)
		if err != nil {
			return err
		}
		if f.Type != MsgRequest {
			return fmt.Errorf("%w: client sent a %s", ErrMalformed, f.Type)
		}
		req, err := DecodeRequest(f.Body)
		if err != nil {
			return err
		}
		// Arguments are decoded here, not in the handler, so that a
		// malformed request closes the connection like any bad frame.
		args, argErr := DecodeArgs(req.Op, req.Args)
		if argErr != nil && !errors.Is(argErr, ErrUnknownOp) {
			return fmt.Errorf("request %d: %w", req.ID, argErr)
		}
		select {
		case inFlight <- struct{}{}:
		case <-s.closed:
			return s.reason
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inFlight }()
			s.respond(ctx, sys, ok, req, args, argErr)
		}()
	}
}

func (s *serverConn) respond(ctx context.Context, sys hal.StorageSystem, ok HelloOK, req Request, args Args, argErr error) {
	start := s.opts.Clock.Now()
	var res Result
	var err error
	var target hal.StorageSystem
	switch {
	case argErr != nil:
		err = fmt.Errorf("%w: %w", hal.ErrUnsupported, argErr)
	case req.Op.heartbeatOp() && !ok.Capabilities.Heartbeat:
		err = fmt.Errorf("%w: this connection cannot carry the heartbeat", hal.ErrUnsupported)
	case req.Op == OpPing:
		// answered by the connection, whatever the target
	case req.Op == OpAttached:
		res.Attached = attachedOf(sys, ok.Serial)
	default:
		if target, err = route(sys, ok.Serial, req.Target); err != nil {
			break
		}
		hctx, cancel := clock.WithTimeout(ctx, s.opts.Clock, min(req.Timeout, s.opts.MaxRequestTimeout))
		res, err = dispatch(hctx, target, req.Epoch, req.Op, args)
		cancel()
	}
	resp := Response{ID: req.ID}
	if err == nil {
		if resp.Result, err = EncodeResult(req.Op, res); err != nil {
			err = fmt.Errorf("%w: %w", ErrInternal, err)
		}
	}
	if err != nil {
		resp = Response{ID: req.ID, Status: StatusOf(err), Text: TruncateText(err.Error())}
	}
	body, err := EncodeResponse(resp)
	if err != nil { // a result that fits no frame
		resp = Response{ID: req.ID, Status: StatusInternal, Text: TruncateText(err.Error())}
		body, _ = EncodeResponse(resp)
	}
	s.log.Debug("request", "id", req.ID, "op", req.Op, "target", req.Target, "epoch", req.Epoch,
		"status", resp.Status, "took", s.opts.Clock.Since(start))
	// The send loop writes it, with the events queued by then: a failed
	// write closes the connection.
	select {
	case s.answers <- body:
	case <-s.closed:
	}
}

// dispatch runs op on sys.
func dispatch(ctx context.Context, sys hal.StorageSystem, epoch hal.Epoch, op Op, a Args) (Result, error) {
	var r Result
	var err error
	switch op {
	case OpPing:
		// answered by the connection, not the storage system
	case OpEstablishPaths:
		err = sys.EstablishPaths(ctx, epoch, a.Paths)
	case OpEstablishPairs:
		err = sys.EstablishPairs(ctx, epoch, a.Pairs)
	case OpFreeze:
		err = sys.Freeze(ctx, epoch, a.LSSPairs)
	case OpThaw:
		err = sys.Thaw(ctx, epoch, a.LSSs)
	case OpSuspend:
		err = sys.Suspend(ctx, epoch, a.VolumePairs)
	case OpRecover:
		err = sys.Recover(ctx, epoch, a.VolumePairs)
	case OpFailback:
		err = sys.Failback(ctx, epoch, a.VolumePairs)
	case OpRemovePairs:
		err = sys.RemovePairs(ctx, epoch, a.VolumePairs)
	case OpRemovePaths:
		err = sys.RemovePaths(ctx, epoch, a.LSSPairs)
	case OpEnableHeartbeat:
		err = sys.EnableHeartbeat(ctx, epoch, a.Heartbeat)
	case OpHeartbeat:
		err = sys.Heartbeat(ctx, epoch, a.Session)
	case OpDisableHeartbeat:
		err = sys.DisableHeartbeat(ctx, epoch, a.Session)
	case OpQueryPairs:
		r.Pairs, err = sys.QueryPairs(ctx, epoch)
	case OpQueryPaths:
		r.Paths, err = sys.QueryPaths(ctx, epoch)
	case OpQueryLSSs:
		r.LSSs, err = sys.QueryLSSs(ctx, epoch)
	case OpQueryOnline:
		r.Online, err = queryOnline(ctx, sys) // zos.go
	case OpLoadSwap, OpUnloadSwap, OpSwap, OpSwapStatus:
		return dispatchSwap(ctx, sys, epoch, op, a) // swap.go
	default:
		err = fmt.Errorf("%w: %w: %s", hal.ErrUnsupported, ErrUnknownOp, op)
	}
	if err != nil {
		return Result{}, err
	}
	return r, nil
}

// maxSendBatch bounds how many frames sendLoop sends in one write.
const maxSendBatch = 64

// sendLoop sends the storage system's events as Event frames, and the
// answers respond encoded, until the connection ends (ctx is the
// subscription's). If the system ends the subscription while the
// connection lives, the connection is closed: the manager reconnects and
// subscribes again rather than silently missing pushes.
//
// What is queued when it wakes goes out in one write: a freeze of 16 LSS
// pairs raises 16 suspend events at once, and its answer follows them.
// A TLS record, a flush and a system call for each of them (and a read
// for each on the manager's side) cost the freezes of the other systems
// CPU: the loopback freeze bench spent a quarter of its CPU on the
// events alone, and the answer was a write and a read of its own.
func (s *serverConn) sendLoop(ctx context.Context, events <-chan hal.Event) {
	frames := make([]Frame, 0, maxSendBatch)
	// The events of a batch are encoded one after the other into bodies,
	// reused from batch to batch: the frames are written before the next
	// batch begins. A body of its own for each event was the largest of
	// what the emulated storage allocated per freeze in the loopback
	// bench, whose collector is the manager's too.
	var bodies []byte
	take := func(ev hal.Event) {
		start := len(bodies)
		var err error
		if bodies, err = appendEvent(bodies, ev); err != nil {
			s.log.Warn("dropped an event that cannot be encoded", "seq", ev.Seq, "err", err)
			return
		}
		// Capped: a frame's body is its own bytes, whatever a later
		// append (which may move bodies, leaving this one where it is).
		frames = append(frames, Frame{Type: MsgEvent, Body: bodies[start:len(bodies):len(bodies)]})
	}
	for {
		frames, bodies = frames[:0], bodies[:0]
		ended := false
		select {
		case ev, ok := <-events:
			if ended = !ok; ok {
				take(ev)
			}
		case body := <-s.answers:
			frames = append(frames, Frame{Type: MsgResponse, Body: body})
		case <-s.closed:
			return
		}
	drain:
		for !ended && len(frames) < maxSendBatch {
			select {
			case ev, ok := <-events:
				if ended = !ok; ok {
					take(ev)
				}
			case body := <-s.answers:
				frames = append(frames, Frame{Type: MsgResponse, Body: body})
			default:
				break drain
			}
		}
		if len(frames) > 0 && s.writeFrames(frames) != nil {
			return
		}
		if ended {
			if ctx.Err() == nil { // not our own cancellation
				s.fail(errors.New("the storage system ended the event subscription"))
			}
			return
		}
	}
}

// write sends frames of one type, flushed once, with a write deadline; a
// failure closes the connection (half a frame leaves the stream unusable).
func (s *serverConn) write(t MsgType, bodies ...[]byte) error {
	frames := make([]Frame, len(bodies))
	for i, body := range bodies {
		frames[i] = Frame{Type: t, Body: body}
	}
	return s.writeFrames(frames)
}

// writeFrames sends frames, flushed once, with a write deadline; a
// failure closes the connection.
func (s *serverConn) writeFrames(frames []Frame) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	select {
	case <-s.closed:
		return s.reason
	default:
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	var err error
	for _, f := range frames {
		if err = WriteFrame(s.bw, f); err != nil {
			break
		}
	}
	if err == nil {
		err = s.bw.Flush()
	}
	if err != nil {
		err = fmt.Errorf("write %s: %w", frames[0].Type, err)
		s.fail(err)
	}
	return err
}
