package notify

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/daemon/config"
)

// The SNMP wire format of lockstepd's notifications, which LOCKSTEP-MIB
// (etc/mib/LOCKSTEP-MIB.txt, written by WriteMIB) describes. P is the
// enterprise prefix, snmp.enterprise_oid (default 1.3.6.1.4.1.61942, a
// placeholder until a number is registered with IANA):
//
//	P.1            lockstepMIB, the module
//	P.1.0.CODE     the notification of catalogue event CODE (Trap = true
//	               only): P.1.0.2103 is lockstepGroupPartial (LS2103E).
//	               Codes are never reused, so an OID never changes meaning.
//	P.1.1.N        the objects, sent as scalars (instance .0):
//	                 1 lockstepSequence      Unsigned32, per manager, from 1
//	                 2 lockstepServerName    server.name
//	                 3 lockstepRole          "active", "standby", ...
//	                 4 lockstepEventId       "LS2103E"
//	                 5 lockstepEventText     the catalogue's summary
//	                 6 lockstepEventFields   "group=cg:prod why=\"...\"" (sorted keys)
//	                 7 lockstepStorageSerial the storage system, when the event names one
//	P.1.2          conformance (groups and the compliance statement)
//	P.2            the emulated storage's own traps (snmp_storage.go)
//
// Every notification carries, in this order: sysUpTime.0 (TimeTicks, the
// time since the sender started, on its clock), snmpTrapOID.0, objects 1
// to 6, then lockstepStorageSerial.0 when the event has a "serial" field.
// Text objects are UTF-8 (SnmpAdminString), cut to 255 bytes.

// Standard OIDs every SNMPv2 notification starts with.
const (
	oidSysUpTime   = ".1.3.6.1.2.1.1.3.0"
	oidSnmpTrapOID = ".1.3.6.1.6.3.1.1.4.1.0"
)

// Arcs under P.1.
const (
	arcNotifications = 0
	arcObjects       = 1
	arcConformance   = 2
)

// Arcs of the objects under P.1.1.
const (
	objSequence      = 1
	objServerName    = 2
	objRole          = 3
	objEventID       = 4
	objEventText     = 5
	objEventFields   = 6
	objStorageSerial = 7
)

// maxText is the size limit of SnmpAdminString.
const maxText = 255

// mibObject is one object of LOCKSTEP-MIB: the sender and the MIB
// generator both read this table, so they cannot disagree.
type mibObject struct {
	arc    uint32
	name   string
	syntax string
	desc   string
}

var mibObjects = []mibObject{
	{objSequence, "lockstepSequence", "Unsigned32",
		"The number of this notification in the stream sent to one manager: 1 for the first after the " +
			"daemon started, then one more for each. A number missing at the manager is a notification lost, " +
			"on the network or because the sender's queue for that manager was full."},
	{objServerName, "lockstepServerName", "SnmpAdminString (SIZE (0..255))",
		"The name of the management server that sent the notification (server.name in lockstep.toml)."},
	{objRole, "lockstepRole", "SnmpAdminString (SIZE (0..255))",
		"The role of the sending server when the event happened: active, standby or standalone."},
	{objEventID, "lockstepEventId", "SnmpAdminString (SIZE (0..255))",
		"The stable id of the event, such as LS2103E: LS, the 4-digit event code, then the severity " +
			"(I information, W warning, E error). The same id is in the journal and in syslog."},
	{objEventText, "lockstepEventText", "SnmpAdminString (SIZE (0..255))",
		"What an operator should understand from the event (the description of the notification)."},
	{objEventFields, "lockstepEventFields", "SnmpAdminString (SIZE (0..255))",
		"The details of this occurrence as key=value pairs separated by spaces, keys sorted, values " +
			"quoted when they hold spaces, for example group=cg:prod serial=LAB.2107-75P0001. Cut to 255 bytes."},
	{objStorageSerial, "lockstepStorageSerial", "SnmpAdminString (SIZE (0..255))",
		"The serial of the storage system the event is about, such as LAB.2107-75P0001. Sent, after the " +
			"objects of the notification, only by events about one storage system."},
}

// NotificationName is the MIB name of an event's notification, such as
// "lockstepGroupPartial".
func NotificationName(e Event) string {
	return "lockstep" + strings.ToUpper(e.Name[:1]) + e.Name[1:]
}

// NotificationOID is the dotted OID of an event's notification under the
// enterprise prefix: prefix.1.0.CODE.
func NotificationOID(prefix config.OID, e Event) string {
	return fmt.Sprintf("%s.1.%d.%d", prefix, arcNotifications, e.Code)
}

// objectOID is the OID of an object's scalar instance: prefix.1.1.N.0.
func objectOID(prefix config.OID, arc uint32) string {
	return fmt.Sprintf(".%s.1.%d.%d.0", prefix, arcObjects, arc)
}

// Notifications lists the catalogue events that are SNMP notifications.
func Notifications() []Event {
	var out []Event
	for _, e := range Catalog {
		if e.Trap {
			out = append(out, e)
		}
	}
	return out
}

// notification is one notification as queued for a manager, before the
// per-manager sequence number is known.
type notification struct {
	event  Event
	uptime uint32 // sysUpTime.0 at the event, in hundredths of a second
	role   string
	fields string
	serial string // "" when the event names no storage system
}

// varbinds are the variable bindings of a notification to one manager.
func (n notification) varbinds(prefix config.OID, server string, seq uint32) []gosnmp.SnmpPDU {
	str := func(arc uint32, s string) gosnmp.SnmpPDU {
		return gosnmp.SnmpPDU{Name: objectOID(prefix, arc), Type: gosnmp.OctetString, Value: []byte(clip(s))}
	}
	vbs := []gosnmp.SnmpPDU{
		// Sent by us, first: otherwise gosnmp prepends the Unix time.
		{Name: oidSysUpTime, Type: gosnmp.TimeTicks, Value: n.uptime},
		{Name: oidSnmpTrapOID, Type: gosnmp.ObjectIdentifier, Value: "." + NotificationOID(prefix, n.event)},
		{Name: objectOID(prefix, objSequence), Type: gosnmp.Gauge32, Value: uint(seq)},
		str(objServerName, server),
		str(objRole, n.role),
		str(objEventID, n.event.ID()),
		str(objEventText, n.event.Summary),
		str(objEventFields, n.fields),
	}
	if n.serial != "" {
		vbs = append(vbs, str(objStorageSerial, n.serial))
	}
	return vbs
}

// formatFields renders an event's fields as one line: key=value pairs,
// keys sorted so that the same fields always read the same, values quoted
// when they would not read back as one token.
func formatFields(fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := fields[k]
		if v == "" || strings.ContainsAny(v, " \t\r\n=\"\\") || !utf8.ValidString(v) {
			v = strconv.Quote(v)
		}
		b.WriteString(k + "=" + v)
	}
	return b.String()
}

// clip cuts s to SnmpAdminString's 255 bytes without splitting a UTF-8
// sequence, and replaces invalid UTF-8, which the type does not allow.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxText {
		return s
	}
	const more = "..."
	cut := maxText - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// timeTicks converts a duration since start to TimeTicks (hundredths of a
// second), which wrap at 2^32 like every sysUpTime.
func timeTicks(d time.Duration) uint32 {
	if d < 0 {
		return 0
	}
	return uint32(d / (10 * time.Millisecond))
}
