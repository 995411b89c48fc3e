// Package freeze is lockstep's heartbeat and freeze core: the part that
// keeps the secondary image consistent whatever fails.
//
// # The rules
//
// Freeze rule: when anything says a pair of a consistency group may have
// stopped mirroring — a pushed suspend event, a poll that shows a
// suspended pair, a heartbeat that expired, or, with the heartbeat on, a
// storage system whose heartbeat is armed that stopped answering
// heartbeats for the detection window — the core freezes every LSS pair of the group on every storage
// system, concurrently, each system with its own deadline, so that one
// slow or dead system never delays the others. Systems whose freeze failed
// are retried until they acknowledge or become certain.
//
// Thaw rule (the safety invariant): the core never thaws any LSS of a
// group while any of its storage systems might still be mirroring. A
// system that acknowledged the freeze is safe. One that did not is safe
// only once its own heartbeat expiry has certainly happened, at SafeAt =
// last heartbeat sent + H + request timeout (a heartbeat in flight may
// reach the system up to a request timeout after it was sent). Without
// the heartbeat such a system is never known safe: the group stays
// Suspended (Partial), not recoverable. Only an acknowledged freeze makes
// a system "frozen": never an event, nor a heartbeat answered "expired"
// (on either, the core freezes the group, that system included).
//
// A thaw is done when every system acknowledged it, or when the hold of
// one that did not has certainly ended (HoldEnds: the last freeze that
// can have reached it, or its heartbeat expiry, plus its highest CG
// timeout); until then the group still holds I/O, and a thaw asked again
// is sent again to the systems that did not acknowledge it.
//
// Heartbeat: off by default. When on, every group's systems are armed
// with timeout H = lowest CG timeout of the group − Margin, and refreshed
// every Interval. Margin covers the detection window, a tick of the loop
// and twice the request timeout (the freeze fan-out and a heartbeat in
// flight), so that a system which freezes itself always does so before
// the CG timeout of a system that suspended silently releases its held
// writes. Switching the heartbeat on, or new timings, that break
// H + Margin <= lowest CG timeout for a group are refused. A group that
// breaks it anyway (found so at start, or its CG timeouts learnt later)
// is still in the core: it is not heartbeat-armed, it is reported
// unprotected (HealthObserver), and every other sign freezes it. Every
// pair that may be mirroring is in the core's scope, always.
//
// A group of a type the heartbeat does not cover (Group.NoHeartbeat: a
// HyperSwap session's, which its z/OS host protects) gets no heartbeat
// command at all, on or off: no arm, refresh, probe or disarm. It does
// not hold the switch back, is never reported unprotected by the
// heartbeat, and is frozen on every other sign like any group.
//
// The core's own lateness is not a storage system's silence: a tick that
// came late, a heartbeat that left late, an answer handled late (CPU
// starvation, a stopped process) make it re-check — heartbeat again and
// judge the answers — instead of freezing, unless the last acknowledged
// heartbeat + H has passed, when the system may have frozen itself and
// the group is frozen as for silence (Judge).
//
// Contact: while a group mirrors, a system that fails a poll or a
// heartbeat is reported out of contact, and out of contact longer than
// the lowest CG timeout (a hold may have been released behind the
// core's back; ContactLost); the daemon shows it on the sessions.
// Silence from a system whose heartbeat could not be armed is not a
// freeze event: such a system would not freeze itself, so freezing the
// others would only let their CG timeouts release held writes while it
// still mirrors (found by the random schedule of seed 121). The core logs
// it as unprotected and keeps trying to arm it.
// Once a group freezes, its heartbeat stops: a refreshed heartbeat could
// keep an unreachable system mirroring forever, and the systems that
// acknowledged the freeze are disarmed so that a later expiry does not
// hold their writes again after a thaw.
//
// A heartbeat the core stops refreshing (switched off, a group no longer
// safe, new pairs or timings to arm) is stale on a system until a disarm
// or a new arm is acknowledged: the system may still freeze itself with
// it. While the group mirrors, the core freezes it when that expiry may
// have come (last acknowledged heartbeat + the H it was armed with), as
// the heartbeat rule would; once frozen, such a system may hold writes
// again after a thaw, so the group is not thawed until the disarm lands
// or the expiry has certainly passed, and is then thawed again there.
//
// # Scope and phase
//
// A group keeps its phase when its pairs change (a session joins or
// leaves it): a frozen group is never put back to mirroring by a change
// of scope. A group new to the core starts in the phase its sessions'
// records give (Group.Initial): a manager that restarts neither freezes
// again a group that was thawed nor forgets one that was being frozen
// (the fan-out is sent again) or partial (the freeze is retried). A group
// goes back to mirroring only by a start (StartGroup), before its pairs
// are established; refused while its fan-out runs (ErrBusy). Pairs a
// start establishes on a system the group's freeze may already have
// reached are frozen again there (Established).
//
// While a group mirrors, a suspended pair found by a poll is a sign of
// trouble unless it is Dormant (a frozen session's, or one a start is
// establishing) and not yet seen mirroring by a poll since the group went
// back to mirroring, or Quiet (a terminate suspends it on purpose). A
// suspend event is a sign whatever the pair, unless every volume of it is
// quiet: storage raises one only when a pair stops mirroring.
// The suspend events of a freeze (reason freeze) are no sign at all: only
// this core freezes, so they echo its own freezes, possibly late; a
// freeze of a group freezes at once every mirroring group that shares an
// LSS pair with it (the storage freeze suspends their pairs there too).
//
// Two groups may share a source LSS; extended long busy is the LSS's. A
// thaw of one group never ends the hold of an LSS that another group
// holds (being frozen, partial, or frozen): that would let the other's
// writes go on while its unacknowledged systems may still mirror, or end
// a hold its admin kept. The thaw says so, I/O stays held, and the LSS is
// thawed once the other group is.
//
// # Sources of truth
//
// Pushed events, periodic polls and failed commands are independent
// sources of the same truth; a group that is already freezing absorbs
// every further sign. An event is a duplicate only of the same event
// from the same source: no source (a forged trap) can make another's
// event a duplicate. An event that is not the system's own pushed stream
// can make the core freeze sooner, never later, and never fences it.
//
// # The loop
//
// One goroutine owns all state; storage commands run in their own
// goroutines and report back to it, so a black-holed system costs a
// goroutine, never the loop. Progress counts the loop's iterations: the
// daemon pings the systemd watchdog only while it moves. Every timer runs
// on the injected clock; the timing rules are pure functions (timing.go).
package freeze
