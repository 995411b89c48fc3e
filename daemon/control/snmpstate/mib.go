package snmpstate

// The definitions of the objects. Arcs are relative to lockstepMIB
// (prefix.1): the state is lockstepMIB.3, beside the notifications (0),
// their objects (1) and the conformance (2).

// ArcState is the arc of lockstepState under lockstepMIB.
const ArcState = 3

// Arcs under lockstepState.
const (
	arcLocal       = 1
	arcSessions    = 2
	arcStorage     = 3
	arcConnections = 4
	arcCGs         = 5
)

// Object is one OBJECT-TYPE: a scalar of the server group or a column of
// a table.
type Object struct {
	Name   string
	Arc    uint32
	Syntax string
	// Index: a not-accessible index column.
	Index bool
	Desc  string
}

// Table is one conceptual table, its entry and columns.
type Table struct {
	Name      string // lockstepSessionTable
	Entry     string // lockstepSessionEntry
	EntryType string // LockstepSessionEntry
	Arc       uint32
	Desc      string
	EntryDesc string
	// Index names the INDEX objects, in order; an index from another
	// table (the storage system of a connection) comes first.
	Index   []string
	Columns []Object
}

// Enumerations. Each starts with other(1): a word of a newer daemon that
// this lockstepctl does not know is other, not an error.
var (
	roleEnum    = []string{"other", "standalone", "active", "standby", "disconnected-standby"}
	haStateEnum = []string{"other", "Unknown", "Standalone", "Synchronization Pending", "Synchronized",
		"Disconnected Consistent", "Disconnected"}
	sessionStateEnum = []string{"other", "defined", "preparing", "prepared", "suspending", "suspended",
		"suspended-partial", "recovering", "target-available"}
	sessionStatusEnum = []string{"other", "inactive", "normal", "warning", "severe"}
	connKindEnum      = []string{"other", "direct", "hmc", "zos"}
	connStateEnum     = []string{"other", "connected", "connecting", "disconnected", "unusable"}
	phaseEnum         = []string{"other", "mirroring", "freezing", "partial", "frozen", "thawed"}
)

// enumSyntax is an INTEGER enumeration of words, numbered from 1, each
// written as an SMI identifier ("Disconnected Consistent" is
// disconnectedConsistent).
func enumSyntax(words []string) string {
	s := "INTEGER {"
	for i, w := range words {
		if i > 0 {
			s += ","
		}
		s += " " + identifier(w) + "(" + itoa(i+1) + ")"
	}
	return s + " }"
}

// enumValue is w's number in words, other(1) if it is not there.
func enumValue(words []string, w string) int {
	for i, x := range words {
		if x == w {
			return i + 1
		}
	}
	return 1
}

// identifier writes a word as an SMI identifier: lower camel case.
func identifier(w string) string {
	out := []byte{}
	upper := false
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c == ' ' || c == '-':
			upper = true
			continue
		case len(out) == 0 && c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case upper && c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		upper = false
		out = append(out, c)
	}
	return string(out)
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

const (
	adminString   = "SnmpAdminString"
	lastChangeDoc = " '0000000000000000'H when it has not changed since the daemon started (lockstepLocalStarted)."
	counterDoc    = " It counts from zero when the daemon starts: lockstepLocalStarted is its discontinuity time."
)

// Local is the server group: scalars under lockstepLocal.
var Local = []Object{
	{Name: "lockstepLocalName", Arc: 1, Syntax: adminString + " (SIZE (0..255))",
		Desc: "This server's name (server.name in lockstep.toml, its host name by default)."},
	{Name: "lockstepLocalRole", Arc: 2, Syntax: enumSyntax(roleEnum),
		Desc: "This server's role: standalone without a partner, active or standby of an HA pair, or " +
			"disconnectedStandby: a standby that lost its active and has not taken over."},
	{Name: "lockstepLocalHAState", Arc: 3, Syntax: enumSyntax(haStateEnum),
		Desc: "The HA connection state as this server sees it. An NMS alerts on disconnected and " +
			"disconnectedConsistent: the standby cannot take over with the active's latest state, or has not " +
			"heard of it for a while."},
	{Name: "lockstepLocalEpoch", Arc: 4, Syntax: "Unsigned32",
		Desc: "The HA epoch this server knows: it rises at each takeover. A storage system refuses commands " +
			"from a lower epoch. 4294967295 stands for any higher value."},
	{Name: "lockstepLocalActing", Arc: 5, Syntax: "TruthValue",
		Desc: "true(1) while this server issues commands and runs the heartbeat: an active or standalone server " +
			"once its epoch reached every storage system it can reach. Exactly one server of a pair should act."},
	{Name: "lockstepLocalStandbyLag", Arc: 6, Syntax: "Gauge32",
		Desc: "On an active linked to its standby, the journal records the standby has not acknowledged yet; " +
			"0 otherwise."},
	{Name: "lockstepLocalPartner", Arc: 7, Syntax: adminString + " (SIZE (0..255))",
		Desc: "The HA partner's address, empty when standalone."},
	{Name: "lockstepLocalPartnerRole", Arc: 8, Syntax: adminString + " (SIZE (0..255))",
		Desc: "The partner's role as last heard from it (active, standby, ...), empty when not known."},
	{Name: "lockstepLocalLastChange", Arc: 9, Syntax: "DateAndTime",
		Desc: "When lockstepLocalRole or lockstepLocalHAState last changed;" + lastChangeDoc},
	{Name: "lockstepLocalTransitions", Arc: 10, Syntax: "Counter32",
		Desc: "How many times lockstepLocalRole or lockstepLocalHAState changed, however briefly." + counterDoc},
	{Name: "lockstepLocalStarted", Arc: 11, Syntax: "DateAndTime",
		Desc: "When lockstepd started: the discontinuity time of every transitions counter of this module."},
}

// Tables are the tables, in the order of their arcs.
var Tables = []Table{
	{Name: "lockstepSessionTable", Entry: "lockstepSessionEntry", EntryType: "LockstepSessionEntry", Arc: arcSessions,
		Desc:      "The sessions this server manages (on a standby: those the active shipped to it).",
		EntryDesc: "One session, indexed by its name.",
		Index:     []string{"lockstepSessionIndex"},
		Columns: []Object{
			{Name: "lockstepSessionIndex", Arc: 1, Syntax: adminString + " (SIZE (1..64))", Index: true,
				Desc: "The session's name, as index."},
			{Name: "lockstepSessionName", Arc: 2, Syntax: adminString + " (SIZE (1..64))",
				Desc: "The session's name."},
			{Name: "lockstepSessionType", Arc: 3, Syntax: adminString + " (SIZE (0..64))",
				Desc: "The session type: mm-single-direction or mm-failover-failback."},
			{Name: "lockstepSessionState", Arc: 4, Syntax: enumSyntax(sessionStateEnum),
				Desc: "The session's state. suspended with lockstepSessionRecoverable true(1) is a consistent " +
					"secondary; suspendedPartial is not."},
			{Name: "lockstepSessionStatus", Arc: 5, Syntax: enumSyntax(sessionStatusEnum),
				Desc: "The session's status: an NMS alerts on warning and severe."},
			{Name: "lockstepSessionRecoverable", Arc: 6, Syntax: "TruthValue",
				Desc: "true(1) when the target site holds a consistent image that a Recover can use."},
			{Name: "lockstepSessionCopying", Arc: 7, Syntax: "TruthValue",
				Desc: "true(1) while some pair of the session copies to the target site."},
			{Name: "lockstepSessionIOHeld", Arc: 8, Syntax: "TruthValue",
				Desc: "true(1) while host writes to the session's source volumes are held (frozen, within the " +
					"storage systems' consistency group timeout)."},
			{Name: "lockstepSessionCopySets", Arc: 9, Syntax: "Gauge32",
				Desc: "The number of copy sets (volume pairs) of the session."},
			{Name: "lockstepSessionCG", Arc: 10, Syntax: adminString + " (SIZE (0..64))",
				Desc: "The consistency group the session names; while the server acts, its row in lockstepCGTable " +
					"is cg:NAME. Empty: the session is its own group, session:NAME there."},
			{Name: "lockstepSessionLastChange", Arc: 11, Syntax: "DateAndTime",
				Desc: "When the session's state last changed, as recorded in the journal (it survives a restart); " +
					"'0000000000000000'H if never."},
			{Name: "lockstepSessionTransitions", Arc: 12, Syntax: "Counter32",
				Desc: "How many times lockstepSessionState, lockstepSessionStatus or lockstepSessionRecoverable " +
					"changed, however briefly: a flap between two polls shows here. A standby, which applies the " +
					"active's records, counts the changes it was asked about (poll the active for flaps)." + counterDoc},
		}},
	{Name: "lockstepStorageTable", Entry: "lockstepStorageEntry", EntryType: "LockstepStorageEntry", Arc: arcStorage,
		Desc:      "The storage systems this server knows.",
		EntryDesc: "One storage system, indexed by its serial.",
		Index:     []string{"lockstepStorageIndex"},
		Columns: []Object{
			{Name: "lockstepStorageIndex", Arc: 1, Syntax: adminString + " (SIZE (1..32))", Index: true,
				Desc: "The storage system's serial, as index."},
			{Name: "lockstepStorageSystemSerial", Arc: 2, Syntax: adminString + " (SIZE (1..32))",
				Desc: "The storage system's serial, such as LAB.2107-75P0001."},
			{Name: "lockstepStorageReachable", Arc: 3, Syntax: "TruthValue",
				Desc: "true(1) when some connection to the storage system works."},
			{Name: "lockstepStorageHeartbeatArmed", Arc: 4, Syntax: "TruthValue",
				Desc: "true(1) when the acting server's heartbeat is armed on this storage system for some " +
					"consistency group: the system freezes itself if the heartbeat stops."},
			{Name: "lockstepStorageHeartbeatCapable", Arc: 5, Syntax: "TruthValue",
				Desc: "true(1) when a working connection of the storage system can carry the heartbeat (TCP/IP)."},
			{Name: "lockstepStorageConnections", Arc: 6, Syntax: "Gauge32",
				Desc: "The number of configured connections: its rows in lockstepConnectionTable."},
			{Name: "lockstepStorageLastChange", Arc: 7, Syntax: "DateAndTime",
				Desc: "When lockstepStorageReachable last changed;" + lastChangeDoc},
			{Name: "lockstepStorageTransitions", Arc: 8, Syntax: "Counter32",
				Desc: "How many times lockstepStorageReachable changed, however briefly." + counterDoc},
		}},
	{Name: "lockstepConnectionTable", Entry: "lockstepConnectionEntry", EntryType: "LockstepConnectionEntry", Arc: arcConnections,
		Desc:      "The connections of each storage system.",
		EntryDesc: "One connection, indexed by its storage system's serial and its name.",
		Index:     []string{"lockstepStorageIndex", "lockstepConnectionIndex"},
		Columns: []Object{
			{Name: "lockstepConnectionIndex", Arc: 1, Syntax: adminString + " (SIZE (1..32))", Index: true,
				Desc: "The connection's name, as index."},
			{Name: "lockstepConnectionName", Arc: 2, Syntax: adminString + " (SIZE (1..32))",
				Desc: "The connection's name."},
			{Name: "lockstepConnectionKind", Arc: 3, Syntax: enumSyntax(connKindEnum),
				Desc: "How the server reaches the storage system: direct (TCP/IP), hmc, or zos."},
			{Name: "lockstepConnectionState", Arc: 4, Syntax: enumSyntax(connStateEnum),
				Desc: "The connection's state; unusable: this server cannot use the connection (its kind is not " +
					"supported by the build, or a z/OS connection from outside its sysplex)."},
			{Name: "lockstepConnectionDetail", Arc: 5, Syntax: adminString + " (SIZE (0..255))",
				Desc: "Why the connection is not connected; while connected, the cluster it talks to."},
		}},
	{Name: "lockstepCGTable", Entry: "lockstepCGEntry", EntryType: "LockstepCGEntry", Arc: arcCGs,
		Desc: "The consistency groups the acting server's freeze core watches; empty on a server that " +
			"does not act.",
		EntryDesc: "One consistency group, indexed by its name.",
		Index:     []string{"lockstepCGIndex"},
		Columns: []Object{
			{Name: "lockstepCGIndex", Arc: 1, Syntax: adminString + " (SIZE (1..80))", Index: true,
				Desc: "The group's name, as index."},
			{Name: "lockstepCGName", Arc: 2, Syntax: adminString + " (SIZE (1..80))",
				Desc: "The group's name as the freeze core and lockstepctl heartbeat show name it: cg:NAME for " +
					"the group NAME that sessions share (lockstepSessionCG), session:NAME for a session that " +
					"names no group."},
			{Name: "lockstepCGPhase", Arc: 3, Syntax: enumSyntax(phaseEnum),
				Desc: "Where the group is: mirroring; freezing (the freeze is being sent); partial (some storage " +
					"system may still mirror: not recoverable); frozen (every system froze in time: consistent); " +
					"thawed (I/O released)."},
			{Name: "lockstepCGSystems", Arc: 4, Syntax: "Gauge32",
				Desc: "The source storage systems of the group."},
			{Name: "lockstepCGFrozenSystems", Arc: 5, Syntax: "Gauge32",
				Desc: "Of lockstepCGSystems, those that acknowledged the group's freeze; 0 while mirroring."},
			{Name: "lockstepCGLastFreeze", Arc: 6, Syntax: "DateAndTime",
				Desc: "When the group's last freeze began; '0000000000000000'H if none since the daemon started."},
			{Name: "lockstepCGLastChange", Arc: 7, Syntax: "DateAndTime",
				Desc: "When lockstepCGPhase last changed;" + lastChangeDoc},
			{Name: "lockstepCGTransitions", Arc: 8, Syntax: "Counter32",
				Desc: "How many times lockstepCGPhase changed, however briefly." + counterDoc},
		}},
}

// Names is every accessible object of the state, in OID order: the
// OBJECT-GROUP of the MIB.
func Names() []string {
	var out []string
	for _, o := range Local {
		out = append(out, o.Name)
	}
	for _, t := range Tables {
		for _, c := range t.Columns {
			if !c.Index {
				out = append(out, c.Name)
			}
		}
	}
	return out
}
