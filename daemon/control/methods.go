package control

import (
	"encoding/xml"
	"strings"

	"github.com/godbus/dbus/v5/introspect"

	"github.com/lockstep-io/lockstep/daemon/control/api"
)

// Standard names the server uses.
const (
	ifaceProperties    = "org.freedesktop.DBus.Properties"
	ifaceIntrospect    = "org.freedesktop.DBus.Introspectable"
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
		{api.Interface, "Status", nil, doc("status")},
		{api.Interface, "StorageList", nil, doc("storage")},
		{api.Interface, "StorageShow", []arg{{"serial", "s"}}, doc("storage")},
		{api.Interface, "SessionList", nil, doc("sessions")},
		{api.Interface, "SessionShow", []arg{{"name", "s"}}, doc("session")},
		{api.Interface, "HeartbeatShow", nil, doc("heartbeat")},
		{api.Interface, "BackupList", nil, doc("backups")},
		{api.Interface, "Events", []arg{{"since", "t"}}, doc("events")},
		{api.Interface, "FirewallHints", []arg{{"format", "s"}}, doc("hints")},
		{api.Interface, "HAStatus", nil, doc("ha")},
		{api.Interface, "TaskList", nil, doc("tasks")},
		{api.Interface, "TaskShow", []arg{{"name", "s"}}, doc("task")},
		{api.Interface, "HMCList", nil, doc("hmcs")},
		{api.Interface, "HMCShow", []arg{{"name", "s"}}, doc("hmc")},
		{api.Interface, "ZOSList", nil, doc("zoss")},
		{api.Interface, "ZOSShow", []arg{{"name", "s"}}, doc("zos")},

		{api.AdminInterface, "StorageAdd", []arg{{"spec", "s"}}, doc("warnings")},
		{api.AdminInterface, "StorageRemove", []arg{{"serial", "s"}, {"connection", "s"}, {"force", "b"}}, doc("warnings")},
		{api.AdminInterface, "HMCAdd", []arg{{"spec", "s"}}, doc("warnings")},
		{api.AdminInterface, "HMCRemove", []arg{{"name", "s"}, {"force", "b"}}, doc("warnings")},
		{api.AdminInterface, "ZOSAdd", []arg{{"spec", "s"}}, doc("warnings")},
		{api.AdminInterface, "ZOSRemove", []arg{{"name", "s"}}, doc("warnings")},
		{api.AdminInterface, "SessionCreate", []arg{{"name", "s"}, {"type", "s"}, {"cg", "s"}, {"policy", "s"}}, nil},
		{api.AdminInterface, "SessionAddCopySet", []arg{{"name", "s"}, {"h1", "s"}, {"h2", "s"}}, nil},
		{api.AdminInterface, "SessionCommand", []arg{{"name", "s"}, {"command", "s"}}, doc("session")},
		{api.AdminInterface, "SessionRemove", []arg{{"name", "s"}}, nil},
		{api.AdminInterface, "HeartbeatSet", []arg{{"on", "b"}}, doc("warnings")},
		{api.AdminInterface, "BackupCreate", nil, doc("backup")},
		{api.AdminInterface, "BackupRestore", []arg{{"name", "s"}}, nil},
		{api.AdminInterface, "HASetStandby", []arg{{"address", "s"}, {"name", "s"}}, nil},
		{api.AdminInterface, "HASetAsStandby", []arg{{"address", "s"}, {"name", "s"}}, nil},
		{api.AdminInterface, "HATakeover", nil, doc("takeover")},
		{api.AdminInterface, "HAReconnect", nil, nil},
		{api.AdminInterface, "HARemoveStandby", nil, nil},
		{api.AdminInterface, "HARemoveActive", nil, nil},
		{api.AdminInterface, "SNMPTest", nil, doc("results")},
		{api.AdminInterface, "TaskCreate", []arg{{"spec", "s"}}, doc("task")},
		{api.AdminInterface, "TaskEnable", []arg{{"name", "s"}, {"on", "b"}}, doc("task")},
		{api.AdminInterface, "TaskRun", []arg{{"name", "s"}, {"at", "t"}}, doc("task")},
		{api.AdminInterface, "TaskRemove", []arg{{"name", "s"}}, nil},
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
	reads := introspect.Interface{Name: api.Interface}
	admin := introspect.Interface{Name: api.AdminInterface}
	for _, m := range apiMethods() {
		im := introspect.Method{Name: m.name, Args: append(introspectArgs(m.in, "in"), introspectArgs(m.out, "out")...)}
		if m.iface == api.Interface {
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
