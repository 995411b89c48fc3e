package control

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/session"
)

// Errors of the admin API. A Backend wraps one of them (or one of the
// session package's) with a message that names the thing concerned; the
// server sends that message under the matching D-Bus error name, and the
// client returns a *RemoteError that errors.Is matches against the same
// sentinel. lockstepctl exits 2 for ErrInvalid (a usage error) and 1 for
// the others.
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
	// both send org.freedesktop.DBus.Error.AccessDenied.
	ErrAccessDenied = errors.New("control: access denied")
	// ErrNameTaken is what Serve returns when another connection owns
	// BusName: another lockstepd runs.
	ErrNameTaken = errors.New("control: bus name already owned")
)

// errorName is the D-Bus error name the server replies with for err. The
// order matters only for an error that wraps several sentinels.
func errorName(err error) string {
	switch {
	case errors.Is(err, ErrAccessDenied):
		return "org.freedesktop.DBus.Error.AccessDenied"
	case errors.Is(err, session.ErrNotAllowed):
		return ErrorNotAllowed
	case errors.Is(err, ErrNotFound),
		errors.Is(err, session.ErrUnknownSession),
		errors.Is(err, session.ErrNoCopySet):
		return ErrorNotFound
	case errors.Is(err, ErrInvalid),
		errors.Is(err, session.ErrInvalid):
		return ErrorInvalidArgs
	case errors.Is(err, ErrRefused),
		errors.Is(err, session.ErrExists),
		errors.Is(err, session.ErrVolumeInUse),
		errors.Is(err, session.ErrNotDefined),
		errors.Is(err, session.ErrConflict),
		errors.Is(err, session.ErrBusy):
		return ErrorRefused
	case errors.Is(err, ErrUnavailable),
		errors.Is(err, context.Canceled):
		return ErrorUnavailable
	}
	return ErrorFailed
}

// toDBusError is the error reply for err.
func toDBusError(err error) *dbus.Error {
	return dbus.NewError(errorName(err), []any{err.Error()})
}

// RemoteError is an error reply received by the Client. errors.Is matches
// it against the sentinel of its name (ErrNotFound for ErrorNotFound,
// session.ErrNotAllowed for ErrorNotAllowed, ErrAccessDenied for the bus's
// AccessDenied, ErrUnavailable when lockstepd is not on the bus, ErrFailed
// for any name it does not know).
type RemoteError struct {
	// Name is the D-Bus error name.
	Name string
	// Message is the text to show an admin.
	Message string
	// Detail is the bus's own text when Message replaces it (AccessDenied,
	// ServiceUnknown); empty otherwise.
	Detail string

	kind error
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap is the sentinel matching Name.
func (e *RemoteError) Unwrap() error { return e.kind }

// fromDBusError turns the error of a call into a *RemoteError if it is an
// error reply, and a closed connection into ErrUnavailable; other errors (a
// cancelled context) are returned as they are.
func fromDBusError(err error) error {
	if err == nil {
		return nil
	}
	var de dbus.Error
	var pe *dbus.Error
	switch {
	case errors.As(err, &de):
	case errors.As(err, &pe) && pe != nil:
		de = *pe
	case errors.Is(err, dbus.ErrClosed):
		return fmt.Errorf("%w: connection to the bus closed", ErrUnavailable)
	default:
		return err
	}
	msg := de.Error()
	re := &RemoteError{Name: de.Name, Message: msg}
	switch de.Name {
	case ErrorNotAllowed:
		re.kind = session.ErrNotAllowed
	case ErrorNotFound:
		re.kind = ErrNotFound
	case ErrorInvalidArgs, "org.freedesktop.DBus.Error.InvalidArgs":
		re.kind = ErrInvalid
	case ErrorRefused:
		re.kind = ErrRefused
	case ErrorUnavailable:
		re.kind = ErrUnavailable
	case "org.freedesktop.DBus.Error.AccessDenied":
		re.kind = ErrAccessDenied
		// The server's own refusal says who and why; the bus's is its
		// policy text, which an admin need not read.
		if !strings.HasPrefix(msg, ErrAccessDenied.Error()) {
			re.Message = "control: access denied: changes need root or membership of group lockstep"
			re.Detail = msg
		}
	case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
		re.kind = ErrUnavailable
		re.Message = "control: lockstepd is not running (nobody owns " + BusName + " on this bus)"
		re.Detail = msg
	default:
		re.kind = ErrFailed
	}
	return re
}
