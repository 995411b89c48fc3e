package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/control/api"
)

// RemoteError is an error reply received by the Client. errors.Is matches
// it against the sentinel of its name (api.ErrNotFound for
// api.ErrorNotFound, api.ErrNotAllowed for api.ErrorNotAllowed,
// api.ErrAccessDenied for the bus's AccessDenied, api.ErrUnavailable when
// lockstepd is not on the bus, api.ErrFailed for any name it does not
// know).
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
// error reply, and a closed connection into api.ErrUnavailable; other
// errors (a cancelled context) are returned as they are.
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
		return fmt.Errorf("%w: connection to the bus closed", api.ErrUnavailable)
	default:
		return err
	}
	msg := de.Error()
	re := &RemoteError{Name: de.Name, Message: msg}
	switch de.Name {
	case api.ErrorNotAllowed:
		re.kind = api.ErrNotAllowed
	case api.ErrorNotFound:
		re.kind = api.ErrNotFound
	case api.ErrorInvalidArgs, "org.freedesktop.DBus.Error.InvalidArgs":
		re.kind = api.ErrInvalid
	case api.ErrorRefused:
		re.kind = api.ErrRefused
	case api.ErrorUnavailable:
		re.kind = api.ErrUnavailable
	case api.ErrorAccessDenied:
		re.kind = api.ErrAccessDenied
		// The server's own refusal says who and why; the bus's is its
		// policy text, which an admin need not read.
		if !strings.HasPrefix(msg, api.ErrAccessDenied.Error()) {
			re.Message = "control: access denied: changes need root or membership of group lockstep"
			re.Detail = msg
		}
	case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
		re.kind = api.ErrUnavailable
		re.Message = "control: lockstepd is not running (nobody owns " + api.BusName + " on this bus)"
		re.Detail = msg
	default:
		re.kind = api.ErrFailed
	}
	return re
}
