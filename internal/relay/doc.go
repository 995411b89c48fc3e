// Package relay is a TCP relay that a test puts between two processes to
// partition the network between them on command, over loopback only.
//
// The high-availability tests run two lockstepd servers that talk over
// the HA link (mutual TLS over TCP, ha/doc.go). To make the link fail
// the ways a network does, the standby is told to reach the active at the
// relay's address instead of the active's own; the relay forwards every
// connection it accepts to the target, byte for byte in both directions
// (a half-close too), without looking at the bytes, so TLS passes through
// untouched. A test then switches the relay between three modes:
//
//   - forwarding (the start, and after Heal): every new connection is
//     connected to the target and forwarded.
//   - cut (Cut): a partition that both sides notice at once. Every
//     connection is closed on both sides with a reset (SO_LINGER 0), and
//     every new connection is accepted and reset at once, until Heal.
//   - black hole (Blackhole): a silent partition. Connections stay open,
//     but the relay stops reading and writing them in both directions (a
//     write in progress is aborted; bytes already handed to the kernel
//     are gone), so a sender's buffers fill as they would without ACKs.
//     New connections are accepted and never connected to the target. The
//     peers must notice by their own keepalives. Heal resets every
//     black-holed connection: a connection never outlives its partition.
//
// A relay is a userspace process on the same host: the kernel of the
// relay still completes TCP handshakes and answers TCP keepalive probes,
// so during a black hole a peer's connect succeeds and kernel keepalives
// see nothing; only the application's own heartbeats can tell. That is
// the fault the HA link must survive.
//
// Addresses must be IP literals on loopback (127.0.0.0/8 or ::1), both
// the one the relay listens on and the target's, so that a relay never
// sends traffic off the host; New refuses anything else with
// ErrNotLoopback.
//
// A Relay is safe for concurrent use. It owns one goroutine for its
// listener and, per forwarded connection, one plus one per direction;
// Close ends them all before it returns. The package never sleeps and
// keeps no timer: it waits only on sockets.
package relay
