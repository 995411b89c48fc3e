// Package haltest is the conformance suite every hal.StorageSystem must
// pass: the in-process emulator (internal/emu) and each driver talking to a
// live lockstep-lab. It checks the behaviour the freeze core relies on —
// pair states and reasons, ELB, freeze idempotence, thaw, heartbeat
// arming and expiry, fencing, errors that errors.Is can sort, events,
// and the removal of pairs and paths (terminate) — through the interface
// alone.
//
// An implementation provides a Lab: the two storage systems of a standard
// topology (Primary and Secondary, LSS 10 FB and LSS 20 CKD with two
// volumes each) as the manager sees them, plus the lab's hands: host I/O,
// fault injection and a way to let storage time pass.
//
// What a connection cannot do is judged by its capabilities, never by its
// name: on a connection whose Capabilities() has no Heartbeat (z/OS), the
// heartbeat cases check that every heartbeat command fails at once with
// hal.ErrUnsupported (not retryable), then skip.
package haltest
