package emu_test

import (
	"context"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
	"github.com/lockstep-io/lockstep/internal/workload"
)

// BenchmarkDependentWrites drives 100 000 dependent, mirrored writes
// across 4 primaries and 4 secondaries (16 chains, consecutive writes on
// different primaries) and reports the rate and the wall time of a run.
func BenchmarkDependentWrites(b *testing.B) {
	const chains, total = 16, 100_000
	topo := topology.Standard(4, topology.DefaultLSSs())
	for b.Loop() {
		b.StopTimer()
		fab := emu.NewFabric(emu.Options{})
		if err := topo.Build(fab); err != nil {
			b.Fatal(err)
		}
		conns := map[hal.Serial]hal.StorageSystem{}
		for _, s := range fab.Systems() {
			conns[s.Serial()] = s.Connect("bench")
		}
		ctx := context.Background()
		if err := topo.Establish(ctx, clock.Real(), conns, 1, time.Minute); err != nil {
			b.Fatal(err)
		}
		layout, err := workload.NewLayout(topo.Pairs, chains, 8)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		run := workload.Start(ctx, fab, layout, workload.Options{MaxSeq: total / chains})
		<-run.Done()
		elapsed := time.Since(start)
		b.StopTimer()
		st := run.Status()
		if st.Writes != total {
			b.Fatalf("%d writes acknowledged, want %d", st.Writes, total)
		}
		var mirrored uint64
		for _, s := range fab.Systems() {
			mirrored += s.Stats().MirroredWrites
		}
		if mirrored != total {
			b.Fatalf("%d writes mirrored, want %d", mirrored, total)
		}
		b.ReportMetric(float64(total)/elapsed.Seconds(), "writes/s")
		b.ReportMetric(elapsed.Seconds(), "s/100k-writes")
		b.StartTimer()
	}
}
