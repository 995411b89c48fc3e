// Package daemon is lockstepd's frame: the Task supervisor, the systemd
// protocol (READY, STATUS, WATCHDOG, RELOADING, STOPPING), and, in later
// work, the wiring of the parts below it (config, persistence, sessions,
// the freeze core, the admin API, HA, notifications).
//
// Tasks are the long-running parts: each runs until its context ends,
// says when it is ready, and names itself. They run under one errgroup:
// the first to fail cancels the others. READY=1 goes to systemd only when
// every task is ready, which for the daemon means: the journal replayed
// and the role known.
//
// The watchdog pings systemd at half of WATCHDOG_USEC, and only while the
// freeze core's loop makes progress: a wedged core stops the pings, and
// systemd restarts the daemon rather than let it pretend to guard
// consistency.
package daemon
