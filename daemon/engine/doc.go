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
// Known gap: the storage control protocol has no command that deletes a
// pair, so terminate suspends the pairs (without a hold) and ends any
// hold; the pairs stay suspended on the storage systems.
package engine
