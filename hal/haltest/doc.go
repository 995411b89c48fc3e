// Package haltest is the conformance suite every hal.StorageSystem must
// pass: the in-process emulator (internal/emu) and each driver talking to a
// live lockstep-lab. It checks the behaviour the freeze core relies on —
// pair states and reasons, ELB, freeze idempotence, thaw, heartbeat
// arming and expiry, fencing, errors that errors.Is can sort, and events —
// through the interface alone.
//
// An implementation provides a Lab: the two storage systems of a standard
// topology (Primary and Secondary, LSS 10 FB and LSS 20 CKD with two
// volumes each) as the manager sees them, plus the lab's hands: host I/O,
// fault injection and a way to let storage time pass.
package haltest
