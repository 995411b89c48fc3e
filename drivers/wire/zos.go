package wire

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// The z/OS extension: what a z/OS host agent (docs/architecture.md (Storage connections), the "z/OS
// connection", default port DefaultZOSPort) adds to the protocol. See the
// package comment, section "z/OS extension".

// DefaultZOSPort is the port a z/OS host agent listens on by default.
const DefaultZOSPort = 5858

// ErrSysplex: a z/OS host refused the manager because it is not in the
// host's sysplex. It wraps hal.ErrAuth: retrying will not mend it, only
// configuration will.
var ErrSysplex = fmt.Errorf("wire: manager not in the z/OS host's sysplex: %w", hal.ErrAuth)

// zosURIPrefix starts the URI SAN naming a z/OS host: urn:lockstep:zos:HOST.
const zosURIPrefix = "urn:lockstep:zos:"

// ZOSHostURI is the URI SAN naming z/OS host in its certificate.
func ZOSHostURI(host string) *url.URL {
	u, _ := url.Parse(zosURIPrefix + url.PathEscape(host))
	return u
}

// VerifyZOSHost says whether a TLS connection whose chain and host name
// were verified (ClientTLSConfig) reaches z/OS host: its certificate's
// SHA-256 is pin when a pin is set; otherwise the certificate names the
// host in a URI SAN urn:lockstep:zos:HOST. Unlike a storage system's, a
// host's common name is never enough: a storage certificate names its
// serial there, and a CA that signs for storage systems and hosts alike
// must not let a storage system stand in for a host (and collect the
// manager's host credentials).
func VerifyZOSHost(cs tls.ConnectionState, host string, pin []byte) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no certificate", ErrIdentity)
	}
	leaf := cs.PeerCertificates[0]
	if len(pin) > 0 {
		return checkPin(leaf, pin, "z/OS host "+host)
	}
	if host == "" {
		return fmt.Errorf("%w: no z/OS host name to check the certificate against, and no pin", ErrIdentity)
	}
	var named []string
	for _, u := range leaf.URIs {
		if s, ok := strings.CutPrefix(u.String(), zosURIPrefix); ok {
			if s, err := url.PathUnescape(s); err == nil {
				named = append(named, s)
				if s == host {
					return nil
				}
			}
		}
	}
	if len(named) > 0 {
		return fmt.Errorf("%w: the certificate names z/OS host %s, not %s", ErrIdentity, strings.Join(named, ", "), host)
	}
	return fmt.Errorf("%w: the certificate names no z/OS host (want URI %s)", ErrIdentity, ZOSHostURI(host))
}

func checkPin(leaf *x509.Certificate, pin []byte, what string) error {
	fp := Fingerprint(leaf.Raw)
	if string(fp[:]) != string(pin) {
		return fmt.Errorf("%w: certificate SHA-256 %x is not the one pinned for %s", ErrIdentity, fp, what)
	}
	return nil
}

// IssueZOSHost makes a certificate signed by the CA for z/OS host name
// (URI SAN ZOSHostURI, common name the host name) at hosts (each a DNS
// name or an IP address; at least one).
func (s *SelfSigned) IssueZOSHost(name string, hosts ...string) (tls.Certificate, error) {
	if len(hosts) == 0 || name == "" {
		return tls.Certificate{}, fmt.Errorf("wire: certificate for z/OS host %q: no host names", name)
	}
	cert, _, _, err := s.issueFor(name, []*url.URL{ZOSHostURI(name)}, hosts...)
	return cert, err
}

// StateKind is what a z/OS state-change message reports, after the
// IEA494I messages (and the extended long busy state) a z/OS host logs.
// Unlike the enumerations taken from hal, it is the protocol's own: a
// receiver refuses a value it does not know.
type StateKind uint8

const (
	StatePairPending      StateKind = 1 // PPRC PAIR PENDING: copying
	StatePairSuspending   StateKind = 2 // PPRC PAIR SUSPENDING; a suspended follows
	StatePairSuspended    StateKind = 3 // PPRC PAIR SUSPENDED, with a reason
	StatePairFullDuplex   StateKind = 4 // PPRC PAIR FULL DUPLEX
	StateExtendedLongBusy StateKind = 5 // EXTENDED LONG BUSY STATE on the source LSS
)

var stateKindNames = map[StateKind]string{
	StatePairPending:      "PPRC PAIR PENDING",
	StatePairSuspending:   "PPRC PAIR SUSPENDING",
	StatePairSuspended:    "PPRC PAIR SUSPENDED",
	StatePairFullDuplex:   "PPRC PAIR FULL DUPLEX",
	StateExtendedLongBusy: "EXTENDED LONG BUSY STATE",
}

func (k StateKind) String() string {
	if s, ok := stateKindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("state(%d)", uint8(k))
}

// MaxLPARs bounds the LPARs one state-change message names.
const MaxLPARs = 256

// StateChange is a z/OS host's state-change message: the pairs of one LSS
// pair of one storage system (or, for StateExtendedLongBusy, one source
// LSS) changed state, as the host heard over its channels. One message
// stands for the IEA494I lines every LPAR with those devices online logs:
// the host sends it once, naming the LPARs.
type StateChange struct {
	Kind StateKind
	Host string // the z/OS host that raised it
	Seq  uint64 // the host's message number
	At   time.Time
	// Serial is the storage system; the source of LSSPair is on it.
	Serial hal.Serial
	// EventSeq is the storage system's own number of the suspend event of
	// the same change (0 when none), so that the manager can tell one
	// suspend heard through z/OS and pushed on a direct connection.
	EventSeq uint64
	LSSPair  hal.LSSPair // StateExtendedLongBusy: only Source is set
	Reason   hal.SuspendReason
	Volumes  hal.VolumeSet // volume numbers of the source LSS (devices)
	LPARs    []string      // the LPARs that logged it
}

// String renders the message as a z/OS console would, for logs.
func (m StateChange) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "IEA494I %s LSS %s", m.Serial, m.LSSPair.Source.LSS)
	if m.Volumes.Len() > 0 {
		b.WriteString(" DEV")
		for n := range 256 {
			if m.Volumes.Has(uint8(n)) {
				fmt.Fprintf(&b, " %s", hal.NewVolume(m.LSSPair.Source.LSS, uint8(n)))
			}
		}
	}
	fmt.Fprintf(&b, ",%s", m.Kind)
	if m.Kind == StatePairSuspended || m.Kind == StatePairSuspending {
		fmt.Fprintf(&b, ",REASON=%s", m.Reason)
	}
	fmt.Fprintf(&b, " ON %s (%s)", strings.Join(m.LPARs, ","), m.Host)
	return b.String()
}

// EncodeStateChange returns the body of a StateChange frame.
func EncodeStateChange(m StateChange) ([]byte, error) {
	e := encoder{what: "state-change"}
	if _, ok := stateKindNames[m.Kind]; !ok {
		e.fail("unknown kind %d", m.Kind)
	}
	e.u8(uint8(m.Kind))
	e.name("host", m.Host)
	e.u64(m.Seq)
	e.time("at", m.At)
	e.name("serial", string(m.Serial))
	e.u64(m.EventSeq)
	e.lssPair(m.LSSPair)
	e.u8(uint8(m.Reason))
	for _, w := range m.Volumes {
		e.u64(w)
	}
	if len(m.LPARs) > MaxLPARs {
		e.fail("%d LPARs, limit %d", len(m.LPARs), MaxLPARs)
	}
	putList(&e, "lpars", m.LPARs, func(l string) { e.name("lpar", l) })
	return e.done()
}

// DecodeStateChange decodes the body of a StateChange frame.
func DecodeStateChange(b []byte) (StateChange, error) {
	d := decoder{what: "state-change", b: b}
	m := StateChange{Kind: StateKind(d.u8())}
	if _, ok := stateKindNames[m.Kind]; d.err == nil && !ok {
		d.fail("unknown kind %d", m.Kind)
	}
	m.Host = d.name()
	m.Seq = d.u64()
	m.At = d.time()
	m.Serial = hal.Serial(d.name())
	m.EventSeq = d.u64()
	m.LSSPair = d.lssPair()
	m.Reason = hal.SuspendReason(d.u8())
	for i := range m.Volumes {
		m.Volumes[i] = d.u64()
	}
	m.LPARs = list(&d, "lpars", 1, d.name)
	if d.err == nil && len(m.LPARs) > MaxLPARs {
		d.fail("%d LPARs, limit %d", len(m.LPARs), MaxLPARs)
	}
	if err := d.finish(); err != nil {
		return StateChange{}, err
	}
	return m, nil
}

// StateChangeSource is implemented by the hal.StorageSystem a z/OS host
// serves a manager: Serve forwards its messages as StateChange frames
// while the connection lives. The channel should already be filling when
// the AcceptFunc returns, so that no message raised after HelloOK is lost.
type StateChangeSource interface {
	StateChanges(ctx context.Context) <-chan StateChange
}

// forwardStateChanges sends a z/OS host's messages as StateChange frames
// until the connection ends.
func (s *serverConn) forwardStateChanges(ctx context.Context, msgs <-chan StateChange) {
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() == nil {
					s.fail(errors.New("the z/OS host ended the state-change messages"))
				}
				return
			}
			body, err := EncodeStateChange(m)
			if err != nil {
				s.log.Warn("dropped a state-change message that cannot be encoded", "seq", m.Seq, "err", err)
				continue
			}
			if s.write(MsgStateChange, body) != nil {
				return
			}
		case <-s.closed:
			return
		}
	}
}

// takeStateChange delivers a StateChange frame to StateChanges: a
// connection that did not ask for them (not a z/OS connection) is broken
// by one; a message naming another storage system than the connection's
// is dropped and counted with the foreign events, as an event is.
func (c *Client) takeStateChange(body []byte) error {
	if c.changes == nil {
		return fmt.Errorf("%w: server sent a %s on a connection that takes none", ErrMalformed, MsgStateChange)
	}
	m, err := DecodeStateChange(body)
	if err != nil {
		return err
	}
	if m.Serial != c.serial || m.LSSPair.Source.Serial != c.serial {
		if n := c.foreign.Add(1); n&(n-1) == 0 {
			c.opts.Logger.Warn("dropped a state-change message naming another storage system",
				"connection_serial", c.serial, "serial", m.Serial, "source_serial", m.LSSPair.Source.Serial,
				"seq", m.Seq, "kind", m.Kind, "dropped", n)
		}
		return nil
	}
	select {
	case c.changes <- m:
	default:
		if n := c.dropped.Add(1); n&(n-1) == 0 {
			c.opts.Logger.Warn("dropped state-change messages: consumer too slow",
				"serial", m.Serial, "seq", m.Seq, "dropped", n)
		}
	}
	return nil
}

// StateChanges delivers a z/OS host's state-change messages about the
// connection's storage system (ClientOptions.StateChanges); nil on a
// connection that takes none. It is closed when the connection ends.
func (c *Client) StateChanges() <-chan StateChange { return c.changes }

// OnlineSystem is a storage system a z/OS host has online.
type OnlineSystem struct {
	Serial hal.Serial
	// ChannelsUp: at least one of the host's channels to it works, so
	// commands can reach it now.
	ChannelsUp bool
}

// OnlineLister is implemented by what a z/OS host serves: the storage
// systems it has online, for OpQueryOnline.
type OnlineLister interface {
	Online(ctx context.Context) ([]OnlineSystem, error)
}

func queryOnline(ctx context.Context, sys hal.StorageSystem) ([]OnlineSystem, error) {
	l, ok := sys.(OnlineLister)
	if !ok {
		return nil, fmt.Errorf("%w: query-online: this endpoint is no z/OS host", hal.ErrUnsupported)
	}
	return l.Online(ctx)
}

// QueryOnline asks a z/OS host which storage systems it has online. Its
// epoch is 0: the host answers it itself, no storage system judges it.
func (c *Client) QueryOnline(ctx context.Context) ([]OnlineSystem, error) {
	r, err := c.query(ctx, 0, OpQueryOnline)
	return r.Online, err
}
