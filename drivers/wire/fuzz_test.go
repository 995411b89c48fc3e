package wire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// Every decoder is fuzzed for three properties: it never panics; it
// fails only with the package's sentinels; and whatever it accepts
// re-encodes to exactly the input (one encoding per message), so that
// nothing is silently dropped or altered.

func decodeSentinel(err error) bool {
	for _, s := range []error{ErrMalformed, ErrFrameTooLarge, ErrUnknownType, ErrBadVersion, ErrUnknownOp} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// fuzzCanonical checks the three properties for one decoder/encoder pair.
func fuzzCanonical[T any](t *testing.T, b []byte, dec func([]byte) (T, error), enc func(T) ([]byte, error)) {
	m, err := dec(b)
	if err != nil {
		if !decodeSentinel(err) {
			t.Fatalf("error %v wraps no wire sentinel", err)
		}
		return
	}
	again, err := enc(m)
	if err != nil {
		t.Fatalf("decoded %#v but cannot encode it: %v", m, err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("re-encoding differs (-in +out):\n-%X\n+%X", b, again)
	}
	m2, err := dec(again)
	if err != nil || !reflect.DeepEqual(m, m2) {
		t.Fatalf("second decode: %v\n-%#v\n+%#v", err, m, m2)
	}
}

// seed adds the valid encodings from the codec tests, and each with its
// last byte cut and an extra byte added.
func seed(f *testing.F, bodies ...[]byte) {
	for _, b := range bodies {
		f.Add(b)
		if len(b) > 0 {
			f.Add(b[:len(b)-1])
		}
		f.Add(append(append([]byte(nil), b...), 0))
	}
}

func encodeAll[T any](f *testing.F, enc func(T) ([]byte, error), vs ...T) [][]byte {
	var out [][]byte
	for _, v := range vs {
		b, err := enc(v)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzReadFrame(f *testing.F) {
	for _, tc := range codecCases() {
		b, err := tc.enc()
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		WriteFrame(&buf, Frame{Type: MsgRequest, Body: b})
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0x10})
	f.Add([]byte{0, 0, 0, 1, 0xEE})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, limit := range []int{MaxFrameSize, MaxHandshakeFrame} {
			fr, err := ReadFrame(bytes.NewReader(in), limit)
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF && !decodeSentinel(err) {
					t.Fatalf("error %v is neither EOF nor a wire sentinel", err)
				}
				continue
			}
			if 1+len(fr.Body) > limit {
				t.Fatalf("read a %d-byte frame past limit %d", 1+len(fr.Body), limit)
			}
			var out bytes.Buffer
			if err := WriteFrame(&out, fr); err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(in, out.Bytes()) {
				t.Fatalf("re-written frame is not the input's prefix:\n in %X\nout %X", in, out.Bytes())
			}
		}
	})
}

func FuzzDecodeHello(f *testing.F) {
	seed(f, encodeAll(f, EncodeHello, sampleHello, Hello{Version: Version}, Hello{Version: 3},
		Hello{Version: Version, ToHMC: true, Manager: "m", HMC: "HMC1", User: "u", Password: "p"},
		Hello{Version: Version, Manager: "m", Sysplex: "PLEX1", User: "u", Password: "p"})...)
	f.Add(append([]byte(Magic), 0, 1, 3, 'm', 'g', 'r', 1, 'S', 1, 'u', 1, 'p')) // a version 1 hello
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeHello(b)
		if errors.Is(err, ErrBadVersion) && (m.Version == Version || m.Manager != "") {
			t.Fatalf("bad version error with hello %#v", m)
		}
		fuzzCanonical(t, b, DecodeHello, EncodeHello)
	})
}

func FuzzDecodeHelloOK(f *testing.F) {
	seed(f, encodeAll(f, EncodeHelloOK, sampleOK, HelloOK{Version: Version},
		HelloOK{Version: Version, HMC: "HMC1", Attached: []hal.Serial{serialP, "LAB.2107-75S0001"}})...)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCanonical(t, b, DecodeHelloOK, EncodeHelloOK) })
}

func FuzzDecodeHelloReject(f *testing.F) {
	seed(f, encodeAll(f, EncodeHelloReject, HelloReject{Code: RejectAuth, Text: "wrong user or password"})...)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCanonical(t, b, DecodeHelloReject, EncodeHelloReject) })
}

func FuzzDecodeRequest(f *testing.F) {
	for _, a := range sampleArgs {
		args, err := EncodeArgs(a.op, a.args)
		if err != nil {
			f.Fatal(err)
		}
		seed(f, encodeAll(f, EncodeRequest, Request{ID: 7, Epoch: 3, Timeout: time.Second, Op: a.op, Args: args},
			Request{ID: 8, Epoch: 3, Timeout: time.Second, Op: a.op, Target: serialP, Args: args})...)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzCanonical(t, b, DecodeRequest, EncodeRequest)
		// What the server does next: decode the arguments.
		if req, err := DecodeRequest(b); err == nil {
			op := req.Op
			fuzzCanonical(t, req.Args,
				func(b []byte) (Args, error) { return DecodeArgs(op, b) },
				func(a Args) ([]byte, error) { return EncodeArgs(op, a) })
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	for _, r := range sampleResults {
		res, err := EncodeResult(r.op, r.res)
		if err != nil {
			f.Fatal(err)
		}
		seed(f, encodeAll(f, EncodeResponse, Response{ID: 7, Result: res})...)
	}
	seed(f, encodeAll(f, EncodeResponse, Response{ID: 8, Status: StatusFenced, Text: "epoch 3 < 5"})...)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCanonical(t, b, DecodeResponse, EncodeResponse) })
}

func FuzzDecodeEvent(f *testing.F) {
	seed(f, encodeAll(f, EncodeEvent, sampleEvents...)...)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCanonical(t, b, DecodeEvent, EncodeEvent) })
}

func FuzzDecodeArgs(f *testing.F) {
	for _, a := range sampleArgs {
		b, err := EncodeArgs(a.op, a.args)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(a.op), b)
		f.Add(uint8(a.op), append(b, 0))
	}
	f.Fuzz(func(t *testing.T, op uint8, b []byte) {
		fuzzCanonical(t, b,
			func(b []byte) (Args, error) { return DecodeArgs(Op(op), b) },
			func(a Args) ([]byte, error) { return EncodeArgs(Op(op), a) })
	})
}

func FuzzDecodeResult(f *testing.F) {
	for _, r := range sampleResults {
		b, err := EncodeResult(r.op, r.res)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(r.op), b)
		f.Add(uint8(r.op), append(b, 0))
	}
	f.Fuzz(func(t *testing.T, op uint8, b []byte) {
		fuzzCanonical(t, b,
			func(b []byte) (Result, error) { return DecodeResult(Op(op), b) },
			func(r Result) ([]byte, error) { return EncodeResult(Op(op), r) })
	})
}

// FuzzServe feeds arbitrary bytes to a server after a valid handshake
// (and, for inputs starting with 0xFF, instead of it). The server must
// neither panic nor hang: Serve returns once the input is consumed.
func FuzzServe(f *testing.F) {
	for _, a := range sampleArgs {
		args, _ := EncodeArgs(a.op, a.args)
		req, _ := EncodeRequest(Request{ID: 1, Epoch: 1, Timeout: time.Second, Op: a.op, Args: args})
		var buf bytes.Buffer
		WriteFrame(&buf, Frame{Type: MsgRequest, Body: req})
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0xFF, 0, 0, 0, 3, 1, 'L', 'K'})
	f.Add([]byte{0, 0, 0, 1, 0xEE})
	f.Fuzz(func(t *testing.T, in []byte) {
		sys := newFake(serialP)
		accept := func(h Hello) (HelloOK, hal.StorageSystem, error) {
			return HelloOK{Serial: serialP, Capabilities: hal.Capabilities{Heartbeat: true}}, sys, nil
		}
		client, server := net.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- Serve(context.Background(), server, accept, ServerOptions{HandshakeTimeout: 5 * time.Second})
		}()
		go io.Copy(io.Discard, bufio.NewReader(client)) // drain replies
		var stream bytes.Buffer
		if len(in) > 0 && in[0] == 0xFF {
			stream.Write(in[1:])
		} else {
			hello, _ := EncodeHello(sampleHello)
			WriteFrame(&stream, Frame{Type: MsgHello, Body: hello})
			stream.Write(in)
		}
		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		client.Write(stream.Bytes())
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after its input ended")
		}
	})
}

// FuzzDecodeEventsInARow: events decoded one after the other with the
// names carried from one to the next, each from the same reused buffer
// (the client's read loop), decode as each does alone from a body of its
// own, and stay so once the buffer holds the next.
func FuzzDecodeEventsInARow(f *testing.F) {
	f.Add("LAB.2107-75P0001", "LAB.2107-75S0001", "LAB.2107-75P0002", "", uint8(3))
	f.Add("", "X", "X", "session", uint8(0))
	f.Fuzz(func(t *testing.T, a, b, c, session string, n uint8) {
		serials := []string{a, b, c}
		var names [2]string
		var buf []byte
		var alones, carrieds []hal.Event
		defer func() {
			for i := range carrieds {
				if carrieds[i] != alones[i] {
					t.Fatalf("event %d changed once the buffer was reused: %+v, want %+v", i, carrieds[i], alones[i])
				}
			}
		}()
		for i := range int(n%8) + 1 {
			ev := hal.Event{Kind: hal.EventSuspend, Serial: hal.Serial(serials[i%3]), Seq: uint64(i),
				LSSPair: hal.LSSPair{Source: hal.LSSRef{Serial: hal.Serial(serials[(i+1)%3])},
					Target: hal.LSSRef{Serial: hal.Serial(serials[(i+2)%3])}}, Session: session}
			body, err := EncodeEvent(ev)
			if err != nil {
				return // a name too long: nothing to decode
			}
			alone, err1 := DecodeEvent(body)
			buf = append(buf[:0], body...)
			carried, err2 := decodeEvent(buf, &names)
			if (err1 == nil) != (err2 == nil) || alone != carried {
				t.Fatalf("event %d: alone %+v (%v), carried %+v (%v)", i, alone, err1, carried, err2)
			}
			alones, carrieds = append(alones, alone), append(carrieds, carried)
		}
	})
}
