package direct_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/latency"
)

// wideLab is one primary with 64 LSSs (one volume each) mirrored to a
// secondary, served over loopback TLS.
func wideLab(b *testing.B) (*lab.Server, []hal.LSSPair) {
	var sb strings.Builder
	for _, serial := range []string{"LAB.2107-75P0001", "LAB.2107-75S0001"} {
		fmt.Fprintf(&sb, "[[system]]\nserial = %q\nuser = \"lockstep\"\npassword = \"pw-%s\"\n"+
			"endpoints = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\n", serial, serial)
		for l := range 64 {
			fmt.Fprintf(&sb, "  [[system.lss]]\n  id = \"%02X\"\n  type = \"FB\"\n  volumes = 1\n", l)
		}
	}
	sb.WriteString("[[mirror]]\nsource = \"LAB.2107-75P0001\"\ntarget = \"LAB.2107-75S0001\"\n")
	cfg, err := lab.ParseConfig(sb.String())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := lab.Start(ctx, cfg, lab.Options{ControlSocket: b.TempDir() + "/lab.sock"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); srv.Wait() })
	var pairs []hal.LSSPair
	for _, p := range cfg.Topology.Paths {
		pairs = append(pairs, p.LSSPair)
	}
	return srv, pairs
}

// BenchmarkHeartbeatRoundTrip: one heartbeat refresh over loopback TLS,
// command to answer.
func BenchmarkHeartbeatRoundTrip(b *testing.B) {
	srv, pairs := wideLab(b)
	d := driverFor(b, srv, "LAB.2107-75P0001", nil)
	defer d.Close()
	ctx := context.Background()
	if err := d.EnableHeartbeat(ctx, 1, hal.HeartbeatSpec{Session: "bench", Timeout: time.Hour, Pairs: pairs}); err != nil {
		b.Fatal(err)
	}
	var samples []time.Duration
	for b.Loop() {
		for range 5000 { // percentiles need samples, whatever b.N is
			start := time.Now()
			if err := d.Heartbeat(ctx, 1, "bench"); err != nil {
				b.Fatal(err)
			}
			samples = append(samples, time.Since(start))
		}
	}
	latency.Report(b, "heartbeat", samples)
}

// BenchmarkFreeze64: a freeze of 64 LSS pairs on one storage system over
// loopback TLS, command to answer; the pairs are re-established (not
// timed) before every freeze so that each one suspends 64 full-duplex
// pairs.
func BenchmarkFreeze64(b *testing.B) {
	srv, pairs := wideLab(b)
	p := driverFor(b, srv, "LAB.2107-75P0001", nil)
	defer p.Close()
	ctx := context.Background()
	var lsss []hal.LSS
	var specs []hal.PairSpec
	var paths []hal.PathSpec
	for _, lp := range pairs {
		lsss = append(lsss, lp.Source.LSS)
		paths = append(paths, hal.PathSpec{LSSPair: lp, ConsistencyGroup: true})
		v := hal.NewVolume(lp.Source.LSS, 0)
		specs = append(specs, hal.PairSpec{VolumePair: hal.VolumePair{
			Source: hal.VolumeRef{Serial: lp.Source.Serial, Volume: v},
			Target: hal.VolumeRef{Serial: lp.Target.Serial, Volume: v}}})
	}
	if err := p.EstablishPaths(ctx, 1, paths); err != nil {
		b.Fatal(err)
	}
	if err := p.EstablishPairs(ctx, 1, specs); err != nil {
		b.Fatal(err)
	}
	for i := range specs {
		specs[i].Mode = hal.Resync
	}
	waitDuplex := func() {
		for {
			ps, err := p.QueryPairs(ctx, 1)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for _, s := range ps {
				if s.State == hal.FullDuplex {
					n++
				}
			}
			if n == len(specs) {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitDuplex()
	var samples []time.Duration
	for b.Loop() {
		for range 500 { // percentiles need samples, whatever b.N is
			freeze64Once(b, ctx, p, pairs, lsss, paths, specs, waitDuplex, &samples)
		}
	}
	latency.Report(b, "freeze64", samples)
}

func freeze64Once(b *testing.B, ctx context.Context, p *direct.System, pairs []hal.LSSPair, lsss []hal.LSS,
	paths []hal.PathSpec, specs []hal.PairSpec, waitDuplex func(), samples *[]time.Duration) {
	{
		start := time.Now()
		if err := p.Freeze(ctx, 1, pairs); err != nil {
			b.Fatal(err)
		}
		*samples = append(*samples, time.Since(start))
		b.StopTimer()
		if err := p.Thaw(ctx, 1, lsss); err != nil {
			b.Fatal(err)
		}
		if err := p.EstablishPaths(ctx, 1, paths); err != nil {
			b.Fatal(err)
		}
		if err := p.EstablishPairs(ctx, 1, specs); err != nil {
			b.Fatal(err)
		}
		waitDuplex()
		b.StartTimer()
	}
}
