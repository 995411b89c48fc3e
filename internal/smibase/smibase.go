package smibase

import (
	"os"
	"path/filepath"
)

// Modules are the stand-ins, by module name.
var Modules = map[string]string{
	"SNMPv2-SMI": `SNMPv2-SMI DEFINITIONS ::= BEGIN
org            OBJECT IDENTIFIER ::= { iso 3 }
dod            OBJECT IDENTIFIER ::= { org 6 }
internet       OBJECT IDENTIFIER ::= { dod 1 }
directory      OBJECT IDENTIFIER ::= { internet 1 }
mgmt           OBJECT IDENTIFIER ::= { internet 2 }
mib-2          OBJECT IDENTIFIER ::= { mgmt 1 }
experimental   OBJECT IDENTIFIER ::= { internet 3 }
private        OBJECT IDENTIFIER ::= { internet 4 }
enterprises    OBJECT IDENTIFIER ::= { private 1 }
security       OBJECT IDENTIFIER ::= { internet 5 }
snmpV2         OBJECT IDENTIFIER ::= { internet 6 }
snmpDomains    OBJECT IDENTIFIER ::= { snmpV2 1 }
snmpProxys     OBJECT IDENTIFIER ::= { snmpV2 2 }
snmpModules    OBJECT IDENTIFIER ::= { snmpV2 3 }
MODULE-IDENTITY MACRO ::= BEGIN END
OBJECT-IDENTITY MACRO ::= BEGIN END
OBJECT-TYPE MACRO ::= BEGIN END
NOTIFICATION-TYPE MACRO ::= BEGIN END
Counter32 ::= [APPLICATION 1] IMPLICIT INTEGER (0..4294967295)
Gauge32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)
Unsigned32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)
TimeTicks ::= [APPLICATION 3] IMPLICIT INTEGER (0..4294967295)
END
`,
	"SNMPv2-TC": `SNMPv2-TC DEFINITIONS ::= BEGIN
TEXTUAL-CONVENTION MACRO ::= BEGIN END
TruthValue ::= TEXTUAL-CONVENTION
    STATUS       current
    DESCRIPTION  "Represents a boolean value."
    SYNTAX       INTEGER { true(1), false(2) }
DateAndTime ::= TEXTUAL-CONVENTION
    DISPLAY-HINT "2d-1d-1d,1d:1d:1d.1d,1a1d:1d"
    STATUS       current
    DESCRIPTION  "A date-time specification."
    SYNTAX       OCTET STRING (SIZE (8 | 11))
END
`,
	"SNMPv2-CONF": `SNMPv2-CONF DEFINITIONS ::= BEGIN
OBJECT-GROUP MACRO ::= BEGIN END
NOTIFICATION-GROUP MACRO ::= BEGIN END
MODULE-COMPLIANCE MACRO ::= BEGIN END
END
`,
	"SNMP-FRAMEWORK-MIB": `SNMP-FRAMEWORK-MIB DEFINITIONS ::= BEGIN
IMPORTS
    MODULE-IDENTITY, snmpModules FROM SNMPv2-SMI
    TEXTUAL-CONVENTION FROM SNMPv2-TC;
snmpFrameworkMIB MODULE-IDENTITY
    LAST-UPDATED "200210140000Z"
    ORGANIZATION "IETF SNMPv3 Working Group"
    CONTACT-INFO "RFC 3411"
    DESCRIPTION  "Stand-in for the SNMP Management Architecture MIB."
    REVISION     "200210140000Z"
    DESCRIPTION  "RFC 3411."
    ::= { snmpModules 10 }
SnmpAdminString ::= TEXTUAL-CONVENTION
    DISPLAY-HINT "255t"
    STATUS       current
    DESCRIPTION  "UTF-8 administrative text."
    SYNTAX       OCTET STRING (SIZE (0..255))
END
`,
}

// Write writes every module into dir, one file each named after it (as
// libsmi's SMIPATH and net-snmp's -M look modules up).
func Write(dir string) error {
	for name, text := range Modules {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}
