package notify

import (
	"strings"

	"github.com/lockstep-io/lockstep/daemon/control/snmpstate"
)

// writeState writes the pollable state of LOCKSTEP-MIB (lockstepState)
// from snmpstate's definitions, which lockstepctl snmp pass-persist
// serves: the two cannot drift apart.
func writeState(p func(string, ...any), desc func(indent, text string)) {
	p("lockstepState OBJECT IDENTIFIER ::= { lockstepMIB %d }\n", snmpstate.ArcState)
	p("lockstepLocal OBJECT IDENTIFIER ::= { lockstepState 1 }\n\n")
	object := func(o snmpstate.Object, parent string) {
		access := "read-only"
		if o.Index {
			access = "not-accessible"
		}
		p("%s OBJECT-TYPE\n", o.Name)
		p("    SYNTAX      %s\n", o.Syntax)
		p("    MAX-ACCESS  %s\n", access)
		p("    STATUS      current\n")
		desc("    ", o.Desc)
		p("    ::= { %s %d }\n\n", parent, o.Arc)
	}
	for _, o := range snmpstate.Local {
		object(o, "lockstepLocal")
	}
	for _, t := range snmpstate.Tables {
		p("%s OBJECT-TYPE\n", t.Name)
		p("    SYNTAX      SEQUENCE OF %s\n", t.EntryType)
		p("    MAX-ACCESS  not-accessible\n")
		p("    STATUS      current\n")
		desc("    ", t.Desc)
		p("    ::= { lockstepState %d }\n\n", t.Arc)

		p("%s OBJECT-TYPE\n", t.Entry)
		p("    SYNTAX      %s\n", t.EntryType)
		p("    MAX-ACCESS  not-accessible\n")
		p("    STATUS      current\n")
		desc("    ", t.EntryDesc)
		p("    INDEX       { %s }\n", strings.Join(t.Index, ", "))
		p("    ::= { %s 1 }\n\n", t.Name)

		p("%s ::= SEQUENCE {\n", t.EntryType)
		for i, c := range t.Columns {
			sep := ","
			if i == len(t.Columns)-1 {
				sep = ""
			}
			p("    %-34s %s%s\n", c.Name, baseSyntax(c.Syntax), sep)
		}
		p("}\n\n")
		for _, c := range t.Columns {
			object(c, t.Entry)
		}
	}

	p("lockstepStateGroup OBJECT-GROUP\n")
	p("    OBJECTS {\n")
	names := snmpstate.Names()
	for i, n := range names {
		sep := ","
		if i == len(names)-1 {
			sep = ""
		}
		p("        %s%s\n", n, sep)
	}
	p("    }\n")
	p("    STATUS      current\n")
	desc("    ", "The state an NMS polls: the server, its sessions, storage systems and their connections, "+
		"its consistency groups.")
	p("    ::= { lockstepGroups 3 }\n\n")
}

// baseSyntax is a column's syntax as its SEQUENCE writes it: without a
// size or the enumeration.
func baseSyntax(s string) string {
	if i := strings.IndexAny(s, " ({"); i >= 0 {
		return s[:i]
	}
	return s
}
