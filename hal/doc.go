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
// Every command carries the sender's epoch (the fencing token of DESIGN.md
// §1): a storage system remembers the highest epoch it has seen and answers
// ErrFenced to anything lower.
package hal
