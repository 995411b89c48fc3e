// Package emu is the emulated storage system: lockstep's hardware.
//
// No real array is reachable where lockstep is built and tested, so this
// package models, on an injected clock, the rules of a storage system that a
// Metro Mirror manager depends on, and nothing it does not:
//
//   - Volumes hold blocks. A host write to the source of a mirroring pair
//     (copy-pending or full-duplex) is applied on the target over the path
//     and locally, and completes only after both; on a suspended pair it
//     completes locally and the block is marked out-of-sync.
//   - A path failure suspends the mirroring pairs of its LSS pair (reason
//     path); with the consistency-group option the source LSS enters
//     extended long busy (ELB): every write to the LSS waits until a thaw
//     or until the LSS's CG timeout (120 s CKD, 60 s FB), then completes
//     locally. A suspend event goes to every connected manager.
//   - Freeze suspends the pairs of LSS pairs (reason freeze), removes their
//     paths and starts ELB on the source LSSs; repeating it changes
//     nothing. Thaw ends ELB at once. ELB ends on its own at the CG
//     timeout, whatever any manager does.
//   - The heartbeat: a session armed with timeout H that receives no
//     heartbeat for H is frozen by the storage system itself, which holds
//     ELB for the full CG timeout from that instant.
//   - Establish and resync copy blocks (all, or exactly the out-of-sync
//     ones) on the clock, copy-pending until done, then full-duplex.
//     Recover turns targets into suspended sources; failback resyncs them
//     back the other way.
//   - Remove (terminate): RemovePairs ends pairs with a volume on the
//     system, whichever side of the pair the volume is now: each such
//     volume leaves its relationship with the pair's other volume and
//     becomes simplex; where it was the source and the link to the other
//     system is up, the target side becomes simplex too (a copy in
//     progress ends). Over a link that is down the target side stays
//     until RemovePairs reaches its own system, as on an array whose
//     secondary the primary cannot tell. Removing a pair that does not
//     exist succeeds (idempotent); one that names no volume of the
//     system is refused. A removal raises no suspend event and no
//     state-change interrupt, and starts no ELB: the pair ended, it did
//     not stop mirroring. RemovePaths refuses (and removes none of the
//     listed paths) while a pair of the system, in any state, still
//     uses one of them, as an array refuses to remove the paths of
//     existing pairs; a path that does not exist is no error.
//   - Fencing: every command carries an epoch; the system remembers the
//     highest it has seen and answers hal.ErrFenced to lower ones.
//
// A Fabric holds several systems in one process and the links between
// them; its lock makes a host write, its mirror, a freeze and a fault each
// atomic with respect to the others. That is the guarantee real hardware
// gives per write (a write is mirrored before a suspension takes effect,
// or held by it), made exact. Host writes, faults and timers hold the
// lock exclusively; the commands that touch only their own system and
// the targets of the LSS pairs they name (freeze, thaw, heartbeat,
// queries) hold it shared with a mutex per system touched, so that the
// freezes of many systems do not queue behind one another as they would
// not on separate arrays (Fabric.mu).
//
// Faults are injected per LSS pair or per system (paths), per manager
// (connection down, black-holed, or slow) and per system (crash, restart).
// A system restarted after a crash comes back with every pair that was
// mirroring suspended (reason restart) and, where the path had the CG
// option, its source LSS in ELB: it cannot know what happened while it was
// down, so it protects the secondary as a freeze would.
//
// A z/OS host attaches its channels with StateChanges: every pair state
// change (pending, suspending, suspended, full duplex) and every start of
// extended long busy is raised to it as a state-change interrupt, which
// lockstep-lab's emulated host turns into IEA494I-like messages.
//
// Managers reach a system through Connect, which returns a
// hal.StorageSystem bound to the manager's name; lockstep-lab serves the
// same object over the wire protocol.
//
// An HMC (NewHMC, hmc.go) is a management console in front of several
// systems: it holds a private link to each (a link of its own in the
// system's link table, so its faults are independent of the managers'
// direct connections) and relays a manager's commands over it, adding
// its processing time and the link's latency both ways on the clock
// (DefaultHMCProcessing 200 µs, DefaultHMCLinkLatency 100 µs in the lab
// file). It forwards the systems' events while it and the link are up.
// It fails on its own: down (commands refused at once), black-holed
// (commands hang to their deadline, events vanish), slow, or one private
// link down (that system's commands answered hal.ErrUnreachable: they
// did not run). Relayed commands are recorded under the manager's name;
// a fenced event raised for a command relayed by an HMC goes to every
// manager connected through that HMC, as the system cannot tell them
// apart on the HMC's link.
//
// The fabric keeps a bounded record of the commands its systems judged
// (Fabric.Commands): every command that reached the epoch check, with the
// system, the manager's name, the command's epoch and the system's epoch
// before it, the operation, and the outcome: ok, refused (it passed the
// epoch check, then the system refused it for another reason) or fenced
// (its epoch was stale). It is what a high-availability test reads to
// prove that no command from a stale epoch was ever carried out and that
// two managers never acted at once. It is a ring of
// Options.CommandLogSize records (DefaultCommandLogSize): a reader that
// pages with the last Seq it saw is told how many records it lost.
package emu
