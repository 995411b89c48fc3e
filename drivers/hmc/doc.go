// Package hmc is the HMC storage connection: storage systems
// reached through a hardware management console (HMC), which relays
// commands over its own private network to its attached storage systems
// and forwards their events. It speaks version 2 of the storage control
// protocol (drivers/wire): a Hello for an HMC, then every request naming
// its target storage system.
//
// A Conn is one HMC connection as an administrator defines it: one HMC,
// or two (a dual HMC, CSM's "HMC1;HMC2"), with one user and password. It
// holds one connection per HMC, shared by every storage system they
// front; Conn.System(serial) is one of those systems as a
// hal.StorageSystem. The systems an HMC fronts are those its HelloOK
// lists (Conn.Attached: discovery), and the op attached says whether it
// reaches each now (Conn.Attachments).
//
// Failover. A command goes to the first HMC, in the configured order,
// that is connected and fronts its system. When that HMC's connection
// dies with the command in flight, the command is sent again on the next
// live one, within the command's own deadline: every hal command is
// idempotent, and a freeze must not be lost to an HMC failure. When the
// HMC answers that it cannot reach the system (status unreachable: its
// private link is down, the system is down), the command did not run and
// goes to the other HMC. Each connection is pinged every KeepAlive and
// closed when a ping goes unanswered for three, so a black-holed HMC
// gives its commands back rather than holding them to their deadline.
// An HMC that answers while its private link to one system is silent
// holds that system's commands without a word: while the other HMC
// fronts the system too, the first gets an equal share of what is left
// of the deadline (clock.WithShare), and a timeout with time left goes
// to the other. With no HMC reaching the system the command fails with
// hal.ErrUnreachable (retryable), and with hal.ErrTimeout too when it
// went out through one and may have run; with every HMC refusing the
// credentials, with hal.ErrAuth.
//
// Each HMC is dialled with backoff on the injected clock (Backoff), like
// a direct cluster. Its certificate is verified against the configured
// storage CA (never the system roots) and its own host name, and must
// name the HMC (URI SAN urn:lockstep:hmc:NAME, the configured name if
// one is set) or match a pin before the password is sent.
//
// Events. Both HMCs forward the events of a system they both front; the
// connection delivers each once, deduplicated by (serial, sequence
// number) over a window of the last 4096 numbers per system. Events
// without a number (fenced) are delivered as they come. An event naming
// a system its HMC did not list is dropped by the wire client: an HMC
// speaks only for its attached systems. The heartbeat ops pass through
// the HMC like any command.
package hmc
