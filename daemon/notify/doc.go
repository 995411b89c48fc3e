// Package notify owns what lockstepd tells the outside world: the one
// catalogue of operator-visible events (Catalog), and the log handler
// that writes them to journald with native fields or to stderr.
// SNMP traps and informs (later work) are driven by the same catalogue,
// and so is LOCKSTEP-MIB: an event that is not in Catalog cannot be
// logged, trapped or documented.
//
// Every event has a stable id with a severity suffix — "LS2101W" — that
// never changes meaning once released, and a journald MESSAGE_ID derived
// from it (128 bits, as journald's catalogue expects):
//
//	6c6f636b737465700000000000000835   (the ASCII of "lockstep", then the code)
package notify
