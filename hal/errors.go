package hal

import "errors"

// Errors every StorageSystem reports, wrapped with detail. Handlers sort
// them with Retryable.
var (
	// ErrFenced: the command's epoch is lower than one the storage system
	// has already seen; the sender is no longer the active manager.
	ErrFenced = errors.New("hal: fenced by a higher epoch")
	// ErrUnreachable: no connection to the storage system could carry the
	// command; it was not executed.
	ErrUnreachable = errors.New("hal: storage system unreachable")
	// ErrTimeout: the deadline passed with the command sent; it may or may
	// not have been executed.
	ErrTimeout = errors.New("hal: request timed out")
	// ErrAuth: the storage system refused the credentials.
	ErrAuth = errors.New("hal: authentication refused")
	// ErrRefused: the storage system refused the command as invalid in the
	// current state (unknown volume, no path, wrong pair state).
	ErrRefused = errors.New("hal: command refused")
	// ErrHeartbeatExpired: the session's heartbeat already expired; the
	// storage system froze itself and must be re-armed.
	ErrHeartbeatExpired = errors.New("hal: heartbeat expired")
	// ErrUnsupported: the connection cannot carry this command (e.g. a
	// heartbeat over z/OS).
	ErrUnsupported = errors.New("hal: not supported by this connection")
)

// Retryable reports whether the same command may succeed if sent again
// later: contact failures are, refusals and fencing are not.
func Retryable(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrTimeout)
}
