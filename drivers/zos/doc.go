// Package zos is the z/OS storage connection: a hal.StorageSystem
// reached through an emulated z/OS host agent (CSM's "z/OS connection":
// an IP connection to a z/OS host of a named sysplex, default port 5858),
// which carries the commands in-band over its channels to the storage
// systems it has online.
//
// It speaks the storage control protocol of drivers/wire with its z/OS
// extension, over TLS 1.3: one connection per storage system, the Hello
// naming the system and stating the manager's sysplex. The host's
// certificate must chain to the configured storage CA, be valid for the
// address dialled and name the host (urn:lockstep:zos:HOST, or match a
// pin) before the host's credentials are sent. A host refuses a manager
// that is not in its sysplex; the driver then stops dialling at once
// rather than retrying what only configuration can mend, and every
// command says why (wire.ErrSysplex, which wraps hal.ErrAuth).
//
// The connection has no heartbeat capability: the Metro Mirror heartbeat
// does not work through z/OS. EnableHeartbeat, Heartbeat and
// DisableHeartbeat fail at once with hal.ErrUnsupported and a text that
// says so, without a round trip.
//
// Events come from the host's state-change messages (IEA494I): a "pair
// suspended" message becomes a hal.EventSuspend carrying the storage
// system's own event number, so that the manager can tell it from the
// same suspend pushed on a direct connection; the other messages (pair
// pending, suspending, full duplex, extended long busy) are given to
// Options.Messages. A message about another storage system than the
// connection's is dropped (wire). The host also passes on the fenced
// events of the manager's commands.
//
// A z/OS connection is defined per host; the storage systems it reaches
// are discovered from it (Discover, or Online on a system's connection:
// the host's query-online, with the state of its channels to each).
//
// Factory is the hal.Factory of z/OS connections, which cmd/lockstepd
// hands the daemon. It is a factory, not a console (hal.Console), though
// one host serves every system it has online: the host binds each
// connection to the device its Hello names, so a manager holds one
// connection per system through the host, each with its own
// reachability (a channel down cuts one system, not the host).
//
// HyperSwap (hal.SwapHost) runs on the host itself: OpenSwapHost, the
// hal.SwapHostFactory, opens the one connection to the host agent that
// names no storage system (the discovery connection), which carries the
// swap commands (load-swap, unload-swap, swap, swap-status) and on which
// the host pushes the swaps it made, planned or on its own. It shares the
// connect loop, the backoff and the verification of the host's
// certificate with the storage connections; every new connection is
// subscribed to the host's swaps again, so SwapEvents goes on across a
// reconnect (a swap made while none was up is seen by SwapStatus).
//
// The driver keeps one connection live, redialling with exponential
// backoff on the injected clock, and pings it every KeepAlive: a host
// gone silent is closed and shows not connected, rather than holding
// every command to its deadline. A command waits for a connection until
// its own deadline, then fails with hal.ErrUnreachable (and
// hal.ErrTimeout too if it went out on a connection that then died: it
// may have run). A command whose channel is down comes back unreachable
// from the host.
package zos
