// Package hapair runs an HA pair for tests and the demo: the emulated
// lab (in process, on loopback TLS), and two real lockstepd processes,
// each with its own private dbus-daemon and its HA listener behind a
// relay (internal/relay) so that a test can partition the two servers
// while both keep reaching the storage systems. It also writes the
// mutual-TLS certificates of the HA link (WritePKI).
//
// It is test support, not part of lockstepd: it polls with wall-clock
// waits, which the daemon's own packages never do.
package hapair
