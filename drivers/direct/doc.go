// Package direct is the direct TCP/IP storage connection: a
// hal.StorageSystem over the two cluster endpoints of one storage system,
// speaking the storage control protocol of drivers/wire over TLS 1.3.
//
// One connection is live at a time. When it dies the driver fails over to
// the other cluster at once, then retries both with exponential backoff on
// the injected clock (Backoff), so a storage system that is down costs a
// bounded number of dials and never a tight loop. A connection that dies
// within StableAfter of its handshake counts as a failure for the backoff,
// so an endpoint that accepts and drops cannot spin the driver either.
// A connection that goes silent (a cluster whose network dies without a
// word: no error, no answer) is found by the keep-alive, a ping every
// KeepAlive that must be answered within three, and closed like one that
// died: TCP alone would keep it for many minutes. A command whose connection dies
// under it is sent again on the next live one within its deadline
// (wire.SendAgain); one that cannot be says it may have run.
//
// A command waits for a live connection until its own deadline, then
// fails with hal.ErrUnreachable (or hal.ErrAuth when the storage system
// refused the credentials, which retrying will not mend). Each storage
// system has its own driver, goroutines and sockets: a slow or black-holed
// system never delays commands to another.
//
// Each endpoint's certificate is verified against the configured storage
// CA (never the system roots: without a CA the driver does not dial) and
// that endpoint's own host name, since each cluster has its own
// certificate; then it must name the storage system's serial, or match
// its pin, before the credentials are sent (wire.VerifyIdentity).
//
// Events of whichever connection is live are fanned out to every Events
// subscriber; an event lost while no connection was live is what the
// manager's periodic poll is for.
//
// Factory is the hal.Factory of direct connections, which cmd/lockstepd
// maps to hal.Direct. A driver's one goroutine of its own (the connect
// loop) lives in the context New was given and is joined by Close.
package direct
