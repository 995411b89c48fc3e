package session

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// CopySet is one volume per role: H1 at host site 1, H2 at host site 2.
type CopySet struct {
	H1 hal.VolumeRef
	H2 hal.VolumeRef
}

func (c CopySet) String() string { return "H1 " + c.H1.String() + " H2 " + c.H2.String() }

// Validate checks the copy set on its own: both volumes named, valid LSSs,
// and the two roles on different storage systems (Metro Mirror is remote).
// That a volume belongs to one copy set only is checked by DB.Apply.
func (c CopySet) Validate() error {
	for _, v := range [2]hal.VolumeRef{c.H1, c.H2} {
		if v.Serial == "" {
			return fmt.Errorf("%w: copy set %s: volume without a storage system serial", ErrInvalid, c)
		}
		if !v.Volume.LSS().Valid() {
			return fmt.Errorf("%w: copy set %s: LSS FF is reserved", ErrInvalid, c)
		}
	}
	if c.H1.Serial == c.H2.Serial {
		return fmt.Errorf("%w: copy set %s: H1 and H2 are on the same storage system", ErrInvalid, c)
	}
	return nil
}

// Pair is the copy set as a Metro Mirror pair copying in direction d.
func (c CopySet) Pair(d Direction) hal.VolumePair {
	p := hal.VolumePair{Source: c.H1, Target: c.H2}
	if d == H2ToH1 {
		return p.Reversed()
	}
	return p
}

// Volume is the copy set's volume at site.
func (c CopySet) Volume(site Site) hal.VolumeRef {
	if site == H2 {
		return c.H2
	}
	return c.H1
}

type copySetJSON struct {
	H1 string `json:"h1"`
	H2 string `json:"h2"`
}

// MarshalJSON writes {"h1":"SERIAL/VVVV","h2":"SERIAL/VVVV"}.
func (c CopySet) MarshalJSON() ([]byte, error) {
	return json.Marshal(copySetJSON{H1: c.H1.String(), H2: c.H2.String()})
}

// UnmarshalJSON reads what MarshalJSON writes. It checks syntax only, so
// that every CopySet value survives a round trip; Validate checks meaning.
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

// ParseVolumeRef parses "SERIAL/VVVV", the form VolumeRef.String writes,
// e.g. "LAB.2107-75P0001/1001", and checks that it names a usable volume.
func ParseVolumeRef(s string) (hal.VolumeRef, error) {
	r, err := parseRef(s)
	if err != nil {
		return hal.VolumeRef{}, err
	}
	if r.Serial == "" {
		return hal.VolumeRef{}, fmt.Errorf("session: volume %q has no storage system serial", s)
	}
	if _, err := hal.ParseVolume(r.Volume.String()); err != nil {
		return hal.VolumeRef{}, fmt.Errorf("session: volume %q: %w", s, err)
	}
	return r, nil
}

// parseRef splits at the last '/' (a serial could hold one) and reads any
// 4 hex digits.
func parseRef(s string) (hal.VolumeRef, error) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 || len(s)-i-1 != 4 {
		return hal.VolumeRef{}, fmt.Errorf("session: volume %q is not SERIAL/VVVV", s)
	}
	n, err := strconv.ParseUint(s[i+1:], 16, 16)
	if err != nil {
		return hal.VolumeRef{}, fmt.Errorf("session: volume %q is not SERIAL/VVVV", s)
	}
	return hal.VolumeRef{Serial: hal.Serial(s[:i]), Volume: hal.Volume(n)}, nil
}

// Session is a set of copy sets managed together, with one consistency
// scope (daemon/freeze/doc.go). A Session value returned by this package is a copy:
// changing it changes nothing; state changes only through records.
type Session struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
	// CGName is the consistency-group name. Sessions sharing a non-empty
	// CGName are frozen together; an empty one is a scope of its own.
	CGName string `json:"cg_name,omitempty"`
	Policy Policy `json:"policy"`
	// ActiveSite is the production site: the source of the current
	// direction, and after a recover the recovered (target) site.
	ActiveSite Site `json:"active_site"`
	// Direction is the copy direction of the pairs, the last one used
	// after a recover or terminate.
	Direction Direction `json:"direction"`
	// CopySets keeps the order in which they were added.
	CopySets []CopySet `json:"copy_sets,omitempty"`

	State  State  `json:"state"`
	Status Status `json:"status"`
	// Recoverable: the target image is known consistent. True only in
	// Suspended after a certain freeze of a Prepared session, and through
	// Recovering into Target Available.
	Recoverable bool `json:"recoverable"`
	// Copying: pairs are (or, after a partial freeze, may still be)
	// mirroring writes to the target.
	Copying bool `json:"copying"`
	// Error: the last command did not complete on the hardware, or a
	// refresh found the hardware disagreeing with the session.
	Error bool `json:"error"`
	// IOHeld: the source LSSs hold host writes (extended long busy) after a
	// freeze; release-io is offered while it is set.
	IOHeld bool `json:"io_held"`
	// FromPrepared is meaningful in Suspending and Suspended (Partial)
	// only: the freeze under way began while every pair was full-duplex,
	// which a consistent image needs. It travels in the record so that a core on the standby that
	// takes over mid-freeze still knows it.
	FromPrepared bool `json:"from_prepared,omitempty"`

	// LastChange is the time of the record that last changed State or the
	// flags (or created the session).
	LastChange time.Time `json:"last_change"`
	// Reason says why the last state change happened.
	Reason string `json:"reason"`
	// Rev counts the records applied to the session (1 after creation).
	// A record with IfRev applies only at that revision.
	Rev uint64 `json:"rev"`
}

// Clone is a deep copy.
func (s *Session) Clone() *Session {
	c := *s
	c.CopySets = slices.Clone(s.CopySets)
	return &c
}

// VolumePairs is every copy set as a pair in the current direction, in
// copy-set order.
func (s *Session) VolumePairs() []hal.VolumePair {
	out := make([]hal.VolumePair, 0, len(s.CopySets))
	for _, c := range s.CopySets {
		out = append(out, c.Pair(s.Direction))
	}
	return out
}

// LSSPairs is the set of LSS pairs of the session in the current
// direction, sorted and without duplicates: the unit of paths and freezes.
func (s *Session) LSSPairs() []hal.LSSPair {
	out := make([]hal.LSSPair, 0, len(s.CopySets))
	for _, c := range s.CopySets {
		out = append(out, c.Pair(s.Direction).LSSPair())
	}
	slices.SortFunc(out, func(a, b hal.LSSPair) int {
		return cmp.Or(compareLSS(a.Source, b.Source), compareLSS(a.Target, b.Target))
	})
	return slices.Compact(out)
}

func compareLSS(a, b hal.LSSRef) int {
	return cmp.Or(cmp.Compare(a.Serial, b.Serial), cmp.Compare(a.LSS, b.LSS))
}

// Serials is every storage system the session uses, at both sites,
// sorted and without duplicates.
func (s *Session) Serials() []hal.Serial {
	out := make([]hal.Serial, 0, 2*len(s.CopySets))
	for _, c := range s.CopySets {
		out = append(out, c.H1.Serial, c.H2.Serial)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// check is the set of invariants every stored session keeps. Apply refuses
// a record whose result breaks one, so no record stream, however wrong,
// can make the model say something impossible (above all, Recoverable
// where the image cannot be known consistent).
func (s *Session) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: session %q: %s", ErrInvalid, s.Name, fmt.Sprintf(format, a...))
	}
	switch {
	case !s.State.Valid():
		return bad("unknown state %d", uint8(s.State))
	case !s.Status.Valid():
		return bad("unknown status %d", uint8(s.Status))
	case !s.Direction.Valid():
		return bad("unknown direction %q", s.Direction)
	case !s.ActiveSite.Valid():
		return bad("unknown active site %q", s.ActiveSite)
	case s.Recoverable && s.State != Suspended && s.State != Recovering && s.State != TargetAvailable:
		return bad("recoverable in state %s: only Suspended, Recovering and Target Available can be", s.State)
	case s.Recoverable && s.Copying:
		return bad("recoverable while copying")
	case (s.State == Defined) != (s.Status == Inactive):
		return bad("status %s in state %s: Inactive goes with Defined and only with it", s.Status, s.State)
	case s.State == Defined && (s.Copying || s.IOHeld || s.Error):
		return bad("Defined with copying, I/O held or error set")
	case s.FromPrepared && s.State != Suspending && s.State != SuspendedPartial:
		return bad("from_prepared outside Suspending")
	case s.Type == MetroMirrorSingleDirection && s.Direction != H1ToH2:
		return bad("a single-direction session copies H1->H2 only")
	case s.Type == MetroMirrorSingleDirection && s.ActiveSite == H2 && s.State != TargetAvailable:
		return bad("a single-direction session has production at H2 only in Target Available")
	}
	// Production is the source while copying or frozen, and the target
	// once recovered.
	switch s.State {
	case Defined:
	case TargetAvailable:
		if s.ActiveSite != s.Direction.Target() {
			return bad("Target Available with active site %s and direction %s", s.ActiveSite, s.Direction.Label())
		}
	default:
		if s.ActiveSite != s.Direction.Source() {
			return bad("%s with active site %s and direction %s", s.State, s.ActiveSite, s.Direction.Label())
		}
	}
	return nil
}
