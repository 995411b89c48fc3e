package state

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/persist"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// recGen makes random session records, valid and invalid, over a small
// world so that names and volumes collide often.
type recGen struct {
	rng *rand.Rand
	at  time.Time
}

func newGen(seed uint64) *recGen { return &recGen{rng: rand.New(rand.NewPCG(seed, 0x9e55)), at: t0} }

func (g *recGen) pick(n int) int { return g.rng.IntN(n) }

func serial(site string, k int) hal.Serial {
	return hal.Serial(fmt.Sprintf("LAB.2107-75%s%04d", site, k+1))
}

// copySet is volume (lss, n) on primary k mirrored to secondary k.
func copySet(k int, lss hal.LSS, n uint8) session.CopySet {
	v := hal.NewVolume(lss, n)
	return session.CopySet{H1: hal.VolumeRef{Serial: serial("P", k), Volume: v}, H2: hal.VolumeRef{Serial: serial("S", k), Volume: v}}
}

func (g *recGen) record(db *session.DB) session.Record {
	g.at = g.at.Add(time.Duration(g.pick(5000)) * time.Millisecond)
	r := session.Record{Version: session.RecordVersion, Session: []string{"A", "B", "C", "D", "bad name"}[g.pick(5)], At: g.at}
	copySets := func() []session.CopySet {
		out := make([]session.CopySet, 1+g.pick(3))
		for i := range out {
			out[i] = copySet(g.pick(2), hal.LSS(0x10+g.pick(2)), uint8(g.pick(4)))
		}
		return out
	}
	switch g.pick(10) {
	case 0:
		r.Kind = session.KindSessionCreated
		r.Create = &session.Create{
			Type: []session.Type{session.MetroMirrorSingleDirection, session.MetroMirrorFailoverFailback, session.MetroMirrorHyperSwap,
				"bogus"}[g.pick(4)],
			CGName: []string{"", "g1", "g2"}[g.pick(3)],
			Policy: []session.Policy{session.HoldIO, session.ReleaseIO}[g.pick(2)],
		}
	case 1:
		r.Kind = session.KindSessionRemoved
	case 2, 3:
		r.Kind = session.KindCopySetsAdded
		r.CopySets = copySets()
	case 4:
		r.Kind = session.KindCopySetsRemoved
		r.CopySets = copySets()
		if s, ok := db.Session(r.Session); ok && len(s.CopySets) > 0 && g.pick(2) == 0 {
			r.CopySets = []session.CopySet{s.CopySets[g.pick(len(s.CopySets))]}
		}
	default:
		r.Kind = session.KindStateChanged
		st := []session.State{session.Defined, session.Preparing, session.Prepared, session.Suspended}[g.pick(4)]
		status := map[session.State]session.Status{session.Defined: session.Inactive, session.Preparing: session.Warning,
			session.Prepared: session.Normal, session.Suspended: session.Severe}[st]
		r.Change = &session.Change{State: st, Status: status, Copying: st == session.Prepared || st == session.Preparing,
			IOHeld: st == session.Suspended && g.pick(2) == 0, Reason: fmt.Sprintf("r%d", g.pick(1000))}
	}
	if s, ok := db.Session(r.Session); ok && g.pick(3) == 0 {
		r.IfRev = s.Rev + uint64(g.pick(2)) // right or one ahead
	}
	return r
}

// regGen makes random registry records, valid and invalid, over a small
// world (two storage systems, two connection names, epochs that go back
// now and then).
type regGen struct {
	rng   *rand.Rand
	epoch hal.Epoch
}

func newRegGen(seed uint64) *regGen {
	return &regGen{rng: rand.New(rand.NewPCG(seed, 0x4e6)), epoch: 1}
}

func (g *regGen) record() registry.Record {
	r := registry.Record{Version: registry.RecordVersion, At: t0, Serial: serial("P", g.rng.IntN(2))}
	name := []string{"direct", "hmc"}[g.rng.IntN(2)]
	switch g.rng.IntN(6) {
	case 0, 1:
		r.Kind = registry.KindStorageAdded
		r.Connection = &registry.Connection{Name: name, Kind: "direct", Addresses: []string{fmt.Sprintf("10.0.0.%d:1750", g.rng.IntN(9))}}
	case 2:
		r.Kind, r.Name = registry.KindConnectionRemoved, name
	case 3:
		r.Kind = registry.KindStorageRemoved
	case 4:
		r.Kind, r.On = registry.KindHeartbeatSet, g.rng.IntN(2) == 0
	default:
		// Mostly up, sometimes down (refused).
		g.epoch = max(g.epoch+hal.Epoch(g.rng.IntN(3))-1, 0)
		r.Kind, r.Epoch = registry.KindEpochSet, g.epoch
	}
	return r
}

func mustOpen(t testing.TB, dir string, opts persist.Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// proposeMixed proposes random session and registry records to s until
// it holds n records (the refused ones are not counted).
func proposeMixed(t testing.TB, s *Store, seed uint64, n uint64) {
	t.Helper()
	ctx := context.Background()
	sg, rg := newGen(seed), newRegGen(seed)
	for s.LastIndex() < n {
		if sg.pick(3) == 0 {
			_ = s.ProposeRegistry(ctx, rg.record())
		} else {
			_ = s.Propose(ctx, sg.record(s.DB()))
		}
	}
}

func snapOf(t testing.TB, db *session.DB) string {
	t.Helper()
	b, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stateOf is the store's published state, encoded: equal states give
// equal bytes.
func stateOf(t testing.TB, s *Store) string {
	t.Helper()
	b, err := (&State{sessions: s.DB(), registry: s.Registry(), tasks: s.Tasks()}).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// modelAt is the state encoding that payloads build from the empty state.
func modelAt(t testing.TB, payloads [][]byte) []byte {
	t.Helper()
	st := Empty()
	for i, p := range payloads {
		r, err := decodeRecord(p)
		if err == nil {
			err = st.Apply(r)
		}
		if err != nil {
			t.Fatalf("model: record %d: %v", i+1, err)
		}
	}
	b, err := st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// journalPayloads reads records from..to of s's journal.
func journalPayloads(t testing.TB, s *Store, from, to uint64) [][]byte {
	t.Helper()
	r, err := s.Journal().ReadFrom(from)
	if err != nil {
		t.Fatalf("ReadFrom(%d): %v", from, err)
	}
	defer r.Close()
	var out [][]byte
	for i := from; i <= to; i++ {
		e, err := r.Next(context.Background())
		if err != nil {
			t.Fatalf("Next at %d: %v", i, err)
		}
		out = append(out, e.Payload)
	}
	return out
}

func encodeTest(t testing.TB, family string, version int, r any) []byte {
	t.Helper()
	b, err := encode(family, version, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
