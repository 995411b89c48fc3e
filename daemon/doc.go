// Package daemon is lockstepd: the Task supervisor, the systemd protocol
// (READY, STATUS, WATCHDOG, RELOADING, STOPPING), and the wiring of the
// parts below it (config, persistence, sessions, the freeze core, the
// admin API, HA, notifications).
//
// Tasks are the long-running parts: each runs until its context ends,
// says when it is ready, and names itself. They run under one errgroup:
// the first to fail cancels the others. READY=1 goes to systemd only when
// every task is ready, which for the daemon means: the journal replayed
// and the role known.
//
// # Parts
//
// Server builds the parts and wires them; none holds the server. Each
// is given what it uses:
//
//   - emitter (emitter.go): a catalogue event to the log, SNMP and the
//     admin API's signal, in one call;
//   - storageDrivers (drivers.go): the open drivers and why the others
//     are not usable;
//   - periods (duties.go): the acting periods and the server's view of
//     itself; reporter (the core's observer) and notifyingStore (the
//     session store that tells of state changes) are built per period;
//   - haNode (hanode.go): the HA loop, its Effects and the links;
//   - trapSources (storagetrust.go): the storage trap listener's
//     sources, following the registry.
//
// backend.go adapts control.Backend to them; the storage rules the
// registry decides (removals, heartbeat warnings) are in package
// registry, the session counts in package session.
//
// # Shutdown
//
// Run stops in a written order: the Tasks end (the HA part joins every
// goroutine its actions started); the acting period is stopped and
// waited for (its core finishes the freezes in flight, on drivers still
// open), for at most twice a request timeout and a heartbeat interval;
// then every driver closes and has ended; then the store closes.
//
// # Storage drivers
//
// The daemon imports no driver: Options.Drivers maps each connection
// kind to a hal.Factory (cmd/lockstepd wires direct.Factory to
// hal.Direct), and Options.Consoles maps the kinds whose one connection
// fronts several storage systems to a hal.ConsoleFactory (hmc.OpenConsole
// to hal.HMC): one console is opened per HMC connection and hands out a
// driver per system it fronts. A storage system's driver is opened from
// every connection of it this build can use; with several, they are
// composed (hal/compose) and fail over in the order direct, hmc, zos
// (drivers.go). A kind without a factory is shown as not supported by
// this build.
//
// An HMC connection (hmc.go) is defined once (hmc-added); the systems its
// HMCs front are discovered and journaled by the acting server
// (hmc-attached), so that sessions may name them, a standby knows them
// and a restart finds them before the HMCs answer. A connection of kind
// hmc added per system by the former storage add --kind hmc replays but
// is not used.
//
// A z/OS connection (zos.go) is defined once per z/OS host (zos-added)
// with its sysplex and the storage systems it has online, named by the
// administrator (not discovered); each of them has it as a connection of
// kind zos, usable only by a server of that sysplex. A connection of kind
// zos added per system by the former storage add --kind zos replays and
// stays usable.
//
// HyperSwap (swaphosts.go): Options.SwapHosts opens the HyperSwap side of
// a z/OS connection (nil: HyperSwap unavailable, and a HyperSwap
// session's start is refused saying so). One is opened per z/OS
// connection of this server's sysplex, when first needed; a session's
// hosts are those with every H1 and H2 system of it online. The acting
// period follows each: its swap reports go to the engine, and its status
// is read when the period starts and on every poll (the backstop of a
// report lost in a restart or a takeover). The heartbeat never covers
// a HyperSwap session: heartbeat on, and a create or start of one while
// it is on, warn naming them (heartbeatSkipsHyperSwap).
//
// # Acting and not acting
//
// The HA loop (package ha, driven by hanode.go) decides whether this
// server acts. An acting server (standalone or active) runs one acting
// period per epoch (duties.go): a fresh freeze core, engine and session
// manager. A period first fences: it sends its epoch to every storage
// system it reaches (a QueryPaths), so that a former active that still
// believes it acts is refused from then on; only then does the core issue
// anything. The systems that did not answer are the takeover readiness.
// A server that does not act (standby, disconnected standby) runs no
// core: it refuses every change with "issues nothing", keeps connections
// to the storage systems its journal names (to report its readiness), and
// applies the records the active ships. A storage system that answers
// fenced ends the period at once (HigherEpochSeen): no more commands, no
// heartbeat.
//
// While the pair is Synchronized, every change is answered only after
// the standby has fsynced its record (waitReplicated); a link lost
// meanwhile answers at once, and the pair shows Disconnected Consistent.
//
// The relationship (role, partner, highest epoch seen) is kept in
// ha-relationship.json in the state directory, outside the journal: a
// standby's journal is the active's, replaced by each synchronization.
//
// What the acting core cannot vouch for is said, not hidden: a group the
// heartbeat (on) cannot protect (unsafe timings for its CG timeouts, or
// CG timeouts unknown) and a group out of contact with a storage system
// longer than its lowest CG timeout are in STATUS= (after "DEGRADED:"),
// in lockstepctl status, and trapped (groupUnprotected,
// groupOutOfContact). Such a state never keeps the daemon from getting
// ready: a start that never did would make systemd restart-loop.
//
// The watchdog pings systemd at half of WATCHDOG_USEC, and only while the
// acting freeze core's loop makes progress: a wedged core stops the pings,
// and systemd restarts the daemon rather than let it pretend to guard
// consistency. A server that does not act has no core to wedge.
package daemon
