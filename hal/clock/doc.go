// Package clock owns time for lockstep.
//
// Everything that waits, times out or stamps an event in daemon/, ha/,
// persist/ and internal/emu takes a Clock instead of calling the time package's
// clock functions. Three implementations exist:
//
//   - Real: the wall clock (a nil Clock means Real; see OrReal).
//   - Fake: time stands still until a test calls Advance, which fires every
//     due timer in time order, so a test can assert that a deadline fires
//     exactly at its instant and not a nanosecond earlier.
//   - Scaled: real time running N times faster, for demonstrations and
//     over-the-wire scenarios that must finish in seconds although the
//     storage timers they exercise last minutes.
//
// WithTimeout and Sleep give contexts and waits on any Clock, so request
// deadlines follow the injected time too.
package clock
