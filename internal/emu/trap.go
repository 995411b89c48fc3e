package emu

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net"
	"strconv"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/hal"
)

// Like a real array's Copy Services traps, a system sends its events as
// SNMPv2c traps to the receivers registered with RegisterTrapReceiver.
// The format is the emulated vendor's (lockstepd's daemon/notify decodes
// it; its storage-trap comment is the reference):
//
//	S = 1.3.6.1.4.1.61942.2
//	S.0.1 suspend event      S.1.{1..8}.0
//	S.0.2 heartbeat expiry   S.1.{1,2,3,9}.0
//	1 serial (OCTET STRING)  2 seq (Counter64)  3 time (Counter64, Unix ns)
//	4 source LSS (INTEGER)   5 target serial    6 target LSS (INTEGER)
//	7 reason (INTEGER)       8 volumes (32-octet bitmap, BITS order)
//	9 session (OCTET STRING)
const trapPrefix = "1.3.6.1.4.1.61942.2"

// TrapReceiver is where a system sends its traps.
type TrapReceiver struct {
	Addr string // host:port, udp
	// LocalAddr is the host:port the traps leave from ("": the kernel
	// picks): the lab sends each system's from that system's own address.
	LocalAddr string
	Community string
	// Manager names the manager whose link carries the traps: a trap is
	// lost whenever an event pushed to that manager would be (link down,
	// black-holed, system crashed). "" gives the receiver a link of its
	// own, which faults never touch.
	Manager string
	// Up, when set, is asked before each trap; false loses it. The lab
	// uses it for its per-endpoint link faults.
	Up func() bool
}

// TrapInterval: like a real array's Copy Services traps, at most one
// suspend trap per LSS leaves in this interval (on the fabric clock);
// a later suspend of the same LSS within it is not trapped. The pushed
// events and the manager's polls carry it: a trap is one of three
// sources of the same truth, and the one that may be lost.
const TrapInterval = 5 * time.Second

// RegisterTrapReceiver makes the system send its suspend and heartbeat
// expiry events to r as SNMPv2c traps until ctx ends. Traps are UDP
// datagrams: one that is lost stays lost, the manager's polls are the
// backstop. sysUpTime counts from the registration, on the fabric clock.
func (s *System) RegisterTrapReceiver(ctx context.Context, r TrapReceiver) error {
	return registerTraps(ctx, r, s.fabric.clock.Now(), func(name string) (<-chan hal.Event, error) {
		return s.Connect(name).Events(ctx)
	})
}

// registerTraps sends the events that subscribe (under the receiver's
// name) yields to r as traps until ctx ends; sysUpTime counts from start.
func registerTraps(ctx context.Context, r TrapReceiver, start time.Time, subscribe func(name string) (<-chan hal.Event, error)) error {
	g, err := dialTrapReceiver(r)
	if err != nil {
		return err
	}
	name := r.Manager
	if name == "" {
		name = "snmp-trap:" + r.Addr
	}
	events, err := subscribe(name)
	if err != nil {
		g.Close()
		return err
	}
	go sendTraps(g, events, start, r.Up)
	return nil
}

// dialTrapReceiver is the SNMP sender to r.
func dialTrapReceiver(r TrapReceiver) (*gosnmp.GoSNMP, error) {
	host, portText, err := net.SplitHostPort(r.Addr)
	port, perr := strconv.ParseUint(portText, 10, 16)
	if err != nil || perr != nil || port == 0 {
		return nil, fmt.Errorf("%w: trap receiver %q is not host:port", ErrConfig, r.Addr)
	}
	g := &gosnmp.GoSNMP{Target: host, Port: uint16(port), Transport: "udp", Community: r.Community,
		Version: gosnmp.Version2c, Timeout: time.Second, Retries: 0, LocalAddr: r.LocalAddr}
	if err := g.Connect(); err != nil {
		return nil, fmt.Errorf("%w: trap receiver %s: %v", ErrConfig, r.Addr, err)
	}
	return g, nil
}

// trapLimit keys a suspend trap's LSS: the system's serial and its LSS.
type trapLimit struct {
	serial hal.Serial
	lss    hal.LSS
}

// sendTraps sends events as traps through g until events is closed, at
// most one suspend trap per LSS per TrapInterval (up, when set, is asked
// before each: false loses it); sysUpTime counts from start. It closes g.
func sendTraps(g *gosnmp.GoSNMP, events <-chan hal.Event, start time.Time, up func() bool) {
	defer g.Close()
	last := map[trapLimit]time.Time{}
	for ev := range events {
		if up != nil && !up() {
			continue
		}
		if ev.Kind == hal.EventSuspend {
			k := trapLimit{ev.Serial, ev.LSSPair.Source.LSS}
			// Judged at the event's time: a sender that falls behind
			// does not let more through.
			if at, ok := last[k]; ok && ev.At.Sub(at) < TrapInterval {
				continue
			}
			last[k] = ev.At
		}
		uptime := uint32(max(ev.At.Sub(start), 0) / (10 * time.Millisecond)) // at the event
		if vbs, ok := TrapVarbinds(ev, uptime); ok {
			_, _ = g.SendTrap(gosnmp.SnmpTrap{Variables: vbs})
		}
	}
}

// TrapVarbinds encodes an event as the variable bindings of its trap,
// sysUpTime.0 (TimeTicks) first. Only suspend and heartbeat expiry
// events are trapped; fenced answers go to one manager only.
func TrapVarbinds(ev hal.Event, uptime uint32) ([]gosnmp.SnmpPDU, bool) {
	obj := func(arc int, t gosnmp.Asn1BER, v any) gosnmp.SnmpPDU {
		return gosnmp.SnmpPDU{Name: fmt.Sprintf(".%s.1.%d.0", trapPrefix, arc), Type: t, Value: v}
	}
	var trap string
	switch ev.Kind {
	case hal.EventSuspend:
		trap = "." + trapPrefix + ".0.1"
	case hal.EventHeartbeatExpiry:
		trap = "." + trapPrefix + ".0.2"
	default:
		return nil, false
	}
	vbs := []gosnmp.SnmpPDU{
		{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: uptime},
		{Name: ".1.3.6.1.6.3.1.1.4.1.0", Type: gosnmp.ObjectIdentifier, Value: trap},
		obj(1, gosnmp.OctetString, []byte(ev.Serial)),
		obj(2, gosnmp.Counter64, ev.Seq),
		obj(3, gosnmp.Counter64, uint64(max(ev.At.UnixNano(), 0))),
	}
	if ev.Kind == hal.EventHeartbeatExpiry {
		return append(vbs, obj(9, gosnmp.OctetString, []byte(ev.Session))), true
	}
	// BITS order: volume n is bit 7-n%8 of octet n/8.
	bitmap := make([]byte, 32)
	for i, word := range ev.Volumes {
		// Reversed, bit k (volume 64i+k) becomes bit 63-k: big-endian
		// octets then read in BITS order.
		binary.BigEndian.PutUint64(bitmap[i*8:], bits.Reverse64(word))
	}
	return append(vbs,
		obj(4, gosnmp.Integer, int(ev.LSSPair.Source.LSS)),
		obj(5, gosnmp.OctetString, []byte(ev.LSSPair.Target.Serial)),
		obj(6, gosnmp.Integer, int(ev.LSSPair.Target.LSS)),
		obj(7, gosnmp.Integer, int(ev.Reason)),
		obj(8, gosnmp.OctetString, bitmap),
	), true
}
