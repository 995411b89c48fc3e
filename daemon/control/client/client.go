package client

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/hal"
)

// Connect opens a connection to a bus: "system" (the default when bus is
// empty; DBUS_SYSTEM_BUS_ADDRESS overrides its address), "session", or a
// D-Bus address such as "unix:path=/run/lockstep-test/bus". Errors wrap
// api.ErrUnavailable, or api.ErrInvalid for a bus that is none of these.
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
		return nil, fmt.Errorf("%w: bus %q: want system, session or an address like unix:path=/run/dbus/system_bus_socket", api.ErrInvalid, bus)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: connect to the %s bus: %w", api.ErrUnavailable, bus, err)
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

// New returns a client of the lockstepd owning api.BusName on conn.
func New(conn *dbus.Conn) *Client {
	return &Client{conn: conn, obj: conn.Object(api.BusName, api.ObjectPath)}
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
		return out, fmt.Errorf("client: %s: undecodable answer: %w", method, err)
	}
	return out, nil
}

// Status is lockstepctl status.
func (c *Client) Status(ctx context.Context) (api.StatusDoc, error) {
	return get[api.StatusDoc](ctx, c, api.Interface, "Status")
}

// StorageList is lockstepctl storage list.
func (c *Client) StorageList(ctx context.Context) ([]api.StorageDoc, error) {
	return get[[]api.StorageDoc](ctx, c, api.Interface, "StorageList")
}

// StorageShow is lockstepctl storage show SERIAL.
func (c *Client) StorageShow(ctx context.Context, serial hal.Serial) (api.StorageDoc, error) {
	return get[api.StorageDoc](ctx, c, api.Interface, "StorageShow", string(serial))
}

// SessionList is lockstepctl session list.
func (c *Client) SessionList(ctx context.Context) ([]api.SessionDoc, error) {
	return get[[]api.SessionDoc](ctx, c, api.Interface, "SessionList")
}

// SessionShow is lockstepctl session show NAME.
func (c *Client) SessionShow(ctx context.Context, name string) (api.SessionDoc, error) {
	return get[api.SessionDoc](ctx, c, api.Interface, "SessionShow", name)
}

// HeartbeatShow is lockstepctl heartbeat show.
func (c *Client) HeartbeatShow(ctx context.Context) (api.HeartbeatDoc, error) {
	return get[api.HeartbeatDoc](ctx, c, api.Interface, "HeartbeatShow")
}

// BackupList is lockstepctl backup list.
func (c *Client) BackupList(ctx context.Context) ([]api.BackupDoc, error) {
	return get[[]api.BackupDoc](ctx, c, api.Interface, "BackupList")
}

// Events is the recorded events numbered above since, oldest first
// (lockstepctl events). The server keeps the last 1024: a gap
// between since and the first Seq is what was dropped.
func (c *Client) Events(ctx context.Context, since uint64) ([]api.EventDoc, error) {
	return get[[]api.EventDoc](ctx, c, api.Interface, "Events", since)
}

// FirewallHints is lockstepctl firewall-hints --format FORMAT.
func (c *Client) FirewallHints(ctx context.Context, format api.FirewallFormat) (api.FirewallDoc, error) {
	return get[api.FirewallDoc](ctx, c, api.Interface, "FirewallHints", string(format))
}

// HAStatus is lockstepctl ha status.
func (c *Client) HAStatus(ctx context.Context) (api.HADoc, error) {
	return get[api.HADoc](ctx, c, api.Interface, "HAStatus")
}

// HMCList is lockstepctl hmc list.
func (c *Client) HMCList(ctx context.Context) ([]api.HMCDoc, error) {
	return get[[]api.HMCDoc](ctx, c, api.Interface, "HMCList")
}

// HMCShow is lockstepctl hmc show NAME.
func (c *Client) HMCShow(ctx context.Context, name string) (api.HMCDoc, error) {
	return get[api.HMCDoc](ctx, c, api.Interface, "HMCShow", name)
}

// HMCAdd is lockstepctl hmc add; it returns the warnings.
func (c *Client) HMCAdd(ctx context.Context, spec api.HMCSpec) ([]string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("client: encode HMC spec: %w", err)
	}
	doc, err := get[api.WarningsDoc](ctx, c, api.AdminInterface, "HMCAdd", string(b))
	return doc.Warnings, err
}

// HMCRemove is lockstepctl hmc remove NAME [--force]; it returns the
// warnings.
func (c *Client) HMCRemove(ctx context.Context, name string, force bool) ([]string, error) {
	doc, err := get[api.WarningsDoc](ctx, c, api.AdminInterface, "HMCRemove", name, force)
	return doc.Warnings, err
}

// ZOSList is lockstepctl zos list.
func (c *Client) ZOSList(ctx context.Context) ([]api.ZOSDoc, error) {
	return get[[]api.ZOSDoc](ctx, c, api.Interface, "ZOSList")
}

// ZOSShow is lockstepctl zos show HOST.
func (c *Client) ZOSShow(ctx context.Context, name string) (api.ZOSDoc, error) {
	return get[api.ZOSDoc](ctx, c, api.Interface, "ZOSShow", name)
}

// ZOSAdd is lockstepctl zos add; it returns the warnings.
func (c *Client) ZOSAdd(ctx context.Context, spec api.ZOSSpec) ([]string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("client: encode z/OS spec: %w", err)
	}
	doc, err := get[api.WarningsDoc](ctx, c, api.AdminInterface, "ZOSAdd", string(b))
	return doc.Warnings, err
}

// ZOSRemove is lockstepctl zos remove HOST; it returns the warnings.
func (c *Client) ZOSRemove(ctx context.Context, name string) ([]string, error) {
	doc, err := get[api.WarningsDoc](ctx, c, api.AdminInterface, "ZOSRemove", name)
	return doc.Warnings, err
}

// StorageAdd is lockstepctl storage add; it returns the warnings.
func (c *Client) StorageAdd(ctx context.Context, spec api.StorageSpec) ([]string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("client: encode storage spec: %w", err)
	}
	doc, err := get[api.WarningsDoc](ctx, c, api.AdminInterface, "StorageAdd", string(b))
	return doc.Warnings, err
}

// StorageRemove is lockstepctl storage remove SERIAL [CONNECTION]
// [--force]; it returns the warnings.
func (c *Client) StorageRemove(ctx context.Context, serial hal.Serial, connection string, force bool) ([]string, error) {
	doc, err := get[api.WarningsDoc](ctx, c, api.AdminInterface, "StorageRemove", string(serial), connection, force)
	return doc.Warnings, err
}

// SessionCreate is lockstepctl session create.
func (c *Client) SessionCreate(ctx context.Context, name string, t api.SessionType, cg string, p api.SuspendPolicy) error {
	return c.call(ctx, api.AdminInterface, "SessionCreate", nil, name, string(t), cg, string(p))
}

// SessionAddCopySet is lockstepctl session add-copyset.
func (c *Client) SessionAddCopySet(ctx context.Context, name string, cs api.CopySet) error {
	return c.call(ctx, api.AdminInterface, "SessionAddCopySet", nil, name, cs.H1.String(), cs.H2.String())
}

// SessionCommand is lockstepctl session cmd NAME COMMAND; it returns the
// session after the command.
func (c *Client) SessionCommand(ctx context.Context, name string, cmd api.SessionCommand) (api.SessionDoc, error) {
	return get[api.SessionDoc](ctx, c, api.AdminInterface, "SessionCommand", name, string(cmd))
}

// SessionRemove is lockstepctl session remove NAME.
func (c *Client) SessionRemove(ctx context.Context, name string) error {
	return c.call(ctx, api.AdminInterface, "SessionRemove", nil, name)
}

// HeartbeatSet is lockstepctl heartbeat on|off; it returns the warnings.
func (c *Client) HeartbeatSet(ctx context.Context, on bool) ([]string, error) {
	doc, err := get[api.WarningsDoc](ctx, c, api.AdminInterface, "HeartbeatSet", on)
	return doc.Warnings, err
}

// BackupCreate is lockstepctl backup create.
func (c *Client) BackupCreate(ctx context.Context) (api.BackupDoc, error) {
	return get[api.BackupDoc](ctx, c, api.AdminInterface, "BackupCreate")
}

// BackupRestore is lockstepctl backup restore NAME.
func (c *Client) BackupRestore(ctx context.Context, name string) error {
	return c.call(ctx, api.AdminInterface, "BackupRestore", nil, name)
}

// HASetStandby is lockstepctl ha set-standby ADDR --name NAME (name ""
// without --name).
func (c *Client) HASetStandby(ctx context.Context, addr, name string) error {
	return c.call(ctx, api.AdminInterface, "HASetStandby", nil, addr, name)
}

// HASetAsStandby is lockstepctl ha set-as-standby ADDR --name NAME.
func (c *Client) HASetAsStandby(ctx context.Context, addr, name string) error {
	return c.call(ctx, api.AdminInterface, "HASetAsStandby", nil, addr, name)
}

// HATakeover is lockstepctl ha takeover.
func (c *Client) HATakeover(ctx context.Context) (api.TakeoverDoc, error) {
	return get[api.TakeoverDoc](ctx, c, api.AdminInterface, "HATakeover")
}

// HAReconnect is lockstepctl ha reconnect.
func (c *Client) HAReconnect(ctx context.Context) error {
	return c.call(ctx, api.AdminInterface, "HAReconnect", nil)
}

// HARemoveStandby is lockstepctl ha remove-standby.
func (c *Client) HARemoveStandby(ctx context.Context) error {
	return c.call(ctx, api.AdminInterface, "HARemoveStandby", nil)
}

// HARemoveActive is lockstepctl ha remove-active.
// SNMPTest sends the test notification to every manager and waits for
// each one's outcome.
func (c *Client) SNMPTest(ctx context.Context) (api.SNMPTestDoc, error) {
	return get[api.SNMPTestDoc](ctx, c, api.AdminInterface, "SNMPTest")
}

func (c *Client) HARemoveActive(ctx context.Context) error {
	return c.call(ctx, api.AdminInterface, "HARemoveActive", nil)
}

// Properties reads the properties of api.Interface (one GetAll).
func (c *Client) Properties(ctx context.Context) (api.Properties, error) {
	var all map[string]dbus.Variant
	if err := c.obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, api.Interface).Store(&all); err != nil {
		return api.Properties{}, fromDBusError(err)
	}
	var p api.Properties
	var epoch uint64
	for name, dest := range map[string]any{
		"Role": &p.Role, "HAState": &p.HAState, "Heartbeat": &p.Heartbeat, "Epoch": &epoch, "Version": &p.Version,
	} {
		v, ok := all[name]
		if !ok {
			continue // an older server: leave the zero value
		}
		if err := v.Store(dest); err != nil {
			return api.Properties{}, fmt.Errorf("client: property %s: %w", name, err)
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
func (c *Client) Follow(ctx context.Context) (<-chan api.EventDoc, error) {
	match := []dbus.MatchOption{
		dbus.WithMatchSender(api.BusName),
		dbus.WithMatchObjectPath(api.ObjectPath),
		dbus.WithMatchInterface(api.Interface),
		dbus.WithMatchMember("Event"),
	}
	if err := c.conn.AddMatchSignalContext(ctx, match...); err != nil {
		return nil, fromDBusError(err)
	}
	signals := make(chan *dbus.Signal, 64)
	c.conn.Signal(signals)
	out := make(chan api.EventDoc)
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
func decodeEvent(sig *dbus.Signal) (ev api.EventDoc, ok bool) {
	if sig.Path != api.ObjectPath || sig.Name != api.EventSignal {
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
