package wire

import (
	"context"
	"errors"
	"fmt"

	"github.com/lockstep-io/lockstep/hal"
)

// Decoding and framing errors. Every decoder and ReadFrame error wraps one
// of these; a peer that produces one is broken, and its connection is
// closed.
var (
	ErrFrameTooLarge = errors.New("wire: frame too large")
	ErrMalformed     = errors.New("wire: malformed message")
	ErrUnknownType   = errors.New("wire: unknown message type")
	ErrBadVersion    = errors.New("wire: bad version")
	// ErrUnknownOp is a well-formed request for an op this side does not
	// know; the server answers it with StatusUnsupported rather than
	// closing the connection.
	ErrUnknownOp = errors.New("wire: unknown op")
)

// Handshake errors.
var (
	// ErrRejected wraps every HelloReject the client receives, beside the
	// error naming the reason (hal.ErrAuth, ErrBadVersion,
	// ErrUnknownSerial, hal.ErrUnreachable).
	ErrRejected = errors.New("wire: hello rejected")
	// ErrUnknownSerial: the endpoint does not serve the storage system the
	// client asked for. An AcceptFunc returns it to get RejectUnknownSerial.
	ErrUnknownSerial = errors.New("wire: unknown storage serial")
	// ErrIdentity: the endpoint's certificate does not prove that it is
	// the storage system the client asked for (VerifyIdentity), or the
	// connection is not TLS. The client found out before sending the
	// credentials. It wraps hal.ErrAuth: retrying will not mend it.
	ErrIdentity = fmt.Errorf("wire: storage endpoint identity not proven: %w", hal.ErrAuth)
)

// Client errors. They wrap the hal sentinel the core sorts on, so
// errors.Is(err, hal.ErrTimeout) and hal.Retryable work unchanged.
var (
	// ErrTimeout: the Call's context ended before its response arrived.
	// The request may or may not have been executed.
	ErrTimeout = fmt.Errorf("wire: call timed out: %w", hal.ErrTimeout)
	// ErrConnLost: the connection died; the Client is unusable.
	ErrConnLost = fmt.Errorf("wire: connection lost: %w", hal.ErrUnreachable)
	// ErrClosed: Close was called; the Client is unusable.
	ErrClosed = fmt.Errorf("wire: client closed: %w", hal.ErrUnreachable)
	// ErrInternal is what StatusInternal unwraps to: the storage system
	// failed in a way that matches no hal error.
	ErrInternal = errors.New("wire: internal error in the storage system")
)

// Status is the outcome of a request, carried in a Response. Each non-OK
// status stands for one hal error, so errors cross the wire intact.
type Status uint8

const (
	StatusOK               Status = 0
	StatusFenced           Status = 1 // hal.ErrFenced
	StatusRefused          Status = 2 // hal.ErrRefused
	StatusHeartbeatExpired Status = 3 // hal.ErrHeartbeatExpired
	StatusUnsupported      Status = 4 // hal.ErrUnsupported
	StatusTimeout          Status = 5 // hal.ErrTimeout
	StatusInternal         Status = 6 // ErrInternal
	// StatusUnreachable: the server could not reach the storage system it
	// fronts (an HMC that lost its storage system); hal.ErrUnreachable.
	StatusUnreachable Status = 7
)

var statusNames = [...]string{"ok", "fenced", "refused", "heartbeat-expired",
	"unsupported", "timeout", "internal", "unreachable"}

func (s Status) String() string {
	if s.valid() {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

func (s Status) valid() bool { return int(s) < len(statusNames) }

// sentinel is the error a status stands for.
func (s Status) sentinel() error {
	switch s {
	case StatusFenced:
		return hal.ErrFenced
	case StatusRefused:
		return hal.ErrRefused
	case StatusHeartbeatExpired:
		return hal.ErrHeartbeatExpired
	case StatusUnsupported:
		return hal.ErrUnsupported
	case StatusTimeout:
		return hal.ErrTimeout
	case StatusUnreachable:
		return hal.ErrUnreachable
	}
	return ErrInternal
}

// Err turns a status and the server's error text back into an error: nil
// for StatusOK, otherwise a *RemoteError that unwraps to the matching hal
// sentinel (ErrInternal for StatusInternal and unknown statuses).
func (s Status) Err(text string) error {
	if s == StatusOK {
		return nil
	}
	return &RemoteError{Status: s, Text: text}
}

// StatusOf is the status a server sends for err: the first hal sentinel
// err wraps decides, a context that ended counts as a timeout (the command
// may or may not have run), anything else is internal.
func StatusOf(err error) Status {
	var re *RemoteError
	switch {
	case err == nil:
		return StatusOK
	case errors.As(err, &re) && re.Status.valid():
		return re.Status // relayed from another server: keep its status
	case errors.Is(err, hal.ErrFenced):
		return StatusFenced
	case errors.Is(err, hal.ErrRefused):
		return StatusRefused
	case errors.Is(err, hal.ErrHeartbeatExpired):
		return StatusHeartbeatExpired
	case errors.Is(err, hal.ErrUnsupported):
		return StatusUnsupported
	case errors.Is(err, hal.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return StatusTimeout
	case errors.Is(err, hal.ErrUnreachable):
		return StatusUnreachable
	}
	return StatusInternal
}

// RemoteError is an error the storage system answered with.
type RemoteError struct {
	Status Status
	Text   string // the server's error text, for people
}

func (e *RemoteError) Error() string {
	if e.Text == "" {
		return "storage system answered " + e.Status.String()
	}
	return "storage system answered " + e.Status.String() + ": " + e.Text
}

// Unwrap returns the hal sentinel of the status, for errors.Is.
func (e *RemoteError) Unwrap() error { return e.Status.sentinel() }
