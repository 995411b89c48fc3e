package notify

import (
	"errors"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/emu"
)

// FuzzStorageTrap feeds datagrams to the storage trap decoder, gosnmp's
// BER parsing included: whatever arrives must neither panic nor decode
// into an event that does not encode back to itself.
func FuzzStorageTrap(f *testing.F) {
	marshal := func(vbs []gosnmp.SnmpPDU, community string) []byte {
		p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: community, PDUType: gosnmp.SNMPv2Trap, Variables: vbs}
		b, err := p.MarshalMsg()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(marshal(suspendTrap(), "lab"))
	hb, _ := emu.TrapVarbinds(hal.Event{Kind: hal.EventHeartbeatExpiry, Serial: primary, Seq: 1,
		At: time.Unix(1, 0), Session: "prod"}, 1)
	f.Add(marshal(hb, "lab"))
	f.Add(marshal(suspendTrap(), "other"))
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	for _, c := range badDatagrams {
		f.Add(c.data)
	}
	l := NewStorageTrapListener("", "lab", nil, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := l.decode(data)
		if errors.Is(err, errDecoderPanic) {
			t.Fatal(err)
		}
		if err != nil {
			return
		}
		vbs, ok := emu.TrapVarbinds(ev, 0)
		if !ok {
			t.Fatalf("decoded %+v, which is not a trapped kind", ev)
		}
		again, err := decodeStorageTrap(vbs)
		if err != nil || !sameEvent(again, ev) {
			t.Fatalf("decoded %+v; encoded and decoded again: %+v, %v", ev, again, err)
		}
	})
}

// badDatagrams are malformed inputs, kept as named cases; crashers the
// fuzzer finds join them.
var badDatagrams = []struct {
	name string
	data []byte
}{
	{"empty", nil},
	{"sequence header only", []byte{0x30, 0x03, 0x02, 0x01, 0x01}},
	{"length past the end", []byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01}},
	{"community length past the end", []byte{0x30, 0x08, 0x02, 0x01, 0x01, 0x04, 0x7f, 'l', 'a', 'b'}},
	{"snmpv1 trap", []byte{0x30, 0x1c, 0x02, 0x01, 0x00, 0x04, 0x03, 'l', 'a', 'b', 0xa4, 0x12, 0x06, 0x03, 0x2b, 0x06, 0x01,
		0x40, 0x04, 0x7f, 0x00, 0x00, 0x01, 0x02, 0x01, 0x06, 0x02, 0x01, 0x01, 0x43, 0x01, 0x00, 0x30, 0x00}},
}

func TestBadDatagramsRefused(t *testing.T) {
	t.Parallel()
	l := NewStorageTrapListener("", "", nil, nil)
	good := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "lab", PDUType: gosnmp.SNMPv2Trap, Variables: suspendTrap()}
	b, err := good.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	cases := append(badDatagrams, struct {
		name string
		data []byte
	}{"truncated trap", b[:len(b)-5]})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := l.decode(c.data); !errors.Is(err, ErrStorageTrap) || errors.Is(err, errDecoderPanic) {
				t.Fatalf("%x: %v, want a refusal", c.data, err)
			}
		})
	}
	if _, err := l.decode(b); err != nil {
		t.Fatalf("the untruncated trap: %v", err)
	}
}
