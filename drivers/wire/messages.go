package wire

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// Version is the protocol version this package speaks. A server refuses
// any other with RejectVersion; there is no negotiation. Version 2 added
// HMCs and z/OS hosts: the Hello's flags, HMC name and sysplex, the
// HelloOK's HMC name and attached serials, and the target serial of every
// Request. Version 3 added HyperSwap (swap.go): the ops load-swap,
// unload-swap, swap and swap-status and the SwapEvent frame, which a
// version 2 client would take for a malformed frame.
const Version uint16 = 3

// Magic opens every Hello, so that a server can tell a lockstep client
// from something else that connected to its port.
const Magic = "LKSP"

// Hello is the client's first frame.
type Hello struct {
	Version uint16 // the client's protocol version; NewClient fills in Version if zero
	// ToHMC says that the client expects an HMC, which fronts several
	// storage systems, rather than a storage system's own endpoint.
	ToHMC   bool
	Manager string     // the manager's name, for the server's logs
	Serial  hal.Serial // the storage system the client expects behind this endpoint (empty with ToHMC)
	// HMC is the name of the HMC the client expects (ToHMC only; empty:
	// whichever HMC its certificate names).
	HMC      string
	User     string
	Password string
	// Sysplex is the sysplex the manager is configured in, stated to a
	// z/OS host, which serves only managers of its own sysplex. Empty:
	// none. Other endpoints ignore it.
	Sysplex string
}

// helloToHMC is bit 0 of a Hello's flags.
const helloToHMC uint8 = 1 << 0

// EncodeHello returns the body of a Hello frame.
func EncodeHello(m Hello) ([]byte, error) {
	e := encoder{what: "hello"}
	e.b = append(e.b, Magic...)
	e.u16(m.Version)
	var flags uint8
	if m.ToHMC {
		flags |= helloToHMC
	}
	if m.ToHMC && m.Serial != "" {
		e.fail("a hello to an HMC names no serial (requests do)")
	}
	if !m.ToHMC && m.HMC != "" {
		e.fail("a hello to a storage endpoint names no HMC")
	}
	e.u8(flags)
	e.name("manager", m.Manager)
	e.name("serial", string(m.Serial))
	e.name("hmc", m.HMC)
	e.name("sysplex", m.Sysplex)
	e.name("user", m.User)
	e.name("password", m.Password)
	return e.done()
}

// DecodeHello decodes the body of a Hello frame. For a version other than
// Version it returns a Hello holding only the version, and an error
// wrapping ErrBadVersion: the rest of a foreign version's Hello may be laid
// out differently, but the server needs the version to say why it refuses.
func DecodeHello(b []byte) (Hello, error) {
	d := decoder{what: "hello", b: b}
	if magic := d.take(len(Magic)); d.err == nil && string(magic) != Magic {
		d.fail("magic %q, want %q", magic, Magic)
	}
	m := Hello{Version: d.u16()}
	if d.err == nil && m.Version != Version {
		return Hello{Version: m.Version}, fmt.Errorf("%w: hello: client speaks version %d, this side %d", ErrBadVersion, m.Version, Version)
	}
	flags := d.u8()
	if d.err == nil && flags&^helloToHMC != 0 {
		d.fail("unknown flag bits 0x%02x", flags&^helloToHMC)
	}
	m.ToHMC = flags&helloToHMC != 0
	m.Manager = d.name()
	m.Serial = hal.Serial(d.name())
	m.HMC = d.name()
	if d.err == nil && m.ToHMC && m.Serial != "" {
		d.fail("a hello to an HMC names serial %q", m.Serial)
	}
	if d.err == nil && !m.ToHMC && m.HMC != "" {
		d.fail("a hello to a storage endpoint names HMC %q", m.HMC)
	}
	m.Sysplex = d.name()
	m.User = d.name()
	m.Password = d.name()
	if err := d.finish(); err != nil {
		return Hello{}, err
	}
	return m, nil
}

// capHeartbeat is bit 0 of HelloOK's capability flags.
const capHeartbeat uint32 = 1 << 0

// HelloOK accepts a Hello.
type HelloOK struct {
	Version      uint16     // always Version; the decoder refuses others
	Serial       hal.Serial // the storage system this connection serves; empty for an HMC
	Capabilities hal.Capabilities
	// Epoch is the highest epoch the storage system has seen, so that a
	// stale manager learns it is fenced before it sends anything. An HMC
	// sends 0: each system behind it has its own.
	Epoch hal.Epoch
	// HMC is the HMC's name when the endpoint is an HMC, else empty.
	HMC string
	// Attached are the storage systems an HMC fronts (its attached
	// devices): the serials its requests may target and its events may
	// name. Empty for a storage endpoint.
	Attached []hal.Serial
}

// minSerial is the smallest encoding of a serial in a list (empty name).
const minSerial = 1

// EncodeHelloOK returns the body of a HelloOK frame.
func EncodeHelloOK(m HelloOK) ([]byte, error) {
	e := encoder{what: "hello-ok"}
	e.u16(m.Version)
	e.name("serial", string(m.Serial))
	var caps uint32
	if m.Capabilities.Heartbeat {
		caps |= capHeartbeat
	}
	e.u32(caps)
	e.u64(uint64(m.Epoch))
	e.name("hmc", m.HMC)
	if m.HMC == "" && len(m.Attached) > 0 {
		e.fail("a storage endpoint lists attached systems")
	}
	if m.HMC != "" && m.Serial != "" {
		e.fail("HMC %q claims serial %q", m.HMC, m.Serial)
	}
	putList(&e, "attached", m.Attached, func(s hal.Serial) { e.name("attached serial", string(s)) })
	return e.done()
}

// DecodeHelloOK decodes the body of a HelloOK frame.
func DecodeHelloOK(b []byte) (HelloOK, error) {
	d := decoder{what: "hello-ok", b: b}
	m := HelloOK{Version: d.u16()}
	if d.err == nil && m.Version != Version {
		return HelloOK{}, fmt.Errorf("%w: hello-ok: server speaks version %d, this side %d", ErrBadVersion, m.Version, Version)
	}
	m.Serial = hal.Serial(d.name())
	caps := d.u32()
	if caps&^capHeartbeat != 0 {
		// Unknown bits would be capabilities this version cannot name.
		d.fail("unknown capability bits 0x%08x", caps&^capHeartbeat)
	}
	m.Capabilities.Heartbeat = caps&capHeartbeat != 0
	m.Epoch = hal.Epoch(d.u64())
	m.HMC = d.name()
	m.Attached = list(&d, "attached", minSerial, func() hal.Serial { return hal.Serial(d.name()) })
	if d.err == nil && m.HMC == "" && len(m.Attached) > 0 {
		d.fail("a storage endpoint lists %d attached systems", len(m.Attached))
	}
	if d.err == nil && m.HMC != "" && m.Serial != "" {
		d.fail("HMC %q claims serial %q", m.HMC, m.Serial)
	}
	if err := d.finish(); err != nil {
		return HelloOK{}, err
	}
	return m, nil
}

// RejectCode says why a server refused a Hello.
type RejectCode uint8

const (
	RejectVersion       RejectCode = 1 // protocol version not spoken
	RejectAuth          RejectCode = 2 // user or password wrong
	RejectUnknownSerial RejectCode = 3 // the endpoint does not serve that storage system
	RejectUnavailable   RejectCode = 4 // the storage system cannot serve now (down, restarting)
	RejectSysplex       RejectCode = 5 // a z/OS host: the manager is not in the host's sysplex
)

func (c RejectCode) String() string {
	switch c {
	case RejectVersion:
		return "version"
	case RejectAuth:
		return "auth"
	case RejectUnknownSerial:
		return "unknown-serial"
	case RejectUnavailable:
		return "unavailable"
	case RejectSysplex:
		return "sysplex"
	}
	return fmt.Sprintf("reject(%d)", uint8(c))
}

// HelloReject refuses a Hello; the server closes the connection after it.
// Its layout is the same in every protocol version, so that a client of
// any version can read why it was refused. Codes are carried as is: a
// client treats one it does not know as a plain refusal.
type HelloReject struct {
	Code RejectCode
	Text string
}

// EncodeHelloReject returns the body of a HelloReject frame.
func EncodeHelloReject(m HelloReject) ([]byte, error) {
	e := encoder{what: "hello-reject"}
	e.u8(uint8(m.Code))
	e.text("text", m.Text)
	return e.done()
}

// DecodeHelloReject decodes the body of a HelloReject frame.
func DecodeHelloReject(b []byte) (HelloReject, error) {
	d := decoder{what: "hello-reject", b: b}
	m := HelloReject{Code: RejectCode(d.u8()), Text: d.text()}
	if err := d.finish(); err != nil {
		return HelloReject{}, err
	}
	return m, nil
}

// Request asks the server to run one op.
type Request struct {
	ID    uint64 // chosen by the client, echoed in the Response
	Epoch hal.Epoch
	// Timeout is how long the server may spend on the request, measured
	// from when it reads it: the time left of the caller's deadline.
	// Always > 0.
	Timeout time.Duration
	Op      Op
	// Target is the storage system the request is for: through an HMC,
	// one of its attached serials; on a storage endpoint, empty (the
	// connection's own system) or that system's serial.
	Target hal.Serial
	Args   []byte // the op's arguments, see EncodeArgs
}

// requestHeader is the smallest Request: no target, no arguments.
const requestHeader = 8 + 8 + 8 + 1 + 1

// EncodeRequest returns the body of a Request frame.
func EncodeRequest(m Request) ([]byte, error) { return encodeRequest(m, 0) }

// requestFrame returns a Request's whole frame, header and body, in one
// buffer: the client's write loop copies it out as it is, with no header
// of its own to make.
func requestFrame(m Request) ([]byte, error) {
	b, err := encodeRequest(m, frameHeader)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	b[4] = byte(MsgRequest)
	return b, nil
}

// encodeRequest encodes m after reserve bytes left for a frame header.
func encodeRequest(m Request, reserve int) ([]byte, error) {
	e := encoder{what: "request", b: make([]byte, reserve, reserve+requestHeader+len(m.Target)+len(m.Args)), start: reserve}
	if m.Timeout <= 0 {
		e.fail("timeout %v is not positive", m.Timeout)
	}
	e.u64(m.ID)
	e.u64(uint64(m.Epoch))
	e.i64(int64(m.Timeout))
	e.u8(uint8(m.Op))
	e.name("target", string(m.Target))
	e.b = append(e.b, m.Args...)
	return e.done()
}

// DecodeRequest decodes the body of a Request frame. An op it does not
// know is not an error here: the server answers it with StatusUnsupported.
func DecodeRequest(b []byte) (Request, error) {
	d := decoder{what: "request", b: b}
	m := Request{ID: d.u64(), Epoch: hal.Epoch(d.u64())}
	timeout := d.i64()
	if d.err == nil && timeout <= 0 {
		d.fail("timeout %d ns is not positive", timeout)
	}
	m.Timeout = time.Duration(timeout)
	m.Op = Op(d.u8())
	m.Target = hal.Serial(d.name())
	m.Args = d.rest()
	if err := d.finish(); err != nil {
		return Request{}, err
	}
	return m, nil
}

// Response answers the Request with the same ID.
type Response struct {
	ID     uint64
	Status Status
	Text   string // the error, for people (usually empty when Status is OK)
	Result []byte // the op's result when Status is OK, see EncodeResult
}

// EncodeResponse returns the body of a Response frame. A Text longer than
// MaxText is an error: servers shorten error texts with TruncateText.
func EncodeResponse(m Response) ([]byte, error) {
	e := encoder{what: "response", b: make([]byte, 0, 8+1+2+len(m.Text)+len(m.Result))}
	if !m.Status.valid() {
		e.fail("unknown status %d", m.Status)
	}
	if m.Status != StatusOK && len(m.Result) > 0 {
		e.fail("a %s response carries a result", m.Status)
	}
	e.u64(m.ID)
	e.u8(uint8(m.Status))
	e.text("text", m.Text)
	e.b = append(e.b, m.Result...)
	return e.done()
}

// DecodeResponse decodes the body of a Response frame.
func DecodeResponse(b []byte) (Response, error) {
	d := decoder{what: "response", b: b}
	m := Response{ID: d.u64(), Status: Status(d.u8())}
	if d.err == nil && !m.Status.valid() {
		d.fail("unknown status %d", m.Status)
	}
	m.Text = d.text()
	m.Result = d.rest()
	if d.err == nil && m.Status != StatusOK && len(m.Result) > 0 {
		d.fail("a %s response carries a %d-byte result", m.Status, len(m.Result))
	}
	if err := d.finish(); err != nil {
		return Response{}, err
	}
	return m, nil
}

// TruncateText shortens s to at most MaxText bytes without splitting a
// UTF-8 sequence, marking the cut.
func TruncateText(s string) string {
	if len(s) <= MaxText {
		return s
	}
	const mark = "..."
	cut := MaxText - len(mark)
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not start the cut inside a rune
		cut--
	}
	return s[:cut] + mark
}

// EncodeEvent returns the body of an Event frame. Every field of
// hal.Event is sent whatever the kind, so the layout is fixed.
func EncodeEvent(ev hal.Event) ([]byte, error) {
	// Sized at once (64 bytes of fixed fields and the names): growing the
	// buffer field by field was most of what the server allocated per
	// freeze before it appended its events to one buffer.
	return appendEvent(make([]byte, 0,
		64+len(ev.Serial)+len(ev.LSSPair.Source.Serial)+len(ev.LSSPair.Target.Serial)+len(ev.Session)), ev)
}

// appendEvent appends the body of an Event frame to dst (EncodeEvent): the
// server encodes a batch's events into one buffer.
// On error dst is returned as it was.
func appendEvent(dst []byte, ev hal.Event) ([]byte, error) {
	e := encoder{what: "event", b: dst, start: len(dst)}
	e.u8(uint8(ev.Kind))
	e.name("serial", string(ev.Serial))
	e.u64(ev.Seq)
	e.time("at", ev.At)
	e.lssPair(ev.LSSPair)
	e.u8(uint8(ev.Reason))
	for _, w := range ev.Volumes {
		e.u64(w)
	}
	e.name("session", ev.Session)
	e.u64(uint64(ev.Epoch))
	b, err := e.done()
	if err != nil {
		return dst, err
	}
	return b, nil
}

// DecodeEvent decodes the body of an Event frame. Kind and reason are
// carried as is: a receiver shows values it does not know numerically, as
// hal's String methods do.
func DecodeEvent(b []byte) (hal.Event, error) {
	var names [2]string
	return decodeEvent(b, &names)
}

// decodeEvent is DecodeEvent starting from, and leaving in names, the last
// two names read: a connection's events name the same system (and the
// same target system) one after the other, and a read loop that keeps
// them decodes its events without copying a name.
func decodeEvent(b []byte, names *[2]string) (hal.Event, error) {
	d := decoder{what: "event", b: b, names: *names}
	ev := hal.Event{
		Kind:    hal.EventKind(d.u8()),
		Serial:  hal.Serial(d.name()),
		Seq:     d.u64(),
		At:      d.time(),
		LSSPair: d.lssPair(),
		Reason:  hal.SuspendReason(d.u8()),
	}
	for i := range ev.Volumes {
		ev.Volumes[i] = d.u64()
	}
	ev.Session = d.name()
	ev.Epoch = hal.Epoch(d.u64())
	*names = d.names
	if err := d.finish(); err != nil {
		return hal.Event{}, err
	}
	return ev, nil
}
