// Package smibase writes stand-ins of the IETF SMIv2 base modules that
// LOCKSTEP-MIB imports (SNMPv2-SMI, SNMPv2-TC, SNMPv2-CONF,
// SNMP-FRAMEWORK-MIB), for the tests that check the MIB with smilint or
// resolve its names with net-snmp's tools. Debian ships no IETF MIB (their
// licence is not free enough: net-snmp's and libsmi's packages drop them,
// and smitools' modules are not packaged), so the tests provide the
// definitions LOCKSTEP-MIB uses, as RFC 2578, 2579, 2580 and 3411 define
// them. Test tooling: lockstepd links none of it.
package smibase
