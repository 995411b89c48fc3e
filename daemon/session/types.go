package session

import (
	"fmt"
	"strings"
)

// Type is the kind of a session.
type Type string

const (
	// MetroMirrorSingleDirection copies H1->H2 only; a recover makes H2
	// writable (for a test or a disaster), and the way back is terminate
	// and start again.
	MetroMirrorSingleDirection Type = "mm-single-direction"
	// MetroMirrorFailoverFailback can also copy H2->H1 after a recover,
	// so production can move to site 2 and back.
	MetroMirrorFailoverFailback Type = "mm-failover-failback"
	// MetroMirrorHyperSwap is failover/failback whose production I/O a
	// z/OS host (SwapHost) swaps to H2 on a hyperswap command or on its
	// own when I/O to H1 fails. It needs a z/OS connection with every H1
	// and H2 system online; the heartbeat does not cover it (the host
	// does), and its consistency group holds HyperSwap sessions only.
	MetroMirrorHyperSwap Type = "mm-hyperswap"
)

func (t Type) String() string { return string(t) }

// Label is the name used in documentation.
func (t Type) Label() string {
	switch t {
	case MetroMirrorSingleDirection:
		return "Metro Mirror Single Direction"
	case MetroMirrorFailoverFailback:
		return "Metro Mirror Failover/Failback"
	case MetroMirrorHyperSwap:
		return "Metro Mirror Failover/Failback with HyperSwap"
	}
	return fmt.Sprintf("Type(%q)", string(t))
}

// Valid reports whether t is a known type.
func (t Type) Valid() bool {
	return t == MetroMirrorSingleDirection || t == MetroMirrorFailoverFailback || t == MetroMirrorHyperSwap
}

// HyperSwap reports a type whose host I/O a z/OS host swaps.
func (t Type) HyperSwap() bool { return t == MetroMirrorHyperSwap }

// Heartbeat reports whether the Metro Mirror heartbeat covers sessions
// of the type: not HyperSwap (the z/OS host protects those, and a
// storage system that froze itself on an expired heartbeat would take
// the decision from the host).
func (t Type) Heartbeat() bool { return !t.HyperSwap() }

// ParseType parses the CLI form ("mm-single-direction"), ignoring case.
func ParseType(s string) (Type, error) {
	t := Type(strings.ToLower(s))
	if !t.Valid() {
		return "", fmt.Errorf("session: unknown session type %q (want %s, %s or %s)",
			s, MetroMirrorSingleDirection, MetroMirrorFailoverFailback, MetroMirrorHyperSwap)
	}
	return t, nil
}

// Policy says what happens to host writes after a suspend.
type Policy string

const (
	// HoldIO keeps the source LSSs in extended long busy after a freeze
	// until an admin issues release-io (or the CG timeout ends it).
	HoldIO Policy = "hold-io"
	// ReleaseIO lets the core thaw as soon as every freeze is certain.
	ReleaseIO Policy = "release-io"
)

func (p Policy) String() string { return string(p) }

// Label is the name used in documentation.
func (p Policy) Label() string {
	switch p {
	case HoldIO:
		return "Hold I/O after Suspend"
	case ReleaseIO:
		return "Release I/O after Suspend"
	}
	return fmt.Sprintf("Policy(%q)", string(p))
}

// Valid reports whether p is a known policy.
func (p Policy) Valid() bool { return p == HoldIO || p == ReleaseIO }

// ParsePolicy parses "hold-io" or "release-io", ignoring case.
func ParsePolicy(s string) (Policy, error) {
	p := Policy(strings.ToLower(s))
	if !p.Valid() {
		return "", fmt.Errorf("session: unknown suspend policy %q (want %s or %s)", s, HoldIO, ReleaseIO)
	}
	return p, nil
}

// Site is a host site: the role of one volume of a copy set.
type Site string

const (
	H1 Site = "H1"
	H2 Site = "H2"
)

func (s Site) String() string { return string(s) }

// Valid reports whether s is H1 or H2.
func (s Site) Valid() bool { return s == H1 || s == H2 }

// Other is the other site.
func (s Site) Other() Site {
	if s == H1 {
		return H2
	}
	return H1
}

// ParseSite parses "H1" or "H2", ignoring case.
func ParseSite(s string) (Site, error) {
	site := Site(strings.ToUpper(s))
	if !site.Valid() {
		return "", fmt.Errorf("session: unknown site %q (want H1 or H2)", s)
	}
	return site, nil
}

// Direction is the copy direction of a session's role pair.
type Direction string

const (
	H1ToH2 Direction = "h1-h2"
	H2ToH1 Direction = "h2-h1"
)

func (d Direction) String() string { return string(d) }

// Label is the documentation form, "H1->H2".
func (d Direction) Label() string { return d.Source().String() + "->" + d.Target().String() }

// Valid reports whether d is a known direction.
func (d Direction) Valid() bool { return d == H1ToH2 || d == H2ToH1 }

// Source is the site copied from.
func (d Direction) Source() Site {
	if d == H2ToH1 {
		return H2
	}
	return H1
}

// Target is the site copied to.
func (d Direction) Target() Site { return d.Source().Other() }

// DirectionFrom is the direction that copies from site.
func DirectionFrom(site Site) Direction {
	if site == H2 {
		return H2ToH1
	}
	return H1ToH2
}

// ParseDirection parses "h1-h2" or "h2-h1" (or "H1->H2"), ignoring case.
func ParseDirection(s string) (Direction, error) {
	d := Direction(strings.ReplaceAll(strings.ToLower(s), "->", "-"))
	if !d.Valid() {
		return "", fmt.Errorf("session: unknown direction %q (want %s or %s)", s, H1ToH2, H2ToH1)
	}
	return d, nil
}

// State is where a session is in its life cycle (daemon/freeze/doc.go).
type State uint8

const (
	// Defined: the session exists; nothing of it is on the hardware.
	Defined State = iota
	// Preparing: paths and pairs established; the initial copy or a resync
	// runs. The target is not consistent.
	Preparing
	// Prepared: every pair is full-duplex: each write reaches both sites.
	Prepared
	// Suspending: a freeze of the session's consistency scope is under way.
	Suspending
	// Suspended: every pair of the scope is certainly frozen.
	Suspended
	// SuspendedPartial: a freeze could not be confirmed everywhere; some
	// pairs may still be mirroring, so the target is not known consistent.
	SuspendedPartial
	// Recovering: the target volumes are being made writable.
	Recovering
	// TargetAvailable: the target volumes are writable; production may run
	// at the target site.
	TargetAvailable
)

var stateNames = [...]struct{ label, kebab string }{
	{"Defined", "defined"},
	{"Preparing", "preparing"},
	{"Prepared", "prepared"},
	{"Suspending", "suspending"},
	{"Suspended", "suspended"},
	{"Suspended (Partial)", "suspended-partial"},
	{"Recovering", "recovering"},
	{"Target Available", "target-available"},
}

// Valid reports whether s is a known state.
func (s State) Valid() bool { return int(s) < len(stateNames) }

// String is the label of documentation and GUIs: "Target Available".
func (s State) String() string {
	if s.Valid() {
		return stateNames[s].label
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Kebab is the CLI and JSON form: "target-available".
func (s State) Kebab() string {
	if s.Valid() {
		return stateNames[s].kebab
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// MarshalText writes the kebab form.
func (s State) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("session: invalid state %d", uint8(s))
	}
	return []byte(s.Kebab()), nil
}

// UnmarshalText reads the kebab form only, so that the stored format has
// one spelling.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n.kebab == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("session: unknown state %q", b)
}

// ParseState accepts the kebab form or the label, ignoring case.
func ParseState(str string) (State, error) {
	for i, n := range stateNames {
		if strings.EqualFold(str, n.kebab) || strings.EqualFold(str, n.label) {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("session: unknown state %q", str)
}

// Status is the health summary of a session, ordered by severity.
type Status uint8

const (
	// Inactive: the session is Defined; nothing runs on the hardware.
	Inactive Status = iota
	// Normal: a consistent copy exists or is being maintained.
	Normal
	// Warning: copying towards consistency, or a command or freeze is in
	// flight, or part of the hardware could not be queried.
	Warning
	// Severe: pairs are suspended, or a command failed: act now.
	Severe
)

var statusNames = [...]struct{ label, kebab string }{
	{"Inactive", "inactive"},
	{"Normal", "normal"},
	{"Warning", "warning"},
	{"Severe", "severe"},
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return int(s) < len(statusNames) }

func (s Status) String() string {
	if s.Valid() {
		return statusNames[s].label
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Kebab is the CLI and JSON form: "severe".
func (s Status) Kebab() string {
	if s.Valid() {
		return statusNames[s].kebab
	}
	return fmt.Sprintf("status-%d", uint8(s))
}

// MarshalText writes the kebab form.
func (s Status) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("session: invalid status %d", uint8(s))
	}
	return []byte(s.Kebab()), nil
}

// UnmarshalText reads the kebab form only.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n.kebab == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("session: unknown status %q", b)
}

// ParseStatus accepts the kebab form or the label, ignoring case.
func ParseStatus(str string) (Status, error) {
	for i, n := range statusNames {
		if strings.EqualFold(str, n.kebab) || strings.EqualFold(str, n.label) {
			return Status(i), nil
		}
	}
	return 0, fmt.Errorf("session: unknown status %q", str)
}

// validName reports whether s can name a session or a consistency group:
// 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit, so that it
// is safe in a CLI argument, a D-Bus object path element once escaped, a
// file name and an SNMP string.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}
