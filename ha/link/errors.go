package link

import "errors"

// Errors of the link. Decoding errors (ErrMalformed, ErrFrameTooLarge,
// ErrUnknownType, ErrVersion) and ErrProtocol mean a broken or foreign
// peer: the connection is closed. ErrPeerSilent and ErrPeerClosed end a
// link normally; the active reconnects on its schedule.
var (
	ErrMalformed     = errors.New("link: malformed message")
	ErrFrameTooLarge = errors.New("link: frame too large")
	ErrUnknownType   = errors.New("link: unknown message type")
	ErrVersion       = errors.New("link: protocol version mismatch")
	// ErrProtocol: a well-formed message at the wrong moment (records
	// before a sync request, an ack beyond what was sent, ...).
	ErrProtocol = errors.New("link: protocol violation")
	// ErrHandshake: TLS or the Hello exchange failed; nothing was
	// processed.
	ErrHandshake = errors.New("link: handshake failed")
	// ErrHandshakeTimeout: the peer did not complete TLS and the Hello
	// within Options.HandshakeTimeout (a firewall that drops the
	// connection, a hung peer). Wrapped with ErrHandshake.
	ErrHandshakeTimeout = errors.New("timed out")
	// ErrPeerSilent: nothing came from the peer for KeepaliveMisses of
	// its keepalive intervals.
	ErrPeerSilent = errors.New("link: peer silent")
	// ErrPeerClosed: the peer said goodbye (the error text has its
	// reason) or closed the connection.
	ErrPeerClosed = errors.New("link: peer closed the link")
	// ErrClosed: this side closed the link.
	ErrClosed = errors.New("link: closed")
	// ErrAddress: an address that is not tcp://host:port or
	// vsock://cid:port.
	ErrAddress = errors.New("link: bad address")
	// ErrNoSourcePort: no port of the source range could be bound.
	ErrNoSourcePort = errors.New("link: no free source port in the range")
	// ErrSource: the active could not read its journal.
	ErrSource = errors.New("link: reading the journal failed")
	// ErrSink: the standby could not persist what it received.
	ErrSink = errors.New("link: persisting on the standby failed")
	// ErrAckTimeout: the standby left records unacknowledged for longer
	// than SenderOptions.AckTimeout (its disk hangs?).
	ErrAckTimeout = errors.New("link: the standby did not acknowledge in time")
	// ErrLinkDown: WaitAcked could not be answered: the link ended.
	ErrLinkDown = errors.New("link: link down")
)

// Message ids of what the package logs (msg_id), stable for operators.
const (
	MsgRefused = "ha-link-refused-W" // a connection refused before its Hello was accepted
	MsgDown    = "ha-link-down-W"    // a link ended: peer gone, silent, or broken
	MsgClosed  = "ha-link-closed-I"  // this side closed a link
)
