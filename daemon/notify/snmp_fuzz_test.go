package notify

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
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
	f.Add(marshalV3(f, suspendTrap(), fuzzAuth))
	f.Add(marshalV3(f, suspendTrap(), TrapAuth{User: "storage", AuthProtocol: gosnmp.SHA256, AuthPassphrase: "wrong-auth-pass",
		PrivProtocol: gosnmp.AES, PrivPassphrase: "storage-priv-pass"}))
	l := NewStorageTrapListener(StorageTrapOptions{Auth: fuzzAuth})
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

// fuzzAuth accepts v2c traps with community "lab" and SNMPv3 traps of
// user "storage".
var fuzzAuth = TrapAuth{Community: "lab", User: "storage", AuthProtocol: gosnmp.SHA256, AuthPassphrase: "storage-auth-pass",
	PrivProtocol: gosnmp.AES, PrivPassphrase: "storage-priv-pass"}

// marshalV3 is an SNMPv3 authPriv trap of auth's user, sent by an engine
// of its own as a storage system would: gosnmp's sender writes it to a
// loopback socket, and these are the bytes that arrive.
func marshalV3(tb testing.TB, vbs []gosnmp.SnmpPDU, auth TrapAuth) []byte {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer pc.Close()
	g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(pc.LocalAddr().(*net.UDPAddr).Port), Transport: "udp",
		Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel, MsgFlags: gosnmp.AuthPriv,
		Timeout: time.Second, SecurityParameters: &gosnmp.UsmSecurityParameters{UserName: auth.User,
			AuthoritativeEngineID: "\x80\x00\x1f\x88\x04storage-1", AuthoritativeEngineBoots: 1, AuthoritativeEngineTime: 10,
			AuthenticationProtocol: auth.AuthProtocol, AuthenticationPassphrase: auth.AuthPassphrase,
			PrivacyProtocol: auth.PrivProtocol, PrivacyPassphrase: auth.PrivPassphrase}}
	if err := g.Connect(); err != nil {
		tb.Fatal(err)
	}
	defer g.Conn.Close()
	if _, err := g.SendTrap(gosnmp.SnmpTrap{Variables: vbs}); err != nil {
		tb.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 65536)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		tb.Fatal(err)
	}
	return buf[:n]
}

func TestBadDatagramsRefused(t *testing.T) {
	t.Parallel()
	l := NewStorageTrapListener(StorageTrapOptions{Auth: TrapAuth{Community: "lab"}})
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
