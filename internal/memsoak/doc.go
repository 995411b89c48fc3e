// Package memsoak runs the memory soak of DESIGN §11 ("memory: bounded
// under 24 h of events"): a day of storage events, a suspend and a
// resync every minute, through the real freeze core, engine and session
// manager, with the session journal on a real file, and measures the
// live heap and the journal's size on disk every simulated hour.
//
// The storage is the emulator (internal/emu) in this process, and the
// clock is whatever the caller gives: the test and the benchmark run the
// soak inside a testing/synctest bubble (virtual time: a day takes a
// minute or so of real time, spent in the events themselves, not in
// waiting).
//
// What counts: a live heap at hour 24 more than a few percent above the
// one at hour 1 is memory that grows with events (a leak); journal bytes
// that grow past the compaction's bound are a journal that is never
// compacted. The emulator's own memory is in the same heap: its command
// log is kept short (Options.CommandLogSize) so that it is full, hence
// constant, from the first hour.
//
// It is test support, not part of lockstepd.
package memsoak
