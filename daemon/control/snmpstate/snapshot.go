package snmpstate

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lockstep-io/lockstep/daemon/control/api"
)

// ErrBadOID reports an OID that does not parse.
var ErrBadOID = errors.New("snmpstate: bad OID")

// OID is an object identifier, one number per arc.
type OID []uint32

// ParseOID reads "1.3.6.1" or ".1.3.6.1".
func ParseOID(s string) (OID, error) {
	s = strings.TrimPrefix(s, ".")
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadOID)
	}
	parts := strings.Split(s, ".")
	if len(parts) > 128 {
		return nil, fmt.Errorf("%w: %d arcs (at most 128)", ErrBadOID, len(parts))
	}
	out := make(OID, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || (len(p) > 1 && p[0] == '0') {
			return nil, fmt.Errorf("%w: arc %q of %q", ErrBadOID, p, s)
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

// String writes the OID as net-snmp does: with a leading dot.
func (o OID) String() string {
	var b strings.Builder
	for _, a := range o {
		b.WriteByte('.')
		b.WriteString(strconv.FormatUint(uint64(a), 10))
	}
	return b.String()
}

func (o OID) with(arcs ...uint32) OID { return append(slices.Clip(o), arcs...) }

// Type is a pass_persist value type.
type Type string

// The types used.
const (
	TypeString  Type = "string"
	TypeInteger Type = "integer"
	TypeGauge   Type = "gauge"
	TypeCounter Type = "counter"
	TypeOctet   Type = "octet"
)

// Var is one object instance and its value as pass_persist writes it.
type Var struct {
	OID   OID
	Type  Type
	Value string
}

// Docs are the admin API's answers a snapshot is made of.
type Docs struct {
	Status    api.StatusDoc
	HA        api.HADoc
	Sessions  []api.SessionDoc
	Storage   []api.StorageDoc
	Heartbeat api.HeartbeatDoc
}

// Source reads Docs; *client.Client is one.
type Source interface {
	Status(ctx context.Context) (api.StatusDoc, error)
	HAStatus(ctx context.Context) (api.HADoc, error)
	SessionList(ctx context.Context) ([]api.SessionDoc, error)
	StorageList(ctx context.Context) ([]api.StorageDoc, error)
	HeartbeatShow(ctx context.Context) (api.HeartbeatDoc, error)
}

// Read takes Docs from src, one call each.
func Read(ctx context.Context, src Source) (Docs, error) {
	var d Docs
	var err error
	if d.Status, err = src.Status(ctx); err != nil {
		return d, err
	}
	if d.HA, err = src.HAStatus(ctx); err != nil {
		return d, err
	}
	if d.Sessions, err = src.SessionList(ctx); err != nil {
		return d, err
	}
	if d.Storage, err = src.StorageList(ctx); err != nil {
		return d, err
	}
	if d.Heartbeat, err = src.HeartbeatShow(ctx); err != nil {
		return d, err
	}
	return d, nil
}

// Snapshot is every instance of the state at one time, in OID order.
type Snapshot struct {
	vars []Var
}

// Vars are the snapshot's instances, in OID order.
func (s *Snapshot) Vars() []Var { return s.vars }

// Build makes the snapshot of d under root, the OID of lockstepMIB
// (the enterprise prefix, then 1).
func Build(root OID, d Docs) *Snapshot {
	state := root.with(ArcState)
	var vars []Var
	add := func(oid OID, v Var) {
		v.OID = oid
		vars = append(vars, v)
	}

	// The server group.
	local := state.with(arcLocal)
	var lag uint64
	if d.HA.StandbyLag != nil {
		lag = *d.HA.StandbyLag
	}
	for _, v := range []struct {
		arc uint32
		v   Var
	}{
		{1, str(d.Status.Server)},
		{2, enum(roleEnum, d.HA.Role)},
		{3, enum(haStateEnum, d.HA.State)},
		{4, gauge(uint64(d.HA.Epoch))},
		{5, truth(d.HA.Acting)},
		{6, gauge(lag)},
		{7, str(d.HA.Partner)},
		{8, str(d.HA.PartnerRole)},
		{9, dateAndTime(d.HA.LastChange)},
		{10, counter(d.HA.Transitions)},
		{11, dateAndTime(d.Status.Started)},
	} {
		add(local.with(v.arc, 0), v.v)
	}

	// Tables: every row's columns, then sorted (column-major, as a walk
	// goes).
	table := func(arc uint32) OID { return state.with(arc, 1) }
	tv := []Var{}
	row := func(entry OID, index OID, cols ...Var) {
		for i, c := range cols {
			c.OID = entry.with(uint32(i + 2)).with(index...) // column 1 is the index
			tv = append(tv, c)
		}
	}
	for _, s := range d.Sessions {
		idx, ok := stringIndex(s.Name, 64)
		if !ok {
			continue
		}
		row(table(arcSessions), idx,
			str(s.Name), str(string(s.Type)), enum(sessionStateEnum, string(s.State)),
			enum(sessionStatusEnum, string(s.Status)), truth(s.Recoverable), truth(s.Copying), truth(s.IOHeld),
			gauge(uint64(len(s.CopySets))), str(s.CG), dateAndTime(s.LastChange), counter(s.Transitions))
	}
	armed := map[string]bool{}
	for _, g := range d.Heartbeat.Groups {
		for _, m := range g.Systems {
			armed[string(m.Serial)] = armed[string(m.Serial)] || m.Armed
		}
	}
	for _, st := range d.Storage {
		sidx, ok := stringIndex(string(st.Serial), 32)
		if !ok {
			continue
		}
		row(table(arcStorage), sidx,
			str(string(st.Serial)), truth(st.Reachable), truth(armed[string(st.Serial)]), truth(st.Heartbeat),
			gauge(uint64(len(st.Connections))), dateAndTime(st.LastChange), counter(st.Transitions))
		for _, c := range st.Connections {
			cidx, ok := stringIndex(c.Name, 32)
			if !ok {
				continue
			}
			row(table(arcConnections), append(slices.Clone(sidx), cidx...),
				str(c.Name), enum(connKindEnum, string(c.Kind)), enum(connStateEnum, c.State), str(c.Detail))
		}
	}
	for _, g := range d.Heartbeat.Groups {
		idx, ok := stringIndex(g.Name, 80)
		if !ok {
			continue
		}
		frozen := 0
		if g.Phase != "mirroring" {
			for _, m := range g.Systems {
				if m.Acked {
					frozen++
				}
			}
		}
		row(table(arcCGs), idx,
			str(g.Name), enum(phaseEnum, g.Phase), gauge(uint64(len(g.Systems))), gauge(uint64(frozen)),
			dateAndTime(g.LastFreeze), dateAndTime(g.LastChange), counter(g.Transitions))
	}
	slices.SortFunc(tv, func(a, b Var) int { return compare(a.OID, b.OID) })
	// Two rows with one index (a doubled name) keep the first.
	tv = slices.CompactFunc(tv, func(a, b Var) bool { return compare(a.OID, b.OID) == 0 })
	return &Snapshot{vars: append(vars, tv...)}
}

// Get is the instance at oid.
func (s *Snapshot) Get(oid OID) (Var, bool) {
	i, found := slices.BinarySearchFunc(s.vars, oid, func(v Var, o OID) int { return compare(v.OID, o) })
	if !found {
		return Var{}, false
	}
	return s.vars[i], true
}

// Next is the first instance after oid.
func (s *Snapshot) Next(oid OID) (Var, bool) {
	i, found := slices.BinarySearchFunc(s.vars, oid, func(v Var, o OID) int { return compare(v.OID, o) })
	if found {
		i++
	}
	if i >= len(s.vars) {
		return Var{}, false
	}
	return s.vars[i], true
}

func compare(a, b OID) int {
	for i := range min(len(a), len(b)) {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// stringIndex is s as a non-IMPLIED string index: its length, then its
// bytes; false if empty or longer than max.
func stringIndex(s string, max int) (OID, bool) {
	if s == "" || len(s) > max {
		return nil, false
	}
	out := make(OID, 0, len(s)+1)
	out = append(out, uint32(len(s)))
	for i := 0; i < len(s); i++ {
		out = append(out, uint32(s[i]))
	}
	return out, true
}

// str is an SnmpAdminString: at most 255 bytes of UTF-8, on one line
// (pass_persist's values are lines).
func str(s string) Var {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	for len(s) > 255 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return Var{Type: TypeString, Value: s}
}

func enum(words []string, w string) Var {
	return Var{Type: TypeInteger, Value: strconv.Itoa(enumValue(words, w))}
}

// truth is a TruthValue: true(1), false(2).
func truth(b bool) Var {
	if b {
		return Var{Type: TypeInteger, Value: "1"}
	}
	return Var{Type: TypeInteger, Value: "2"}
}

// gauge is a Gauge32 or Unsigned32: it sticks at its maximum.
func gauge(n uint64) Var {
	return Var{Type: TypeGauge, Value: strconv.FormatUint(min(n, math.MaxUint32), 10)}
}

// counter is a Counter32: it wraps.
func counter(n uint64) Var {
	return Var{Type: TypeCounter, Value: strconv.FormatUint(n%(1<<32), 10)}
}

// dateAndTime is t as an 11-octet DateAndTime in UTC, or the 8 zero
// octets of "no time" for a zero t, written as pass_persist's octet
// type wants: hex bytes separated by spaces.
func dateAndTime(t time.Time) Var {
	b := make([]byte, 8, 11)
	if !t.IsZero() {
		t = t.UTC()
		y := t.Year()
		if y < 0 || y > 65535 {
			y = 0
		}
		b = []byte{byte(y >> 8), byte(y), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()),
			byte(t.Second()), byte(t.Nanosecond() / 100_000_000), '+', 0, 0}
	}
	h := hex.EncodeToString(b)
	var out strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			out.WriteByte(' ')
		}
		out.WriteString(h[i : i+2])
	}
	return Var{Type: TypeOctet, Value: out.String()}
}
