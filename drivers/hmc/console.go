package hmc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
)

// Shared is an HMC connection as the daemon holds it (a hal.Console):
// one Conn, shared by the Driver of every storage system it fronts.
type Shared struct {
	conn    *Conn
	changed func()
	stop    func() bool

	mu      sync.Mutex
	drivers map[*Driver]struct{}
}

var _ hal.Console = (*Shared)(nil)

// OpenConsole is the hal.ConsoleFactory of HMC connections. spec.Name
// is the connection's name, spec.Addresses its one or two HMCs. Trust:
// each HMC's certificate must be signed by spec.Roots (the storage CA,
// never the system roots) and valid for the host it is dialled at; a
// single HMC must also be named spec.Name in it (urn:lockstep:hmc:NAME),
// or match spec.Pin. The two HMCs of a dual connection are defined by
// address alone (as CSM's "HMC1;HMC2"): each carries a name of its own,
// which its certificate proves and `hmc show` shows.
func OpenConsole(ctx context.Context, spec hal.ConsoleSpec) (hal.Console, error) {
	if spec.Roots == nil {
		return nil, fmt.Errorf("%s: %w", spec.Name, ErrNoCA)
	}
	var consoles []Console
	for _, a := range spec.Addresses {
		consoles = append(consoles, Console{Addr: a})
	}
	if len(consoles) == 1 {
		consoles[0].Name, consoles[0].Pin = spec.Name, spec.Pin
	}
	s := &Shared{changed: spec.Changed, drivers: map[*Driver]struct{}{}}
	if s.changed == nil {
		s.changed = func() {}
	}
	conn, err := New(Options{Consoles: consoles, Manager: spec.Manager, User: spec.User, Password: spec.Password,
		TLS: wire.ClientTLSConfig(spec.Roots, ""), Clock: spec.Clock, Logger: spec.Logger, KeepAlive: spec.KeepAlive,
		StateChanged: func(int, bool, string) { s.stateChanged() }})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.Name, err)
	}
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	s.stop = context.AfterFunc(ctx, func() { _ = conn.Close() })
	return s, nil
}

// Conn is the connection under the console.
func (s *Shared) Conn() *Conn { return s.conn }

// Close closes the connection; every Driver it handed out then answers
// hal.ErrUnreachable.
func (s *Shared) Close() error {
	s.stop()
	return s.conn.Close()
}

// Attached is every system some HMC of the connection said it fronts.
func (s *Shared) Attached() []hal.Serial { return s.conn.Attached() }

// Endpoints report each HMC.
func (s *Shared) Endpoints() []hal.ConsoleEndpoint {
	var out []hal.ConsoleEndpoint
	for _, st := range s.conn.Consoles() {
		e := hal.ConsoleEndpoint{Addr: st.Addr, Name: st.Name, Up: st.Up, Attached: st.Attached}
		if st.Err != nil && !st.Up {
			e.Detail = st.Err.Error()
		}
		if !st.Up && e.Detail == "" {
			e.Detail = "not connected yet"
		}
		out = append(out, e)
	}
	return out
}

// Driver is serial through the connection's HMCs.
func (s *Shared) Driver(serial hal.Serial, reach func(up, timeout bool, detail string)) hal.Driver {
	d := &Driver{System: s.conn.System(serial), s: s, reach: reach}
	s.mu.Lock()
	s.drivers[d] = struct{}{}
	s.mu.Unlock()
	d.update(s.conn.Consoles())
	return d
}

// stateChanged follows an HMC connecting or disconnecting: each system's
// reachability, and the daemon (what the HMCs front may have changed).
func (s *Shared) stateChanged() {
	s.mu.Lock()
	conn := s.conn // nil while New has not returned: no driver yet
	s.mu.Unlock()
	if conn == nil {
		s.changed()
		return
	}
	st := conn.Consoles()
	s.mu.Lock()
	ds := make([]*Driver, 0, len(s.drivers))
	for d := range s.drivers {
		ds = append(ds, d)
	}
	s.mu.Unlock()
	for _, d := range ds {
		d.update(st)
	}
	s.changed()
}

// Driver is one storage system through an HMC connection (hal.Driver).
type Driver struct {
	*System
	s     *Shared
	reach func(up, timeout bool, detail string)

	mu       sync.Mutex
	reported int // 0 not yet, 1 up, 2 down
	closed   bool
}

var _ hal.Driver = (*Driver)(nil)

// via is the first HMC, in the configured order, that is up and fronts
// the system: the one that carries its commands.
func (d *Driver) via(st []ConsoleStatus) string {
	for _, c := range st {
		if c.Up && slices.Contains(c.Attached, d.serial) {
			return "HMC " + c.Name + " (" + c.Addr + ")"
		}
	}
	return ""
}

// Via names the HMC that carries the commands now.
func (d *Driver) Via() string { return d.via(d.s.conn.Consoles()) }

// update reports a change of the system's reachability: some HMC up that
// fronts it. Nothing is reported before an HMC has tried to connect.
func (d *Driver) update(st []ConsoleStatus) {
	if d.reach == nil {
		return
	}
	tried := false
	var why []string
	for _, c := range st {
		if c.Up || c.Err != nil {
			tried = true
		}
		switch {
		case c.Up && !slices.Contains(c.Attached, d.serial):
			why = append(why, fmt.Sprintf("HMC %s (%s) does not front it", c.Name, c.Addr))
		case !c.Up && c.Err != nil:
			why = append(why, fmt.Sprintf("HMC %s: %v", c.Addr, c.Err))
		}
	}
	up := d.via(st) != ""
	state := map[bool]int{true: 1, false: 2}[up]
	d.mu.Lock()
	report := !d.closed && (up || tried) && d.reported != state
	if report {
		d.reported = state
	}
	d.mu.Unlock()
	if report {
		d.reach(up, false, strings.Join(why, "; "))
	}
}

// Close releases this system's view; the connection stays for the others.
func (d *Driver) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.s.mu.Lock()
	delete(d.s.drivers, d)
	d.s.mu.Unlock()
	return nil
}
