package session_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// baseDB: A single-direction, Defined, two copy sets; B failover/failback
// in group g, Preparing, one copy set; C in group g, Defined, empty.
func baseDB(t testing.TB) *session.DB {
	t.Helper()
	db := session.NewDB()
	mustApply(t, db,
		created("A", sd, "", session.HoldIO),
		added("A", cs(0, 0x10, 1), cs(1, 0x10, 1)),
		created("B", fofb, "g", session.ReleaseIO),
		added("B", cs(2, 0x20, 1)),
		changed("B", 2, session.Change{State: session.Preparing, Status: session.Warning, Copying: true, Reason: "start"}),
		created("C", fofb, "g", session.HoldIO),
	)
	return db
}

func TestApply(t *testing.T) {
	t.Parallel()
	at := t0.Add(time.Hour)
	tests := []struct {
		name  string
		r     session.Record
		check func(t *testing.T, db *session.DB)
	}{
		{
			name: "create",
			r:    created("D", fofb, "g2", session.ReleaseIO),
			check: func(t *testing.T, db *session.DB) {
				want := &session.Session{Name: "D", Type: fofb, CGName: "g2", Policy: session.ReleaseIO,
					ActiveSite: session.H1, Direction: session.H1ToH2, State: session.Defined, Status: session.Inactive,
					LastChange: t0, Reason: "created", Rev: 1}
				if d := diff(want, mustSession(t, db, "D")); d != "" {
					t.Errorf("created session (-want +got):\n%s", d)
				}
			},
		},
		{
			name: "add copy sets",
			r:    added("A", cs(3, 0x11, 7)),
			check: func(t *testing.T, db *session.DB) {
				s := mustSession(t, db, "A")
				want := []session.CopySet{cs(0, 0x10, 1), cs(1, 0x10, 1), cs(3, 0x11, 7)}
				if d := diff(want, s.CopySets); d != "" {
					t.Errorf("copy sets (-want +got):\n%s", d)
				}
				if s.Rev != 3 {
					t.Errorf("Rev = %d, want 3", s.Rev)
				}
				for _, v := range []hal.VolumeRef{cs(3, 0x11, 7).H1, cs(3, 0x11, 7).H2} {
					if owner, ok := db.Owner(v); !ok || owner != "A" {
						t.Errorf("Owner(%s) = %q, %t, want A", v, owner, ok)
					}
				}
			},
		},
		{
			name: "remove a copy set",
			r:    removedCS("A", cs(0, 0x10, 1)),
			check: func(t *testing.T, db *session.DB) {
				if d := diff([]session.CopySet{cs(1, 0x10, 1)}, mustSession(t, db, "A").CopySets); d != "" {
					t.Errorf("copy sets (-want +got):\n%s", d)
				}
				if _, ok := db.Owner(cs(0, 0x10, 1).H2); ok {
					t.Error("removed volume still indexed")
				}
				mustApply(t, db, added("C", cs(0, 0x10, 1))) // free for another session
			},
		},
		{
			name: "remove every copy set",
			r:    removedCS("A", cs(1, 0x10, 1), cs(0, 0x10, 1)),
			check: func(t *testing.T, db *session.DB) {
				if got := mustSession(t, db, "A").CopySets; got != nil {
					t.Errorf("copy sets = %v, want nil", got)
				}
			},
		},
		{
			name: "remove a session",
			r:    removed("A"),
			check: func(t *testing.T, db *session.DB) {
				if _, ok := db.Session("A"); ok {
					t.Error("A still there")
				}
				mustApply(t, db, created("A", fofb, "", session.HoldIO), added("A", cs(0, 0x10, 1), cs(1, 0x10, 1)))
			},
		},
		{
			name: "state change",
			r: func() session.Record {
				r := changed("B", 0, session.Change{State: session.Prepared, Status: session.Normal, Copying: true, Reason: "every pair full-duplex"})
				r.At = at
				return r
			}(),
			check: func(t *testing.T, db *session.DB) {
				s := mustSession(t, db, "B")
				want := view{State: session.Prepared, Status: session.Normal, Copying: true, Direction: session.H1ToH2, ActiveSite: session.H1}
				if d := diff(want, viewOf(s)); d != "" {
					t.Errorf("state (-want +got):\n%s", d)
				}
				if s.Rev != 4 || !s.LastChange.Equal(at) || s.Reason != "every pair full-duplex" {
					t.Errorf("Rev %d, LastChange %v, Reason %q", s.Rev, s.LastChange, s.Reason)
				}
			},
		},
		{
			name: "state change at the expected revision",
			r:    changed("B", 3, session.Change{State: session.Suspending, Status: session.Warning, Copying: true, IOHeld: true, Reason: "freeze"}),
			check: func(t *testing.T, db *session.DB) {
				if s := mustSession(t, db, "B"); s.State != session.Suspending {
					t.Errorf("State = %s", s.State)
				}
			},
		},
		{
			name: "state change of direction and site",
			r: changed("B", 0, session.Change{State: session.Preparing, Status: session.Warning,
				Direction: session.H2ToH1, ActiveSite: session.H2, Reason: "start-h2-h1 issued"}),
			check: func(t *testing.T, db *session.DB) {
				s := mustSession(t, db, "B")
				if s.Direction != session.H2ToH1 || s.ActiveSite != session.H2 {
					t.Errorf("Direction %s, ActiveSite %s", s.Direction, s.ActiveSite)
				}
				want := []hal.LSSPair{cs(2, 0x20, 1).Pair(session.H2ToH1).LSSPair()}
				if d := diff(want, s.LSSPairs()); d != "" {
					t.Errorf("LSSPairs (-want +got):\n%s", d)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := baseDB(t)
			if err := db.Check(tt.r); err != nil {
				t.Fatalf("Check: %v", err)
			}
			if err := db.Apply(tt.r); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			tt.check(t, db)
		})
	}
}

func TestApplyRefuses(t *testing.T) {
	t.Parallel()
	rc := func(f func(*session.Record), r session.Record) session.Record { f(&r); return r }
	ch := func(name string, c session.Change) session.Record { return changed(name, 0, c) }
	inB := func(c session.Change) session.Record { return ch("B", c) } // B is failover/failback, Preparing H1->H2
	susp := session.Change{State: session.Suspended, Status: session.Severe}
	tests := []struct {
		name string
		r    session.Record
		want error
	}{
		{"version 0", rc(func(r *session.Record) { r.Version = 0 }, created("D", sd, "", session.HoldIO)), session.ErrInvalid},
		{"version 2", rc(func(r *session.Record) { r.Version = 2 }, removed("C")), session.ErrInvalid},
		{"no time", rc(func(r *session.Record) { r.At = time.Time{} }, removed("C")), session.ErrInvalid},
		{"unknown kind", rc(func(r *session.Record) { r.Kind = "session-renamed" }, removed("C")), session.ErrInvalid},
		{"create with a change", rc(func(r *session.Record) { r.Change = &session.Change{} }, created("D", sd, "", session.HoldIO)), session.ErrInvalid},
		{"create without payload", rec(session.KindSessionCreated, "D"), session.ErrInvalid},
		{"create with if_rev", rc(func(r *session.Record) { r.IfRev = 1 }, created("D", sd, "", session.HoldIO)), session.ErrInvalid},
		{"create existing", created("A", sd, "", session.HoldIO), session.ErrExists},
		{"create empty name", created("", sd, "", session.HoldIO), session.ErrInvalid},
		{"create name with space", created("a b", sd, "", session.HoldIO), session.ErrInvalid},
		{"create name starting with dash", created("-a", sd, "", session.HoldIO), session.ErrInvalid},
		{"create name too long", created(strings.Repeat("x", 65), sd, "", session.HoldIO), session.ErrInvalid},
		{"create bad group name", created("D", sd, "g/1", session.HoldIO), session.ErrInvalid},
		{"create unknown type", created("D", "global-mirror", "", session.HoldIO), session.ErrInvalid},
		{"create unknown policy", created("D", sd, "", "hold-forever"), session.ErrInvalid},
		{"remove with copy sets", rc(func(r *session.Record) { r.CopySets = []session.CopySet{cs(0, 0x10, 1)} }, removed("C")), session.ErrInvalid},
		{"remove unknown", removed("Z"), session.ErrUnknownSession},
		{"change unknown", ch("Z", susp), session.ErrUnknownSession},
		{"add to unknown", added("Z", cs(5, 0x10, 1)), session.ErrUnknownSession},
		{"stale revision", changed("B", 2, session.Change{State: session.Prepared, Status: session.Normal, Copying: true}), session.ErrConflict},
		{"future revision", rc(func(r *session.Record) { r.IfRev = 9 }, added("C", cs(5, 0x10, 1))), session.ErrConflict},
		{"add nothing", added("C"), session.ErrInvalid},
		{"add to a running session", added("B", cs(5, 0x10, 1)), session.ErrNotDefined},
		{"add a volume of another session", added("C", session.CopySet{H1: cs(0, 0x10, 1).H1, H2: cs(5, 0x10, 1).H2}), session.ErrVolumeInUse},
		{"add a target of another session as source", added("C", session.CopySet{H1: cs(2, 0x20, 1).H2, H2: cs(5, 0x10, 1).H2}), session.ErrVolumeInUse},
		{"add a volume of the same session", added("A", session.CopySet{H1: cs(5, 0x10, 1).H1, H2: cs(1, 0x10, 1).H2}), session.ErrVolumeInUse},
		{"add a volume twice", added("C", cs(5, 0x10, 1), session.CopySet{H1: cs(5, 0x10, 1).H1, H2: cs(6, 0x10, 1).H2}), session.ErrVolumeInUse},
		{"add same storage system", added("C", session.CopySet{H1: cs(5, 0x10, 1).H1, H2: cs(5, 0x10, 2).H1}), session.ErrInvalid},
		{"add no serial", added("C", session.CopySet{H1: hal.VolumeRef{Volume: 0x1001}, H2: cs(5, 0x10, 1).H2}), session.ErrInvalid},
		{"add LSS FF", added("C", session.CopySet{H1: hal.VolumeRef{Serial: prim(5), Volume: 0xFF01}, H2: cs(5, 0x10, 1).H2}), session.ErrInvalid},
		{"add one good one bad", added("C", cs(5, 0x10, 1), cs(0, 0x10, 1)), session.ErrVolumeInUse},
		{"remove absent copy set", removedCS("A", cs(5, 0x10, 1)), session.ErrNoCopySet},
		{"remove a copy set twice", removedCS("A", cs(0, 0x10, 1), cs(0, 0x10, 1)), session.ErrNoCopySet},
		{"remove a crossed copy set", removedCS("A", session.CopySet{H1: cs(0, 0x10, 1).H1, H2: cs(1, 0x10, 1).H2}), session.ErrNoCopySet},
		{"remove another session's copy set", removedCS("A", cs(2, 0x20, 1)), session.ErrNoCopySet},
		{"remove copy set of a running session", removedCS("B", cs(2, 0x20, 1)), session.ErrNotDefined},
		{"remove a running session", removed("B"), session.ErrNotDefined},
		{"change without payload", rec(session.KindStateChanged, "B"), session.ErrInvalid},
		{"unknown state", inB(session.Change{State: 99, Status: session.Warning}), session.ErrInvalid},
		{"unknown status", inB(session.Change{State: session.Preparing, Status: 9}), session.ErrInvalid},
		{"unknown direction", inB(session.Change{State: session.Preparing, Status: session.Warning, Direction: "h3-h1"}), session.ErrInvalid},
		{"unknown site", inB(session.Change{State: session.Preparing, Status: session.Warning, ActiveSite: "H3"}), session.ErrInvalid},
		{"recoverable while preparing", inB(session.Change{State: session.Preparing, Status: session.Warning, Recoverable: true}), session.ErrInvalid},
		{"recoverable while prepared", inB(session.Change{State: session.Prepared, Status: session.Normal, Recoverable: true}), session.ErrInvalid},
		{"recoverable while suspending", inB(session.Change{State: session.Suspending, Status: session.Warning, Recoverable: true}), session.ErrInvalid},
		{"recoverable after a partial freeze", inB(session.Change{State: session.SuspendedPartial, Status: session.Severe, Recoverable: true}), session.ErrInvalid},
		{"recoverable while copying", inB(session.Change{State: session.Suspended, Status: session.Severe, Recoverable: true, Copying: true}), session.ErrInvalid},
		{"defined but normal", inB(session.Change{State: session.Defined, Status: session.Normal}), session.ErrInvalid},
		{"inactive but preparing", inB(session.Change{State: session.Preparing, Status: session.Inactive}), session.ErrInvalid},
		{"defined holding I/O", inB(session.Change{State: session.Defined, Status: session.Inactive, IOHeld: true}), session.ErrInvalid},
		{"defined in error", inB(session.Change{State: session.Defined, Status: session.Inactive, Error: true}), session.ErrInvalid},
		{"from_prepared outside Suspending", inB(session.Change{State: session.Suspended, Status: session.Severe, FromPrepared: true}), session.ErrInvalid},
		{"production not at the source", inB(session.Change{State: session.Preparing, Status: session.Warning, ActiveSite: session.H2}), session.ErrInvalid},
		{"target available with production at the source", inB(session.Change{State: session.TargetAvailable, Status: session.Normal}), session.ErrInvalid},
		{"single direction copying back", ch("A", session.Change{State: session.Defined, Status: session.Inactive, Direction: session.H2ToH1}), session.ErrInvalid},
		{"single direction production at H2", ch("A", session.Change{State: session.Defined, Status: session.Inactive, ActiveSite: session.H2}), session.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := baseDB(t)
			before := snap(t, db)
			if err := db.Check(tt.r); !errors.Is(err, tt.want) {
				t.Errorf("Check = %v, want %v", err, tt.want)
			}
			err := db.Apply(tt.r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Apply = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "session: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if d := diff(before, snap(t, db)); d != "" {
				t.Errorf("refused record changed the DB (-want +got):\n%s", d)
			}
			// The index must be unchanged too: what was free is still free.
			for _, v := range []hal.VolumeRef{cs(5, 0x10, 1).H1, cs(5, 0x10, 1).H2, cs(6, 0x10, 1).H2} {
				if owner, ok := db.Owner(v); ok {
					t.Errorf("refused record left %s owned by %q", v, owner)
				}
			}
		})
	}
}

func TestQueries(t *testing.T) {
	t.Parallel()
	db := session.NewDB()
	mustApply(t, db,
		created("A", fofb, "g", session.HoldIO),
		// Two copy sets in the same LSS pair, one in another LSS, one on another system.
		added("A", cs(1, 0x11, 2), cs(0, 0x10, 1), cs(0, 0x10, 2), cs(0, 0x12, 1)),
		created("B", fofb, "g", session.HoldIO),
		created("C", sd, "", session.HoldIO),
		created("D", sd, "h", session.HoldIO),
	)
	a := mustSession(t, db, "A")
	lss := func(k int, l hal.LSS, target bool) hal.LSSRef {
		if target {
			return hal.LSSRef{Serial: sec(k), LSS: l}
		}
		return hal.LSSRef{Serial: prim(k), LSS: l}
	}
	wantPairs := []hal.LSSPair{
		{Source: lss(0, 0x10, false), Target: lss(0, 0x10, true)},
		{Source: lss(0, 0x12, false), Target: lss(0, 0x12, true)},
		{Source: lss(1, 0x11, false), Target: lss(1, 0x11, true)},
	}
	if d := diff(wantPairs, a.LSSPairs()); d != "" {
		t.Errorf("LSSPairs (-want +got):\n%s", d)
	}
	if d := diff([]hal.Serial{prim(0), prim(1), sec(0), sec(1)}, a.Serials()); d != "" {
		t.Errorf("Serials (-want +got):\n%s", d)
	}
	if got := a.VolumePairs(); len(got) != 4 || got[0] != cs(1, 0x11, 2).Pair(session.H1ToH2) {
		t.Errorf("VolumePairs = %v, want copy-set order H1->H2", got)
	}
	a.Direction = session.H2ToH1
	var reversed []hal.LSSPair
	for _, p := range wantPairs {
		reversed = append(reversed, hal.LSSPair{Source: p.Target, Target: p.Source})
	}
	// Sorted by source: the secondaries' serials, then LSS.
	if d := diff([]hal.LSSPair{reversed[0], reversed[1], reversed[2]}, a.LSSPairs()); d != "" {
		t.Errorf("LSSPairs H2->H1 (-want +got):\n%s", d)
	}

	names := func(ss []*session.Session) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return out
	}
	tests := []struct {
		name string
		got  []*session.Session
		want []string
	}{
		{"all", db.Sessions(), []string{"A", "B", "C", "D"}},
		{"group g", db.ByCGName("g"), []string{"A", "B"}},
		{"no group is no scope", db.ByCGName(""), nil},
		{"scope of A", db.Scope("A"), []string{"A", "B"}},
		{"scope without group", db.Scope("C"), []string{"C"}},
		{"scope of a lone group", db.Scope("D"), []string{"D"}},
		{"scope of unknown", db.Scope("Z"), nil},
	}
	for _, tt := range tests {
		if d := diff(tt.want, names(tt.got)); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}

	// Returned sessions are copies.
	a = mustSession(t, db, "A")
	a.State = session.Prepared
	a.CopySets[0] = cs(9, 0x10, 1)
	if d := diff(cs(1, 0x11, 2), mustSession(t, db, "A").CopySets[0]); d != "" || mustSession(t, db, "A").State != session.Defined {
		t.Errorf("changing a returned session changed the DB (-want +got):\n%s", d)
	}
}

func TestCloneIsIndependent(t *testing.T) {
	t.Parallel()
	db := baseDB(t)
	before := snap(t, db)
	c := db.Clone()
	mustApply(t, c, added("C", cs(5, 0x10, 1)), removed("A"),
		changed("B", 0, session.Change{State: session.Prepared, Status: session.Normal, Copying: true}))
	if d := diff(before, snap(t, db)); d != "" {
		t.Errorf("applying to the clone changed the original (-want +got):\n%s", d)
	}
	if _, ok := db.Owner(cs(5, 0x10, 1).H1); ok {
		t.Error("the clone's volume index leaked into the original")
	}
	mustApply(t, db, added("C", cs(6, 0x10, 1)))
	if owner, _ := c.Owner(cs(6, 0x10, 1).H2); owner != "" {
		t.Errorf("the original's volume index leaked into the clone: %q", owner)
	}
}

func TestZeroDB(t *testing.T) {
	t.Parallel()
	var db session.DB
	mustApply(t, &db, created("A", sd, "", session.HoldIO), added("A", cs(0, 0x10, 1)))
	if owner, ok := db.Owner(cs(0, 0x10, 1).H1); !ok || owner != "A" {
		t.Errorf("Owner = %q, %t", owner, ok)
	}
	if got := snap(t, session.NewDB()); got != `{"v":1,"sessions":[]}` {
		t.Errorf("empty snapshot = %s", got)
	}
}

func TestSnapshotRestore(t *testing.T) {
	t.Parallel()
	db := baseDB(t)
	mustApply(t, db, changed("B", 0, session.Change{State: session.Suspended, Status: session.Severe, Recoverable: true, IOHeld: true, Reason: "freeze"}))
	b, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	got, err := session.Restore(b)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if d := diff(db.Sessions(), got.Sessions()); d != "" {
		t.Errorf("restored sessions (-want +got):\n%s", d)
	}
	// The index is rebuilt: the same rule applies after a restore.
	if err := got.Apply(added("C", cs(0, 0x10, 1))); !errors.Is(err, session.ErrVolumeInUse) {
		t.Errorf("restored DB accepts a used volume: %v", err)
	}
	// And the restored DB continues like the original.
	next := changed("B", 0, session.Change{State: session.Recovering, Status: session.Warning, Recoverable: true})
	mustApply(t, db, next)
	mustApply(t, got, next)
	if d := diff(snap(t, db), snap(t, got)); d != "" {
		t.Errorf("restored DB diverges (-want +got):\n%s", d)
	}

	good := string(b)
	bad := []struct {
		name string
		b    string
	}{
		{"not JSON", "{"},
		{"version", strings.Replace(good, `"v":1`, `"v":2`, 1)},
		{"unknown state", strings.Replace(good, `"state":"suspended"`, `"state":"frozen"`, 1)},
		{"invariant", strings.Replace(good, `"state":"suspended"`, `"state":"prepared"`, 1)},
		{"volume twice", strings.Replace(good, string(prim(2))+"/2001", string(prim(0))+"/1001", 1)},
		{"volume twice in a session", strings.Replace(good, string(prim(1))+"/1001", string(prim(0))+"/1001", 1)},
		{"copy set on one system", strings.Replace(good, string(sec(2))+"/2001", string(prim(2))+"/2002", 1)},
		{"session twice", strings.Replace(good, `"name":"B"`, `"name":"A"`, 1)},
		{"bad name", strings.Replace(good, `"name":"B"`, `"name":"B B"`, 1)},
		{"bad volume", strings.Replace(good, string(prim(2))+"/2001", string(prim(2))+"/20", 1)},
		{"null session", `{"v":1,"sessions":[null]}`},
		{"no revision", strings.Replace(good, `"rev":1`, `"rev":0`, 1)},
	}
	for _, tt := range bad {
		if tt.b == good {
			t.Fatalf("%s: the corruption did not apply", tt.name)
		}
		if _, err := session.Restore([]byte(tt.b)); err == nil {
			t.Errorf("Restore(%s) succeeded", tt.name)
		}
	}
}
