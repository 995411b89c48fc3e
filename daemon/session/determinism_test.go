package session_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// gen makes random records, valid and invalid, over a small world so that
// names and volumes collide often.
type gen struct {
	rng *rand.Rand
	at  time.Time
}

func (g *gen) pick(n int) int { return g.rng.IntN(n) }

func (g *gen) name() string { return []string{"A", "B", "C", "D", "bad name"}[g.pick(5)] }

func (g *gen) copySet() session.CopySet {
	vol := func(site int) hal.VolumeRef {
		serial := []hal.Serial{prim(0), prim(1), sec(0), sec(1)}[2*site+g.pick(2)]
		if g.pick(50) == 0 {
			serial = ""
		}
		return hal.VolumeRef{Serial: serial, Volume: hal.NewVolume(hal.LSS(0x10+g.pick(2)), uint8(g.pick(3)))}
	}
	c := session.CopySet{H1: vol(0), H2: vol(1)}
	if g.pick(20) == 0 {
		c.H2 = c.H1 // same system: invalid
	}
	return c
}

func (g *gen) copySets() []session.CopySet {
	out := make([]session.CopySet, 1+g.pick(3))
	for i := range out {
		out[i] = g.copySet()
	}
	return out
}

// change is mostly coherent (a status that fits the state, rare flags) so
// that a fair share passes the invariants, and sometimes anything.
func (g *gen) change() session.Change {
	st := session.State(g.pick(8))
	status := map[session.State]session.Status{
		session.Defined: session.Inactive, session.Preparing: session.Warning, session.Prepared: session.Normal,
		session.Suspending: session.Warning, session.Suspended: session.Severe, session.SuspendedPartial: session.Severe,
		session.Recovering: session.Warning, session.TargetAvailable: session.Normal,
	}[st]
	if g.pick(10) == 0 {
		status = session.Status(g.pick(4))
	}
	c := session.Change{
		State: st, Status: status,
		Recoverable: g.pick(3) == 0, Copying: g.pick(3) == 0, Error: g.pick(5) == 0, IOHeld: g.pick(4) == 0,
		FromPrepared: st == session.Suspending && g.pick(2) == 0,
		Reason:       fmt.Sprintf("r%d", g.pick(1000)),
	}
	if g.pick(3) == 0 {
		c.Direction = []session.Direction{session.H1ToH2, session.H2ToH1, "sideways"}[g.pick(3)]
	}
	if g.pick(3) == 0 {
		c.ActiveSite = []session.Site{session.H1, session.H2, "H3"}[g.pick(3)]
	}
	return c
}

func (g *gen) record(db *session.DB) session.Record {
	g.at = g.at.Add(time.Duration(g.pick(5000)) * time.Millisecond)
	r := session.Record{Version: session.RecordVersion, Session: g.name(), At: g.at}
	switch g.pick(10) {
	case 0:
		r.Kind = session.KindSessionCreated
		r.Create = &session.Create{
			Type:   []session.Type{sd, fofb, "bogus"}[g.pick(3)],
			CGName: []string{"", "g1", "g2", "-bad"}[g.pick(4)],
			Policy: []session.Policy{session.HoldIO, session.ReleaseIO, "bogus"}[g.pick(3)],
		}
	case 1:
		r.Kind = session.KindSessionRemoved
	case 2, 3:
		r.Kind = session.KindCopySetsAdded
		r.CopySets = g.copySets()
	case 4:
		r.Kind = session.KindCopySetsRemoved
		r.CopySets = g.copySets()
		if s, ok := db.Session(r.Session); ok && len(s.CopySets) > 0 && g.pick(2) == 0 {
			r.CopySets = []session.CopySet{s.CopySets[g.pick(len(s.CopySets))]}
		}
	default:
		r.Kind = session.KindStateChanged
		c := g.change()
		r.Change = &c
	}
	if s, ok := db.Session(r.Session); ok && g.pick(3) == 0 {
		r.IfRev = s.Rev + uint64(g.pick(2)) // right or one ahead
	}
	switch g.pick(100) { // rare malformed records
	case 0:
		r.Version = 2
	case 1:
		r.At = time.Time{}
	case 2:
		r.Kind = "bogus"
	}
	return r
}

// TestApplyDeterministic applies random record streams to a DB, to a
// second DB through the JSON encoding (the journal's path), and to a
// clone taken midway, and replays the accepted records alone into a
// fourth: all must agree on every result and end identical.
func TestApplyDeterministic(t *testing.T) {
	t.Parallel()
	for seed := range uint64(16) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			g := &gen{rng: rand.New(rand.NewPCG(seed, 0x5e55)), at: t0}
			db1, db2 := session.NewDB(), session.NewDB()
			var db3 *session.DB
			var accepted []session.Record
			var ok, refused, changes int
			for i := range 3000 {
				r := g.record(db1)
				if i == 1000 {
					db3 = db1.Clone()
				}
				before := snap(t, db1)
				err1 := db1.Apply(r)

				b, err := json.Marshal(r)
				if err != nil {
					t.Fatalf("record %d: Marshal: %v", i, err)
				}
				var r2 session.Record
				if err := json.Unmarshal(b, &r2); err != nil {
					t.Fatalf("record %d: Unmarshal(%s): %v", i, b, err)
				}
				err2 := db2.Apply(r2)
				if fmt.Sprint(err1) != fmt.Sprint(err2) {
					t.Fatalf("record %d %s: direct %v, through JSON %v", i, b, err1, err2)
				}
				if db3 != nil {
					if err3 := db3.Apply(r); fmt.Sprint(err1) != fmt.Sprint(err3) {
						t.Fatalf("record %d %s: original %v, clone %v", i, b, err1, err3)
					}
				}
				if err1 != nil {
					refused++
					if after := snap(t, db1); after != before {
						t.Fatalf("record %d %s refused (%v) but changed the DB", i, b, err1)
					}
					continue
				}
				ok++
				if r.Kind == session.KindStateChanged {
					changes++
				}
				accepted = append(accepted, r)
			}
			db4 := session.NewDB()
			mustApply(t, db4, accepted...)
			want := snap(t, db1)
			for name, db := range map[string]*session.DB{"through JSON": db2, "clone": db3, "replay": db4} {
				if d := diff(want, snap(t, db)); d != "" {
					t.Errorf("%s differs (-want +got):\n%s", name, d)
				}
			}
			restored, err := session.Restore([]byte(want))
			if err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if d := diff(want, snap(t, restored)); d != "" {
				t.Errorf("restored snapshot differs (-want +got):\n%s", d)
			}
			t.Logf("%d accepted (%d state changes), %d refused, %d sessions at the end", ok, changes, refused, db1.Len())
			// The stream must exercise both sides to prove anything.
			if ok < 100 || refused < 100 || changes < 30 {
				t.Errorf("weak stream: %d accepted (%d state changes), %d refused", ok, changes, refused)
			}
		})
	}
}

// TestMemoryStoreMatchesDB runs a random stream through a MemoryStore:
// it accepts exactly what DB.Apply accepts, stores only that, and its
// records rebuild its state.
func TestMemoryStoreMatchesDB(t *testing.T) {
	t.Parallel()
	g := &gen{rng: rand.New(rand.NewPCG(7, 7)), at: t0}
	store := session.NewMemoryStore()
	db := session.NewDB()
	ctx := t.Context()
	n := 0
	for i := range 2000 {
		r := g.record(db)
		errDB := db.Apply(r)
		errStore := store.Propose(ctx, r)
		if fmt.Sprint(errDB) != fmt.Sprint(errStore) {
			t.Fatalf("record %d: DB %v, store %v", i, errDB, errStore)
		}
		if errDB == nil {
			n++
		}
	}
	records := store.Records()
	if len(records) != n {
		t.Errorf("store kept %d records, %d were accepted", len(records), n)
	}
	replay := session.NewDB()
	mustApply(t, replay, records...)
	want := snap(t, db)
	if d := diff(want, snap(t, store.DB())); d != "" {
		t.Errorf("store state (-want +got):\n%s", d)
	}
	if d := diff(want, snap(t, replay)); d != "" {
		t.Errorf("replayed store records (-want +got):\n%s", d)
	}
}
