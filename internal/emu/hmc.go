package emu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// The default timing of an emulated HMC: what it adds to
// every command it relays, and the one-way latency of its private link to
// each attached storage system. A relayed command thus costs
// DefaultHMCProcessing + 2 × DefaultHMCLinkLatency more than a direct one,
// 400 µs; a relayed event DefaultHMCProcessing + DefaultHMCLinkLatency.
const (
	DefaultHMCProcessing  = 200 * time.Microsecond
	DefaultHMCLinkLatency = 100 * time.Microsecond
)

// ErrHMC reports an HMC that cannot be built as asked.
var ErrHMC = errors.New("emu: bad HMC")

// HMCConfig describes an emulated HMC: a management console that holds a
// private link to each of its attached storage systems and relays
// managers' commands over it.
type HMCConfig struct {
	Name    string
	Systems []hal.Serial // the attached storage systems, already in the fabric
	// Processing is added to every command and event the HMC relays;
	// LinkLatency to each crossing of a private link (one way). Zero is
	// none: the lab file applies the defaults above.
	Processing  time.Duration
	LinkLatency time.Duration
}

// HMC is an emulated hardware management console. Its own faults (down,
// black-holed, slow) and those of its private links to single systems are
// independent of the systems' direct endpoints: a system whose HMC is
// down keeps serving I/O and its direct connections.
type HMC struct {
	name        string
	clock       clock.Clock
	processing  time.Duration
	linkLatency time.Duration
	systems     []*System

	mu      sync.Mutex
	mode    LinkMode
	latency time.Duration // injected on top of processing
	held    int           // commands swallowed while black-holed
}

// NewHMC attaches an HMC to systems of f.
func NewHMC(f *Fabric, cfg HMCConfig) (*HMC, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("%w: no name", ErrHMC)
	}
	if cfg.Processing < 0 || cfg.LinkLatency < 0 {
		return nil, fmt.Errorf("%w: %s: negative timing", ErrHMC, cfg.Name)
	}
	h := &HMC{name: cfg.Name, clock: f.clock, processing: cfg.Processing, linkLatency: cfg.LinkLatency}
	for _, serial := range cfg.Systems {
		s := f.System(serial)
		if s == nil {
			return nil, fmt.Errorf("%w: %s: no storage system %s", ErrHMC, cfg.Name, serial)
		}
		if slices.Contains(h.systems, s) {
			return nil, fmt.Errorf("%w: %s: %s attached twice", ErrHMC, cfg.Name, serial)
		}
		h.systems = append(h.systems, s)
	}
	return h, nil
}

// Name is the HMC's name.
func (h *HMC) Name() string { return h.name }

// Systems are the serials of the attached storage systems, in the order
// configured.
func (h *HMC) Systems() []hal.Serial {
	out := make([]hal.Serial, len(h.systems))
	for i, s := range h.systems {
		out[i] = s.serial
	}
	return out
}

// linkName is the HMC's private link in each attached system's link
// table. A NUL cannot appear in a manager name a lab operator types, so
// it names no manager's own link.
func (h *HMC) linkName() string { return "\x00hmc:" + h.name }

func (h *HMC) system(serial hal.Serial) *System {
	for _, s := range h.systems {
		if s.serial == serial {
			return s
		}
	}
	return nil
}

// SetMode sets the HMC's own state: up, down (every command refused at
// once, no events) or black-holed (commands hang until their deadline, no
// events).
func (h *HMC) SetMode(m LinkMode) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mode = m
}

// Mode is the HMC's own state.
func (h *HMC) Mode() LinkMode {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mode
}

// SetLatency adds d to every command the HMC relays.
func (h *HMC) SetLatency(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latency = d
}

// Latency is what SetLatency last set.
func (h *HMC) Latency() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.latency
}

// SetLink takes the private link to one attached system down or up.
// While it is down, commands for that system are answered
// hal.ErrUnreachable and its events are lost for this HMC.
func (h *HMC) SetLink(serial hal.Serial, up bool) error {
	mode := LinkDown
	if up {
		mode = LinkUp
	}
	return h.SetLinkMode(serial, mode)
}

// SetLinkMode sets the private link to one attached system up, down
// (SetLink) or black-holed: the HMC, which does not know, relays that
// system's commands, and they hang until their deadline (hal.ErrTimeout);
// its events are lost for this HMC. The HMC itself answers as before,
// pings included: only the commands for that system tell.
func (h *HMC) SetLinkMode(serial hal.Serial, mode LinkMode) error {
	s := h.system(serial)
	if s == nil {
		return fmt.Errorf("%w: %s does not front %s", ErrHMC, h.name, serial)
	}
	s.SetManagerLink(h.linkName(), mode)
	return nil
}

// HMCLink is the HMC's view of one attached system.
type HMCLink struct {
	Serial hal.Serial
	// Up: the private link is not down and the system is not crashed
	// (a black-holed link looks up to the HMC).
	Up bool
	// Mode is what the lab made of the private link (SetLinkMode), which
	// the HMC does not know of a black hole.
	Mode LinkMode
}

// Links lists the attached systems and whether the HMC reaches each.
func (h *HMC) Links() []HMCLink {
	out := make([]HMCLink, 0, len(h.systems))
	for _, s := range h.systems {
		up, mode := h.link(s)
		out = append(out, HMCLink{Serial: s.serial, Up: up, Mode: mode})
	}
	return out
}

func (h *HMC) linkUp(s *System) bool {
	up, _ := h.link(s)
	return up
}

// link is whether the HMC reaches s as far as it knows, and the private
// link's mode.
func (h *HMC) link(s *System) (up bool, mode LinkMode) {
	s.fabric.mu.Lock()
	defer s.fabric.mu.Unlock()
	mode = s.managerLocked(h.linkName()).mode
	return !s.crashed && mode != LinkDown, mode
}

// sleep waits d on the HMC's clock; a deadline that passes first is a
// timeout (the command may or may not have run).
func (h *HMC) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if err := clock.Sleep(ctx, h.clock, d); err != nil {
		return fmt.Errorf("%w: HMC %s: %w", hal.ErrTimeout, h.name, err)
	}
	return nil
}

// RegisterTrapReceiver makes the HMC send the suspend and heartbeat
// expiry events of its attached systems to r as SNMPv2c traps until ctx
// ends, as a real HMC sends its storage systems' Copy Services traps:
// from the HMC's own address (r.LocalAddr), at most one suspend trap per
// LSS per TrapInterval, and only what it hears (while it is up and its
// private link to the system is). r.Manager only names the receiver.
func (h *HMC) RegisterTrapReceiver(ctx context.Context, r TrapReceiver) error {
	return registerTraps(ctx, r, h.clock.Now(), func(name string) (<-chan hal.Event, error) {
		return h.Connect(name).Events(ctx)
	})
}

// HMCSession is one manager's connection to an HMC.
type HMCSession struct {
	h       *HMC
	manager string
}

// Held counts the commands the HMC has swallowed while black-holed: a
// test waits on it to know a command is in flight, not on a wall clock.
func (h *HMC) Held() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// Connect opens a session of the named manager. Commands it relays are
// recorded under the manager's name in the fabric's command log.
func (h *HMC) Connect(manager string) *HMCSession {
	return &HMCSession{h: h, manager: manager}
}

// Route is the storage system serial as the manager sees it through the
// HMC: each command crosses the HMC (its processing time) and the private
// link both ways. An error wrapping hal.ErrUnreachable says the HMC does
// not front serial.
func (s *HMCSession) Route(serial hal.Serial) (hal.StorageSystem, error) {
	sys := s.h.system(serial)
	if sys == nil {
		return nil, fmt.Errorf("%w: HMC %s does not front %q", hal.ErrUnreachable, s.h.name, serial)
	}
	return &hmcRelay{h: s.h, sys: sys, c: &conn{s: sys, manager: s.manager, link: s.h.linkName()}}, nil
}

// Events forwards the events of every attached system whose private link
// is up, while the HMC is up, each after the HMC's processing and the
// link's latency. The channel is closed when ctx ends.
func (s *HMCSession) Events(ctx context.Context) (<-chan hal.Event, error) {
	h := s.h
	out := make(chan hal.Event, 1024)
	var wg sync.WaitGroup
	for _, sys := range h.systems {
		in, err := (&conn{s: sys, manager: s.manager, link: h.linkName()}).Events(ctx)
		if err != nil {
			return nil, err
		}
		wg.Go(func() {
			for ev := range in {
				if h.Mode() != LinkUp {
					continue // a dead or black-holed HMC forwards nothing
				}
				if h.sleep(ctx, h.linkLatency+h.processing) != nil {
					return
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out, nil
}

// hmcRelay is one attached system behind an HMC.
type hmcRelay struct {
	h   *HMC
	sys *System
	c   *conn
}

var _ hal.StorageSystem = (*hmcRelay)(nil)

func (r *hmcRelay) Serial() hal.Serial             { return r.sys.serial }
func (r *hmcRelay) Capabilities() hal.Capabilities { return hal.Capabilities{Heartbeat: true} }

// do relays one command: the HMC's own state, its processing time, then
// the private link there and back. A command the HMC cannot deliver did
// not run (hal.ErrUnreachable); one whose answer is lost on the way back
// may have (hal.ErrTimeout).
func (r *hmcRelay) do(ctx context.Context, fn func(ctx context.Context) error) error {
	h := r.h
	h.mu.Lock()
	mode, extra := h.mode, h.latency
	if mode == LinkBlackhole {
		h.held++
	}
	h.mu.Unlock()
	switch mode {
	case LinkDown:
		return fmt.Errorf("%w: HMC %s is down", hal.ErrUnreachable, h.name)
	case LinkBlackhole:
		<-ctx.Done()
		return fmt.Errorf("%w: HMC %s: no answer: %w", hal.ErrTimeout, h.name, ctx.Err())
	}
	// One wait for the processing and the way out: timers on a loaded
	// machine overshoot, and each wait would add its own overshoot.
	if err := h.sleep(ctx, extra+h.processing+h.linkLatency); err != nil {
		return err
	}
	if h.Mode() != LinkUp { // it died or went silent while it worked: the command goes no further
		return fmt.Errorf("%w: HMC %s stopped before relaying the command", hal.ErrUnreachable, h.name)
	}
	if !h.linkUp(r.sys) {
		return fmt.Errorf("%w: HMC %s: no connection to %s over its private network", hal.ErrUnreachable, h.name, r.sys.serial)
	}
	err := fn(ctx)
	if werr := h.sleep(ctx, h.linkLatency); werr != nil && err == nil {
		return werr
	}
	return err
}

func (r *hmcRelay) EstablishPaths(ctx context.Context, e hal.Epoch, p []hal.PathSpec) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.EstablishPaths(ctx, e, p) })
}

func (r *hmcRelay) EstablishPairs(ctx context.Context, e hal.Epoch, p []hal.PairSpec) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.EstablishPairs(ctx, e, p) })
}

func (r *hmcRelay) Freeze(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.Freeze(ctx, e, p) })
}

func (r *hmcRelay) Thaw(ctx context.Context, e hal.Epoch, l []hal.LSS) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.Thaw(ctx, e, l) })
}

func (r *hmcRelay) Suspend(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.Suspend(ctx, e, p) })
}

func (r *hmcRelay) Recover(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.Recover(ctx, e, p) })
}

func (r *hmcRelay) Failback(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.Failback(ctx, e, p) })
}

func (r *hmcRelay) RemovePairs(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.RemovePairs(ctx, e, p) })
}

func (r *hmcRelay) RemovePaths(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.RemovePaths(ctx, e, p) })
}

func (r *hmcRelay) EnableHeartbeat(ctx context.Context, e hal.Epoch, hb hal.HeartbeatSpec) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.EnableHeartbeat(ctx, e, hb) })
}

func (r *hmcRelay) Heartbeat(ctx context.Context, e hal.Epoch, session string) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.Heartbeat(ctx, e, session) })
}

func (r *hmcRelay) DisableHeartbeat(ctx context.Context, e hal.Epoch, session string) error {
	return r.do(ctx, func(ctx context.Context) error { return r.c.DisableHeartbeat(ctx, e, session) })
}

func (r *hmcRelay) QueryPairs(ctx context.Context, e hal.Epoch) (out []hal.PairStatus, err error) {
	err = r.do(ctx, func(ctx context.Context) error {
		out, err = r.c.QueryPairs(ctx, e)
		return err
	})
	return out, err
}

func (r *hmcRelay) QueryPaths(ctx context.Context, e hal.Epoch) (out []hal.PathStatus, err error) {
	err = r.do(ctx, func(ctx context.Context) error {
		out, err = r.c.QueryPaths(ctx, e)
		return err
	})
	return out, err
}

func (r *hmcRelay) QueryLSSs(ctx context.Context, e hal.Epoch) (out []hal.LSSStatus, err error) {
	err = r.do(ctx, func(ctx context.Context) error {
		out, err = r.c.QueryLSSs(ctx, e)
		return err
	})
	return out, err
}

// Events are the system's own, through the HMC.
func (r *hmcRelay) Events(ctx context.Context) (<-chan hal.Event, error) {
	in, err := r.c.Events(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan hal.Event, 64)
	go func() {
		defer close(out)
		for ev := range in {
			if r.h.Mode() != LinkUp || r.h.sleep(ctx, r.h.linkLatency+r.h.processing) != nil {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
