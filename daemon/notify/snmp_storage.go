package notify

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
)

// Storage traps: like the Copy Services traps of real arrays, the
// emulated storage system (internal/emu, trap.go) sends its events as SNMPv2c
// traps to the managers that registered for them (a real array may send
// SNMPv3), and lockstepd receives them as a third source of events beside
// pushed events and polls. Who may send them: see StorageTrapListener.
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

// StorageTrapListener receives the storage systems' traps on a UDP
// address and hands each decoded event to a callback. It reads the socket
// itself and decodes with gosnmp: gosnmp's TrapListener can tell neither
// the port it bound (tests listen on port 0) nor stop without waiting on
// the wall clock.
//
// Every datagram is hostile until proven otherwise (docs/architecture.md, Trust). One
// is handed over only when it comes from an address of a defined storage
// system's connection (SetSources), carries the configured community
// (SNMPv2c) or comes from the configured user (SNMPv3 authPriv), decodes
// as a storage trap, and names a serial its source address serves: a
// storage system cannot speak for another. The address is checked before
// a byte is decoded. Anything else is dropped, counted by reason, and
// logged at most once a minute per reason (on the injected clock), so a
// flood neither crashes the daemon nor floods its log.
type StorageTrapListener struct {
	addr   string
	auth   TrapAuth
	handle func(hal.Event)
	log    *slog.Logger
	clock  clock.Clock

	sources atomic.Pointer[map[netip.Addr][]hal.Serial]

	ready chan struct{}
	bound net.Addr // set before ready is closed

	received, accepted atomic.Uint64
	dropped            [numDropReasons]atomic.Uint64
	// logged and suppressed are the rate limit of drop logs, per
	// reason; only the listener's goroutine touches them.
	logged     [numDropReasons]time.Time
	suppressed [numDropReasons]uint64
	once       sync.Once
}

// TrapAuth is what a storage trap must carry: the SNMPv2c community, or
// the SNMPv3 user (authPriv) with its protocols and passphrases. An empty
// Community accepts no v2c trap; an empty User, no v3 trap.
type TrapAuth struct {
	Community      string
	User           string
	AuthProtocol   gosnmp.SnmpV3AuthProtocol
	PrivProtocol   gosnmp.SnmpV3PrivProtocol
	AuthPassphrase string
	PrivPassphrase string
}

// ReadTrapAuth reads the secrets the [snmp] trap_* keys name. Their
// content is never put in an error or a log line.
func ReadTrapAuth(t config.TrapAuth) (TrapAuth, error) {
	var out TrapAuth
	if t.CommunityFile != "" {
		c, err := readCredentials(config.Manager{Version: config.V2c, CommunityFile: t.CommunityFile})
		if err != nil {
			return TrapAuth{}, fmt.Errorf("snmp.trap_%w", err)
		}
		out.Community = c.community
	}
	if t.User != "" {
		c, err := readCredentials(config.Manager{Version: config.V3, AuthKeyFile: t.AuthKeyFile, PrivKeyFile: t.PrivKeyFile})
		if err != nil {
			return TrapAuth{}, fmt.Errorf("snmp.trap_%w", err)
		}
		var ok bool
		if out.AuthProtocol, ok = authProtocols[t.AuthProtocol]; !ok {
			return TrapAuth{}, fmt.Errorf("snmp.trap_auth_protocol %q is not supported", t.AuthProtocol)
		}
		if out.PrivProtocol, ok = privProtocols[t.PrivProtocol]; !ok {
			return TrapAuth{}, fmt.Errorf("snmp.trap_priv_protocol %q is not supported", t.PrivProtocol)
		}
		out.User, out.AuthPassphrase, out.PrivPassphrase = t.User, c.auth, c.priv
	}
	return out, nil
}

// Why a datagram was dropped.
type dropReason int

const (
	dropSource    dropReason = iota // not from an address of a defined storage system
	dropAuth                        // wrong community or user, or not authPriv
	dropMalformed                   // not a storage trap
	dropSerial                      // names a serial its source address does not serve
	numDropReasons
)

var dropNames = [numDropReasons]string{"unknown source", "wrong credentials", "malformed", "serial of another system"}

// dropLogEvery is the rate limit of drop logs, per reason.
const dropLogEvery = time.Minute

// ListenerStats counts datagrams.
type ListenerStats struct {
	Received      uint64 // datagrams read
	Accepted      uint64 // decoded and handed over
	Rejected      uint64 // every dropped one: the sum of the four below
	UnknownSource uint64 // from an address of no defined storage system
	BadAuth       uint64 // wrong community or user, or not authPriv
	Malformed     uint64 // not a storage trap
	ForeignSerial uint64 // for a serial the source address does not serve
}

// StorageTrapOptions configure a StorageTrapListener.
type StorageTrapOptions struct {
	Addr   string // host:port, udp
	Auth   TrapAuth
	Handle func(hal.Event) // runs in the listener's goroutine and must not block
	Logger *slog.Logger    // nil: discard
	Clock  clock.Clock     // for the rate limit of logs; nil: real time
}

// NewStorageTrapListener returns a listener on opt.Addr. It accepts no
// trap until SetSources names the storage systems' addresses.
func NewStorageTrapListener(opt StorageTrapOptions) *StorageTrapListener {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Handle == nil {
		opt.Handle = func(hal.Event) {}
	}
	l := &StorageTrapListener{addr: opt.Addr, auth: opt.Auth, handle: opt.Handle, clock: clock.OrReal(opt.Clock),
		log: opt.Logger.With("component", "storage-traps"), ready: make(chan struct{})}
	l.sources.Store(&map[netip.Addr][]hal.Serial{})
	return l
}

// SetSources replaces the addresses traps are accepted from, each with
// the serials it may send traps for: the addresses of the defined storage
// systems' connections (and, with HMC connections, an HMC's address for
// every system behind it). Safe to call while Run runs.
func (l *StorageTrapListener) SetSources(sources map[netip.Addr][]hal.Serial) {
	m := make(map[netip.Addr][]hal.Serial, len(sources))
	for a, serials := range sources {
		a = a.Unmap()
		m[a] = append(m[a], serials...)
	}
	l.sources.Store(&m)
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
	st := ListenerStats{Received: l.received.Load(), Accepted: l.accepted.Load(),
		UnknownSource: l.dropped[dropSource].Load(), BadAuth: l.dropped[dropAuth].Load(),
		Malformed: l.dropped[dropMalformed].Load(), ForeignSerial: l.dropped[dropSerial].Load()}
	st.Rejected = st.UnknownSource + st.BadAuth + st.Malformed + st.ForeignSerial
	return st
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
		if ev, ok := l.receive(buf[:n], from); ok {
			l.accepted.Add(1)
			l.handle(ev)
		}
	}
}

// receive judges one datagram from an address.
func (l *StorageTrapListener) receive(b []byte, from net.Addr) (hal.Event, bool) {
	var src netip.Addr
	if ua, ok := from.(*net.UDPAddr); ok {
		src, _ = netip.AddrFromSlice(ua.IP)
		src = src.Unmap()
	}
	serials, known := (*l.sources.Load())[src]
	if !known {
		l.drop(dropSource, from, nil)
		return hal.Event{}, false
	}
	ev, err := l.decode(b)
	if err != nil {
		reason := dropMalformed
		if errors.Is(err, errTrapAuth) {
			reason = dropAuth
		}
		l.drop(reason, from, err)
		return hal.Event{}, false
	}
	if !slices.Contains(serials, ev.Serial) {
		l.drop(dropSerial, from, fmt.Errorf("trap for %s from an address of %v", ev.Serial, serials))
		return hal.Event{}, false
	}
	return ev, true
}

// drop counts a dropped datagram and logs it: the first of each reason
// at once, then at most one line per dropLogEvery with the number
// dropped meanwhile.
func (l *StorageTrapListener) drop(r dropReason, from net.Addr, err error) {
	l.dropped[r].Add(1)
	now := l.clock.Now()
	if !l.logged[r].IsZero() && now.Sub(l.logged[r]) < dropLogEvery {
		l.suppressed[r]++
		return
	}
	args := []any{"reason", dropNames[r], "from", from.String(), "dropped_since_last_log", l.suppressed[r] + 1,
		"dropped_total", l.dropped[r].Load()}
	if err != nil {
		args = append(args, "err", err.Error())
	}
	Log(l.log, StorageTrapDropped, "storage trap dropped", args...)
	l.logged[r], l.suppressed[r] = now, 0
}

// errTrapAuth marks a datagram with the wrong credentials.
var errTrapAuth = errors.New("wrong credentials")

// decode checks a datagram's version and credentials and decodes the
// trap: an SNMPv2c trap with the community, or an SNMPv3 authPriv trap
// of the user.
func (l *StorageTrapListener) decode(b []byte) (hal.Event, error) {
	pkt, err := unmarshalTrap(b, l.auth)
	if err != nil {
		return hal.Event{}, err
	}
	switch {
	case pkt.PDUType != gosnmp.SNMPv2Trap:
		return hal.Event{}, fmt.Errorf("%w: %v %v, want an SNMPv2c or SNMPv3 trap", ErrStorageTrap, pkt.Version, pkt.PDUType)
	case pkt.Version == gosnmp.Version2c:
		if l.auth.Community == "" || subtle.ConstantTimeCompare([]byte(pkt.Community), []byte(l.auth.Community)) != 1 {
			return hal.Event{}, fmt.Errorf("%w: %w: community", ErrStorageTrap, errTrapAuth)
		}
	case pkt.Version == gosnmp.Version3:
		// unmarshalTrap authenticated and decrypted it as the user; a
		// message that was not authPriv is refused all the same.
		if pkt.MsgFlags&gosnmp.AuthPriv != gosnmp.AuthPriv {
			return hal.Event{}, fmt.Errorf("%w: %w: SNMPv3 trap not authPriv", ErrStorageTrap, errTrapAuth)
		}
	default:
		return hal.Event{}, fmt.Errorf("%w: %v, want an SNMPv2c or SNMPv3 trap", ErrStorageTrap, pkt.Version)
	}
	return decodeStorageTrap(pkt.Variables)
}

// unmarshalTrap is gosnmp's decoder, kept from taking the daemon down:
// the bytes come from anyone who can send a datagram. An SNMPv3 message
// is authenticated and decrypted as auth's user (and refused without
// one); its keys are localized to the sender's engine id, as for any
// SNMPv3 notification.
func unmarshalTrap(b []byte, auth TrapAuth) (pkt *gosnmp.SnmpPacket, err error) {
	defer func() {
		if r := recover(); r != nil {
			pkt, err = nil, fmt.Errorf("%w: %w: %v", ErrStorageTrap, errDecoderPanic, r)
		}
	}()
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c}
	v3 := len(b) > 0 && isV3(b)
	if v3 {
		if auth.User == "" {
			return nil, fmt.Errorf("%w: %w: SNMPv3 trap, and no SNMPv3 user is configured", ErrStorageTrap, errTrapAuth)
		}
		g.Version, g.SecurityModel, g.MsgFlags = gosnmp.Version3, gosnmp.UserSecurityModel, gosnmp.AuthPriv
		g.SecurityParameters = &gosnmp.UsmSecurityParameters{UserName: auth.User,
			AuthenticationProtocol: auth.AuthProtocol, AuthenticationPassphrase: auth.AuthPassphrase,
			PrivacyProtocol: auth.PrivProtocol, PrivacyPassphrase: auth.PrivPassphrase}
	}
	pkt, err = g.UnmarshalTrap(b, v3)
	if err != nil {
		if v3 {
			// gosnmp does not tell a bad MAC from a broken message; an
			// SNMPv3 datagram it cannot open is one not for our user.
			return nil, fmt.Errorf("%w: %w: %w", ErrStorageTrap, errTrapAuth, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrStorageTrap, err)
	}
	return pkt, nil
}

// isV3 peeks at the version of an SNMP message: SEQUENCE, then INTEGER 3.
func isV3(b []byte) bool {
	if len(b) < 2 || b[0] != 0x30 {
		return false
	}
	i := 2
	if b[1]&0x80 != 0 {
		i += int(b[1] & 0x7f)
	}
	return len(b) >= i+3 && b[i] == 0x02 && b[i+1] == 0x01 && b[i+2] == 3
}
