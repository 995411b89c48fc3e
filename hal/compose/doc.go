// Package compose joins the drivers of one storage system's connections
// (direct, HMC, z/OS) into one hal.Driver that fails over between them
// (docs/architecture.md (Storage connections): one storage system can combine direct and HMC
// connections).
//
// Order. The drivers are tried in the order given; the daemon gives them
// direct first, then HMC, then z/OS (a direct connection has one hop
// fewer; z/OS cannot carry the heartbeat). A command goes to the first
// driver that is connected now (Via not empty) and, when it fails in a
// way that says it may not have run or may run elsewhere (hal.Retryable:
// unreachable, timed out) while the command's deadline still runs, to
// the next connected one, then to those not connected. Every hal command
// is idempotent (hal's contract), so sending one again through another
// connection is safe; a refusal or fencing is the storage system's
// answer and is returned at once.
//
// Deadline. A connected driver followed by other connected ones gets an
// equal share of what is left of the command's deadline (two connected:
// half each, then the rest), so a connection that went silent without
// knowing it yet cannot spend a whole freeze deadline before the one
// that works is tried. Heartbeat commands share only among the
// connections that carry the heartbeat.
//
// Events. Every driver's events are merged; an event with a sequence
// number is delivered once, however many connections forward it (a
// window of the last 4096 numbers); events without one (fenced) pass as
// they come.
package compose
