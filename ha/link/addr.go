package link

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mdlayher/vsock"
)

// Networks of an Addr.
const (
	TCP   = "tcp"
	VSock = "vsock"
)

// AnyCID is VMADDR_CID_ANY: "vsock://any:PORT" listens on every CID.
const AnyCID = ^uint32(0)

// Addr is a peer or listener address: tcp://host:port (the default when
// no scheme is given) or vsock://cid:port.
type Addr struct {
	Network string // TCP or VSock
	Host    string // tcp: a host name or IP literal (no brackets)
	CID     uint32 // vsock: the context id (AnyCID for "any")
	Port    uint32
}

// ParseAddr reads "tcp://host:port", "host:port" (tcp), "vsock://cid:port"
// or "vsock://any:port".
func ParseAddr(s string) (Addr, error) {
	bad := func(why string) (Addr, error) {
		return Addr{}, fmt.Errorf("%w %q: %s", ErrAddress, s, why)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = TCP, s
	}
	switch scheme {
	case VSock:
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return bad("write it as vsock://cid:port")
		}
		a := Addr{Network: VSock}
		if cid := rest[:i]; cid == "any" {
			a.CID = AnyCID
		} else {
			n, err := strconv.ParseUint(cid, 10, 32)
			if err != nil {
				return bad("the CID is not a number (or \"any\")")
			}
			a.CID = uint32(n)
		}
		port, err := strconv.ParseUint(rest[i+1:], 10, 32)
		if err != nil || port == 0 || port == uint64(^uint32(0)) {
			return bad("the port is not a number from 1 to 4294967294")
		}
		a.Port = uint32(port)
		return a, nil
	case TCP:
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return bad(err.Error())
		}
		if host == "" {
			return bad("missing host")
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return bad("the port is not a number from 0 (a listener's choice) to 65535")
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			host = ip.String()
		}
		return Addr{Network: TCP, Host: strings.ToLower(host), Port: uint32(p)}, nil
	}
	return bad("the scheme is not tcp or vsock")
}

// String is the canonical form ParseAddr reads.
func (a Addr) String() string {
	switch a.Network {
	case VSock:
		cid := strconv.FormatUint(uint64(a.CID), 10)
		if a.CID == AnyCID {
			cid = "any"
		}
		return fmt.Sprintf("vsock://%s:%d", cid, a.Port)
	case TCP:
		return "tcp://" + a.hostPort()
	}
	return ""
}

func (a Addr) hostPort() string {
	return net.JoinHostPort(a.Host, strconv.FormatUint(uint64(a.Port), 10))
}

// unspecified reports a listener address that says "every address".
func (a Addr) unspecified() bool {
	if a.Network == VSock {
		return a.CID == AnyCID
	}
	ip, err := netip.ParseAddr(a.Host)
	return err == nil && ip.IsUnspecified()
}

// dialable makes the listen address a peer announced dialable: an
// unspecified host (0.0.0.0, ::, vsock any) becomes the address the
// connection came from. Anything unparsable is returned as is.
func dialable(listen string, remote net.Addr) string {
	a, err := ParseAddr(listen)
	if err != nil || !a.unspecified() {
		return listen
	}
	switch r := remote.(type) {
	case *net.TCPAddr:
		if a.Network == TCP {
			a.Host = r.IP.String()
			return a.String()
		}
	case *vsock.Addr:
		if a.Network == VSock {
			a.CID = r.ContextID
			return a.String()
		}
	}
	return listen
}

// PortRange is an inclusive range of local ports for the connecting side.
type PortRange struct{ First, Last uint16 }

// Len is the number of ports in the range.
func (r PortRange) Len() int {
	if r.First == 0 || r.Last < r.First {
		return 0
	}
	return int(r.Last) - int(r.First) + 1
}

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }
