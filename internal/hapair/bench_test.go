package hapair

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/latency"
)

// BenchmarkTakeover measures docs/performance.md's "takeover → new active
// heartbeating every storage system": from the moment lockstepctl ha
// takeover is sent to the standby until every primary storage system has
// accepted a heartbeat (or its arming) carrying the new epoch, read from
// the lab's command log. The servers take over from each other in turn,
// each time with the other synchronized as its standby.
//
//	go test -run '^$' -bench Takeover -benchtime 1x ./internal/hapair/
func BenchmarkTakeover(b *testing.B) {
	ctx := context.Background()
	rounds := envInt("LOCKSTEP_HA_TAKEOVERS", 12)
	p, err := New(ctx, Options{Bin: bin, Dir: b.TempDir(), Primaries: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for _, n := range []*Node{p.A, p.B} {
		if err := n.Start(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.DefineSession(ctx, p.A, true); err != nil {
		b.Fatal(err)
	}
	if err := p.Pair(ctx); err != nil {
		b.Fatal(err)
	}
	primaries := map[hal.Serial]bool{}
	for _, pr := range p.Lab.Topology().Pairs {
		primaries[pr.Source.Serial] = true
	}
	var samples []time.Duration
	for range b.N {
		for range rounds {
			_, standby := roles(ctx, p)
			var seq uint64
			if recs, _ := p.Lab.Fabric().Commands(0); len(recs) > 0 {
				seq = recs[len(recs)-1].Seq
			}
			start := time.Now()
			doc, err := standby.Client().HATakeover(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := waitHeartbeats(ctx, p, seq, doc.Epoch, primaries); err != nil {
				b.Fatal(err)
			}
			samples = append(samples, time.Since(start))
			if err := converge(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("takeover -> new active heartbeating all %d primaries (%d takeovers)", len(primaries), len(samples))
	latency.Report(b, "takeover", samples)
}

// waitHeartbeats polls the command log (every millisecond) until every
// primary has accepted a heartbeat or an arming of epoch.
func waitHeartbeats(ctx context.Context, p *Pair, after uint64, epoch hal.Epoch, primaries map[hal.Serial]bool) error {
	seen := map[hal.Serial]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < len(primaries) {
		recs, _ := p.Lab.Fabric().Commands(after)
		for _, r := range recs {
			after = r.Seq
			if r.Epoch == epoch && r.Outcome == emu.OutcomeOK && primaries[r.Serial] &&
				(r.Op == emu.OpHeartbeat || r.Op == emu.OpEnableHeartbeat) {
				seen[r.Serial] = true
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 10 s only %d of %d primaries heartbeat with epoch %d", len(seen), len(primaries), epoch)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}
