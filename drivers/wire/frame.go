package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits. Every length on the wire is bounded so that a peer can never make
// the other side allocate more than MaxFrameSize for one frame, and an
// unauthenticated peer no more than MaxHandshakeFrame.
const (
	// MaxFrameSize bounds the length field of a frame (type byte + body).
	// 4 MiB holds a QueryPairs reply for a fully populated storage system
	// (65 280 volumes with 16-byte serials is about 3.1 MB).
	MaxFrameSize = 4 << 20
	// MaxHandshakeFrame bounds the frames a server reads before
	// authentication (the Hello; the largest legal body is 1 288 bytes).
	MaxHandshakeFrame = 2048
	// MaxHelloAnswerFrame bounds the client's read of the server's answer
	// (HelloOK, HelloReject): the server's certificate has been verified
	// by then, and an HMC's HelloOK lists its attached serials (64 KiB
	// holds some 250 of 255 bytes, thousands of real ones).
	MaxHelloAnswerFrame = 64 << 10
	// MaxName bounds every name: serials, user, password, manager,
	// session (a one-byte length).
	MaxName = 255
	// MaxText bounds error and reject texts (a two-byte length).
	MaxText = 1024
)

// MsgType is the first byte of a frame; it says how to decode the body.
type MsgType uint8

const (
	MsgHello       MsgType = 0x01 // client -> server, first frame
	MsgHelloOK     MsgType = 0x02 // server -> client, handshake accepted
	MsgHelloReject MsgType = 0x03 // server -> client, then the server closes
	MsgRequest     MsgType = 0x10 // client -> server
	MsgResponse    MsgType = 0x11 // server -> client
	MsgEvent       MsgType = 0x12 // server -> client, unsolicited
	// MsgStateChange is a z/OS host's state-change message (zos.go).
	MsgStateChange MsgType = 0x13 // server -> client, unsolicited
	// MsgSwapEvent is a z/OS host's HyperSwap report (swap.go, version 3).
	MsgSwapEvent MsgType = 0x14 // server -> client, unsolicited
)

func (t MsgType) String() string {
	switch t {
	case MsgHello:
		return "hello"
	case MsgHelloOK:
		return "hello-ok"
	case MsgHelloReject:
		return "hello-reject"
	case MsgRequest:
		return "request"
	case MsgResponse:
		return "response"
	case MsgEvent:
		return "event"
	case MsgStateChange:
		return "state-change"
	case MsgSwapEvent:
		return "swap-event"
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

func (t MsgType) known() bool {
	switch t {
	case MsgHello, MsgHelloOK, MsgHelloReject, MsgRequest, MsgResponse, MsgEvent, MsgStateChange, MsgSwapEvent:
		return true
	}
	return false
}

// frameHeader is the length of a frame's header: the 4-byte length, then
// the type.
const frameHeader = 5

// Frame is one message on the stream: its type and its encoded body.
type Frame struct {
	Type MsgType
	Body []byte
}

// ReadFrame reads one frame whose length field is at most limit (use
// MaxFrameSize, or MaxHandshakeFrame before authentication). The length is
// checked before the body is allocated, and the type before the body is
// read. It returns io.EOF only when the stream ends cleanly between frames,
// io.ErrUnexpectedEOF when it ends inside one. r should be buffered.
func ReadFrame(r io.Reader, limit int) (Frame, error) {
	return readFrame(r, new([4]byte), limit, func(_ MsgType, n int) []byte { return make([]byte, n) })
}

// readFrame is ReadFrame reading the header into hdr and the body into the
// n bytes bodyBuf gives for the frame's type, once the length and the type
// are checked: a reader that decodes a frame before it reads the next can
// reuse one buffer for the types whose decoding keeps nothing of the body,
// and one hdr for all: read through an io.Reader, a header is on the heap,
// and one per frame was 17 of the 30 allocations of a freeze's Call (its
// answer and its 16 events).
func readFrame(r io.Reader, hdr *[4]byte, limit int, bodyBuf func(t MsgType, n int) []byte) (Frame, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return Frame{}, fmt.Errorf("%w: frame length 0 (no type byte)", ErrMalformed)
	}
	if uint64(n) > uint64(min(limit, MaxFrameSize)) {
		return Frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, min(limit, MaxFrameSize))
	}
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return Frame{}, noEOF(err)
	}
	t := MsgType(hdr[0])
	if !t.known() {
		return Frame{}, fmt.Errorf("%w: 0x%02x", ErrUnknownType, hdr[0])
	}
	body := bodyBuf(t, int(n-1))
	if _, err := io.ReadFull(r, body); err != nil {
		return Frame{}, noEOF(err)
	}
	return Frame{Type: t, Body: body}, nil
}

// noEOF turns a clean EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteFrame writes f to w. It refuses a frame over MaxFrameSize, which
// the peer would refuse anyway. w should be buffered (and flushed by the
// caller): the header and the body are two writes.
func WriteFrame(w io.Writer, f Frame) error {
	n := 1 + len(f.Body)
	if n > MaxFrameSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, MaxFrameSize)
	}
	var hdr [frameHeader]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(n))
	hdr[4] = byte(f.Type)
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(f.Body)
	return err
}
