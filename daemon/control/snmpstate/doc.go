// Package snmpstate is LOCKSTEP-MIB's pollable state: the definition of
// its objects (the server's scalars and the session, storage system,
// connection and consistency-group tables), the mapping of the admin
// API's documents to their values, and net-snmp's pass_persist protocol
// that serves them through the system's snmpd (lockstepctl snmp
// pass-persist). snmpd keeps the access control, communities and v3
// users; this package only answers get and getnext for the subtree.
//
// It is plain data over package api: lockstepctl links it, and
// daemon/notify writes the objects into the MIB from the same
// definitions, so the MIB and what is served cannot drift apart.
//
// # Indexes
//
// Rows are indexed by name (a session's or group's name, a storage
// system's serial, then a connection's name), encoded as a
// length-prefixed string as SMIv2 does for a non-IMPLIED index: a row
// keeps its index across restarts, additions and removals, which an NMS's
// history needs. A name longer than its index allows is left out (names
// are validated far below those limits).
//
// # Times
//
// Last-change and last-freeze times are DateAndTime in UTC (11 octets),
// '0000000000000000'H when nothing happened since the daemon started. A
// TimeStamp (sysUpTime-relative) is not used: sysUpTime is snmpd's, not
// lockstepd's, and the two restart independently.
package snmpstate
