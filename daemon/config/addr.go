package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Address schemes.
const (
	TCP   = "tcp"
	UDP   = "udp"
	VSock = "vsock"
)

// VSockAnyCID is VMADDR_CID_ANY: "vsock://any:PORT" listens on every CID.
const VSockAnyCID = ^uint32(0)

// Addr is a parsed "scheme://host:port" or "vsock://cid:port" address.
// Addr values are comparable; two addresses are the same when ==.
type Addr struct {
	Scheme string // TCP, UDP or VSock
	Host   string // tcp, udp: an IP literal (no brackets) or a DNS name, lower case
	CID    uint32 // vsock only
	Port   uint32 // tcp, udp: 1–65535; vsock: 1–4294967294
}

// ParseAddr parses s and checks that its scheme is one of schemes (any of
// TCP, UDP, VSock when none is given). Errors wrap ErrAddress and read
// "bad address "s": why".
func ParseAddr(s string, schemes ...string) (Addr, error) {
	if len(schemes) == 0 {
		schemes = []string{TCP, UDP, VSock}
	}
	bad := func(format string, args ...any) (Addr, error) {
		return Addr{}, fmt.Errorf("%w %q: %s", wrapAs{ErrAddress, "bad address"}, s, fmt.Sprintf(format, args...))
	}
	example := schemes[0] + "://host:port"
	if schemes[0] == VSock {
		example = "vsock://cid:port"
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return bad("missing scheme: write it as %s", example)
	}
	if !slices.Contains(schemes, scheme) {
		return bad("scheme %q is not %s", scheme, orList(schemes))
	}
	if strings.ContainsAny(rest, "/?#@ \t") {
		return bad("only %s is allowed: no path, query, user or spaces", example)
	}
	if scheme == VSock {
		cidText, portText, ok := cutLast(rest, ':')
		if !ok || portText == "" {
			return bad("missing port: write it as vsock://cid:port")
		}
		a := Addr{Scheme: VSock}
		if cidText == "any" {
			a.CID = VSockAnyCID
		} else {
			cid, err := strconv.ParseUint(cidText, 10, 32)
			if err != nil {
				return bad("CID %q is not a number (or \"any\")", cidText)
			}
			a.CID = uint32(cid)
		}
		port, err := strconv.ParseUint(portText, 10, 32)
		if err != nil || port == 0 || port == uint64(^uint32(0)) {
			return bad("port %q is not a number from 1 to 4294967294", portText)
		}
		a.Port = uint32(port)
		return a, nil
	}
	if strings.Count(rest, ":") > 1 && !strings.HasPrefix(rest, "[") {
		return bad("an IPv6 address goes in brackets: %s://[::1]:port", scheme)
	}
	host, portText, err := net.SplitHostPort(rest)
	if err != nil {
		if !strings.Contains(rest, ":") || strings.HasSuffix(rest, "]") {
			return bad("missing port: write it as %s://host:port", scheme)
		}
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return bad("%s", ae.Err)
		}
		return bad("%v", err)
	}
	if host == "" {
		return bad("missing host (0.0.0.0 or [::] for every address)")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() && strings.HasPrefix(rest, "[") {
			return bad("an IPv4 address goes without brackets")
		}
		host = ip.String()
	} else if strings.ContainsAny(host, ":%") {
		return bad("%q is not an IP address", host)
	} else if why := checkHostName(host); why != "" {
		return bad("%s", why)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return bad("port %q is not a number from 1 to 65535", portText)
	}
	return Addr{Scheme: scheme, Host: strings.ToLower(host), Port: uint32(port)}, nil
}

// wrapAs is an error that reads text but is kind for errors.Is: "bad
// address" rather than "config: bad address" inside a problem line.
type wrapAs struct {
	kind error
	text string
}

func (w wrapAs) Error() string   { return w.text }
func (w wrapAs) Is(t error) bool { return t == w.kind }

func checkHostName(h string) string {
	if len(h) > 253 {
		return "host name longer than 253 characters"
	}
	numeric := true
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Sprintf("%q is not a host name (empty or over-long label)", h)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("%q is not a host name (label starts or ends with '-')", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(isBare(c)) {
				return fmt.Sprintf("%q is not a host name (character %q)", h, c)
			}
			if c < '0' || c > '9' {
				numeric = false
			}
		}
	}
	if numeric {
		return fmt.Sprintf("%q is not an IP address", h)
	}
	return ""
}

// String gives the canonical form: "tcp://192.0.2.1:9730",
// "tcp://[2001:db8::1]:9730", "vsock://any:9730".
func (a Addr) String() string {
	switch a.Scheme {
	case "":
		return ""
	case VSock:
		cid := strconv.FormatUint(uint64(a.CID), 10)
		if a.CID == VSockAnyCID {
			cid = "any"
		}
		return fmt.Sprintf("vsock://%s:%d", cid, a.Port)
	}
	return a.Scheme + "://" + a.HostPort()
}

// HostPort is "host:port" for tcp and udp (what net.Dial takes), "" for
// vsock.
func (a Addr) HostPort() string {
	if a.Scheme == VSock || a.Scheme == "" {
		return ""
	}
	return net.JoinHostPort(a.Host, strconv.FormatUint(uint64(a.Port), 10))
}

// IsZero reports an unset address.
func (a Addr) IsZero() bool { return a == Addr{} }

// Privileged reports an address whose port needs CAP_NET_BIND_SERVICE to
// listen on (below 1024).
func (a Addr) Privileged() bool { return !a.IsZero() && a.Port < 1024 }

// PortRange is an inclusive range of ports.
type PortRange struct{ First, Last uint16 }

// ParsePortRange reads "40000-40009" (or a single port, "40000").
func ParsePortRange(s string) (PortRange, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	first, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	last, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	if err1 != nil || err2 != nil || first == 0 || last == 0 {
		return PortRange{}, fmt.Errorf("%q is not a port range such as \"40000-40009\"", s)
	}
	if first > last {
		return PortRange{}, fmt.Errorf("port range %q runs backwards", s)
	}
	return PortRange{uint16(first), uint16(last)}, nil
}

// String is "FIRST-LAST", or one port when the range holds one.
func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Len is the number of ports in the range.
func (r PortRange) Len() int {
	if r.Last < r.First {
		return 0
	}
	return int(r.Last) - int(r.First) + 1
}

// OID is an object identifier.
type OID []uint32

// ParseOID reads a dotted-decimal OID such as "1.3.6.1.4.1.61942".
func ParseOID(s string) (OID, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 128 {
		return nil, fmt.Errorf("%q is not a dotted-decimal OID such as \"1.3.6.1.4.1.61942\"", s)
	}
	oid := make(OID, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || (len(p) > 1 && p[0] == '0') {
			return nil, fmt.Errorf("%q is not a dotted-decimal OID: arc %q", s, p)
		}
		oid[i] = uint32(n)
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, fmt.Errorf("%q is not a valid OID: it must start with 0, 1 or 2 (then at most 39 when 0 or 1)", s)
	}
	return oid, nil
}

func (o OID) String() string {
	parts := make([]string, len(o))
	for i, n := range o {
		parts[i] = strconv.FormatUint(uint64(n), 10)
	}
	return strings.Join(parts, ".")
}

// checkDBusAddress checks the syntax of a D-Bus server address:
// "transport:key=value,key=value;transport:...", values escaped with %XX.
func checkDBusAddress(s string) error {
	if s == "" {
		return errors.New("empty D-Bus address")
	}
	for _, entry := range strings.Split(s, ";") {
		if entry == "" {
			continue
		}
		transport, params, ok := strings.Cut(entry, ":")
		if !ok || transport == "" {
			return fmt.Errorf("%q has no \"transport:\"", entry)
		}
		for i := 0; i < len(transport); i++ {
			if c := transport[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("bad transport %q", transport)
			}
		}
		if params == "" {
			continue
		}
		for _, kv := range strings.Split(params, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" || v == "" {
				return fmt.Errorf("%q is not key=value", kv)
			}
			for i := 0; i < len(v); i++ {
				c := v[i]
				switch {
				case c == '%':
					if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
						return fmt.Errorf("bad %%-escape in %q", v)
					}
					i += 2
				case isBare(c) || strings.IndexByte("/.\\*", c) >= 0:
				default:
					return fmt.Errorf("%q must be %%-escaped in %q", c, v)
				}
			}
		}
	}
	return nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// orList words a list of choices: "a", "a or b", "a, b or c".
func orList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func cutLast(s string, sep byte) (before, after string, ok bool) {
	if i := strings.LastIndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}
