package freeze_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/latency"
	"github.com/lockstep-io/lockstep/internal/netdelay"
)

// leanStorage is a storage system that costs next to nothing: after the
// way out of its latency it answers every command at once and changes
// nothing, except that a freeze raises the suspend events (reason
// freeze, one per LSS pair) a real system raises. It is no emulator: it
// holds no pairs and proves nothing about consistency. Served by the wire
// server over loopback TLS, with the same one-way latency both ways as
// the lab's latency fault, it takes the emulator's work off the 2 cores
// the manager freezes with. Its wire server (a goroutine per request,
// the send loop, TLS, the latency's timers) stays on them: about as much
// CPU per system as the manager's own, measured.
type leanStorage struct {
	serial  hal.Serial
	latency time.Duration
	seq     atomic.Uint64
	frozeAt atomic.Int64 // when its last freeze ran (Unix ns): the storage side's instant, for the skew
	mu      sync.Mutex
	subs    []chan hal.Event
}

func (s *leanStorage) Serial() hal.Serial             { return s.serial }
func (s *leanStorage) Capabilities() hal.Capabilities { return hal.Capabilities{} }

func (s *leanStorage) Events(ctx context.Context) (<-chan hal.Event, error) {
	ch := make(chan hal.Event, 256)
	s.mu.Lock()
	s.subs = append(s.subs, ch)
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.subs = slices.DeleteFunc(s.subs, func(c chan hal.Event) bool { return c == ch })
		close(ch)
		s.mu.Unlock()
	})
	return ch, nil
}

// raise sends an event to every subscriber (a full one loses it).
func (s *leanStorage) raise(ev hal.Event) {
	ev.Serial, ev.Seq = s.serial, s.seq.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// frozenSpan is when the first and the last of systems ran their
// freeze (the skew is between them). ok is false if one of them has not
// run a freeze since the trigger stamped since.
func frozenSpan(systems []*leanStorage, since time.Time) (first, last time.Time, ok bool) {
	for _, s := range systems {
		at := time.Unix(0, s.frozeAt.Load())
		if at.Before(since) {
			return time.Time{}, time.Time{}, false
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	return first, last, true
}

// arrive is the way out: a command reaches the system the latency after
// the manager sent it (the way back is the connection's netdelay.Writer).
func (s *leanStorage) arrive(ctx context.Context) error {
	return clock.Sleep(ctx, clock.Real(), s.latency)
}

func (s *leanStorage) Freeze(ctx context.Context, _ hal.Epoch, pairs []hal.LSSPair) error {
	if err := s.arrive(ctx); err != nil {
		return err
	}
	var vols hal.VolumeSet
	vols.Add(0)
	now := time.Now()
	s.frozeAt.Store(now.UnixNano())
	for _, lp := range pairs {
		s.raise(hal.Event{Kind: hal.EventSuspend, At: now, LSSPair: lp, Reason: hal.ReasonFreeze, Volumes: vols})
	}
	return nil
}

func (s *leanStorage) EstablishPaths(ctx context.Context, _ hal.Epoch, _ []hal.PathSpec) error {
	return s.arrive(ctx)
}
func (s *leanStorage) EstablishPairs(ctx context.Context, _ hal.Epoch, _ []hal.PairSpec) error {
	return s.arrive(ctx)
}
func (s *leanStorage) Thaw(ctx context.Context, _ hal.Epoch, _ []hal.LSS) error { return s.arrive(ctx) }
func (s *leanStorage) Suspend(ctx context.Context, _ hal.Epoch, _ []hal.VolumePair) error {
	return s.arrive(ctx)
}
func (s *leanStorage) Recover(ctx context.Context, _ hal.Epoch, _ []hal.VolumePair) error {
	return s.arrive(ctx)
}
func (s *leanStorage) Failback(ctx context.Context, _ hal.Epoch, _ []hal.VolumePair) error {
	return s.arrive(ctx)
}
func (s *leanStorage) RemovePairs(ctx context.Context, _ hal.Epoch, _ []hal.VolumePair) error {
	return s.arrive(ctx)
}
func (s *leanStorage) RemovePaths(ctx context.Context, _ hal.Epoch, _ []hal.LSSPair) error {
	return s.arrive(ctx)
}
func (s *leanStorage) EnableHeartbeat(ctx context.Context, _ hal.Epoch, _ hal.HeartbeatSpec) error {
	return s.arrive(ctx)
}
func (s *leanStorage) Heartbeat(ctx context.Context, _ hal.Epoch, _ string) error {
	return s.arrive(ctx)
}
func (s *leanStorage) DisableHeartbeat(ctx context.Context, _ hal.Epoch, _ string) error {
	return s.arrive(ctx)
}
func (s *leanStorage) QueryPairs(ctx context.Context, _ hal.Epoch) ([]hal.PairStatus, error) {
	return nil, s.arrive(ctx)
}
func (s *leanStorage) QueryPaths(ctx context.Context, _ hal.Epoch) ([]hal.PathStatus, error) {
	return nil, s.arrive(ctx)
}
func (s *leanStorage) QueryLSSs(ctx context.Context, _ hal.Epoch) ([]hal.LSSStatus, error) {
	return nil, s.arrive(ctx)
}

// leanPairs are a lean system's 16 LSS pairs to its secondary.
func leanPairs(serial, target hal.Serial) []hal.LSSPair {
	pairs := make([]hal.LSSPair, 16)
	for i := range pairs {
		lss := hal.LSS(0x10 + i)
		pairs[i] = hal.LSSPair{Source: hal.LSSRef{Serial: serial, LSS: lss}, Target: hal.LSSRef{Serial: target, LSS: lss}}
	}
	return pairs
}

// listenTLS is a loopback listener for serial, closed with the bench,
// and the server TLS config of a certificate naming serial.
func listenTLS(b *testing.B, ca *wire.SelfSigned, serial hal.Serial) (net.Listener, *tls.Config) {
	cert, err := ca.Issue(serial, "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	return ln, wire.ServerTLSConfig(cert)
}

// serveLean serves sys with the wire server on a loopback TLS listener
// of its own, its writes delayed by sys's latency, until ctx ends; its
// goroutines carry the profiler label side=storage. It returns the
// listener's address.
func serveLean(ctx context.Context, b *testing.B, ca *wire.SelfSigned, sys *leanStorage) string {
	ln, cfg := listenTLS(b, ca, sys.serial)
	accept := func(wire.Hello) (wire.HelloOK, hal.StorageSystem, error) {
		return wire.HelloOK{Serial: sys.serial}, sys, nil
	}
	pprof.Do(ctx, pprof.Labels("side", "storage"), func(ctx context.Context) {
		go func() {
			for {
				raw, err := ln.Accept()
				if err != nil {
					return
				}
				conn := netdelay.NewConn(tls.Server(raw, cfg), clock.Real(), func() time.Duration { return sys.latency })
				go wire.Serve(ctx, conn, accept, wire.ServerOptions{})
			}
		}()
	})
	return ln.Addr().String()
}

// leanLayout is n lean systems of 16 LSS pairs in one group, a core
// freezing them through direct drivers, and the recorders of the freeze
// bench.
type leanLayout struct {
	systems []*leanStorage
	pairs   map[hal.Serial][]hal.LSSPair
	core    *freeze.Core
	rec     *freezeBench // sent and acks only
}

func setupLean(b *testing.B, ca *wire.SelfSigned, prefix string, n int, oneWay time.Duration) *leanLayout {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	l := &leanLayout{pairs: map[hal.Serial][]hal.LSSPair{},
		rec: &freezeBench{changed: make(chan struct{}, 1), sent: map[hal.Serial]time.Time{},
			acks: map[hal.Serial]time.Time{}, beats: map[hal.Serial]time.Time{}}}
	sources := map[hal.Serial]hal.StorageSystem{}
	var drivers []*direct.System
	for i := range n {
		serial := hal.Serial(fmt.Sprintf("LEAN.2107-%sP%04d", prefix, i))
		l.pairs[serial] = leanPairs(serial, hal.Serial(fmt.Sprintf("LEAN.2107-%sS%04d", prefix, i)))
		sys := &leanStorage{serial: serial, latency: oneWay}
		l.systems = append(l.systems, sys)
		addr := serveLean(ctx, b, ca, sys)
		var d *direct.System
		pprof.Do(ctx, pprof.Labels("side", "manager"), func(ctx context.Context) {
			d = direct.New(ctx, direct.Options{Serial: serial, Endpoints: [2]string{addr, addr}, Manager: manager,
				User: "u", Password: "p", TLS: wire.ClientTLSConfig(ca.Pool, "127.0.0.1")})
		})
		b.Cleanup(func() { d.Close() })
		drivers = append(drivers, d)
		sources[serial] = ackRecorder{StorageSystem: d, fb: l.rec}
	}
	for _, d := range drivers { // every connection up: a trigger raised before would be lost
		for d.Cluster() < 0 {
			time.Sleep(time.Millisecond)
		}
	}
	t := freeze.DefaultTimings()
	t.PollInterval = time.Hour
	l.core = freeze.New(freeze.Options{Timings: t, Systems: sources, Epoch: 1})
	pprof.Do(ctx, pprof.Labels("side", "manager"), func(ctx context.Context) { go l.core.Run(ctx) })
	if err := l.core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: l.pairs, LowestCG: time.Minute}}); err != nil {
		b.Fatal(err)
	}
	return l
}

// once restarts the group, raises a path suspension on the first
// system's first LSS pair, and waits until every system acknowledged the
// freeze: the sample is from the event's stamp to the last
// acknowledgement, and the process's CPU time in between.
func (l *leanLayout) once(b *testing.B) (sample, bool) {
	restartSettled(b, l.core)
	fb := l.rec
	fb.mu.Lock()
	clear(fb.sent)
	clear(fb.acks)
	fb.mu.Unlock()
	first := l.systems[0]
	var vols hal.VolumeSet
	vols.Add(0)
	trigger := hal.Event{Kind: hal.EventSuspend, At: time.Now(), LSSPair: l.pairs[first.serial][0],
		Reason: hal.ReasonPath, Volumes: vols}
	cpu0, gc0 := cpuTime(b), gcCycles()
	first.raise(trigger)
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	if !fb.await(deadline.C, func() bool { return len(fb.acks) == len(l.systems) }) {
		fb.mu.Lock()
		b.Logf("sample lost: %d of %d acknowledged", len(fb.acks), len(l.systems))
		fb.mu.Unlock()
		return sample{}, false
	}
	cpu, gc := cpuTime(b)-cpu0, gcCycles() != gc0
	fb.mu.Lock()
	_, lastAck := span(fb.acks)
	firstSent, lastSent := span(fb.sent)
	fb.mu.Unlock()
	firstFrozen, lastFrozen, ok := frozenSpan(l.systems, trigger.At)
	if !ok {
		b.Fatal("a system acknowledged a freeze it did not run")
	}
	return sample{latency: lastAck.Sub(trigger.At), skew: lastFrozen.Sub(firstFrozen), cpu: cpu, gc: gc,
		detect: firstSent.Sub(trigger.At), dispatch: lastSent.Sub(firstSent), ret: lastAck.Sub(lastFrozen)}, true
}

// BenchmarkFreezeLimitLeanStorage is BenchmarkFreezeLimit against lean
// storage (see leanStorage) instead of the lab's emulator: the same 1 ms
// one way on every connection, the same core, drivers, wire protocol and
// TLS, but storage that does no emulating. On this 2-core machine the
// emulated storage's work lands on the cores the manager freezes with;
// here only the storage's wire server does, so that the ratio (and the
// CPU per freeze of 32, `cpu-32sys-*`) comes closer to what the manager
// itself costs. Samples of the two layouts alternate.
func BenchmarkFreezeLimitLeanStorage(b *testing.B) {
	const oneWay = time.Millisecond
	ca, err := wire.NewSelfSigned(time.Now(), time.Hour, "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	got, lost := alternate(b, setupLean(b, ca, "A", 1, oneWay), setupLean(b, ca, "B", 32, oneWay))
	reportRatio(b, got[0], got[1], lost)
	reportLean(b, "32sys", got[1])
}

// floorLayout is a layout of the lean storage family: lockstep's
// (leanLayout), the bare wire clients' (bareLayout) or raw TLS's
// (rawLayout). once takes one sample.
type floorLayout interface {
	once(b *testing.B) (sample, bool)
}

// alternate takes 200 samples of each layout per benchmark iteration,
// the layouts in turn, so that what the machine does meanwhile falls on
// all of them alike; lost counts the samples lost in all.
func alternate(b *testing.B, layouts ...floorLayout) (got [][]sample, lost int) {
	return alternateIdle(b, 200, 0, layouts...)
}

// alternateIdle is alternate with samples rounds, each sample taken after
// idle of idleness.
func alternateIdle(b *testing.B, samples int, idle time.Duration, layouts ...floorLayout) (got [][]sample, lost int) {
	got = make([][]sample, len(layouts))
	for b.Loop() {
		for range samples {
			for i, l := range layouts {
				if idle > 0 {
					time.Sleep(idle) // the samples time themselves: no b.StopTimer, which reads the memory statistics
				}
				s, ok := l.once(b)
				if !ok {
					lost++
					continue
				}
				got[i] = append(got[i], s)
			}
		}
	}
	return got, lost
}

// reportLean prints the CPU per freeze, the skew and the parts of the
// freeze (detect: event stamped → first freeze sent; dispatch: first →
// last sent; return: last system frozen → last acknowledgement) of a
// lean layout.
func reportLean(b *testing.B, name string, got []sample) {
	latency.Report(b, "cpu-"+name, part(got, func(s sample) time.Duration { return s.cpu }))
	latency.Report(b, "skew-"+name, part(got, func(s sample) time.Duration { return s.skew }))
	latency.Report(b, "detect-"+name, part(got, func(s sample) time.Duration { return s.detect }))
	latency.Report(b, "dispatch-"+name, part(got, func(s sample) time.Duration { return s.dispatch }))
	latency.Report(b, "return-"+name, part(got, func(s sample) time.Duration { return s.ret }))
	b.ReportMetric(float64(gcSamples(got)), "gc-samples-"+name)
}
