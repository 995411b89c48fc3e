package link

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/persist"
)

// Limits (doc.go has the format). Every length is checked before anything
// is allocated for it.
const (
	// MaxHandshakeFrame bounds the frames read before the peer's Hello
	// was accepted: a Hello (at most 1 313 bytes) or a Goodbye.
	MaxHandshakeFrame = 4096
	// MaxFrame bounds every frame after the Hello: one record of
	// persist.MaxPayload with its Records header fits.
	MaxFrame = persist.MaxPayload + 4096
	// MaxSnapshot bounds the state a Snapshot announces.
	MaxSnapshot = 1 << 30
	// MaxName bounds the server name in a Hello (a one-byte length).
	MaxName = 255
	// MaxText bounds the listen address of a Hello and a Goodbye's text.
	MaxText = 1024
	// MaxViewEntries bounds the entries of a View.
	MaxViewEntries = 256
	// maxKeepalive bounds the interval a Keepalive may announce.
	maxKeepalive = int64(1 << 42) // about 73 minutes, in nanoseconds
)

// Version is the protocol version a Hello carries. Version 2 added View.
const Version = 2

const helloMagic = "LKHA"

// MsgType is the first byte of a frame.
type MsgType uint8

// Message types.
const (
	MsgHello       MsgType = 0x01
	MsgGoodbye     MsgType = 0x02
	MsgKeepalive   MsgType = 0x03
	MsgEpochNotice MsgType = 0x04
	MsgView        MsgType = 0x05
	MsgSyncRequest MsgType = 0x10
	MsgSnapshot    MsgType = 0x11
	MsgRecords     MsgType = 0x12
	MsgAck         MsgType = 0x13
)

func (t MsgType) known() bool {
	switch t {
	case MsgHello, MsgGoodbye, MsgKeepalive, MsgEpochNotice, MsgView, MsgSyncRequest, MsgSnapshot, MsgRecords, MsgAck:
		return true
	}
	return false
}

func (t MsgType) String() string {
	switch t {
	case MsgHello:
		return "hello"
	case MsgGoodbye:
		return "goodbye"
	case MsgKeepalive:
		return "keepalive"
	case MsgEpochNotice:
		return "epoch-notice"
	case MsgView:
		return "view"
	case MsgSyncRequest:
		return "sync-request"
	case MsgSnapshot:
		return "snapshot"
	case MsgRecords:
		return "records"
	case MsgAck:
		return "ack"
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

// Message is one decoded frame.
type Message interface {
	Type() MsgType
	appendBody(b []byte) []byte
}

// Hello is the first frame each side sends once TLS is up.
type Hello struct {
	Name      string    // the server's name
	Listen    string    // its listener address, "tcp://host:port" or "vsock://cid:port" ("" if none)
	Role      ha.Role   // its role
	Epoch     hal.Epoch // the epoch it carries
	LastIndex uint64    // its last durable journal record
}

// View is a server's own view of its storage connections, for its
// partner to show (CSM's remote connection status): one entry per
// endpoint of each HMC connection. Each side sends it when the link comes
// up and whenever it changes; a new one replaces the last.
type View struct{ Entries []ViewEntry }

// ViewEntry is the sender's connection to one endpoint of a connection.
type ViewEntry struct {
	Conn     string    // the connection's name, 1-255 bytes
	Endpoint uint8     // the endpoint's index in the connection's addresses
	Name     string    // the name the endpoint proved, 0-255 bytes
	State    ViewState // the sender's connection to it
	Detail   string    // why not connected, 0-1024 bytes
}

// ViewState is the state of a ViewEntry.
type ViewState uint8

// View states.
const (
	ViewConnected    ViewState = 1
	ViewConnecting   ViewState = 2
	ViewDisconnected ViewState = 3
)

func (s ViewState) valid() bool { return s >= ViewConnected && s <= ViewDisconnected }

// String is the state as hmc show writes it.
func (s ViewState) String() string {
	switch s {
	case ViewConnected:
		return "connected"
	case ViewConnecting:
		return "connecting"
	case ViewDisconnected:
		return "disconnected"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Goodbye is the last frame before a side closes: why.
type Goodbye struct{ Reason string }

// Keepalive is sent every interval by both sides. Interval is the
// sender's promise: its next frame comes within it; the receiver declares
// it down after Options.KeepaliveMisses intervals without a frame.
// LastIndex is the sender's last durable record.
type Keepalive struct {
	Interval  int64 // nanoseconds, 1 ns to about 73 min
	LastIndex uint64
}

// EpochNotice tells the peer the sender's (new) epoch.
type EpochNotice struct{ Epoch hal.Epoch }

// SyncRequest (standby → active) asks for a synchronization after the
// standby's backup: Full for a snapshot first, otherwise a catch-up after
// its last record, Index, whose payload has the SHA-256 Sum (zero when
// Index is 0).
type SyncRequest struct {
	Full  bool
	Index uint64
	Sum   [32]byte
}

// Snapshot (active → standby) carries Data, the bytes at Offset of the
// state after the record at Index, Total bytes long. Chunks come in order
// and without gap; the standby installs the state once it has all of it.
type Snapshot struct {
	Index  uint64
	Total  uint64
	Offset uint64
	Data   []byte
}

// Records (active → standby) carries the records First, First+1, ...
// Durable is the active's last durable record when they were sent.
type Records struct {
	First    uint64
	Durable  uint64
	Payloads [][]byte
}

// Ack (standby → active): every record up to Index (or the snapshot at
// Index) is durable on the standby.
type Ack struct{ Index uint64 }

func (Hello) Type() MsgType       { return MsgHello }
func (Goodbye) Type() MsgType     { return MsgGoodbye }
func (Keepalive) Type() MsgType   { return MsgKeepalive }
func (EpochNotice) Type() MsgType { return MsgEpochNotice }
func (View) Type() MsgType        { return MsgView }
func (SyncRequest) Type() MsgType { return MsgSyncRequest }
func (Snapshot) Type() MsgType    { return MsgSnapshot }
func (Records) Type() MsgType     { return MsgRecords }
func (Ack) Type() MsgType         { return MsgAck }

var be = binary.BigEndian

func (m Hello) appendBody(b []byte) []byte {
	b = append(b, helloMagic...)
	b = be.AppendUint16(b, Version)
	b = append(b, byte(m.Role))
	b = be.AppendUint64(b, uint64(m.Epoch))
	b = be.AppendUint64(b, m.LastIndex)
	b = append(b, byte(len(m.Name)))
	b = append(b, m.Name...)
	b = be.AppendUint16(b, uint16(len(m.Listen)))
	return append(b, m.Listen...)
}

func (m Goodbye) appendBody(b []byte) []byte {
	b = be.AppendUint16(b, uint16(len(m.Reason)))
	return append(b, m.Reason...)
}

func (m Keepalive) appendBody(b []byte) []byte {
	b = be.AppendUint64(b, uint64(m.Interval))
	return be.AppendUint64(b, m.LastIndex)
}

func (m EpochNotice) appendBody(b []byte) []byte { return be.AppendUint64(b, uint64(m.Epoch)) }

func (m View) appendBody(b []byte) []byte {
	b = be.AppendUint16(b, uint16(len(m.Entries)))
	for _, e := range m.Entries {
		b = append(b, byte(len(e.Conn)))
		b = append(b, e.Conn...)
		b = append(b, e.Endpoint)
		b = append(b, byte(len(e.Name)))
		b = append(b, e.Name...)
		b = append(b, byte(e.State))
		b = be.AppendUint16(b, uint16(len(e.Detail)))
		b = append(b, e.Detail...)
	}
	return b
}

func (m SyncRequest) appendBody(b []byte) []byte {
	full := byte(0)
	if m.Full {
		full = 1
	}
	b = append(b, full)
	b = be.AppendUint64(b, m.Index)
	return append(b, m.Sum[:]...)
}

func (m Snapshot) appendBody(b []byte) []byte {
	b = be.AppendUint64(b, m.Index)
	b = be.AppendUint64(b, m.Total)
	b = be.AppendUint64(b, m.Offset)
	return append(b, m.Data...)
}

func (m Records) appendBody(b []byte) []byte {
	b = be.AppendUint64(b, m.First)
	b = be.AppendUint64(b, m.Durable)
	b = be.AppendUint32(b, uint32(len(m.Payloads)))
	for _, p := range m.Payloads {
		b = be.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

func (m Ack) appendBody(b []byte) []byte { return be.AppendUint64(b, m.Index) }

// checkEncode refuses a message its decoder would refuse, so that a bug
// fails at the sender with a clear error instead of killing the link.
func checkEncode(m Message) error {
	switch m := m.(type) {
	case Hello:
		if len(m.Name) > MaxName || len(m.Listen) > MaxText || !m.Role.Valid() {
			return fmt.Errorf("%w: hello name %d bytes, listen %d bytes, role %d", ErrMalformed, len(m.Name), len(m.Listen), m.Role)
		}
	case Goodbye:
		if len(m.Reason) > MaxText {
			return fmt.Errorf("%w: goodbye of %d bytes", ErrMalformed, len(m.Reason))
		}
	case Keepalive:
		if m.Interval <= 0 || m.Interval > maxKeepalive {
			return fmt.Errorf("%w: keepalive interval %d ns", ErrMalformed, m.Interval)
		}
	case View:
		if len(m.Entries) > MaxViewEntries {
			return fmt.Errorf("%w: view of %d entries", ErrMalformed, len(m.Entries))
		}
		for _, e := range m.Entries {
			if len(e.Conn) == 0 || len(e.Conn) > MaxName || len(e.Name) > MaxName || len(e.Detail) > MaxText || !e.State.valid() {
				return fmt.Errorf("%w: view entry %q/%d: connection %d bytes, name %d bytes, detail %d bytes, state %d",
					ErrMalformed, e.Conn, e.Endpoint, len(e.Conn), len(e.Name), len(e.Detail), e.State)
			}
		}
	case Snapshot:
		if m.Total > MaxSnapshot || m.Offset > m.Total || uint64(len(m.Data)) > m.Total-m.Offset {
			return fmt.Errorf("%w: snapshot chunk %d+%d of %d", ErrMalformed, m.Offset, len(m.Data), m.Total)
		}
	case Records:
		if m.First == 0 {
			return fmt.Errorf("%w: records from index 0", ErrMalformed)
		}
		for _, p := range m.Payloads {
			if len(p) > persist.MaxPayload {
				return fmt.Errorf("%w: record of %d bytes", ErrMalformed, len(p))
			}
		}
	}
	return nil
}

// Encode returns the frame of m: length, type, body.
func Encode(m Message) ([]byte, error) {
	if err := checkEncode(m); err != nil {
		return nil, err
	}
	b := make([]byte, 5, 64)
	b[4] = byte(m.Type())
	b = m.appendBody(b)
	if len(b)-4 > MaxFrame {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(b)-4)
	}
	be.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// reader decodes a body; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail("%s: %d bytes left, %d needed", what, len(r.b), n)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(what string) uint8 {
	if v := r.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if v := r.take(2, what); v != nil {
		return be.Uint16(v)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if v := r.take(4, what); v != nil {
		return be.Uint32(v)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if v := r.take(8, what); v != nil {
		return be.Uint64(v)
	}
	return 0
}

func (r *reader) bool(what string) bool {
	switch r.u8(what) {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("%s: not a bool", what)
	return false
}

// end refuses bytes left over: every message has one encoding.
func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes after the last field", len(r.b))
	}
	return r.err
}

// Decode decodes the body of a frame of type t. Byte slices in the
// message alias body.
func Decode(t MsgType, body []byte) (Message, error) {
	r := &reader{b: body}
	switch t {
	case MsgHello:
		if magic := r.take(4, "magic"); r.err == nil && string(magic) != helloMagic {
			return nil, fmt.Errorf("%w: not a lockstep HA peer (magic %q)", ErrMalformed, magic)
		}
		if v := r.u16("version"); r.err == nil && v != Version {
			return nil, fmt.Errorf("%w: peer speaks version %d, this server %d", ErrVersion, v, Version)
		}
		var m Hello
		m.Role = ha.Role(r.u8("role"))
		if r.err == nil && !m.Role.Valid() {
			r.fail("unknown role %d", m.Role)
		}
		m.Epoch = hal.Epoch(r.u64("epoch"))
		m.LastIndex = r.u64("last index")
		m.Name = string(r.take(int(r.u8("name length")), "name"))
		n := int(r.u16("listen length"))
		if r.err == nil && n > MaxText {
			r.fail("listen address of %d bytes", n)
		}
		m.Listen = string(r.take(n, "listen"))
		return m, r.end()
	case MsgGoodbye:
		n := int(r.u16("reason length"))
		if r.err == nil && n > MaxText {
			r.fail("goodbye of %d bytes", n)
		}
		m := Goodbye{Reason: string(r.take(n, "reason"))}
		return m, r.end()
	case MsgKeepalive:
		m := Keepalive{Interval: int64(r.u64("interval")), LastIndex: r.u64("last index")}
		if r.err == nil && (m.Interval <= 0 || m.Interval > maxKeepalive) {
			r.fail("keepalive interval %d ns", m.Interval)
		}
		return m, r.end()
	case MsgEpochNotice:
		m := EpochNotice{Epoch: hal.Epoch(r.u64("epoch"))}
		return m, r.end()
	case MsgView:
		n := int(r.u16("count"))
		// The smallest entry is 6 bytes: the count cannot promise more
		// than the body holds.
		if r.err == nil && (n > MaxViewEntries || n*6 > len(r.b)) {
			r.fail("view of %d entries in %d bytes", n, len(r.b))
		}
		var m View
		if r.err == nil && n > 0 {
			m.Entries = make([]ViewEntry, 0, n)
		}
		for i := 0; i < n && r.err == nil; i++ {
			var e ViewEntry
			e.Conn = string(r.take(int(r.u8("connection length")), "connection"))
			if r.err == nil && e.Conn == "" {
				r.fail("view entry without a connection")
			}
			e.Endpoint = r.u8("endpoint")
			e.Name = string(r.take(int(r.u8("name length")), "name"))
			e.State = ViewState(r.u8("state"))
			if r.err == nil && !e.State.valid() {
				r.fail("view state %d", e.State)
			}
			dn := int(r.u16("detail length"))
			if r.err == nil && dn > MaxText {
				r.fail("detail of %d bytes", dn)
			}
			e.Detail = string(r.take(dn, "detail"))
			m.Entries = append(m.Entries, e)
		}
		return m, r.end()
	case MsgSyncRequest:
		var m SyncRequest
		m.Full = r.bool("full")
		m.Index = r.u64("index")
		copy(m.Sum[:], r.take(32, "sum"))
		return m, r.end()
	case MsgSnapshot:
		m := Snapshot{Index: r.u64("index"), Total: r.u64("total"), Offset: r.u64("offset")}
		m.Data = r.take(len(r.b), "data")
		if r.err == nil && (m.Total > MaxSnapshot || m.Offset > m.Total || uint64(len(m.Data)) > m.Total-m.Offset) {
			r.fail("snapshot chunk %d+%d of %d", m.Offset, len(m.Data), m.Total)
		}
		return m, r.end()
	case MsgRecords:
		m := Records{First: r.u64("first"), Durable: r.u64("durable")}
		if r.err == nil && m.First == 0 {
			r.fail("records from index 0")
		}
		n := r.u32("count")
		if r.err == nil && uint64(n)*4 > uint64(len(r.b)) {
			r.fail("%d records cannot fit in %d bytes", n, len(r.b))
		}
		if r.err == nil && n > 0 {
			m.Payloads = make([][]byte, 0, n)
		}
		for i := uint32(0); i < n && r.err == nil; i++ {
			size := r.u32("record length")
			if r.err == nil && size > persist.MaxPayload {
				r.fail("record of %d bytes", size)
			}
			m.Payloads = append(m.Payloads, r.take(int(size), "record"))
		}
		return m, r.end()
	case MsgAck:
		m := Ack{Index: r.u64("index")}
		return m, r.end()
	}
	return nil, fmt.Errorf("%w: 0x%02x", ErrUnknownType, uint8(t))
}

// readFrame reads one frame whose length field is at most limit, checking
// the length before allocating and the type before reading the body, and
// decodes it. io.EOF only at a clean end between frames.
func readFrame(r *bufio.Reader, limit int) (Message, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return nil, err
	}
	n := be.Uint32(hdr[:4])
	if n == 0 {
		return nil, fmt.Errorf("%w: frame length 0 (no type byte)", ErrMalformed)
	}
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, limit)
	}
	if _, err := io.ReadFull(r, hdr[4:5]); err != nil {
		return nil, noEOF(err)
	}
	t := MsgType(hdr[4])
	if !t.known() {
		return nil, fmt.Errorf("%w: 0x%02x", ErrUnknownType, hdr[4])
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, noEOF(err)
	}
	return Decode(t, body)
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
