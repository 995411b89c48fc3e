package lab

import (
	"context"
	"net"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/netdelay"
)

// gatedConn drops what the lab writes to a black-holed manager: its
// requests time out and its events vanish, as on a cut cable that still
// shows a link. What it does write waits out the endpoint's latency.
type gatedConn struct {
	*netdelay.Conn
	ep *endpoint
	sc *servedConn
}

func newGatedConn(conn net.Conn, ep *endpoint, sc *servedConn) *gatedConn {
	return &gatedConn{ep: ep, sc: sc, Conn: netdelay.NewConn(conn, ep.server.clock, func() time.Duration {
		ep.mu.Lock()
		defer ep.mu.Unlock()
		return ep.latency
	})}
}

func (c *gatedConn) Write(b []byte) (int, error) {
	c.ep.mu.Lock()
	manager := c.sc.manager
	c.ep.mu.Unlock()
	if c.ep.modeFor(manager) == emu.LinkBlackhole {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (g *gatedSystem) EstablishPaths(ctx context.Context, e hal.Epoch, p []hal.PathSpec) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.EstablishPaths(ctx, e, p)
}

func (g *gatedSystem) EstablishPairs(ctx context.Context, e hal.Epoch, p []hal.PairSpec) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.EstablishPairs(ctx, e, p)
}

func (g *gatedSystem) Freeze(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.Freeze(ctx, e, p)
}

func (g *gatedSystem) Thaw(ctx context.Context, e hal.Epoch, l []hal.LSS) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.Thaw(ctx, e, l)
}

func (g *gatedSystem) Suspend(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.Suspend(ctx, e, p)
}

func (g *gatedSystem) Recover(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.Recover(ctx, e, p)
}

func (g *gatedSystem) Failback(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.Failback(ctx, e, p)
}

func (g *gatedSystem) RemovePairs(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.RemovePairs(ctx, e, p)
}

func (g *gatedSystem) RemovePaths(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.RemovePaths(ctx, e, p)
}

func (g *gatedSystem) EnableHeartbeat(ctx context.Context, e hal.Epoch, hb hal.HeartbeatSpec) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.EnableHeartbeat(ctx, e, hb)
}

func (g *gatedSystem) Heartbeat(ctx context.Context, e hal.Epoch, session string) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.Heartbeat(ctx, e, session)
}

func (g *gatedSystem) DisableHeartbeat(ctx context.Context, e hal.Epoch, session string) error {
	if err := g.gate(ctx); err != nil {
		return err
	}
	return g.StorageSystem.DisableHeartbeat(ctx, e, session)
}

func (g *gatedSystem) QueryPairs(ctx context.Context, e hal.Epoch) ([]hal.PairStatus, error) {
	if err := g.gate(ctx); err != nil {
		return nil, err
	}
	return g.StorageSystem.QueryPairs(ctx, e)
}

func (g *gatedSystem) QueryPaths(ctx context.Context, e hal.Epoch) ([]hal.PathStatus, error) {
	if err := g.gate(ctx); err != nil {
		return nil, err
	}
	return g.StorageSystem.QueryPaths(ctx, e)
}

func (g *gatedSystem) QueryLSSs(ctx context.Context, e hal.Epoch) ([]hal.LSSStatus, error) {
	if err := g.gate(ctx); err != nil {
		return nil, err
	}
	return g.StorageSystem.QueryLSSs(ctx, e)
}
