package notify

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/hal"
)

// Storage traps: like the Copy Services traps of real arrays, the
// emulated storage system (hal/emu, trap.go) sends its events as SNMPv2c
// traps to the managers that registered for them, and lockstepd receives
// them as a third source of events beside pushed events and polls. The
// freeze core dedups the sources by (serial, seq).
//
// The format is the emulated vendor's, so it does not move with
// snmp.enterprise_oid: S = 1.3.6.1.4.1.61942.2 (lockstepLab).
//
//	S.0.1  suspend event           objects 1 to 8
//	S.0.2  heartbeat expiry        objects 1, 2, 3 and 9
//	S.1.N.0 objects:
//	  1 serial         OCTET STRING  the system that raised the event
//	  2 seq            Counter64     its event number, from 1
//	  3 time           Counter64     when: Unix nanoseconds, storage clock
//	  4 source LSS     INTEGER 0..254 (on the raising system)
//	  5 target serial  OCTET STRING
//	  6 target LSS     INTEGER 0..254
//	  7 reason         INTEGER, hal.SuspendReason (1 path, 2 freeze, ...)
//	  8 volumes        OCTET STRING (SIZE (32)): volume n of the source
//	                   LSS is bit 7-n%8 of octet n/8 (SNMP BITS order)
//	  9 session        OCTET STRING  the session whose heartbeat expired
//
// Varbinds may come in any order after sysUpTime.0 and snmpTrapOID.0;
// any but the notification's own objects are ignored (a later version
// may add some), a missing, repeated or ill-typed own one refuses the
// trap.
const storageTrapPrefix = ".1.3.6.1.4.1.61942.2"

// Storage trap notification OIDs.
const (
	storageTrapSuspend   = storageTrapPrefix + ".0.1"
	storageTrapHeartbeat = storageTrapPrefix + ".0.2"
)

// Storage trap objects (arcs under S.1).
const (
	stSerial = iota + 1
	stSeq
	stTime
	stSourceLSS
	stTargetSerial
	stTargetLSS
	stReason
	stVolumes
	stSession
)

// maxSerial bounds a serial or session name in a trap.
const maxSerial = 64

// ErrStorageTrap reports a datagram that is not a valid storage trap.
var ErrStorageTrap = errors.New("notify: not a storage trap")

// errDecoderPanic marks a datagram that made gosnmp panic (the fuzz test
// fails on it; the listener only refuses the datagram).
var errDecoderPanic = errors.New("decoder panicked")

// decodeStorageTrap turns a storage trap's varbinds into the event the
// storage system raised.
func decodeStorageTrap(vbs []gosnmp.SnmpPDU) (hal.Event, error) {
	bad := func(format string, args ...any) (hal.Event, error) {
		return hal.Event{}, fmt.Errorf("%w: %s", ErrStorageTrap, fmt.Sprintf(format, args...))
	}
	if len(vbs) < 2 || vbs[0].Name != oidSysUpTime || vbs[0].Type != gosnmp.TimeTicks ||
		vbs[1].Name != oidSnmpTrapOID || vbs[1].Type != gosnmp.ObjectIdentifier {
		return bad("does not start with sysUpTime.0 and snmpTrapOID.0")
	}
	var ev hal.Event
	var want []int
	switch vbs[1].Value {
	case storageTrapSuspend:
		ev.Kind, want = hal.EventSuspend, []int{stSerial, stSeq, stTime, stSourceLSS, stTargetSerial, stTargetLSS, stReason, stVolumes}
	case storageTrapHeartbeat:
		ev.Kind, want = hal.EventHeartbeatExpiry, []int{stSerial, stSeq, stTime, stSession}
	default:
		return bad("notification %v", vbs[1].Value)
	}
	seen := map[int]bool{}
	for _, vb := range vbs[2:] {
		arc, ok := storageObjectArc(vb.Name)
		if !ok || !slices.Contains(want, arc) {
			continue // not an object of this notification: ignored
		}
		if seen[arc] {
			return bad("object %d twice", arc)
		}
		seen[arc] = true
		if err := setStorageField(&ev, arc, vb); err != nil {
			return bad("object %d: %v", arc, err)
		}
	}
	for _, arc := range want {
		if !seen[arc] {
			return bad("object %d missing", arc)
		}
	}
	if ev.Seq == 0 {
		return bad("sequence number 0")
	}
	if ev.Kind == hal.EventSuspend {
		ev.LSSPair.Source.Serial = ev.Serial
	}
	return ev, nil
}

// storageObjectArc reads N from S.1.N.0 written canonically.
func storageObjectArc(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, storageTrapPrefix+".1.")
	if !ok {
		return 0, false
	}
	if rest, ok = strings.CutSuffix(rest, ".0"); !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

func setStorageField(ev *hal.Event, arc int, vb gosnmp.SnmpPDU) error {
	text := func() (string, error) {
		b, ok := vb.Value.([]byte)
		if vb.Type != gosnmp.OctetString || !ok {
			return "", fmt.Errorf("type %v, want OCTET STRING", vb.Type)
		}
		if len(b) == 0 || len(b) > maxSerial {
			return "", fmt.Errorf("%d bytes, want 1 to %d", len(b), maxSerial)
		}
		return string(b), nil
	}
	counter := func() (uint64, error) {
		v, ok := vb.Value.(uint64)
		if vb.Type != gosnmp.Counter64 || !ok {
			return 0, fmt.Errorf("type %v, want Counter64", vb.Type)
		}
		return v, nil
	}
	integer := func(max int) (int, error) {
		v, ok := vb.Value.(int)
		if vb.Type != gosnmp.Integer || !ok {
			return 0, fmt.Errorf("type %v, want INTEGER", vb.Type)
		}
		if v < 0 || v > max {
			return 0, fmt.Errorf("%d out of 0..%d", v, max)
		}
		return v, nil
	}
	var err error
	switch arc {
	case stSerial:
		var s string
		s, err = text()
		ev.Serial = hal.Serial(s)
	case stSeq:
		ev.Seq, err = counter()
	case stTime:
		var ns uint64
		if ns, err = counter(); err == nil {
			if ns > math.MaxInt64 {
				return fmt.Errorf("time %d out of range", ns)
			}
			ev.At = time.Unix(0, int64(ns))
		}
	case stSourceLSS:
		var n int
		n, err = integer(int(hal.MaxLSS))
		ev.LSSPair.Source.LSS = hal.LSS(n)
	case stTargetSerial:
		var s string
		s, err = text()
		ev.LSSPair.Target.Serial = hal.Serial(s)
	case stTargetLSS:
		var n int
		n, err = integer(int(hal.MaxLSS))
		ev.LSSPair.Target.LSS = hal.LSS(n)
	case stReason:
		var n int
		n, err = integer(int(hal.ReasonTarget)) // the highest reason there is
		ev.Reason = hal.SuspendReason(n)
	case stVolumes:
		b, ok := vb.Value.([]byte)
		if vb.Type != gosnmp.OctetString || !ok || len(b) != 32 {
			return fmt.Errorf("want a 32-byte OCTET STRING")
		}
		for n := range 256 {
			if b[n/8]&(0x80>>(n%8)) != 0 {
				ev.Volumes.Add(uint8(n))
			}
		}
	case stSession:
		var s string
		s, err = text()
		ev.Session = s
	}
	return err
}

// StorageTrapListener receives the storage systems' SNMPv2c traps on a
// UDP address and hands each decoded event to a callback. It reads the
// socket itself and decodes with gosnmp: gosnmp's TrapListener can tell
// neither the port it bound (tests listen on port 0) nor stop without
// waiting on the wall clock.
type StorageTrapListener struct {
	addr      string
	community string
	handle    func(hal.Event)
	log       *slog.Logger

	ready chan struct{}
	bound net.Addr // set before ready is closed

	received, accepted, rejected atomic.Uint64
	once                         sync.Once
}

// ListenerStats counts datagrams.
type ListenerStats struct {
	Received uint64 // datagrams read
	Accepted uint64 // decoded and handed over
	Rejected uint64 // not a storage trap, bad community, malformed
}

// NewStorageTrapListener returns a listener on addr (host:port, udp).
// community "" accepts any community. handle runs in the listener's
// goroutine for each event and must not block.
func NewStorageTrapListener(addr, community string, handle func(hal.Event), logger *slog.Logger) *StorageTrapListener {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if handle == nil {
		handle = func(hal.Event) {}
	}
	return &StorageTrapListener{addr: addr, community: community, handle: handle,
		log: logger.With("component", "storage-traps"), ready: make(chan struct{})}
}

func (l *StorageTrapListener) String() string { return "storage traps " + l.addr }

// Ready is closed once the socket is bound.
func (l *StorageTrapListener) Ready() <-chan struct{} { return l.ready }

// Addr is the bound address once Ready, nil before.
func (l *StorageTrapListener) Addr() net.Addr {
	select {
	case <-l.ready:
		return l.bound
	default:
		return nil
	}
}

// Stats returns the listener's counters.
func (l *StorageTrapListener) Stats() ListenerStats {
	return ListenerStats{Received: l.received.Load(), Accepted: l.accepted.Load(), Rejected: l.rejected.Load()}
}

// Run receives traps until ctx ends.
func (l *StorageTrapListener) Run(ctx context.Context) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", l.addr)
	if err != nil {
		return fmt.Errorf("storage trap listener: %w", err)
	}
	l.bound = pc.LocalAddr()
	l.once.Do(func() { close(l.ready) })
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer pc.Close()
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("storage trap listener: %w", err)
		}
		l.received.Add(1)
		ev, err := l.decode(buf[:n])
		if err != nil {
			l.rejected.Add(1)
			l.log.Debug("datagram refused", "from", from.String(), "err", err)
			continue
		}
		l.accepted.Add(1)
		l.handle(ev)
	}
}

// decode checks a datagram's version and community and decodes the trap.
func (l *StorageTrapListener) decode(b []byte) (hal.Event, error) {
	pkt, err := unmarshalTrap(b)
	if err != nil {
		return hal.Event{}, err
	}
	if pkt.Version != gosnmp.Version2c || pkt.PDUType != gosnmp.SNMPv2Trap {
		return hal.Event{}, fmt.Errorf("%w: %v %v, want an SNMPv2c trap", ErrStorageTrap, pkt.Version, pkt.PDUType)
	}
	if l.community != "" && subtle.ConstantTimeCompare([]byte(pkt.Community), []byte(l.community)) != 1 {
		return hal.Event{}, fmt.Errorf("%w: wrong community", ErrStorageTrap)
	}
	return decodeStorageTrap(pkt.Variables)
}

// unmarshalTrap is gosnmp's decoder, kept from taking the daemon down:
// the bytes come from anyone who can send a datagram.
func unmarshalTrap(b []byte) (pkt *gosnmp.SnmpPacket, err error) {
	defer func() {
		if r := recover(); r != nil {
			pkt, err = nil, fmt.Errorf("%w: %w: %v", ErrStorageTrap, errDecoderPanic, r)
		}
	}()
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c}
	pkt, err = g.UnmarshalTrap(b, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStorageTrap, err)
	}
	return pkt, nil
}
