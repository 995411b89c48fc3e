// Package transitions keeps, for each object an NMS polls (the server's
// HA state, each session, storage system and consistency group), the time
// of its last change and how many changes it has seen since the daemon
// started: what LOCKSTEP-MIB's lastChange and transitions columns show.
//
// A poller sees only the state at each poll; a session that went
// Suspended and back between two polls looks unchanged. So the daemon
// tells the Tracker of every change where it happens (the session store,
// the storage drivers' reachability, the HA loop, the freeze core's
// reports), and the admin API's reads observe the state they show too:
// a change no hook saw is still counted, once, when it is first read.
//
// The counters live in memory: they start from zero with the daemon,
// whose start time (Started) an NMS uses as the counters' discontinuity
// time.
package transitions
