package session

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of the model and the manager, wrapped with detail. None is
// retryable as is except ErrConflict and ErrBusy: read the session again
// and decide again.
var (
	// ErrInvalid: a malformed record or argument (bad name, unknown kind,
	// missing field, a change that breaks an invariant).
	ErrInvalid = errors.New("session: invalid")
	// ErrUnknownSession: no session of that name.
	ErrUnknownSession = errors.New("session: no such session")
	// ErrExists: a session of that name exists already.
	ErrExists = errors.New("session: session exists")
	// ErrVolumeInUse: the volume already belongs to a copy set (of any
	// session).
	ErrVolumeInUse = errors.New("session: volume already in a copy set")
	// ErrNoCopySet: the copy set to remove is not in the session.
	ErrNoCopySet = errors.New("session: no such copy set")
	// ErrNotDefined: copy sets are added or removed, and sessions removed,
	// only in state Defined.
	ErrNotDefined = errors.New("session: session is not in state Defined")
	// ErrConflict: the record was proposed for a revision of the session
	// that another record has since replaced.
	ErrConflict = errors.New("session: changed concurrently")
	// ErrNotAllowed: the command is not in the allowed-commands table for
	// the session's state; see NotAllowedError.
	ErrNotAllowed = errors.New("session: command not allowed")
	// ErrBusy: a command to the session is in flight (Manager.Observe).
	ErrBusy = errors.New("session: a command is in flight")
	// ErrVetoed: the Hardware refused the command before anything was
	// recorded or sent to storage (Vetter).
	ErrVetoed = errors.New("session: command refused before it changed anything")
	// ErrPartialFreeze is what Hardware.Suspend returns (wrapped) when
	// some storage systems did not confirm the freeze and are not known
	// safe: the session becomes Suspended (Partial), not recoverable.
	ErrPartialFreeze = errors.New("session: freeze not confirmed on every storage system")
)

// NotAllowedError is the refusal of a command by the allowed-commands
// table. It matches ErrNotAllowed with errors.Is.
type NotAllowedError struct {
	Command Command
	State   State
	// Unless says why a command that the state allows in general is
	// refused for this session ("not recoverable"); empty otherwise.
	Unless  string
	Allowed []Command
}

func (e *NotAllowedError) Error() string {
	allowed := "none"
	if len(e.Allowed) > 0 {
		names := make([]string, len(e.Allowed))
		for i, c := range e.Allowed {
			names[i] = string(c)
		}
		allowed = strings.Join(names, ", ")
	}
	unless := ""
	if e.Unless != "" {
		unless = e.Unless + "; "
	}
	return fmt.Sprintf("session: command %q is not allowed in state %s (%sallowed: %s)",
		string(e.Command), e.State, unless, allowed)
}

func (e *NotAllowedError) Unwrap() error { return ErrNotAllowed }
