// Package registry is the part of lockstepd's database that is not
// sessions (persist/doc.go): the storage systems and their connections, the
// server-wide heartbeat switch, and the epoch. Like the sessions, it
// changes only through records applied by DB.Apply, so that a replay and
// a standby rebuild exactly the same state.
//
// Record format (JSON, version 1): {"version":1,"kind":K,"at":T,...}
// with kind one of
//
//	storage-added       serial, connection (added to the system, created if new)
//	connection-removed  serial, name (the system goes when its last connection goes)
//	storage-removed     serial
//	heartbeat-set       on
//	epoch-set           epoch (never lower than the current one)
//	zos-added           zos (a z/OS host: name, addresses, sysplex, credentials,
//	                    the storage systems it has online; each gets it as a connection)
//	zos-removed         name
package registry
