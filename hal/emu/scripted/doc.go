// Package scripted is the device-level demonstration of DESIGN.md §6
// scenario S1, run before the real freeze core exists: emulated storage
// systems, the dependent-write workload, and a deliberately simple
// controller that freezes every LSS pair of the layout whenever it hears a
// suspend event — and, with the heartbeat armed, whenever a heartbeat to a
// storage system fails.
//
// It shows why the Metro Mirror heartbeat exists. In S1 one primary loses
// its replication paths and its connection to the manager at the same
// instant. Its writes are held (extended long busy) for the CG timeout,
// but its suspend event never reaches the manager, so nothing freezes the
// other primaries: when the hold ends, the held write completes locally
// and the next dependent write is mirrored by another primary — the
// secondary holds a later write without the earlier one. With the
// heartbeat armed, the manager learns of the silence within one heartbeat
// interval and freezes the others while the silent primary still holds its
// writes, and the silent primary freezes itself when its heartbeat timer
// runs out: the secondary stays consistent.
package scripted
