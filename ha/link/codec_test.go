package link

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/ha"
	"github.com/lockstep-io/lockstep/persist"
)

func sampleMessages() []Message {
	var sum [32]byte
	for i := range sum {
		sum[i] = byte(i)
	}
	return []Message{
		Hello{Name: "db1", Listen: "tcp://192.0.2.1:9730", Role: ha.Active, Epoch: 7, LastIndex: 1234},
		Hello{Role: ha.DisconnectedStandby},
		Hello{Name: strings.Repeat("n", MaxName), Listen: strings.Repeat("l", MaxText), Role: ha.Standby},
		Goodbye{Reason: "ha: relationship removed"},
		Goodbye{},
		Keepalive{Interval: 1e9, LastIndex: 99},
		EpochNotice{Epoch: 8},
		View{},
		View{Entries: []ViewEntry{{Conn: "HMCS", Endpoint: 0, Name: "LAB-HMC1", State: ViewConnected},
			{Conn: "HMCS", Endpoint: 1, State: ViewDisconnected, Detail: "dial tcp 127.0.0.92:1751: connection refused"},
			{Conn: strings.Repeat("c", MaxName), Endpoint: 255, Name: strings.Repeat("n", MaxName), State: ViewConnecting,
				Detail: strings.Repeat("d", MaxText)}}},
		SyncRequest{Full: true},
		SyncRequest{Index: 42, Sum: sum},
		Snapshot{Index: 10, Total: 5, Offset: 0, Data: []byte("hello")},
		Snapshot{Index: 10, Total: 9, Offset: 5, Data: []byte("abcd")},
		Snapshot{Index: 0, Total: 0, Offset: 0, Data: []byte{}},
		Records{First: 1, Durable: 3, Payloads: [][]byte{[]byte("a"), {}, []byte("ccc")}},
		Records{First: 5, Durable: 4},
		Ack{Index: 3},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range sampleMessages() {
		f, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", m, err)
		}
		got, err := readFrame(bufio.NewReader(bytes.NewReader(f)), MaxFrame)
		if err != nil {
			t.Fatalf("decode %s: %v", m.Type(), err)
		}
		if !equalMessages(got, m) {
			t.Errorf("round trip (-want +got):\n-%+v\n+%+v", m, got)
		}
	}
}

// equalMessages compares, taking nil and empty byte slices as equal.
func equalMessages(a, b Message) bool {
	norm := func(m Message) Message {
		switch v := m.(type) {
		case Snapshot:
			if len(v.Data) == 0 {
				v.Data = nil
			}
			return v
		case Records:
			if len(v.Payloads) == 0 {
				v.Payloads = nil
			}
			for i, p := range v.Payloads {
				if len(p) == 0 {
					v.Payloads[i] = nil
				}
			}
			return v
		}
		return m
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func TestEncodeRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    Message
	}{
		{"name too long", Hello{Name: strings.Repeat("x", MaxName+1), Role: ha.Active}},
		{"listen too long", Hello{Listen: strings.Repeat("x", MaxText+1)}},
		{"unknown role", Hello{Role: 9}},
		{"goodbye too long", Goodbye{Reason: strings.Repeat("x", MaxText+1)}},
		{"keepalive interval zero", Keepalive{}},
		{"snapshot chunk beyond total", Snapshot{Total: 2, Data: []byte("abc")}},
		{"snapshot over the limit", Snapshot{Total: MaxSnapshot + 1}},
		{"records from 0", Records{}},
		{"record too large", Records{First: 1, Payloads: [][]byte{make([]byte, persist.MaxPayload+1)}}},
		{"view entry without a connection", View{Entries: []ViewEntry{{State: ViewConnected}}}},
		{"view state zero", View{Entries: []ViewEntry{{Conn: "H"}}}},
		{"view detail too long", View{Entries: []ViewEntry{{Conn: "H", State: ViewDisconnected, Detail: strings.Repeat("x", MaxText+1)}}}},
		{"view too many entries", View{Entries: make([]ViewEntry, MaxViewEntries+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Encode(tt.m); !errors.Is(err, ErrMalformed) {
				t.Errorf("Encode = %v, want ErrMalformed", err)
			}
		})
	}
}

// decodeCases are frames a reader must refuse, kept as named cases (the
// fuzz targets' crashers go here too).
var decodeCases = []struct {
	name  string
	frame []byte
	limit int
	want  error
}{
	{"length zero", []byte{0, 0, 0, 0}, MaxFrame, ErrMalformed},
	{"length over the handshake limit", []byte{0, 0, 0x10, 1, 1}, MaxHandshakeFrame, ErrFrameTooLarge},
	{"length over the limit", []byte{0x10, 0, 0, 0, 0x12}, MaxFrame, ErrFrameTooLarge},
	{"unknown type", []byte{0, 0, 0, 1, 0x7f}, MaxFrame, ErrUnknownType},
	{"truncated header", []byte{0, 0}, MaxFrame, errUnexpectedEOF},
	{"truncated body", []byte{0, 0, 0, 9, 0x13, 1}, MaxFrame, errUnexpectedEOF},
	{"hello bad magic", frame(0x01, "XXXX\x00\x01\x01"+zeros(16)+"\x00\x00\x00"), MaxHandshakeFrame, ErrMalformed},
	{"hello other version", frame(0x01, "LKHA\x00\x09\x01"+zeros(16)+"\x00\x00\x00"), MaxHandshakeFrame, ErrVersion},
	{"hello unknown role", frame(0x01, "LKHA\x00\x02\x09"+zeros(16)+"\x00\x00\x00"), MaxHandshakeFrame, ErrMalformed},
	{"hello name past the end", frame(0x01, "LKHA\x00\x02\x01"+zeros(16)+"\x05ab"), MaxHandshakeFrame, ErrMalformed},
	{"hello listen too long", frame(0x01, "LKHA\x00\x02\x01"+zeros(16)+"\x00\x04\x01"+strings.Repeat("x", 1025)), MaxFrame, ErrMalformed},
	{"hello trailing byte", frame(0x01, "LKHA\x00\x02\x01"+zeros(16)+"\x00\x00\x00!"), MaxHandshakeFrame, ErrMalformed},
	{"goodbye too long", frame(0x02, "\x04\x01"+strings.Repeat("x", 1025)), MaxFrame, ErrMalformed},
	{"keepalive interval zero", frame(0x03, zeros(16)), MaxFrame, ErrMalformed},
	{"keepalive interval negative", frame(0x03, "\xff"+zeros(15)), MaxFrame, ErrMalformed},
	{"sync request bool 2", frame(0x10, "\x02"+zeros(40)), MaxFrame, ErrMalformed},
	{"sync request short sum", frame(0x10, "\x01"+zeros(39)), MaxFrame, ErrMalformed},
	{"snapshot chunk beyond total", frame(0x11, zeros(8)+"\x00\x00\x00\x00\x00\x00\x00\x02"+zeros(8)+"abc"), MaxFrame, ErrMalformed},
	{"snapshot offset beyond total", frame(0x11, zeros(8)+"\x00\x00\x00\x00\x00\x00\x00\x02"+"\x00\x00\x00\x00\x00\x00\x00\x03"), MaxFrame, ErrMalformed},
	{"snapshot total over the limit", frame(0x11, zeros(8)+"\x00\x00\x00\x00\x40\x00\x00\x01"+zeros(8)), MaxFrame, ErrMalformed},
	{"records from 0", frame(0x12, zeros(20)), MaxFrame, ErrMalformed},
	{"records count beyond the body", frame(0x12, "\x00\x00\x00\x00\x00\x00\x00\x01"+zeros(8)+"\xff\xff\xff\xff"), MaxFrame, ErrMalformed},
	{"record past the end", frame(0x12, "\x00\x00\x00\x00\x00\x00\x00\x01"+zeros(8)+"\x00\x00\x00\x01\x00\x00\x00\x05ab"), MaxFrame, ErrMalformed},
	{"record over the limit", frame(0x12, "\x00\x00\x00\x00\x00\x00\x00\x01"+zeros(8)+"\x00\x00\x00\x01\x04\x00\x00\x01"), MaxFrame, ErrMalformed},
	{"ack short", frame(0x13, zeros(7)), MaxFrame, ErrMalformed},
	{"ack trailing byte", frame(0x13, zeros(9)), MaxFrame, ErrMalformed},
	{"epoch notice empty", frame(0x04, ""), MaxFrame, ErrMalformed},
	{"view empty body", frame(0x05, ""), MaxFrame, ErrMalformed},
	{"view count beyond the body", frame(0x05, "\x00\x02\x01H\x00\x00\x01\x00\x00"), MaxFrame, ErrMalformed},
	{"view count over the limit", frame(0x05, "\x01\x01"+zeros(6*257)), MaxFrame, ErrMalformed},
	{"view entry without a connection", frame(0x05, "\x00\x01\x00\x00\x00\x01\x00\x00"), MaxFrame, ErrMalformed},
	{"view state unknown", frame(0x05, "\x00\x01\x01H\x00\x00\x04\x00\x00"), MaxFrame, ErrMalformed},
	{"view detail past the end", frame(0x05, "\x00\x01\x01H\x00\x00\x01\x00\x05ab"), MaxFrame, ErrMalformed},
	{"view detail too long", frame(0x05, "\x00\x01\x01H\x00\x00\x01\x04\x01"+strings.Repeat("x", 1025)), MaxFrame, ErrMalformed},
	{"view trailing byte", frame(0x05, "\x00\x01\x01H\x00\x00\x01\x00\x00!"), MaxFrame, ErrMalformed},
}

var errUnexpectedEOF = errors.New("unexpected EOF")

func frame(t byte, body string) []byte {
	b := be.AppendUint32(nil, uint32(1+len(body)))
	b = append(b, t)
	return append(b, body...)
}

func zeros(n int) string { return strings.Repeat("\x00", n) }

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range decodeCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := readFrame(bufio.NewReader(bytes.NewReader(tt.frame)), tt.limit)
			if tt.want == errUnexpectedEOF {
				if err == nil || !strings.Contains(err.Error(), "EOF") {
					t.Errorf("readFrame = %v, want an EOF", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("readFrame = %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzDecode: whatever the bytes, Decode does not panic, and what it
// accepts encodes back to the very same bytes (one encoding per message).
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[4:])
	}
	for _, c := range decodeCases {
		if len(c.frame) > 4 {
			f.Add(c.frame[4:])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		m, err := Decode(MsgType(data[0]), data[1:])
		if err != nil {
			return
		}
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if !bytes.Equal(b[4:], data) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, b[4:])
		}
	})
}

// FuzzReadFrame: a stream of arbitrary bytes never panics the reader nor
// makes it allocate past its limit.
func FuzzReadFrame(f *testing.F) {
	for _, c := range decodeCases {
		f.Add(c.frame)
	}
	for _, m := range sampleMessages() {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for range 64 {
			if _, err := readFrame(r, MaxHandshakeFrame); err != nil {
				return
			}
		}
	})
}
