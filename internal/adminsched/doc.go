// Package adminsched runs seeded random schedules that interleave
// administrator commands with storage faults against a real lockstepd,
// and checks after every step that lockstepd protects what storage shows
// (daemon/freeze/doc.go, §6).
//
// A schedule drives lockstepd only through its admin API, the D-Bus
// client lockstepctl uses: storage add and remove, sessions and copy sets
// in shared consistency groups over LSSs with different CG timeouts,
// start-h1-h2, start-h2-h1, suspend, release-io, recover, terminate,
// refresh, session remove, the heartbeat switch, timing changes by reload
// (the entry point SIGHUP calls), and restarts on the journal. Between
// them the lab injects faults: paths of a system or of one LSS pair,
// the manager's connection down or black-holed (on one cluster or both),
// crashes and restarts of storage systems; a dependent-write workload
// runs in rounds (see round). Every check compares lockstepd's word with
// storage's, read from the emulator, never with lockstepd's own session
// list: the list of checks is on bounds (check.go).
//
// # Why in process, on a scaled clock
//
// lockstepd runs in this process (daemon.Server) on a private
// dbus-daemon, with the lab (internal/lab) serving the emulated systems on
// loopback TLS: the real admin API, drivers, wire protocol and freeze
// core, with the freeze core's table and the emulator's state readable
// without another process. A testing/synctest bubble cannot hold it (the
// bus is a process, the sockets are real), so lockstepd and the lab share
// a scaled clock (hal/clock.Scaled, DefaultSpeed times real time): a
// schedule of a minute of storage time takes seconds. Faster would leave
// lockstepd's request timeout too few real milliseconds on a loaded
// machine. The price: the interleaving of a step with lockstepd's timers
// is not exactly the same from run to run; the steps are (Generate
// depends on the seed alone).
//
// # Failing seeds
//
// A run that fails returns its violations; Result.Report is the seed,
// the plan (CG timeouts, sessions, steps) and the timeline, which
// SaveFailure writes to a file. The test replays one seed alone (see
// TestAdminSchedules).
//
// It is test support, not part of lockstepd: it waits on wall-clock
// time for lockstepd's admin API to answer.
package adminsched
