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
// always, with the phase its records give when a group is new to the core
// (a restart). A start is vetted (session.Vetter) before anything is
// recorded or sent: with the heartbeat on, the group it would make must
// have a safe H for the lowest CG timeout of all its source LSSs; its
// group must not be in the middle of a freeze fan-out; its thaw must not
// end the hold of a session of another group on a shared LSS. Its pairs
// then enter the core's scope, and its group goes back to mirroring,
// before the first storage command, so they are covered while being
// established and stay covered if the start fails midway (the session
// stays Preparing with the error); pairs established on a system the
// group's freeze reached meanwhile are frozen again (the start fails).
// SyncGroups runs one at a time, each from the sessions as they are once
// the previous one's groups are in the core. CG timeouts are asked of
// every system not yet known at once, each bounded by the request
// timeout; those that cannot be asked leave the group's lowest CG timeout
// unknown (the core keeps it unprotected by the heartbeat) until the
// system answers again.
//
// A consistency group is one scope (session's doc): a start of one of its
// sessions puts the whole group back to mirroring and ends the holds of
// its frozen sessions (Suspended, Suspended (Partial)), recorded on them;
// their suspended pairs are Dormant in the core until seen mirroring
// again. A later freeze of the group holds every source LSS of it again,
// the frozen sessions' included (recorded: I/O held). A release-io of a
// group that mirrors again ends the holds left on its frozen sessions,
// on the LSSs only such sessions use.
//
// Terminate removes the session's pairs, on the source side first (which
// ends the target side too over a working link), then on the target side
// (what a link down left there, and volumes a recover made sources), then
// the paths of its copy sets, either direction, that no other session
// uses (computed from the sessions' copy sets: not Defined, not
// terminated) and no pair on storage still needs. It never ends a hold:
// terminate is refused while the session holds I/O (session's table).
// Its pairs stay in the core's scope, watched like any others, until
// every one is removed: removing raises no suspend event and a pair
// found gone is no sign, so the terminate freezes nothing, and a
// terminate that fails midway leaves the pairs it did not remove
// covered. A freeze of the group that began before the pairs left the
// scope held the session's source LSSs too: the session goes back into
// the scope, so that the group's thaw ends that hold, and the terminate
// fails (ErrGroupFroze). Every step is idempotent: the next terminate
// finishes one that failed or whose answer was lost.
//
// HyperSwap sessions (hyperswap.go) are carried out with the z/OS hosts
// of Options.SwapHosts: every z/OS connection of this server's sysplex
// with each H1 and H2 system of the session online. A start or a
// hyperswap without one is vetoed, naming why. Their groups are never
// heartbeat-covered (freeze.Group.NoHeartbeat), and no session the
// heartbeat covers may start on one of their LSS pairs (nor they on one
// of its). A start loads the pairs into every host once established
// (after making a host that holds the other direction's pairs forget
// them); terminate unloads them first; hyperswap freezes the group
// through the core (as suspend), then has every host swap. A host's
// unplanned swap report (Swapped) is recorded on the session at once and
// the group is then frozen through the core if it still mirrors; its
// status (FoundSwapped, read by the daemon at the start of an acting
// period and on every poll) records a swap whose report was lost.
//
// The core's contact reports (a storage system unreachable while its
// group mirrors) are recorded by a second goroutine, which waits for the
// command in flight on each session (session.Manager.MarkContact).
package engine
