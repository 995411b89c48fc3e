package freeze_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/latency"
)

// bareLayout is the floor under FreezeLimitLeanStorage: the same lean
// storage, wire server, TLS and latency, but on the manager's side only
// wire clients and a goroutine per system that sends the freeze. No
// freeze core, no direct driver, no group, no rules: what a freeze of n
// systems costs this machine in transport alone. Its ratio is how close
// to 1 the manager could come here if lockstep's own code took no time.
type bareLayout struct {
	systems []*leanStorage
	clients []*wire.Client
	pairs   [][]hal.LSSPair
	trigger chan struct{} // the first system's path suspension reached the manager
}

func setupBare(b *testing.B, ca *wire.SelfSigned, prefix string, n int, oneWay time.Duration) *bareLayout {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	l := &bareLayout{trigger: make(chan struct{}, 1)}
	for i := range n {
		serial := hal.Serial(fmt.Sprintf("BARE.2107-%sP%04d", prefix, i))
		target := hal.Serial(fmt.Sprintf("BARE.2107-%sS%04d", prefix, i))
		pairs := leanPairs(serial, target)
		l.pairs = append(l.pairs, pairs)
		sys := &leanStorage{serial: serial, latency: oneWay}
		l.systems = append(l.systems, sys)
		addr := serveLean(ctx, b, ca, sys)
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		opts := wire.ClientOptions{OnEvent: func(ev hal.Event) {
			if ev.Reason == hal.ReasonPath { // the trigger; a freeze's echoes are dropped
				select {
				case l.trigger <- struct{}{}:
				default:
				}
			}
		}}
		var c *wire.Client
		pprof.Do(ctx, pprof.Labels("side", "manager"), func(ctx context.Context) {
			c, _, err = wire.NewClient(ctx, tls.Client(raw, wire.ClientTLSConfig(ca.Pool, "127.0.0.1")),
				wire.Hello{Manager: manager, Serial: serial, User: "u", Password: "p"}, opts)
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		l.clients = append(l.clients, c)
	}
	return l
}

// once raises the path suspension on the first system and, when it
// reaches the manager, sends every system its freeze at once: the sample
// is from the event's stamp to the last answer.
func (l *bareLayout) once(b *testing.B) (sample, bool) {
	var vols hal.VolumeSet
	vols.Add(0)
	trigger := hal.Event{Kind: hal.EventSuspend, At: time.Now(), LSSPair: l.pairs[0][0],
		Reason: hal.ReasonPath, Volumes: vols}
	cpu0, gc0 := cpuTime(b), gcCycles()
	l.systems[0].raise(trigger)
	select {
	case <-l.trigger:
	case <-time.After(5 * time.Second):
		b.Logf("sample lost: trigger not seen")
		return sample{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	firstSent, lastSent, last, err := sendAll(len(l.clients), func(i int) error {
		return l.clients[i].Freeze(ctx, 1, l.pairs[i])
	})
	cpu, gc := cpuTime(b)-cpu0, gcCycles() != gc0
	if err != nil {
		b.Logf("sample lost: %v", err)
		return sample{}, false
	}
	firstFrozen, lastFrozen, ok := frozenSpan(l.systems, trigger.At)
	if !ok {
		b.Fatal("a system acknowledged a freeze it did not run")
	}
	return sample{latency: last.Sub(trigger.At), skew: lastFrozen.Sub(firstFrozen), cpu: cpu, gc: gc,
		detect: firstSent.Sub(trigger.At), dispatch: lastSent.Sub(firstSent), ret: last.Sub(lastFrozen)}, true
}

// sendAll sends each of n systems its freeze at once, a goroutine each
// (send(i)), and says when the first and the last were sent and the last
// answered; err is the first error.
func sendAll(n int, send func(i int) error) (firstSent, lastSent, last time.Time, err error) {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for i := range n {
		wg.Go(func() {
			sent := time.Now()
			serr := send(i)
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				err = serr
			}
			if firstSent.IsZero() || sent.Before(firstSent) {
				firstSent = sent
			}
			if sent.After(lastSent) {
				lastSent = sent
			}
			if now.After(last) {
				last = now
			}
		})
	}
	wg.Wait()
	return firstSent, lastSent, last, err
}

// BenchmarkFreezeLimitFloor is FreezeLimitLeanStorage with less and
// less of lockstep on the manager's side: `wire`, only the wire clients
// (bareLayout); `tls`, nothing of lockstep's on either side, TLS
// connections carrying the bytes of a freeze (rawLayout). The ratio each
// gives is the floor under lockstep's on this machine: what the traffic
// of a freeze of 32 costs the 2 cores, whoever sends it.
func BenchmarkFreezeLimitFloor(b *testing.B) {
	const oneWay = time.Millisecond
	ca, err := wire.NewSelfSigned(time.Now(), time.Hour, "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("wire", func(b *testing.B) {
		var one, many *bareLayout
		pprof.Do(context.Background(), pprof.Labels("side", "manager"), func(context.Context) {
			one, many = setupBare(b, ca, "A", 1, oneWay), setupBare(b, ca, "B", 32, oneWay)
		})
		got, lost := alternate(b, one, many)
		reportRatio(b, got[0], got[1], lost)
		reportLean(b, "32sys", got[1])
	})
	b.Run("tls", func(b *testing.B) {
		got, lost := alternate(b, setupRaw(b, ca, "A", 1, oneWay), setupRaw(b, ca, "B", 32, oneWay))
		reportRatio(b, got[0], got[1], lost)
		reportLean(b, "32sys", got[1])
	})
}

// BenchmarkLoopbackSkewFloor sets the skew of EventToFrozen's loopback
// layout against its floor: 32 lean systems × 16 LSS over loopback TLS
// with no added latency, frozen by lockstep (core and direct drivers,
// `*-lockstep`), by the bare wire clients (`*-wire`), and by raw TLS
// (`*-tls`: nothing of lockstep's on either side), samples alternating.
// The emulator is out of all three; what the floors' skew leaves of the
// target is all lockstep could win here.
func BenchmarkLoopbackSkewFloor(b *testing.B) { skewFloor(b, 200, 0) }

// BenchmarkLoopbackSkewFloorIdle is LoopbackSkewFloor with 250 ms of
// idleness before each sample, as EventToFrozen's blackhole=false-idle:
// a failure comes to an idle process, whose threads are asleep. What the
// wake-up costs raw TLS is no lockstep's.
func BenchmarkLoopbackSkewFloorIdle(b *testing.B) { skewFloor(b, 60, 250*time.Millisecond) }

// skewFloor takes samples rounds of the skew floor's three layouts,
// alternated, each sample after idle of idleness.
func skewFloor(b *testing.B, samples int, idle time.Duration) {
	ca, err := wire.NewSelfSigned(time.Now(), time.Hour, "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	lean := setupLean(b, ca, "L", 32, 0)
	var bare *bareLayout
	pprof.Do(context.Background(), pprof.Labels("side", "manager"), func(context.Context) {
		bare = setupBare(b, ca, "F", 32, 0)
	})
	got, lost := alternateIdle(b, samples, idle, lean, bare, setupRaw(b, ca, "R", 32, 0))
	b.ReportMetric(float64(lost), "lost-samples")
	for i, name := range []string{"lockstep", "wire", "tls"} {
		latency.Report(b, "freeze-"+name, part(got[i], func(s sample) time.Duration { return s.latency }))
		reportLean(b, name, got[i])
	}
}
