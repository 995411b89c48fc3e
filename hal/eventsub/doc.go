// Package eventsub is one subscriber of a driver's Events: what a
// driver's read loop hands events to without ever blocking, and what
// the subscriber reads them from, in order.
//
// A subscription holds up to MaxQueued events, as the plain channels of
// 1024 the drivers used before, but only Buffer of them in its channel:
// a burst beyond is queued in a slice that a goroutine of its own, alive
// only during the burst, hands over in order. A channel's buffer is
// scanned whole by the garbage collector at every cycle, empty or not,
// and hal.Event holds pointers: 168 KiB per storage system per
// subscriber, marked beside the freezes (docs/performance.md, sixth
// round). Beyond MaxQueued, events are dropped, as a full channel
// dropped them: the drivers' polls catch up.
package eventsub
