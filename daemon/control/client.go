package control

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// Connect opens a connection to a bus: "system" (the default when bus is
// empty; DBUS_SYSTEM_BUS_ADDRESS overrides its address), "session", or a
// D-Bus address such as "unix:path=/run/lockstep-test/bus". Errors wrap
// ErrUnavailable, or ErrInvalid for a bus that is none of these.
func Connect(bus string) (*dbus.Conn, error) {
	var conn *dbus.Conn
	var err error
	switch {
	case bus == "" || bus == "system":
		conn, err = dbus.ConnectSystemBus()
	case bus == "session":
		conn, err = dbus.ConnectSessionBus()
	case strings.Contains(bus, ":"):
		conn, err = dbus.Connect(bus)
	default:
		return nil, fmt.Errorf("%w: bus %q: want system, session or an address like unix:path=/run/dbus/system_bus_socket", ErrInvalid, bus)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: connect to the %s bus: %w", ErrUnavailable, bus, err)
	}
	return conn, nil
}

// Client calls the admin API of the lockstepd on a bus. Its methods
// return a *RemoteError for an error reply (see RemoteError for what
// errors.Is matches). It is safe for concurrent use.
type Client struct {
	conn *dbus.Conn
	obj  dbus.BusObject
}

// NewClient returns a client of the lockstepd owning BusName on conn.
func NewClient(conn *dbus.Conn) *Client {
	return &Client{conn: conn, obj: conn.Object(BusName, ObjectPath)}
}

// call calls iface.method with args and stores its answer, if any, in out.
func (c *Client) call(ctx context.Context, iface, method string, out *string, args ...any) error {
	call := c.obj.CallWithContext(ctx, iface+"."+method, 0, args...)
	var err error
	if out != nil {
		err = call.Store(out)
	} else {
		err = call.Err
	}
	if err != nil {
		return fromDBusError(err)
	}
	return nil
}

// get calls a method that answers a JSON document and decodes it.
func get[T any](ctx context.Context, c *Client, iface, method string, args ...any) (T, error) {
	var out T
	var doc string
	if err := c.call(ctx, iface, method, &doc, args...); err != nil {
		return out, err
	}
	if err := json.Unmarshal([]byte(doc), &out); err != nil {
		return out, fmt.Errorf("control: %s: undecodable answer: %w", method, err)
	}
	return out, nil
}

// Status is lockstepctl status.
func (c *Client) Status(ctx context.Context) (StatusDoc, error) {
	return get[StatusDoc](ctx, c, Interface, "Status")
}

// StorageList is lockstepctl storage list.
func (c *Client) StorageList(ctx context.Context) ([]StorageDoc, error) {
	return get[[]StorageDoc](ctx, c, Interface, "StorageList")
}

// StorageShow is lockstepctl storage show SERIAL.
func (c *Client) StorageShow(ctx context.Context, serial hal.Serial) (StorageDoc, error) {
	return get[StorageDoc](ctx, c, Interface, "StorageShow", string(serial))
}

// SessionList is lockstepctl session list.
func (c *Client) SessionList(ctx context.Context) ([]SessionDoc, error) {
	return get[[]SessionDoc](ctx, c, Interface, "SessionList")
}

// SessionShow is lockstepctl session show NAME.
func (c *Client) SessionShow(ctx context.Context, name string) (SessionDoc, error) {
	return get[SessionDoc](ctx, c, Interface, "SessionShow", name)
}

// HeartbeatShow is lockstepctl heartbeat show.
func (c *Client) HeartbeatShow(ctx context.Context) (HeartbeatDoc, error) {
	return get[HeartbeatDoc](ctx, c, Interface, "HeartbeatShow")
}

// BackupList is lockstepctl backup list.
func (c *Client) BackupList(ctx context.Context) ([]BackupDoc, error) {
	return get[[]BackupDoc](ctx, c, Interface, "BackupList")
}

// Events is the recorded events numbered above since, oldest first
// (lockstepctl events). The server keeps the last EventRingSize: a gap
// between since and the first Seq is what was dropped.
func (c *Client) Events(ctx context.Context, since uint64) ([]EventDoc, error) {
	return get[[]EventDoc](ctx, c, Interface, "Events", since)
}

// FirewallHints is lockstepctl firewall-hints --format FORMAT.
func (c *Client) FirewallHints(ctx context.Context, format FirewallFormat) (FirewallDoc, error) {
	return get[FirewallDoc](ctx, c, Interface, "FirewallHints", string(format))
}

// HAStatus is lockstepctl ha status.
func (c *Client) HAStatus(ctx context.Context) (HADoc, error) {
	return get[HADoc](ctx, c, Interface, "HAStatus")
}

// StorageAdd is lockstepctl storage add; it returns the warnings.
func (c *Client) StorageAdd(ctx context.Context, spec StorageSpec) ([]string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("control: encode storage spec: %w", err)
	}
	doc, err := get[WarningsDoc](ctx, c, AdminInterface, "StorageAdd", string(b))
	return doc.Warnings, err
}

// StorageRemove is lockstepctl storage remove SERIAL [CONNECTION]
// [--force]; it returns the warnings.
func (c *Client) StorageRemove(ctx context.Context, serial hal.Serial, connection string, force bool) ([]string, error) {
	doc, err := get[WarningsDoc](ctx, c, AdminInterface, "StorageRemove", string(serial), connection, force)
	return doc.Warnings, err
}

// SessionCreate is lockstepctl session create.
func (c *Client) SessionCreate(ctx context.Context, name string, t session.Type, cg string, p session.Policy) error {
	return c.call(ctx, AdminInterface, "SessionCreate", nil, name, string(t), cg, string(p))
}

// SessionAddCopySet is lockstepctl session add-copyset.
func (c *Client) SessionAddCopySet(ctx context.Context, name string, cs session.CopySet) error {
	return c.call(ctx, AdminInterface, "SessionAddCopySet", nil, name, cs.H1.String(), cs.H2.String())
}

// SessionCommand is lockstepctl session cmd NAME COMMAND; it returns the
// session after the command.
func (c *Client) SessionCommand(ctx context.Context, name string, cmd session.Command) (SessionDoc, error) {
	return get[SessionDoc](ctx, c, AdminInterface, "SessionCommand", name, string(cmd))
}

// SessionRemove is lockstepctl session remove NAME.
func (c *Client) SessionRemove(ctx context.Context, name string) error {
	return c.call(ctx, AdminInterface, "SessionRemove", nil, name)
}

// HeartbeatSet is lockstepctl heartbeat on|off; it returns the warnings.
func (c *Client) HeartbeatSet(ctx context.Context, on bool) ([]string, error) {
	doc, err := get[WarningsDoc](ctx, c, AdminInterface, "HeartbeatSet", on)
	return doc.Warnings, err
}

// BackupCreate is lockstepctl backup create.
func (c *Client) BackupCreate(ctx context.Context) (BackupDoc, error) {
	return get[BackupDoc](ctx, c, AdminInterface, "BackupCreate")
}

// BackupRestore is lockstepctl backup restore NAME.
func (c *Client) BackupRestore(ctx context.Context, name string) error {
	return c.call(ctx, AdminInterface, "BackupRestore", nil, name)
}

// HASetStandby is lockstepctl ha set-standby ADDR --name NAME (name ""
// without --name).
func (c *Client) HASetStandby(ctx context.Context, addr, name string) error {
	return c.call(ctx, AdminInterface, "HASetStandby", nil, addr, name)
}

// HASetAsStandby is lockstepctl ha set-as-standby ADDR --name NAME.
func (c *Client) HASetAsStandby(ctx context.Context, addr, name string) error {
	return c.call(ctx, AdminInterface, "HASetAsStandby", nil, addr, name)
}

// HATakeover is lockstepctl ha takeover.
func (c *Client) HATakeover(ctx context.Context) (TakeoverDoc, error) {
	return get[TakeoverDoc](ctx, c, AdminInterface, "HATakeover")
}

// HAReconnect is lockstepctl ha reconnect.
func (c *Client) HAReconnect(ctx context.Context) error {
	return c.call(ctx, AdminInterface, "HAReconnect", nil)
}

// HARemoveStandby is lockstepctl ha remove-standby.
func (c *Client) HARemoveStandby(ctx context.Context) error {
	return c.call(ctx, AdminInterface, "HARemoveStandby", nil)
}

// HARemoveActive is lockstepctl ha remove-active.
func (c *Client) HARemoveActive(ctx context.Context) error {
	return c.call(ctx, AdminInterface, "HARemoveActive", nil)
}

// Properties reads the properties of Interface (one GetAll).
func (c *Client) Properties(ctx context.Context) (Properties, error) {
	var all map[string]dbus.Variant
	if err := c.obj.CallWithContext(ctx, ifaceProperties+".GetAll", 0, Interface).Store(&all); err != nil {
		return Properties{}, fromDBusError(err)
	}
	var p Properties
	var epoch uint64
	for name, dest := range map[string]any{
		"Role": &p.Role, "HAState": &p.HAState, "Heartbeat": &p.Heartbeat, "Epoch": &epoch, "Version": &p.Version,
	} {
		v, ok := all[name]
		if !ok {
			continue // an older server: leave the zero value
		}
		if err := v.Store(dest); err != nil {
			return Properties{}, fmt.Errorf("control: property %s: %w", name, err)
		}
	}
	p.Epoch = hal.Epoch(epoch)
	return p, nil
}

// Follow subscribes to the Event signal and delivers each event on the
// returned channel until ctx ends or the connection closes; then it
// closes the channel. Events sent before Follow returned are not
// delivered: for lockstepctl events --follow, call Follow first, then
// Events(0), and skip the followed events whose Seq was already printed.
// A reader that falls far behind stalls only its own delivery.
func (c *Client) Follow(ctx context.Context) (<-chan EventDoc, error) {
	match := []dbus.MatchOption{
		dbus.WithMatchSender(BusName),
		dbus.WithMatchObjectPath(ObjectPath),
		dbus.WithMatchInterface(Interface),
		dbus.WithMatchMember("Event"),
	}
	if err := c.conn.AddMatchSignalContext(ctx, match...); err != nil {
		return nil, fromDBusError(err)
	}
	signals := make(chan *dbus.Signal, 64)
	c.conn.Signal(signals)
	out := make(chan EventDoc)
	go func() {
		defer close(out)
		defer func() {
			c.conn.RemoveSignal(signals)
			_ = c.conn.RemoveMatchSignal(match...)
		}()
		for {
			var sig *dbus.Signal
			var ok bool
			select {
			case <-ctx.Done():
				return
			case sig, ok = <-signals:
				if !ok {
					return // the connection closed
				}
			}
			ev, ok := decodeEvent(sig)
			if !ok {
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

// decodeEvent reads an Event signal; ok is false for any other signal the
// connection receives.
func decodeEvent(sig *dbus.Signal) (ev EventDoc, ok bool) {
	if sig.Path != ObjectPath || sig.Name != signalEvent {
		return ev, false
	}
	var fields string
	var at uint64
	if err := dbus.Store(sig.Body, &ev.Seq, &ev.ID, &ev.Severity, &ev.Text, &fields, &at); err != nil {
		return ev, false
	}
	if fields != "" && fields != "{}" {
		if err := json.Unmarshal([]byte(fields), &ev.Fields); err != nil {
			return ev, false
		}
	}
	if at != 0 {
		ev.At = time.UnixMicro(int64(at)).UTC()
	}
	return ev, true
}
