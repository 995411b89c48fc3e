// Package hal is the hardware abstraction the manager core uses to talk to
// a storage system: identities (serial, LSS, volume), pair and path states,
// suspend reasons, capability flags, the commands of a Metro Mirror
// manager, and the events a storage system pushes.
//
// The interface is owned by its consumer, the core. Implementations live
// elsewhere: internal/emu (the in-process emulated storage system) and the
// drivers (direct TCP/IP, HMC, z/OS). Every implementation must pass the
// conformance suite in hal/haltest.
//
// The daemon opens drivers only through a Factory, one per ConnectionKind,
// which cmd/lockstepd hands it: it sees a Driver (a StorageSystem that
// says which endpoint carries it and that it closes), never a concrete
// driver type. A Driver lives in the context it was opened in and its
// Close waits for every goroutine it started.
//
// Every command carries the sender's epoch (a fencing token, see ha/doc.go):
// a storage system remembers the highest epoch it has seen and answers
// ErrFenced to anything lower.
package hal
