package firewall

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/lockstep-io/lockstep/daemon/config"
)

// DefaultPortRangeFile is where Linux publishes the local ephemeral port
// range (sysctl net.ipv4.ip_local_port_range; it applies to IPv6 too).
const DefaultPortRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Errors.
var (
	ErrPortRange = errors.New("firewall: cannot read the ephemeral port range")
	ErrEndpoint  = errors.New("firewall: bad endpoint")
	ErrFormat    = errors.New("firewall: unknown format")
)

// Endpoint is one storage system endpoint lockstepd connects to (TCP).
type Endpoint struct {
	Serial string // storage system serial, for the rule's comment
	Addr   string // "host:port"
}

// Direction of a connection, seen from this host.
type Direction int

// Directions.
const (
	Out Direction = iota // lockstepd connects
	In                   // the remote side connects to a lockstepd listener
)

func (d Direction) String() string {
	if d == In {
		return "in"
	}
	return "out"
}

// Rule lets the packets of one kind of connection through: the packet
// that opens it and its replies.
type Rule struct {
	Dir        Direction
	Proto      string           // "tcp", "udp", or "vsock" (not filtered by netfilter: no rule is needed)
	Remote     string           // remote host: IP literal or DNS name (vsock: the CID); "" = any
	RemotePort config.PortRange // zero = any (the remote side's ephemeral port)
	Local      string           // local address of a listener; "" = any
	LocalPort  config.PortRange // listener port, or the source ports of an outgoing connection; zero = any
	For        string           // what the connection is for, e.g. "storage LAB.2107-75P0001"
}

// Ruleset is every rule lockstepd needs on this host.
type Ruleset struct {
	Server    string           // config server.name
	Ephemeral config.PortRange // the kernel's local ephemeral port range
	RangeFile string           // where Ephemeral was read
	Rules     []Rule
}

// Hints makes firewall rules for lockstepd's connections.
type Hints struct {
	Config *config.Config
	// PortRangeFile is read for the ephemeral port range every time it is
	// needed (the range can change at run time); "" is
	// DefaultPortRangeFile.
	PortRangeFile string
}

func (h Hints) rangeFile() string {
	if h.PortRangeFile == "" {
		return DefaultPortRangeFile
	}
	return h.PortRangeFile
}

// EphemeralPorts reads the local port range from path, in the format of
// /proc/sys/net/ipv4/ip_local_port_range ("32768\t60999\n").
func EphemeralPorts(path string) (config.PortRange, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return config.PortRange{}, fmt.Errorf("%w: %w", ErrPortRange, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return config.PortRange{}, fmt.Errorf("%w: %s: want two ports, got %q", ErrPortRange, path, b)
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || lo == 0 || lo > hi {
		return config.PortRange{}, fmt.Errorf("%w: %s: %q is not a port range", ErrPortRange, path, b)
	}
	return config.PortRange{First: uint16(lo), Last: uint16(hi)}, nil
}

// Rules lists the rules for this host: the HA listener (from the peer
// when there is one), the connection to the HA peer, the SNMP trap
// listener, the storage endpoints, the SNMP managers and the syslog
// collector. peer is the HA partner's address ("tcp://host:port" or
// "vsock://cid:port"), "" when there is none. Problems with the
// endpoints or the peer are all reported.
func (h Hints) Rules(storage []Endpoint, peer string) (*Ruleset, error) {
	eph, err := EphemeralPorts(h.rangeFile())
	if err != nil {
		return nil, err
	}
	cfg := h.Config
	rs := &Ruleset{Server: cfg.Server.Name, Ephemeral: eph, RangeFile: h.rangeFile()}
	var errs []error

	var peerAddr *config.Addr
	if peer != "" {
		a, err := config.ParseAddr(peer, config.TCP, config.VSock)
		if err != nil {
			errs = append(errs, fmt.Errorf("HA peer: %w", err))
		} else {
			peerAddr = &a
		}
	}
	if cfg.HAAvailable() == nil {
		l := cfg.HA.Listen
		r := Rule{Dir: In, Proto: l.Scheme, Local: listenHost(l), LocalPort: port(l.Port), For: "ha listener"}
		if l.Scheme == config.VSock {
			r.Local = fmt.Sprintf("cid %d", l.CID)
			if l.CID == config.VSockAnyCID {
				r.Local = ""
			}
		}
		if peerAddr != nil && peerAddr.Scheme == l.Scheme && l.Scheme == config.TCP &&
			(r.Local == "" || family(r.Local) == family(peerAddr.Host)) {
			r.Remote, r.For = peerAddr.Host, "ha listener, from the peer"
		}
		rs.Rules = append(rs.Rules, r)
	}
	if peerAddr != nil {
		rs.Rules = append(rs.Rules, outbound(*peerAddr, h.peerPorts(eph), "ha peer"))
	}
	if t := cfg.SNMP.TrapListen; t != nil {
		rs.Rules = append(rs.Rules, Rule{Dir: In, Proto: config.UDP, Local: listenHost(*t), LocalPort: port(t.Port), For: "storage traps"})
	}
	for _, ep := range storage {
		r, err := storageRule(ep, eph)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rs.Rules = append(rs.Rules, r)
	}
	for _, m := range cfg.SNMP.Managers {
		rs.Rules = append(rs.Rules, outbound(m.Address, eph, fmt.Sprintf("snmp manager (%s %s)", m.Version, m.Notification)))
	}
	if t := cfg.Syslog.Target; t != nil {
		rs.Rules = append(rs.Rules, outbound(*t, eph, "syslog"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rs.Rules = merge(rs.Rules)
	return rs, nil
}

// RuleFor is the rule that lets one connection to a storage endpoint
// through.
func (h Hints) RuleFor(ep Endpoint) (Rule, error) {
	eph, err := EphemeralPorts(h.rangeFile())
	if err != nil {
		return Rule{}, err
	}
	return storageRule(ep, eph)
}

// PeerRule is the rule that lets the connection to the HA peer through
// (from [ha] source_ports when set).
func (h Hints) PeerRule(peer string) (Rule, error) {
	a, err := config.ParseAddr(peer, config.TCP, config.VSock)
	if err != nil {
		return Rule{}, err
	}
	eph, err := EphemeralPorts(h.rangeFile())
	if err != nil && h.Config.HA.SourcePorts == nil {
		return Rule{}, err
	}
	return outbound(a, h.peerPorts(eph), "ha peer"), nil
}

// peerPorts are the local ports of the connection to the HA peer: [ha]
// source_ports when set, else the ephemeral range.
func (h Hints) peerPorts(eph config.PortRange) config.PortRange {
	if h.Config.HA.SourcePorts != nil {
		return *h.Config.HA.SourcePorts
	}
	return eph
}

// outbound is a connection from this host, from the local ports, to a.
func outbound(a config.Addr, local config.PortRange, what string) Rule {
	if a.Scheme == config.VSock {
		return Rule{Dir: Out, Proto: config.VSock, Remote: fmt.Sprintf("cid %d", a.CID), RemotePort: port(a.Port), For: what}
	}
	return Rule{Dir: Out, Proto: a.Scheme, Remote: a.Host, RemotePort: port(a.Port), LocalPort: local, For: what}
}

func storageRule(ep Endpoint, eph config.PortRange) (Rule, error) {
	host, p, err := splitHostPort(ep.Addr)
	if err != nil {
		return Rule{}, fmt.Errorf("%w: storage %s %q: %v", ErrEndpoint, ep.Serial, ep.Addr, err)
	}
	what := "storage"
	if ep.Serial != "" {
		what += " " + ep.Serial
	}
	return Rule{Dir: Out, Proto: config.TCP, Remote: host, RemotePort: port(p), LocalPort: eph, For: what}, nil
}

// splitHostPort reads "host:port" (IPv6 in brackets) with a port 1–65535.
func splitHostPort(s string) (string, uint32, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		return "", 0, errors.New("missing host")
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("port %q is not a number from 1 to 65535", ps)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	}
	return strings.ToLower(host), uint32(p), nil
}

func port(p uint32) config.PortRange { return config.PortRange{First: uint16(p), Last: uint16(p)} }

// listenHost is the local address a listener is bound to; "" for every
// address.
func listenHost(a config.Addr) string {
	if ip, err := netip.ParseAddr(a.Host); err == nil && ip.IsUnspecified() {
		return ""
	}
	return a.Host
}

// merge drops repeated rules (two endpoints on one address), joining
// what they are for.
func merge(rules []Rule) []Rule {
	var out []Rule
	at := map[Rule]int{}
	for _, r := range rules {
		key := r
		key.For = ""
		if i, ok := at[key]; ok {
			out[i].For += ", " + r.For
			continue
		}
		at[key] = len(out)
		out = append(out, r)
	}
	return out
}
