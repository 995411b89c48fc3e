// Package session owns the Metro Mirror session model of lockstep
// (daemon/freeze/doc.go): sessions, their copy sets, their states and flags, the
// allowed-commands table, and the dispatch of admin commands to the
// hardware. It talks to storage only through the Hardware interface,
// which the freeze core (daemon/freeze) implements.
//
// # One mutator
//
// The session database (DB) changes only through records applied by
// DB.Apply, a pure function of the DB and the record (persist/doc.go).
// Apply validates a record completely before changing anything: a refused
// record changes nothing and returns an error wrapping one of the
// package's sentinels. The same records in the same order build the same
// DB on the active, on the standby and at every replay. Nothing else
// writes session state: the Manager and the freeze core propose records
// to a Store, which makes them durable and then applies them.
//
// # Sessions
//
// A session has a name, a type (mm-single-direction,
// mm-failover-failback or mm-hyperswap: failover/failback whose host I/O
// a z/OS host swaps; its consistency group holds HyperSwap sessions
// only, since the heartbeat, which covers a group as a whole, never
// covers it), an optional consistency-group name (sessions
// sharing one are frozen together; an empty one is a scope of its own), a
// suspend policy (hold-io or release-io), a production site (H1 or H2), a
// copy direction, and copy sets (one volume at H1, one at H2, on different
// storage systems; a volume belongs to one copy set of one session).
// Copy sets are added and removed, and sessions removed, only in Defined.
//
// Sessions sharing a consistency-group name are one scope: a freeze of
// one freezes all of them, and holds the I/O of every one that is not
// Defined, those already frozen included (MarkFreezing records I/O held
// on them too). A start of one session of a frozen group puts the group
// back to mirroring: the group holds nothing while it mirrors, so the
// holds of its other frozen sessions end with it (Suspended and
// Suspended (Partial) sessions are recorded released; they stay frozen
// and keep their recoverability, their writes go on unmirrored as after
// a release-io) and their suspended pairs are no sign of trouble until
// they mirror again. This is what a CSM administrator would expect of
// one consistency group: it is started, frozen and released as a whole,
// one session at a time being the way to start it again (there is no
// command that starts several sessions at once, and refusing the start
// of one while another is frozen would leave a frozen group no way back).
// A Target Available session keeps its hold (it guards the old
// production site after a recover) until its own release-io.
//
// States: Defined, Preparing, Prepared, Suspending, Suspended, Suspended
// (Partial), Recovering, Target Available. Status: Inactive (Defined),
// Normal (Prepared, Target Available), Warning (Preparing and the
// transitional states), Severe (suspended pairs, or a failed command).
// Flags: Recoverable (the target image is known consistent), Copying,
// Error (the last command failed or the hardware disagrees), IOHeld (the
// source LSSs hold writes after a freeze).
//
// Recoverable is true only after a freeze that was certain on every
// storage system of the scope and that began while every pair was
// full-duplex (Prepared); it survives Recovering into Target Available.
// A partial freeze, a freeze of a Preparing session, a resync, or pairs
// found suspended by a refresh without a confirmed freeze all leave it
// false. Apply enforces this and the other invariants (Session.check) on
// every state change, whoever proposes it.
//
// # Commands
//
// Allowed commands by state (rules in commands.go, one comment per row);
// "start" is start-h1-h2 when production is at H1 and start-h2-h1 (a
// failover/failback session only) when it is at H2:
//
//	Defined              start (with copy sets)
//	Preparing            start, suspend, terminate (if I/O not held),
//	                     refresh
//	Prepared             start, suspend, hyperswap (HyperSwap type),
//	                     terminate (if I/O not held), refresh
//	Suspending           refresh
//	Suspended            start (resync), release-io (if I/O held),
//	                     recover (if recoverable), terminate (if I/O
//	                     not held), refresh
//	Suspended (Partial)  start, suspend (retry the freeze),
//	                     release-io (if I/O held), terminate (if I/O
//	                     not held), refresh
//	Recovering           refresh
//	Target Available     start from the recovered site (failover/failback
//	                     only), release-io (if I/O held), terminate (if
//	                     I/O not held), refresh
//
// Hyperswap (Prepared only: a host swaps only to a current image) is a
// suspend followed by the z/OS hosts' swap (Swapper): the session ends
// Target Available with the target site active, Normal if the freeze
// was certain, Severe otherwise; a swap that fails leaves the suspend's
// outcome with the error. A host's unplanned swap is news recorded at
// once (MarkSwapped, swappedChange), whatever the freeze state; its
// status read later records it too (FoundSwapped, which like Observe
// does not record over a command in flight).
//
// Terminate removes the session's pairs and the paths no other session
// uses; the session goes back to Defined. It is refused while the
// session holds I/O: whether held writes may go on unmirrored is the
// admin's decision, release-io, never a side effect of a terminate. A
// terminate of a Defined session succeeds and does nothing, so that one
// repeated after a lost answer is not an error; one that failed midway
// leaves the session in its state with the error, and the next one
// finishes it (removing is idempotent).
//
// Commands to one session run one at a time; different sessions in
// parallel. start, suspend and recover record a transitional state
// (Preparing, Suspending, Recovering) before calling the hardware and the
// outcome after; terminate, release-io and refresh record the outcome
// only. Every outcome record carries the revision the command decided
// from (IfRev), so that news the freeze core recorded meanwhile is never
// overwritten: the command then returns ErrConflict. One news is the
// suspend's own: under release-io the core thaws the freeze the suspend
// ran and reports it, maybe before the suspend records its outcome; the
// outcome is then recorded on top of that release, keeping it.
//
// # Record format (version 1)
//
// A record is one JSON object. Fields of other kinds are absent.
//
//	v         int     RecordVersion, 1
//	kind      string  session-created | session-removed | copyset-added |
//	                  copyset-removed | state-changed
//	session   string  the session's name: 1-64 of A-Z a-z 0-9 . _ -,
//	                  starting with a letter or digit
//	at        string  RFC 3339 time of the change (the session's
//	                  last_change for session-created and state-changed)
//	if_rev    uint    optional, not on session-created: apply only if the
//	                  session's rev is this, else ErrConflict
//	create    object  session-created: {"type": "mm-single-direction" |
//	                  "mm-failover-failback" | "mm-hyperswap", "cg_name": string (may be
//	                  empty), "policy": "hold-io" | "release-io"}
//	copy_sets array   copyset-added, copyset-removed, at least one:
//	                  {"h1": "SERIAL/VVVV", "h2": "SERIAL/VVVV"},
//	                  VVVV the volume id in 4 hex digits (LSS, number)
//	change    object  state-changed, every field written:
//	                  "state" defined | preparing | prepared | suspending |
//	                  suspended | suspended-partial | recovering |
//	                  target-available; "status" inactive | normal |
//	                  warning | severe; "recoverable", "copying",
//	                  "error", "io_held", "from_prepared" bool;
//	                  "direction" h1-h2 | h2-h1 and "active_site" H1 | H2,
//	                  both optional (absent: unchanged); "reason" string
//
// Every accepted record raises the session's rev by one (session-created
// sets it to 1). A format change raises RecordVersion; Apply refuses
// versions it does not know.
//
// # Snapshot format (version 1)
//
// DB.Snapshot writes {"v": 1, "sessions": [...]}, sessions sorted by
// name, each with the fields of Session under their JSON names (name,
// type, cg_name, policy, active_site, direction, copy_sets, state,
// status, recoverable, copying, error, io_held, from_prepared,
// last_change, reason, rev). Restore checks everything Apply would have.
package session
