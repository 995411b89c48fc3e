package control

import (
	"encoding/xml"
	"strings"

	"github.com/godbus/dbus/v5/introspect"
)

// Names of the admin API on the bus.
const (
	// BusName is the well-known name lockstepd owns.
	BusName = "org.lockstep.Manager1"
	// ObjectPath is the one object lockstepd exports.
	ObjectPath = "/org/lockstep/Manager1"
	// Interface holds the reads (anyone may call them), the Event signal
	// and the properties.
	Interface = "org.lockstep.Manager1"
	// AdminInterface holds the changes (root and group lockstep only, by
	// the bus policy).
	AdminInterface = "org.lockstep.Manager1.Admin"
)

// D-Bus error names the server replies with. The client turns each back
// into an error that errors.Is matches against the sentinel shown.
const (
	ErrorNotAllowed  = "org.lockstep.Manager1.Error.NotAllowed"  // session.ErrNotAllowed
	ErrorNotFound    = "org.lockstep.Manager1.Error.NotFound"    // ErrNotFound
	ErrorInvalidArgs = "org.lockstep.Manager1.Error.InvalidArgs" // ErrInvalid
	ErrorRefused     = "org.lockstep.Manager1.Error.Refused"     // ErrRefused
	ErrorUnavailable = "org.lockstep.Manager1.Error.Unavailable" // ErrUnavailable
	ErrorFailed      = "org.lockstep.Manager1.Error.Failed"      // ErrFailed
)

// Standard names used by the server and the client.
const (
	ifaceProperties    = "org.freedesktop.DBus.Properties"
	ifaceIntrospect    = "org.freedesktop.DBus.Introspectable"
	signalEvent        = Interface + ".Event"
	signalPropsChanged = ifaceProperties + ".PropertiesChanged"
)

// arg is a named argument of a method or signal, with its D-Bus type.
type arg struct{ name, sig string }

// method is one method of the API as introspection shows it. The table
// below is the single description of the bus surface: introspection is
// built from it, and a test checks it against the Go methods exported.
type method struct {
	iface   string
	name    string
	in, out []arg
}

// apiMethods is every method of both interfaces, reads first.
func apiMethods() []method {
	doc := func(name string) []arg { return []arg{{name, "s"}} } // a JSON document
	return []method{
		{Interface, "Status", nil, doc("status")},
		{Interface, "StorageList", nil, doc("storage")},
		{Interface, "StorageShow", []arg{{"serial", "s"}}, doc("storage")},
		{Interface, "SessionList", nil, doc("sessions")},
		{Interface, "SessionShow", []arg{{"name", "s"}}, doc("session")},
		{Interface, "HeartbeatShow", nil, doc("heartbeat")},
		{Interface, "BackupList", nil, doc("backups")},
		{Interface, "Events", []arg{{"since", "t"}}, doc("events")},
		{Interface, "FirewallHints", []arg{{"format", "s"}}, doc("hints")},
		{Interface, "HAStatus", nil, doc("ha")},

		{AdminInterface, "StorageAdd", []arg{{"spec", "s"}}, doc("warnings")},
		{AdminInterface, "StorageRemove", []arg{{"serial", "s"}, {"connection", "s"}, {"force", "b"}}, doc("warnings")},
		{AdminInterface, "SessionCreate", []arg{{"name", "s"}, {"type", "s"}, {"cg", "s"}, {"policy", "s"}}, nil},
		{AdminInterface, "SessionAddCopySet", []arg{{"name", "s"}, {"h1", "s"}, {"h2", "s"}}, nil},
		{AdminInterface, "SessionCommand", []arg{{"name", "s"}, {"command", "s"}}, doc("session")},
		{AdminInterface, "SessionRemove", []arg{{"name", "s"}}, nil},
		{AdminInterface, "HeartbeatSet", []arg{{"on", "b"}}, doc("warnings")},
		{AdminInterface, "BackupCreate", nil, doc("backup")},
		{AdminInterface, "BackupRestore", []arg{{"name", "s"}}, nil},
		{AdminInterface, "HASetStandby", []arg{{"address", "s"}, {"name", "s"}}, nil},
		{AdminInterface, "HASetAsStandby", []arg{{"address", "s"}, {"name", "s"}}, nil},
		{AdminInterface, "HATakeover", nil, doc("takeover")},
		{AdminInterface, "HAReconnect", nil, nil},
		{AdminInterface, "HARemoveStandby", nil, nil},
		{AdminInterface, "HARemoveActive", nil, nil},
	}
}

// eventArgs are the arguments of the Event signal, in order.
func eventArgs() []arg {
	return []arg{{"seq", "t"}, {"id", "s"}, {"severity", "s"}, {"text", "s"}, {"fields", "s"}, {"at", "t"}}
}

// propertyTypes are the properties of Interface and their D-Bus types.
func propertyTypes() []arg {
	return []arg{{"Role", "s"}, {"HAState", "s"}, {"Heartbeat", "b"}, {"Epoch", "t"}, {"Version", "s"}}
}

func introspectArgs(args []arg, dir string) []introspect.Arg {
	out := make([]introspect.Arg, 0, len(args))
	for _, a := range args {
		out = append(out, introspect.Arg{Name: a.name, Type: a.sig, Direction: dir})
	}
	return out
}

// introspectionXML is the answer to Introspect on ObjectPath.
func introspectionXML() (string, error) {
	reads := introspect.Interface{Name: Interface}
	admin := introspect.Interface{Name: AdminInterface}
	for _, m := range apiMethods() {
		im := introspect.Method{Name: m.name, Args: append(introspectArgs(m.in, "in"), introspectArgs(m.out, "out")...)}
		if m.iface == Interface {
			reads.Methods = append(reads.Methods, im)
		} else {
			admin.Methods = append(admin.Methods, im)
		}
	}
	reads.Signals = []introspect.Signal{{Name: "Event", Args: introspectArgs(eventArgs(), "")}}
	for _, p := range propertyTypes() {
		reads.Properties = append(reads.Properties, introspect.Property{
			Name: p.name, Type: p.sig, Access: "read",
			Annotations: []introspect.Annotation{{Name: "org.freedesktop.DBus.Property.EmitsChangedSignal", Value: "true"}},
		})
	}
	props := introspect.Interface{
		Name: ifaceProperties,
		Methods: []introspect.Method{
			{Name: "Get", Args: introspectArgs([]arg{{"interface", "s"}, {"property", "s"}}, "in")},
			{Name: "GetAll", Args: introspectArgs([]arg{{"interface", "s"}}, "in")},
			{Name: "Set", Args: introspectArgs([]arg{{"interface", "s"}, {"property", "s"}, {"value", "v"}}, "in")},
		},
		Signals: []introspect.Signal{{Name: "PropertiesChanged", Args: introspectArgs(
			[]arg{{"interface", "s"}, {"changed_properties", "a{sv}"}, {"invalidated_properties", "as"}}, "")}},
	}
	props.Methods[0].Args = append(props.Methods[0].Args, introspect.Arg{Name: "value", Type: "v", Direction: "out"})
	props.Methods[1].Args = append(props.Methods[1].Args, introspect.Arg{Name: "properties", Type: "a{sv}", Direction: "out"})

	node := introspect.Node{Interfaces: []introspect.Interface{
		reads, admin, props, introspect.IntrospectData, introspect.PeerData,
	}}
	b, err := xml.MarshalIndent(node, "", "  ")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(introspect.IntrospectDeclarationString) + "\n" + string(b) + "\n", nil
}
