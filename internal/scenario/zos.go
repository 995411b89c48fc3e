package scenario

import (
	"context"
	"fmt"
	"sync"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/compose"
	"github.com/lockstep-io/lockstep/internal/emu"
)

// zosLink is the link name of the in-process z/OS host's path to a
// system (its channels): the emulator keeps link state per name, so the
// manager's own connection faults leave it alone, as a z/OS host's
// channels are not the manager's TCP/IP.
const zosLink = "zos:" + labZOSHost

// zosHost is the in-process z/OS host of a random schedule: it has every
// system online; it can die (every channel with it) or lose its channel
// to one system.
type zosHost struct {
	fab *emu.Fabric

	mu          sync.Mutex
	down        bool
	channelDown map[hal.Serial]bool
}

func (h *zosHost) apply(serial hal.Serial) {
	mode := emu.LinkUp
	if h.down || h.channelDown[serial] {
		mode = emu.LinkDown
	}
	h.fab.System(serial).SetManagerLink(zosLink, mode)
}

// setDown kills or restores the host: every system's channel path with it.
func (h *zosHost) setDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = down
	for _, s := range h.fab.Systems() {
		h.apply(s.Serial())
	}
}

// setChannel fails or restores the host's channel to one system.
func (h *zosHost) setChannel(serial hal.Serial, up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.channelDown[serial] = !up
	h.apply(serial)
}

func (h *zosHost) reaches(serial hal.Serial) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.down && !h.channelDown[serial]
}

// zosRoute is a system through the in-process z/OS host, as a
// hal.Driver for hal/compose: no heartbeat capability (the Metro Mirror
// heartbeat does not work through z/OS), commands in-band over the
// host's channel.
type zosRoute struct {
	hal.StorageSystem
	h      *zosHost
	serial hal.Serial
}

func (r zosRoute) Capabilities() hal.Capabilities { return hal.Capabilities{} }

func (r zosRoute) noHeartbeat() error {
	return fmt.Errorf("%s through z/OS host %s: %w", r.serial, labZOSHost, hal.ErrUnsupported)
}

func (r zosRoute) EnableHeartbeat(context.Context, hal.Epoch, hal.HeartbeatSpec) error {
	return r.noHeartbeat()
}
func (r zosRoute) Heartbeat(context.Context, hal.Epoch, string) error        { return r.noHeartbeat() }
func (r zosRoute) DisableHeartbeat(context.Context, hal.Epoch, string) error { return r.noHeartbeat() }

func (r zosRoute) Via() string {
	if r.h.reaches(r.serial) {
		return "z/OS host " + labZOSHost
	}
	return ""
}

func (r zosRoute) Close() error { return nil }

// inProcess is a system's own in-process connection as a hal.Driver.
type inProcess struct{ hal.StorageSystem }

func (inProcess) Via() string  { return "in-process" }
func (inProcess) Close() error { return nil }

// withZOS composes every system of conns with a route through an
// in-process z/OS host that has them all online: the manager's own
// connection first (heartbeat), the z/OS host after it.
func (l *lab) withZOS(conns map[hal.Serial]hal.StorageSystem) (map[hal.Serial]hal.StorageSystem, error) {
	l.zos = &zosHost{fab: l.fab, channelDown: map[hal.Serial]bool{}}
	out := map[hal.Serial]hal.StorageSystem{}
	for serial, c := range conns {
		first, ok := c.(hal.Driver)
		if !ok {
			first = inProcess{c}
		}
		route := zosRoute{StorageSystem: l.fab.System(serial).Connect(zosLink), h: l.zos, serial: serial}
		d, err := compose.New(serial, []hal.Driver{first, route}, []string{"tcp/ip", "zos " + labZOSHost}, compose.WithClock(l.clk))
		if err != nil {
			return nil, err
		}
		out[serial] = d
	}
	l.logf("every system also online to z/OS host %s (sysplex %s), reached in-band after the TCP/IP connection", labZOSHost, labSysplex)
	return out, nil
}
