package control

import (
	"context"
	"errors"

	"github.com/godbus/dbus/v5"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/session"
)

// ErrNameTaken is what Serve returns when another connection owns
// api.BusName: another lockstepd runs.
var ErrNameTaken = errors.New("control: bus name already owned")

// errorName is the D-Bus error name the server replies with for err: the
// API's sentinels (package api) and the session model's map to the names
// the client turns back into the API's sentinels. The order matters only
// for an error that wraps several sentinels.
func errorName(err error) string {
	switch {
	case errors.Is(err, api.ErrAccessDenied):
		return api.ErrorAccessDenied
	case errors.Is(err, api.ErrNotAllowed),
		errors.Is(err, session.ErrNotAllowed):
		return api.ErrorNotAllowed
	case errors.Is(err, api.ErrNotFound),
		errors.Is(err, session.ErrUnknownSession),
		errors.Is(err, session.ErrNoCopySet):
		return api.ErrorNotFound
	case errors.Is(err, api.ErrInvalid),
		errors.Is(err, session.ErrInvalid):
		return api.ErrorInvalidArgs
	case errors.Is(err, api.ErrRefused),
		errors.Is(err, session.ErrExists),
		errors.Is(err, session.ErrVolumeInUse),
		errors.Is(err, session.ErrNotDefined),
		errors.Is(err, session.ErrConflict),
		errors.Is(err, session.ErrBusy):
		return api.ErrorRefused
	case errors.Is(err, api.ErrUnavailable),
		errors.Is(err, context.Canceled):
		return api.ErrorUnavailable
	}
	return api.ErrorFailed
}

// toDBusError is the error reply for err.
func toDBusError(err error) *dbus.Error {
	return dbus.NewError(errorName(err), []any{err.Error()})
}
