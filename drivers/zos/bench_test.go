package zos_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/haltest"
	"github.com/lockstep-io/lockstep/internal/latency"
)

// arrivals stamps every suspend event of a driver with the wall time it
// reached the subscriber.
func arrivals(ctx context.Context, b *testing.B, sys hal.StorageSystem) <-chan time.Time {
	events, err := sys.Events(ctx)
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan time.Time, 1024)
	go func() {
		for ev := range events {
			if ev.Kind == hal.EventSuspend && ev.Reason == hal.ReasonPath {
				out <- time.Now()
			}
		}
	}()
	return out
}

// BenchmarkSuspendSeen: one path failure of the primary, heard by the same
// manager pushed on its direct connection and as a z/OS state-change
// message (IEA494I pair suspended) through the emulated host, both over
// loopback TLS. Each figure is the wall time from the fault to the
// hal.EventSuspend reaching the subscriber; the pairs are re-established
// (not timed) between two faults.
//
//	go test -run XXX -bench SuspendSeen ./drivers/zos/
func BenchmarkSuspendSeen(b *testing.B) {
	srv := startLab(b)
	fab := srv.Fabric()
	z := driverFor(b, srv, haltest.Primary, nil)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CAPEM())
	dopt := direct.Options{Serial: haltest.Primary, Manager: "bench", User: "lockstep",
		Password: "pw-" + string(haltest.Primary), TLS: wire.ClientTLSConfig(roots, "127.0.0.1")}
	for _, st := range srv.Status() {
		if st.Serial == string(haltest.Primary) {
			dopt.Endpoints = st.Endpoints
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	d := direct.New(ctx, dopt)
	b.Cleanup(func() { d.Close() })
	viaDirect, viaZOS := arrivals(ctx, b, d), arrivals(ctx, b, z)

	lp := haltest.LSSPair(haltest.FBLSS)
	vp := haltest.Pair(haltest.FBLSS, 0)
	if err := d.EstablishPaths(ctx, 1, []hal.PathSpec{{LSSPair: lp}}); err != nil {
		b.Fatal(err)
	}
	if err := d.EstablishPairs(ctx, 1, []hal.PairSpec{{VolumePair: vp}}); err != nil {
		b.Fatal(err)
	}
	waitDuplex := func() {
		for {
			ps, err := d.QueryPairs(ctx, 1)
			if err != nil {
				b.Fatal(err)
			}
			if len(ps) > 0 && ps[0].State == hal.FullDuplex {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	waitDuplex()
	if _, err := z.QueryPairs(ctx, 1); err != nil { // the z/OS connection is up
		b.Fatal(err)
	}
	guard := func(ch <-chan time.Time) time.Time {
		select {
		case at := <-ch:
			return at
		case <-time.After(10 * time.Second):
			b.Fatal("no suspend event")
		}
		return time.Time{}
	}
	var direct, zos []time.Duration
	for b.Loop() {
		for range 200 {
			start := time.Now()
			fab.SetSystemPaths(haltest.Primary, false)
			direct = append(direct, guard(viaDirect).Sub(start))
			zos = append(zos, guard(viaZOS).Sub(start))
			fab.SetSystemPaths(haltest.Primary, true)
			if err := d.EstablishPaths(ctx, 1, []hal.PathSpec{{LSSPair: lp}}); err != nil {
				b.Fatal(err)
			}
			if err := d.EstablishPairs(ctx, 1, []hal.PairSpec{{VolumePair: vp, Mode: hal.Resync}}); err != nil {
				b.Fatal(err)
			}
			waitDuplex()
		}
	}
	latency.Report(b, "direct", direct)
	latency.Report(b, "zos", zos)
}
