// Package netdelay adds a one-way network latency to what a connection
// writes: a Conn holds each write for the latency, on an injected
// clock, and delivers the bytes in order. The lab's storage and HMC
// endpoints use it for the way back of their latency faults (answers
// and events), and the freeze benchmarks for their lean storage.
package netdelay
