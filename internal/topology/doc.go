// Package topology describes a replication layout — storage systems, their
// LSSs, the paths and the volume pairs between them — and builds it: the
// systems on an emulated fabric, then the paths and pairs through a
// manager's hal.StorageSystem connections, exactly as a manager would.
//
// Standard is the layout internal/scenario/doc.go asks every scenario to run on:
// N primaries each mirroring to its own secondary, several LSSs each, CKD
// and FB, every path with the consistency-group option.
package topology
