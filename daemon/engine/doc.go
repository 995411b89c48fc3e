// Package engine joins the session model to the storage: it carries out
// session commands (session.Hardware) on the storage systems and through
// the freeze core, keeps the core's consistency groups in step with the
// sessions, and turns what the core does on its own — a freeze on an
// event, a settlement, a thaw — into session records.
//
// A consistency group is a session's consistency scope: every session
// sharing its consistency-group name, or the session alone. The core's
// observer calls are queued and recorded in order by Run, never on the
// core's loop: a record may wait for an fsync, a freeze must not.
//
// Scope: every session that is not Defined is in the core's groups,
// always. A start is vetted (session.Vetter) before anything is recorded
// or sent: with the heartbeat on, the group it would make must have a
// safe H for the lowest CG timeout of all its source LSSs. Its pairs then
// enter the core's scope before the first storage command, so they are
// covered while being established and stay covered if the start fails
// midway (the session stays Preparing with the error). SyncGroups runs
// one at a time, each from the sessions as they are once the previous
// one's groups are in the core. CG timeouts that cannot be asked leave
// the group's lowest CG timeout unknown (the core keeps it unprotected
// by the heartbeat) until the system answers again.
//
// The core's contact reports (a storage system unreachable while its
// group mirrors) are recorded by a second goroutine, which waits for the
// command in flight on each session (session.Manager.MarkContact).
//
// Known gap: the storage control protocol has no command that deletes a
// pair, so terminate suspends the pairs (without a hold) and ends any
// hold; the pairs stay suspended on the storage systems.
package engine
