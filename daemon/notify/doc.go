// Package notify owns what lockstepd tells the outside world: the one
// catalogue of operator-visible events (Catalog); the log handlers that
// write them to journald with native fields, to stderr, and as RFC 5424
// syslog to a remote collector; the SNMP traps and informs to the NMS
// (snmp.go); LOCKSTEP-MIB, generated from the same catalogue (mib.go); and
// the listener for the storage systems' own traps, which accepts a trap
// only from a defined storage system's address, with the configured
// community or SNMPv3 user, for a serial that address serves
// (snmp_storage.go). An event that is not in
// Catalog cannot be logged, trapped or documented.
//
// Every event has a stable id with a severity suffix — "LS2101W" — that
// never changes meaning once released, and a journald MESSAGE_ID derived
// from it (128 bits, as journald's catalogue expects):
//
//	6c6f636b737465700000000000000835   (the ASCII of "lockstep", then the code)
package notify
