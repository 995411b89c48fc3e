package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/user"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/version"
)

// EventRingSize is how many recent events the server keeps for Events.
const EventRingSize = 1024

// DefaultAdminGroup is the group whose members may call the changes
// (beside root and the daemon's own user), as in the shipped bus policy.
const DefaultAdminGroup = "lockstep"

// Options configure Serve. The zero value is usable.
type Options struct {
	// Logger receives the audit of every change (nil: discard).
	Logger *slog.Logger
	// AdminGroup names the group whose members may call the changes,
	// beside root and the daemon's own user ("": DefaultAdminGroup). The
	// bus policy should name the same group; the server checks it
	// itself in any case.
	AdminGroup string
	// Properties are the properties from the start, until SetProperties
	// (an empty Role is "unknown", an empty HAState "Unknown", an empty
	// Version the build's, internal/version): given here, a client that
	// finds the name owned never reads placeholders.
	Properties api.Properties
}

// Server is the admin API on one bus connection: it owns api.BusName, exports
// api.ObjectPath, calls the Backend for each method, keeps the recent events
// and the properties, and emits the signals.
type Server struct {
	conn    *dbus.Conn
	backend Backend
	logger  *slog.Logger
	// adminGroup may call the changes, with root and self (the daemon's
	// effective uid).
	adminGroup string
	self       uint32
	// ctx is the parent of every backend call; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards what follows, and keeps signals in the order of the
	// changes they announce.
	mu      sync.Mutex
	props   api.Properties
	events  []api.EventDoc // the last EventRingSize events, oldest first
	lastSeq uint64
	closed  bool
}

// Serve exports the admin API on conn, then requests api.BusName, and
// returns: method calls are served on conn's own goroutines until Close.
// The backend's calls get a context derived from ctx. Every change is
// refused to callers other than root, the daemon's user and the members
// of opts.AdminGroup, whatever the bus's policy. Serve fails with ErrNameTaken if another connection owns the
// name (another lockstepd runs), and with api.ErrAccessDenied if the bus
// policy does not let this user own it.
//
// Until SetProperties, the properties are opts.Properties.
func Serve(ctx context.Context, conn *dbus.Conn, backend Backend, opts Options) (*Server, error) {
	if conn == nil || backend == nil {
		return nil, errors.New("control: Serve needs a bus connection and a backend")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	xmlDoc, err := introspectionXML()
	if err != nil {
		return nil, fmt.Errorf("control: introspection data: %w", err)
	}
	if opts.AdminGroup == "" {
		opts.AdminGroup = DefaultAdminGroup
	}
	props := opts.Properties
	if props.Role == "" {
		props.Role = "unknown"
	}
	if props.HAState == "" {
		props.HAState = "Unknown"
	}
	if props.Version == "" {
		props.Version = version.Version
	}
	s := &Server{
		conn:       conn,
		backend:    backend,
		logger:     logger,
		adminGroup: opts.AdminGroup,
		self:       uint32(os.Geteuid()),
		props:      props,
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	exports := []struct {
		v     any
		iface string
	}{
		{reads{s}, api.Interface},
		{admin{s}, api.AdminInterface},
		{propsObject{s}, ifaceProperties},
		{introspect.Introspectable(xmlDoc), ifaceIntrospect},
	}
	for _, e := range exports {
		if err := conn.Export(e.v, api.ObjectPath, e.iface); err != nil {
			s.unexport()
			s.cancel()
			return nil, fmt.Errorf("control: export %s on %s: %w", e.iface, api.ObjectPath, err)
		}
	}
	// Exported first, so that the first call after the name is ours
	// finds the object.
	if err := s.requestName(ctx); err != nil {
		s.unexport()
		s.cancel()
		return nil, err
	}
	logger.Info("admin api on the bus", "name", api.BusName, "path", api.ObjectPath)
	return s, nil
}

func (s *Server) requestName(ctx context.Context) error {
	var reply uint32
	err := s.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.RequestName", 0,
		api.BusName, uint32(dbus.NameFlagDoNotQueue)).Store(&reply)
	var de dbus.Error
	switch {
	case errors.As(err, &de) && de.Name == "org.freedesktop.DBus.Error.AccessDenied":
		return fmt.Errorf("%w: this user may not own %s on this bus: run lockstepd as user lockstep or root, "+
			"with org.lockstep.Manager1.conf in /usr/share/dbus-1/system.d/ (bus: %s)", api.ErrAccessDenied, api.BusName, de.Error())
	case err != nil:
		return fmt.Errorf("control: request bus name %s: %w", api.BusName, err)
	case dbus.RequestNameReply(reply) == dbus.RequestNameReplyPrimaryOwner,
		dbus.RequestNameReply(reply) == dbus.RequestNameReplyAlreadyOwner:
		return nil
	}
	return fmt.Errorf("%w: %s is owned by %s: is another lockstepd running?", ErrNameTaken, api.BusName, s.owner(ctx))
}

// owner describes the connection that owns api.BusName, for an error message.
func (s *Server) owner(ctx context.Context) string {
	bus := s.conn.BusObject()
	var unique string
	if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, api.BusName).Store(&unique); err != nil {
		return "another connection"
	}
	var pid uint32
	if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixProcessID", 0, unique).Store(&pid); err != nil {
		return unique
	}
	return fmt.Sprintf("%s (pid %d)", unique, pid)
}

func (s *Server) unexport() {
	for _, iface := range []string{api.Interface, api.AdminInterface, ifaceProperties, ifaceIntrospect} {
		_ = s.conn.Export(nil, api.ObjectPath, iface)
	}
}

// Close stops serving: it cancels the backend calls in flight and
// releases api.BusName. It does not close the connection, and leaves the
// object exported: godbus reads its table of objects without a lock when
// it introspects a path nobody exported, so removing objects while the
// connection serves could race with any peer's Introspect. A call that
// still reaches the object by the connection's unique name gets a
// cancelled context.
func (s *Server) Close() error {
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if closed {
		return nil
	}
	s.cancel()
	if _, err := s.conn.ReleaseName(api.BusName); err != nil {
		return fmt.Errorf("control: release bus name %s: %w", api.BusName, err)
	}
	return nil
}

// Emit records ev in the ring that Events reads and sends the Event
// signal. A zero ev.Seq gets the number after the last; a non-zero one
// must be above the last (the daemon may number events itself, e.g. to
// share the numbers with its SNMP traps), else Emit records nothing and
// returns an error wrapping api.ErrInvalid. It returns the event as recorded.
// A failure to send the signal is returned, but the event stays recorded.
func (s *Server) Emit(ev api.EventDoc) (api.EventDoc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ev.Seq == 0:
		ev.Seq = s.lastSeq + 1
	case ev.Seq <= s.lastSeq:
		return ev, fmt.Errorf("%w: event number %d is not above the last one, %d", api.ErrInvalid, ev.Seq, s.lastSeq)
	}
	ev.Fields = maps.Clone(ev.Fields)
	s.lastSeq = ev.Seq
	s.events = append(s.events, ev)
	if n := len(s.events) - EventRingSize; n > 0 {
		s.events = slices.Delete(s.events, 0, n)
	}
	fields, err := json.Marshal(ev.Fields)
	if err != nil || ev.Fields == nil {
		fields = []byte("{}")
	}
	var at uint64
	if !ev.At.IsZero() && ev.At.UnixMicro() > 0 {
		at = uint64(ev.At.UnixMicro())
	}
	if err := s.conn.Emit(api.ObjectPath, api.EventSignal, ev.Seq, ev.ID, ev.Severity, ev.Text, string(fields), at); err != nil {
		return ev, fmt.Errorf("control: send event %d: %w", ev.Seq, err)
	}
	return ev, nil
}

// eventsSince is the recorded events numbered above since, oldest first.
func (s *Server) eventsSince(since uint64) []api.EventDoc {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.events), func(i int) bool { return s.events[i].Seq > since })
	return slices.Clone(s.events[i:])
}

// SetProperties replaces the properties and emits one PropertiesChanged
// with those that changed (none if nothing did). An empty Version keeps
// the current one.
func (s *Server) SetProperties(p api.Properties) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Version == "" {
		p.Version = s.props.Version
	}
	old, now := propertyMap(s.props), propertyMap(p)
	s.props = p
	changed := map[string]dbus.Variant{}
	for name, v := range now {
		if v.Value() != old[name].Value() {
			changed[name] = v
		}
	}
	if len(changed) == 0 {
		return nil
	}
	if err := s.conn.Emit(api.ObjectPath, signalPropsChanged, api.Interface, changed, []string{}); err != nil {
		return fmt.Errorf("control: send PropertiesChanged: %w", err)
	}
	return nil
}

// propertyMap is p as the values of GetAll, named as in propertyTypes.
func propertyMap(p api.Properties) map[string]dbus.Variant {
	return map[string]dbus.Variant{
		"Role":      dbus.MakeVariant(p.Role),
		"HAState":   dbus.MakeVariant(p.HAState),
		"Heartbeat": dbus.MakeVariant(p.Heartbeat),
		"Epoch":     dbus.MakeVariant(uint64(p.Epoch)),
		"Version":   dbus.MakeVariant(p.Version),
	}
}

// reply encodes a read's answer, or turns err into the error reply.
func (s *Server) reply(method string, v any, err error) (string, *dbus.Error) {
	if err != nil {
		return "", s.fail(method, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", s.fail(method, fmt.Errorf("control: encode the answer: %w", err))
	}
	return string(b), nil
}

// fail is the error reply for err; errors the API has no name for are
// logged, since they are the daemon's own failures.
func (s *Server) fail(method string, err error) *dbus.Error {
	de := toDBusError(err)
	if de.Name == api.ErrorFailed {
		s.logger.Warn("admin api call failed", "method", method, "err", err)
	}
	return de
}

// audit logs a change: who asked, what, and how it ended.
func (s *Server) audit(sender dbus.Sender, method string, err error, args ...any) {
	attrs := []any{"method", method, "sender", string(sender)}
	var uid uint32
	if e := s.conn.BusObject().CallWithContext(s.ctx, "org.freedesktop.DBus.GetConnectionUnixUser", 0,
		string(sender)).Store(&uid); e == nil {
		attrs = append(attrs, "uid", uid)
	}
	attrs = append(attrs, args...)
	if err != nil {
		s.logger.Info("admin change refused or failed", append(attrs, "err", err)...)
		return
	}
	s.logger.Info("admin change", attrs...)
}

// authorize says whether sender may call a change: root, the daemon's own
// user, or a member of the admin group (by the user database, as the bus
// policy's group= rule reads it). It asks the bus who sender is, so it
// holds on any bus, whatever its policy (docs/architecture.md, Trust). Refusals wrap
// api.ErrAccessDenied and say who was refused and why.
func (s *Server) authorize(sender dbus.Sender) error {
	var uid uint32
	if err := s.conn.BusObject().CallWithContext(s.ctx, "org.freedesktop.DBus.GetConnectionUnixUser", 0,
		string(sender)).Store(&uid); err != nil {
		return fmt.Errorf("%w: the bus does not say which user %s is (%v), so it may not change anything",
			api.ErrAccessDenied, sender, err)
	}
	if uid == 0 || uid == s.self {
		return nil
	}
	deny := func(why string) error {
		return fmt.Errorf("%w: uid %d %s: changes need root or membership of group %s",
			api.ErrAccessDenied, uid, why, s.adminGroup)
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return deny("is not in this host's user database")
	}
	g, err := user.LookupGroup(s.adminGroup)
	if err != nil {
		return deny(fmt.Sprintf("(%s) is refused: group %s does not exist on this host", u.Username, s.adminGroup))
	}
	gids, err := u.GroupIds()
	if err != nil {
		return deny(fmt.Sprintf("(%s) is refused: its groups cannot be read (%v)", u.Username, err))
	}
	if slices.Contains(gids, g.Gid) {
		return nil
	}
	return deny(fmt.Sprintf("(%s) is not a member of group %s", u.Username, s.adminGroup))
}

// invalid wraps a parse error of an argument in api.ErrInvalid.
func invalid(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", api.ErrInvalid, what, err)
}

// reads is exported as api.Interface: every method is one read.
type reads struct{ s *Server }

func (r reads) Status() (string, *dbus.Error) {
	doc, err := r.s.backend.Status(r.s.ctx)
	return r.s.reply("Status", doc, err)
}

func (r reads) StorageList() (string, *dbus.Error) {
	list, err := r.s.backend.StorageList(r.s.ctx)
	return r.s.reply("StorageList", orEmpty(list), err)
}

func (r reads) StorageShow(serial string) (string, *dbus.Error) {
	var doc api.StorageDoc
	err := api.CheckSerial(hal.Serial(serial))
	if err == nil {
		doc, err = r.s.backend.StorageShow(r.s.ctx, hal.Serial(serial))
	}
	return r.s.reply("StorageShow", doc, err)
}

func (r reads) HMCList() (string, *dbus.Error) {
	list, err := r.s.backend.HMCList(r.s.ctx)
	return r.s.reply("HMCList", orEmpty(list), err)
}

func (r reads) HMCShow(name string) (string, *dbus.Error) {
	doc, err := r.s.backend.HMCShow(r.s.ctx, name)
	return r.s.reply("HMCShow", doc, err)
}

func (r reads) ZOSList() (string, *dbus.Error) {
	list, err := r.s.backend.ZOSList(r.s.ctx)
	return r.s.reply("ZOSList", orEmpty(list), err)
}

func (r reads) ZOSShow(name string) (string, *dbus.Error) {
	doc, err := r.s.backend.ZOSShow(r.s.ctx, name)
	return r.s.reply("ZOSShow", doc, err)
}

func (r reads) SessionList() (string, *dbus.Error) {
	list, err := r.s.backend.SessionList(r.s.ctx)
	return r.s.reply("SessionList", orEmpty(list), err)
}

func (r reads) SessionShow(name string) (string, *dbus.Error) {
	doc, err := r.s.backend.SessionShow(r.s.ctx, name)
	return r.s.reply("SessionShow", doc, err)
}

func (r reads) HeartbeatShow() (string, *dbus.Error) {
	doc, err := r.s.backend.HeartbeatShow(r.s.ctx)
	return r.s.reply("HeartbeatShow", doc, err)
}

func (r reads) BackupList() (string, *dbus.Error) {
	list, err := r.s.backend.BackupList(r.s.ctx)
	return r.s.reply("BackupList", orEmpty(list), err)
}

func (r reads) Events(since uint64) (string, *dbus.Error) {
	return r.s.reply("Events", orEmpty(r.s.eventsSince(since)), nil)
}

func (r reads) FirewallHints(format string) (string, *dbus.Error) {
	var doc api.FirewallDoc
	f, err := api.ParseFirewallFormat(format)
	if err == nil {
		doc, err = r.s.backend.FirewallHints(r.s.ctx, f)
	}
	return r.s.reply("FirewallHints", doc, err)
}

func (r reads) HAStatus() (string, *dbus.Error) {
	doc, err := r.s.backend.HAStatus(r.s.ctx)
	return r.s.reply("HAStatus", doc, err)
}

// admin is exported as api.AdminInterface: every method is one change,
// audited. The bus policy lets only root and group lockstep call them,
// and each method checks its caller itself first (refused).
type admin struct{ s *Server }

// refused checks that sender may call a change (authorize) and, if it
// may not, audits the refusal and returns the error reply. Every method
// of admin calls it first, before looking at its arguments.
func (a admin) refused(sender dbus.Sender, method string) *dbus.Error {
	err := a.s.authorize(sender)
	if err == nil {
		return nil
	}
	a.s.audit(sender, method, err)
	return a.s.fail(method, err)
}

// done audits a change and builds its reply.
func (a admin) done(sender dbus.Sender, method string, v any, err error, args ...any) (string, *dbus.Error) {
	a.s.audit(sender, method, err, args...)
	return a.s.reply(method, v, err)
}

// doneNoReply is done for the methods without an answer.
func (a admin) doneNoReply(sender dbus.Sender, method string, err error, args ...any) *dbus.Error {
	a.s.audit(sender, method, err, args...)
	if err != nil {
		return a.s.fail(method, err)
	}
	return nil
}

func (a admin) StorageAdd(sender dbus.Sender, spec string) (string, *dbus.Error) {
	if derr := a.refused(sender, "StorageAdd"); derr != nil {
		return "", derr
	}
	var sp api.StorageSpec
	var warnings []string
	dec := json.NewDecoder(strings.NewReader(spec))
	dec.DisallowUnknownFields()
	err := dec.Decode(&sp)
	if err != nil {
		err = invalid("storage spec", err)
	} else {
		err = sp.Validate()
	}
	if err == nil {
		warnings, err = a.s.backend.StorageAdd(a.s.ctx, sp)
	}
	return a.done(sender, "StorageAdd", api.WarningsDoc{Warnings: orEmpty(warnings)}, err, "serial", sp.Serial)
}

func (a admin) StorageRemove(sender dbus.Sender, serial, connection string, force bool) (string, *dbus.Error) {
	if derr := a.refused(sender, "StorageRemove"); derr != nil {
		return "", derr
	}
	var warnings []string
	err := api.CheckSerial(hal.Serial(serial))
	if err == nil {
		warnings, err = a.s.backend.StorageRemove(a.s.ctx, hal.Serial(serial), connection, force)
	}
	return a.done(sender, "StorageRemove", api.WarningsDoc{Warnings: orEmpty(warnings)}, err,
		"serial", serial, "connection", connection, "force", force)
}

func (a admin) HMCAdd(sender dbus.Sender, spec string) (string, *dbus.Error) {
	if derr := a.refused(sender, "HMCAdd"); derr != nil {
		return "", derr
	}
	var sp api.HMCSpec
	var warnings []string
	dec := json.NewDecoder(strings.NewReader(spec))
	dec.DisallowUnknownFields()
	err := dec.Decode(&sp)
	if err != nil {
		err = invalid("HMC spec", err)
	} else {
		err = sp.Validate()
	}
	if err == nil {
		warnings, err = a.s.backend.HMCAdd(a.s.ctx, sp)
	}
	return a.done(sender, "HMCAdd", api.WarningsDoc{Warnings: orEmpty(warnings)}, err, "hmc", sp.Name)
}

func (a admin) HMCRemove(sender dbus.Sender, name string, force bool) (string, *dbus.Error) {
	if derr := a.refused(sender, "HMCRemove"); derr != nil {
		return "", derr
	}
	warnings, err := a.s.backend.HMCRemove(a.s.ctx, name, force)
	return a.done(sender, "HMCRemove", api.WarningsDoc{Warnings: orEmpty(warnings)}, err, "hmc", name, "force", force)
}

func (a admin) ZOSAdd(sender dbus.Sender, spec string) (string, *dbus.Error) {
	if derr := a.refused(sender, "ZOSAdd"); derr != nil {
		return "", derr
	}
	var sp api.ZOSSpec
	var warnings []string
	dec := json.NewDecoder(strings.NewReader(spec))
	dec.DisallowUnknownFields()
	err := dec.Decode(&sp)
	if err != nil {
		err = invalid("z/OS spec", err)
	} else {
		err = sp.Validate()
	}
	if err == nil {
		warnings, err = a.s.backend.ZOSAdd(a.s.ctx, sp)
	}
	return a.done(sender, "ZOSAdd", api.WarningsDoc{Warnings: orEmpty(warnings)}, err, "zos", sp.Name)
}

func (a admin) ZOSRemove(sender dbus.Sender, name string) (string, *dbus.Error) {
	if derr := a.refused(sender, "ZOSRemove"); derr != nil {
		return "", derr
	}
	warnings, err := a.s.backend.ZOSRemove(a.s.ctx, name)
	return a.done(sender, "ZOSRemove", api.WarningsDoc{Warnings: orEmpty(warnings)}, err, "zos", name)
}

func (a admin) SessionCreate(sender dbus.Sender, name, typ, cg, policy string) *dbus.Error {
	if derr := a.refused(sender, "SessionCreate"); derr != nil {
		return derr
	}
	t, err := session.ParseType(typ)
	if err != nil {
		err = invalid("session type", err)
	}
	var p session.Policy
	if err == nil {
		if p, err = session.ParsePolicy(policy); err != nil {
			err = invalid("suspend policy", err)
		}
	}
	if err == nil {
		err = a.s.backend.SessionCreate(a.s.ctx, name, t, cg, p)
	}
	return a.doneNoReply(sender, "SessionCreate", err, "session", name, "type", typ, "cg", cg, "policy", policy)
}

func (a admin) SessionAddCopySet(sender dbus.Sender, name, h1, h2 string) *dbus.Error {
	if derr := a.refused(sender, "SessionAddCopySet"); derr != nil {
		return derr
	}
	var cs session.CopySet
	var err error
	if cs.H1, err = session.ParseVolumeRef(h1); err != nil {
		err = invalid("H1 volume", err)
	} else if cs.H2, err = session.ParseVolumeRef(h2); err != nil {
		err = invalid("H2 volume", err)
	} else {
		err = cs.Validate()
	}
	if err == nil {
		err = a.s.backend.SessionAddCopySet(a.s.ctx, name, cs)
	}
	return a.doneNoReply(sender, "SessionAddCopySet", err, "session", name, "h1", h1, "h2", h2)
}

func (a admin) SessionCommand(sender dbus.Sender, name, command string) (string, *dbus.Error) {
	if derr := a.refused(sender, "SessionCommand"); derr != nil {
		return "", derr
	}
	var doc api.SessionDoc
	cmd, err := session.ParseCommand(command)
	if err != nil {
		err = invalid("session command", err)
	} else {
		doc, err = a.s.backend.SessionCommand(a.s.ctx, name, cmd)
	}
	return a.done(sender, "SessionCommand", doc, err, "session", name, "command", command)
}

func (a admin) SessionRemove(sender dbus.Sender, name string) *dbus.Error {
	if derr := a.refused(sender, "SessionRemove"); derr != nil {
		return derr
	}
	return a.doneNoReply(sender, "SessionRemove", a.s.backend.SessionRemove(a.s.ctx, name), "session", name)
}

func (a admin) HeartbeatSet(sender dbus.Sender, on bool) (string, *dbus.Error) {
	if derr := a.refused(sender, "HeartbeatSet"); derr != nil {
		return "", derr
	}
	warnings, err := a.s.backend.HeartbeatSet(a.s.ctx, on)
	return a.done(sender, "HeartbeatSet", api.WarningsDoc{Warnings: orEmpty(warnings)}, err, "on", on)
}

func (a admin) BackupCreate(sender dbus.Sender) (string, *dbus.Error) {
	if derr := a.refused(sender, "BackupCreate"); derr != nil {
		return "", derr
	}
	doc, err := a.s.backend.BackupCreate(a.s.ctx)
	return a.done(sender, "BackupCreate", doc, err, "backup", doc.Name)
}

func (a admin) BackupRestore(sender dbus.Sender, name string) *dbus.Error {
	if derr := a.refused(sender, "BackupRestore"); derr != nil {
		return derr
	}
	return a.doneNoReply(sender, "BackupRestore", a.s.backend.BackupRestore(a.s.ctx, name), "backup", name)
}

// haAddress checks the syntax of an HA peer address; the ha package
// checks the rest.
func haAddress(addr string) error {
	if addr == "" || strings.ContainsFunc(addr, func(r rune) bool { return r <= ' ' }) {
		return fmt.Errorf("%w: HA address %q: want tcp://host:port or vsock://cid:port", api.ErrInvalid, addr)
	}
	return nil
}

// haName checks the partner's server name ("" lets the daemon take
// [ha] partner_name).
func haName(name string) error {
	if name == "" {
		return nil
	}
	if err := ha.ValidName(name); err != nil {
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	return nil
}

func (a admin) HASetStandby(sender dbus.Sender, addr, name string) *dbus.Error {
	if derr := a.refused(sender, "HASetStandby"); derr != nil {
		return derr
	}
	err := errors.Join(haAddress(addr), haName(name))
	if err == nil {
		err = a.s.backend.HASetStandby(a.s.ctx, addr, name)
	}
	return a.doneNoReply(sender, "HASetStandby", err, "address", addr, "name", name)
}

func (a admin) HASetAsStandby(sender dbus.Sender, addr, name string) *dbus.Error {
	if derr := a.refused(sender, "HASetAsStandby"); derr != nil {
		return derr
	}
	err := errors.Join(haAddress(addr), haName(name))
	if err == nil {
		err = a.s.backend.HASetAsStandby(a.s.ctx, addr, name)
	}
	return a.doneNoReply(sender, "HASetAsStandby", err, "address", addr, "name", name)
}

func (a admin) HATakeover(sender dbus.Sender) (string, *dbus.Error) {
	if derr := a.refused(sender, "HATakeover"); derr != nil {
		return "", derr
	}
	doc, err := a.s.backend.HATakeover(a.s.ctx)
	doc.Unreachable, doc.Warnings = orEmpty(doc.Unreachable), orEmpty(doc.Warnings)
	return a.done(sender, "HATakeover", doc, err, "epoch", doc.Epoch)
}

// SNMPTest is a change only in that it sends something: the NMS sees a
// notification, so only who may change may ask for it.
func (a admin) SNMPTest(sender dbus.Sender) (string, *dbus.Error) {
	if derr := a.refused(sender, "SNMPTest"); derr != nil {
		return "", derr
	}
	doc, err := a.s.backend.SNMPTest(a.s.ctx)
	doc.Managers = orEmpty(doc.Managers)
	return a.done(sender, "SNMPTest", doc, err, "managers", len(doc.Managers))
}

func (a admin) HAReconnect(sender dbus.Sender) *dbus.Error {
	if derr := a.refused(sender, "HAReconnect"); derr != nil {
		return derr
	}
	return a.doneNoReply(sender, "HAReconnect", a.s.backend.HAReconnect(a.s.ctx))
}

func (a admin) HARemoveStandby(sender dbus.Sender) *dbus.Error {
	if derr := a.refused(sender, "HARemoveStandby"); derr != nil {
		return derr
	}
	return a.doneNoReply(sender, "HARemoveStandby", a.s.backend.HARemoveStandby(a.s.ctx))
}

func (a admin) HARemoveActive(sender dbus.Sender) *dbus.Error {
	if derr := a.refused(sender, "HARemoveActive"); derr != nil {
		return derr
	}
	return a.doneNoReply(sender, "HARemoveActive", a.s.backend.HARemoveActive(a.s.ctx))
}

// propsObject is exported as org.freedesktop.DBus.Properties.
type propsObject struct{ s *Server }

func (o propsObject) all(iface string) (map[string]dbus.Variant, *dbus.Error) {
	switch iface {
	case api.Interface:
		o.s.mu.Lock()
		defer o.s.mu.Unlock()
		return propertyMap(o.s.props), nil
	case api.AdminInterface:
		return map[string]dbus.Variant{}, nil
	}
	return nil, dbus.NewError("org.freedesktop.DBus.Error.UnknownInterface",
		[]any{fmt.Sprintf("%s has no interface %q", api.ObjectPath, iface)})
}

func (o propsObject) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	all, derr := o.all(iface)
	if derr != nil {
		return dbus.Variant{}, derr
	}
	v, ok := all[name]
	if !ok {
		return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty",
			[]any{fmt.Sprintf("%s has no property %q", iface, name)})
	}
	return v, nil
}

func (o propsObject) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	return o.all(iface)
}

func (o propsObject) Set(iface, name string, _ dbus.Variant) *dbus.Error {
	if _, derr := o.Get(iface, name); derr != nil {
		return derr
	}
	return dbus.NewError("org.freedesktop.DBus.Error.PropertyReadOnly",
		[]any{fmt.Sprintf("%s.%s is read-only", iface, name)})
}
