package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lockstep-io/lockstep/hal"
)

// The words of a session on the wire: its type, suspend policy, commands,
// states and statuses, sites and directions, in the form the JSON
// documents and the method arguments carry them. The daemon's session
// model has the same words (the server converts, and a test of the server
// holds the two lists equal); they are repeated here so that a client
// links the API without the model. Parsing here is for an early, friendly
// answer (lockstepctl's usage errors, exit 2, without a bus); the server
// parses every argument again with the model's rules, and is the
// authority.

// SessionType is the kind of a session.
type SessionType string

const (
	// MetroMirrorSingleDirection copies H1 to H2 only.
	MetroMirrorSingleDirection SessionType = "mm-single-direction"
	// MetroMirrorFailoverFailback can also copy H2 to H1 after a recover.
	MetroMirrorFailoverFailback SessionType = "mm-failover-failback"
	// MetroMirrorHyperSwap is failover/failback whose host I/O a z/OS
	// host swaps to H2 (hyperswap, or on its own when I/O to H1 fails).
	MetroMirrorHyperSwap SessionType = "mm-hyperswap"
)

// SessionTypes is every session type, the default first.
func SessionTypes() []SessionType {
	return []SessionType{MetroMirrorFailoverFailback, MetroMirrorSingleDirection, MetroMirrorHyperSwap}
}

// ParseSessionType accepts a session type, ignoring case. Errors wrap
// ErrInvalid.
func ParseSessionType(s string) (SessionType, error) {
	return parseWord(s, "session type", SessionTypes())
}

// SuspendPolicy says what happens to host writes after a freeze.
type SuspendPolicy string

const (
	// HoldIO keeps host writes held until release-io (or the storage
	// system's consistency-group timeout).
	HoldIO SuspendPolicy = "hold-io"
	// ReleaseIO lets them continue as soon as every freeze is certain.
	ReleaseIO SuspendPolicy = "release-io"
)

// SuspendPolicies is every suspend policy, the default first.
func SuspendPolicies() []SuspendPolicy { return []SuspendPolicy{HoldIO, ReleaseIO} }

// ParseSuspendPolicy accepts a suspend policy, ignoring case. Errors wrap
// ErrInvalid.
func ParseSuspendPolicy(s string) (SuspendPolicy, error) {
	return parseWord(s, "suspend policy", SuspendPolicies())
}

// SessionCommand is an admin command to a session (SessionCommand's
// argument, SessionDoc.AvailableCommands).
type SessionCommand string

const (
	CmdStartH1H2 SessionCommand = "start-h1-h2"
	CmdStartH2H1 SessionCommand = "start-h2-h1"
	CmdSuspend   SessionCommand = "suspend"
	CmdReleaseIO SessionCommand = "release-io"
	CmdRecover   SessionCommand = "recover"
	CmdTerminate SessionCommand = "terminate"
	CmdRefresh   SessionCommand = "refresh"
	CmdHyperSwap SessionCommand = "hyperswap"
)

// SessionCommands is every session command, in the order lists show them.
func SessionCommands() []SessionCommand {
	return []SessionCommand{CmdStartH1H2, CmdStartH2H1, CmdSuspend, CmdHyperSwap, CmdReleaseIO, CmdRecover, CmdTerminate, CmdRefresh}
}

// ParseSessionCommand accepts a session command, ignoring case. Errors
// wrap ErrInvalid.
func ParseSessionCommand(s string) (SessionCommand, error) {
	return parseWord(s, "command", SessionCommands())
}

// SessionState is where a session is in its life cycle, in kebab form.
type SessionState string

const (
	StateDefined          SessionState = "defined"
	StatePreparing        SessionState = "preparing"
	StatePrepared         SessionState = "prepared"
	StateSuspending       SessionState = "suspending"
	StateSuspended        SessionState = "suspended"
	StateSuspendedPartial SessionState = "suspended-partial"
	StateRecovering       SessionState = "recovering"
	StateTargetAvailable  SessionState = "target-available"
)

var stateLabels = []struct {
	s     SessionState
	label string
}{
	{StateDefined, "Defined"},
	{StatePreparing, "Preparing"},
	{StatePrepared, "Prepared"},
	{StateSuspending, "Suspending"},
	{StateSuspended, "Suspended"},
	{StateSuspendedPartial, "Suspended (Partial)"},
	{StateRecovering, "Recovering"},
	{StateTargetAvailable, "Target Available"},
}

// SessionStates is every state, in life-cycle order.
func SessionStates() []SessionState {
	out := make([]SessionState, len(stateLabels))
	for i, l := range stateLabels {
		out[i] = l.s
	}
	return out
}

// Label is the state as documentation and lockstepctl's tables write it
// ("Target Available"); a state this build does not know is shown as
// it came.
func (s SessionState) Label() string {
	for _, l := range stateLabels {
		if l.s == s {
			return l.label
		}
	}
	return string(s)
}

// SessionStatus is the health summary of a session, in kebab form.
type SessionStatus string

const (
	StatusInactive SessionStatus = "inactive"
	StatusNormal   SessionStatus = "normal"
	StatusWarning  SessionStatus = "warning"
	StatusSevere   SessionStatus = "severe"
)

// SessionStatuses is every status, by severity.
func SessionStatuses() []SessionStatus {
	return []SessionStatus{StatusInactive, StatusNormal, StatusWarning, StatusSevere}
}

// Label is the status as documentation writes it ("Severe"); a status
// this build does not know is shown as it came.
func (s SessionStatus) Label() string {
	if !slices.Contains(SessionStatuses(), s) || s == "" {
		return string(s)
	}
	return strings.ToUpper(string(s[:1])) + string(s[1:])
}

// Site is a host site: H1 or H2.
type Site string

const (
	H1 Site = "H1"
	H2 Site = "H2"
)

// Direction is the copy direction of a session.
type Direction string

const (
	H1ToH2 Direction = "h1-h2"
	H2ToH1 Direction = "h2-h1"
)

// CopySet is one volume per role: H1 at host site 1, H2 at host site 2.
// In JSON it is {"h1":"SERIAL/VVVV","h2":"SERIAL/VVVV"}.
type CopySet struct {
	H1 hal.VolumeRef
	H2 hal.VolumeRef
}

func (c CopySet) String() string { return "H1 " + c.H1.String() + " H2 " + c.H2.String() }

type copySetJSON struct {
	H1 string `json:"h1"`
	H2 string `json:"h2"`
}

// MarshalJSON writes {"h1":"SERIAL/VVVV","h2":"SERIAL/VVVV"}.
func (c CopySet) MarshalJSON() ([]byte, error) {
	return json.Marshal(copySetJSON{H1: c.H1.String(), H2: c.H2.String()})
}

// UnmarshalJSON reads what MarshalJSON writes. It checks the syntax only,
// so that whatever a server sends is shown; ParseVolumeRef checks more.
func (c *CopySet) UnmarshalJSON(b []byte) error {
	var j copySetJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	h1, err := parseRef(j.H1)
	if err != nil {
		return err
	}
	h2, err := parseRef(j.H2)
	if err != nil {
		return err
	}
	*c = CopySet{H1: h1, H2: h2}
	return nil
}

// ParseVolumeRef parses a volume as SessionAddCopySet takes it,
// "SERIAL/VVVV" (e.g. "IBM.2107-75ABC01/1001": the storage system's serial,
// a slash, 2 hex digits of LSS and 2 of volume), and checks that it names a
// usable volume (a serial, an LSS other than FF). Errors wrap ErrInvalid.
func ParseVolumeRef(s string) (hal.VolumeRef, error) {
	r, err := parseRef(s)
	if err != nil {
		return hal.VolumeRef{}, err
	}
	if r.Serial == "" {
		return hal.VolumeRef{}, fmt.Errorf("%w: volume %q has no storage system serial", ErrInvalid, s)
	}
	if !r.Volume.LSS().Valid() {
		return hal.VolumeRef{}, fmt.Errorf("%w: volume %q: LSS FF is reserved", ErrInvalid, s)
	}
	return r, nil
}

// parseRef splits at the last '/' (a serial could hold one) and reads any
// 4 hex digits.
func parseRef(s string) (hal.VolumeRef, error) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 || len(s)-i-1 != 4 {
		return hal.VolumeRef{}, fmt.Errorf("%w: volume %q is not SERIAL/VVVV", ErrInvalid, s)
	}
	n, err := strconv.ParseUint(s[i+1:], 16, 16)
	if err != nil {
		return hal.VolumeRef{}, fmt.Errorf("%w: volume %q is not SERIAL/VVVV", ErrInvalid, s)
	}
	return hal.VolumeRef{Serial: hal.Serial(s[:i]), Volume: hal.Volume(n)}, nil
}

// parseWord finds s, ignoring case, among the words of one kind (all
// lower case). It lowers s as the model's parsers do, rather than folding
// case, so that both accept the same strings.
func parseWord[T ~string](s, what string, words []T) (T, error) {
	if w := T(strings.ToLower(s)); slices.Contains(words, w) {
		return w, nil
	}
	want := make([]string, len(words))
	for i, w := range words {
		want[i] = string(w)
	}
	return "", fmt.Errorf("%w: unknown %s %q (want %s)", ErrInvalid, what, s, strings.Join(want, ", "))
}
