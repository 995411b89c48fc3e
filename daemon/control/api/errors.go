package api

import "errors"

// Errors of the admin API. The daemon wraps one of them (or one of its
// model's, which the server maps to the same names) with a message that
// names the thing concerned; the server sends that message under the
// matching D-Bus error name, and the client returns an error that
// errors.Is matches against the same sentinel. lockstepctl exits 2 for
// ErrInvalid (a usage error) and 1 for the others.
//
// Their texts start with "control:", the package that defined them before
// the API was split out: the server's messages start with them, and a
// client of an older or newer build matches the access-denied message by
// that text, so the texts are part of the wire.
var (
	// ErrNotFound: no storage system, connection, session or backup of
	// that name. D-Bus: ErrorNotFound.
	ErrNotFound = errors.New("control: not found")
	// ErrInvalid: a malformed argument (bad serial, unknown session type,
	// a storage spec that does not validate). D-Bus: ErrorInvalidArgs.
	ErrInvalid = errors.New("control: invalid argument")
	// ErrRefused: a well-formed request the daemon will not carry out in
	// the current state (removing the last TCP/IP connection while the
	// heartbeat is on without force, a second HA relationship, a takeover
	// on the active). The message says what to do first. D-Bus:
	// ErrorRefused.
	ErrRefused = errors.New("control: refused")
	// ErrNotAllowed: the session command is not allowed in the session's
	// state (the daemon's allowed-commands table); the message lists the
	// commands that are. D-Bus: ErrorNotAllowed.
	ErrNotAllowed = errors.New("control: command not allowed")
	// ErrUnavailable: the function cannot be used here or now (HA in the
	// basic edition, the daemon shutting down), or, on the client side,
	// lockstepd is not on the bus. D-Bus: ErrorUnavailable.
	ErrUnavailable = errors.New("control: unavailable")
	// ErrFailed: anything else; the request was tried and did not work.
	// D-Bus: ErrorFailed.
	ErrFailed = errors.New("control: failed")
	// ErrAccessDenied: the caller may not change anything (root, the
	// daemon's user and the admin group may). The bus policy refuses such
	// calls, and the server refuses them again itself, whatever the bus;
	// both send ErrorAccessDenied.
	ErrAccessDenied = errors.New("control: access denied")
)
