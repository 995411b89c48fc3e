package api

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/lockstep-io/lockstep/hal"
)

// ConnectionKind is how the daemon reaches a storage system
// (docs/architecture.md, Storage connections): hal's type, so that the registry, the admin API and the driver
// factories of cmd/lockstepd speak of one kind.
type ConnectionKind = hal.ConnectionKind

const (
	// Direct is TCP/IP to the storage system's two cluster endpoints.
	Direct = hal.Direct
	// HMC is TCP/IP through one or two management consoles.
	HMC = hal.HMC
	// ZOS is in-band through a z/OS host agent of a sysplex; it cannot
	// carry the heartbeat.
	ZOS = hal.ZOS
)

// StorageSpec is the argument of StorageAdd: a storage system and its
// connections. Adding connections to a known serial adds them to it.
type StorageSpec struct {
	Serial      hal.Serial       `json:"serial"`
	Connections []ConnectionSpec `json:"connections"`
}

// ConnectionSpec is one connection of a StorageSpec.
type ConnectionSpec struct {
	// Name identifies the connection within its storage system, for
	// StorageRemove (e.g. "direct", "hmc-a", "zos-plex1").
	Name string         `json:"name"`
	Kind ConnectionKind `json:"kind"`
	// Addresses are host:port: the two cluster endpoints (direct), one or
	// two HMCs (hmc), the host agent (zos). At least one, at most two.
	// See CheckHostPort.
	Addresses []string `json:"addresses"`
	// Sysplex names the z/OS host's sysplex; required for zos only.
	Sysplex string `json:"sysplex,omitempty"`
	// User and PasswordFile are the storage system's credentials for
	// this connection, both or neither. The daemon reads the file itself:
	// no secret travels over the bus or lands in the journal. The path is
	// absolute and clean; StorageAdd refuses (ErrRefused), before
	// anything is journaled, a file the daemon cannot read or that others
	// may read (package internal/secretfile has the rules).
	User         string `json:"user,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
}

// Validate checks the spec on its own; whether the serial or a connection
// name is already known is the daemon's business. Errors wrap ErrInvalid.
func (s StorageSpec) Validate() error { return s.validate(false) }

// validate is Validate; zos admits connections of kind zos (a ZOSSpec,
// whose serial is not checked).
func (s StorageSpec) validate(zos bool) error {
	if err := CheckSerial(s.Serial); err != nil && !zos {
		return err
	}
	if len(s.Connections) == 0 {
		return fmt.Errorf("%w: storage system %s: no connection given", ErrInvalid, s.Serial)
	}
	var names []string
	for _, c := range s.Connections {
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%w: storage system %s, connection %q: %s", ErrInvalid, s.Serial, c.Name, fmt.Sprintf(format, a...))
		}
		switch {
		case !validWord(c.Name):
			return bad("a connection needs a name of 1-64 letters, digits, '.', '_' or '-'")
		case slices.Contains(names, c.Name):
			return bad("name given twice")
		case !c.Kind.Valid():
			return bad("unknown kind %q (want direct)", c.Kind)
		case c.Kind == HMC:
			return bad("an HMC connection is defined once, for every storage system it fronts: " +
				"lockstepctl hmc add NAME --addr HMC1[,HMC2] (the systems behind it are discovered)")
		case c.Kind == ZOS && !zos:
			return bad("a z/OS connection is defined once per z/OS host, for every storage system it has online: " +
				"lockstepctl zos add HOST --addr A --sysplex P --serial S[,S]")
		case len(c.Addresses) == 0 || len(c.Addresses) > 2:
			return bad("%d addresses (want 1 or 2 host:port)", len(c.Addresses))
		case c.Kind == ZOS && c.Sysplex == "":
			return bad("a z/OS connection needs its sysplex")
		case c.Kind != ZOS && c.Sysplex != "":
			return bad("only a z/OS connection has a sysplex")
		case c.Sysplex != "" && !validWord(c.Sysplex):
			return bad("bad sysplex name %q", c.Sysplex)
		}
		for _, a := range c.Addresses {
			if why := hostPortProblem(a); why != "" {
				return bad("address %q: %s (want host:port, such as 192.0.2.10:1750 or [2001:db8::10]:1750)", a, why)
			}
		}
		switch {
		case c.User != "" && c.PasswordFile == "":
			return bad("user %q needs --password-file: the file that holds the password", c.User)
		case c.User == "" && c.PasswordFile != "":
			return bad("--password-file needs --user: the storage system's user name")
		case c.User != "" && !validUser(c.User):
			return bad("user name %q: want 1-64 printable characters without spaces", c.User)
		case c.PasswordFile != "" && !filepath.IsAbs(c.PasswordFile):
			return bad("password file %q: must be an absolute path (lockstepd reads it, not lockstepctl, "+
				"and its working directory is not yours)", c.PasswordFile)
		case c.PasswordFile != "" && filepath.Clean(c.PasswordFile) != c.PasswordFile:
			return bad("password file %q: write it as %q", c.PasswordFile, filepath.Clean(c.PasswordFile))
		}
		names = append(names, c.Name)
	}
	return nil
}

// CheckHostPort checks a storage connection's address, "host:port": the
// host an IP address (IPv6 in brackets) or a DNS name, the port a decimal
// number from 1 to 65535 and nothing else ("+80", "0x50", "1e9", "-1" and
// anything beyond 65535 are refused, not wrapped or truncated). Errors
// wrap ErrInvalid. lockstepctl calls it (through StorageSpec.Validate)
// for an early answer; the daemon calls it again before anything is
// journaled, since the server is the authority.
func CheckHostPort(a string) error {
	if why := hostPortProblem(a); why != "" {
		return fmt.Errorf("%w: address %q: %s (want host:port, such as 192.0.2.10:1750 or [2001:db8::10]:1750)", ErrInvalid, a, why)
	}
	return nil
}

// hostPortProblem says what is wrong with a, "" if nothing.
func hostPortProblem(a string) string {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return ae.Err
		}
		return err.Error()
	}
	if host == "" {
		return "no host"
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() && strings.HasPrefix(a, "[") {
			return "an IPv4 address goes without brackets"
		}
	} else if why := checkHostName(host); why != "" {
		return why
	}
	if port == "" || strings.Trim(port, "0123456789") != "" {
		return fmt.Sprintf("port %q is not a decimal number from 1 to 65535", port)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Sprintf("port %s is out of range: 1 to 65535", port)
	}
	return ""
}

// checkHostName says why h is not a DNS name ("" if it is one). A name of
// digits and dots only is an IP address that did not parse (300.1.1.1).
func checkHostName(h string) string {
	if len(h) > 253 {
		return "host name longer than 253 characters"
	}
	numeric := true
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return fmt.Sprintf("%q is neither an IP address nor a host name", h)
		}
		if strings.Trim(label, "0123456789") != "" {
			numeric = false
		}
	}
	if numeric {
		return fmt.Sprintf("%q is not an IP address", h)
	}
	return ""
}

// validUser accepts a storage user name: 1-64 printable characters
// without spaces.
func validUser(s string) bool {
	return CheckSerial(hal.Serial(s)) == nil
}

// CheckSerial checks a storage system serial: 1-64 printable characters
// without spaces. Errors wrap ErrInvalid. The server checks every serial
// it is given with it, before the daemon sees the call.
func CheckSerial(s hal.Serial) error {
	ok := len(s) > 0 && len(s) <= 64
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%w: storage system serial %q: want 1-64 printable characters without spaces", ErrInvalid, string(s))
	}
	return nil
}

// validWord accepts 1-64 of A-Z a-z 0-9 . _ -.
func validWord(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
}
