package api

// Names of the admin API on the bus.
const (
	// BusName is the well-known name lockstepd owns.
	BusName = "org.lockstep.Manager1"
	// ObjectPath is the one object lockstepd exports.
	ObjectPath = "/org/lockstep/Manager1"
	// Interface holds the reads (anyone may call them), the Event signal
	// and the properties.
	Interface = "org.lockstep.Manager1"
	// AdminInterface holds the changes (root and group lockstep only, by
	// the bus policy).
	AdminInterface = "org.lockstep.Manager1.Admin"
	// EventSignal is the full name of the Event signal of Interface.
	EventSignal = Interface + ".Event"
)

// D-Bus error names the server replies with. The client turns each back
// into an error that errors.Is matches against the sentinel shown.
const (
	ErrorNotAllowed  = "org.lockstep.Manager1.Error.NotAllowed"  // ErrNotAllowed
	ErrorNotFound    = "org.lockstep.Manager1.Error.NotFound"    // ErrNotFound
	ErrorInvalidArgs = "org.lockstep.Manager1.Error.InvalidArgs" // ErrInvalid
	ErrorRefused     = "org.lockstep.Manager1.Error.Refused"     // ErrRefused
	ErrorUnavailable = "org.lockstep.Manager1.Error.Unavailable" // ErrUnavailable
	ErrorFailed      = "org.lockstep.Manager1.Error.Failed"      // ErrFailed
	// ErrorAccessDenied is the bus's own name, which the server uses too
	// for a change from a caller that may not change (ErrAccessDenied).
	ErrorAccessDenied = "org.freedesktop.DBus.Error.AccessDenied"
)
