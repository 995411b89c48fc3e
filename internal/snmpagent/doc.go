// Package snmpagent runs the system's net-snmp snmpd (Debian snmpd) for
// tests: on a loopback high port, with a temporary configuration whose
// pass_persist line runs lockstepctl snmp pass-persist, the way a site
// serves LOCKSTEP-MIB's state; and walks it with net-snmp's snmpwalk
// (Debian snmp). Test tooling: lockstepd links none of it.
package snmpagent
