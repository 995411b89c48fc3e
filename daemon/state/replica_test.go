package state

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/persist"
)

// primary is a store with random mixed records: the active side of the
// tests below.
func primary(t testing.TB, seed uint64, n uint64) *Store {
	t.Helper()
	a := mustOpen(t, t.TempDir(), persist.Options{SegmentSize: 4096, SnapshotEvery: -1})
	t.Cleanup(func() { a.Close() })
	proposeMixed(t, a, seed, n)
	return a
}

// replica returns a standby store holding the active's records 1..n.
func replica(t testing.TB, a *Store, n uint64, opts persist.Options) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	b := mustOpen(t, dir, opts)
	t.Cleanup(func() { b.Close() })
	if n > 0 {
		if err := b.AppendReplicated(context.Background(), 1, journalPayloads(t, a, 1, n)); err != nil {
			t.Fatal(err)
		}
	}
	return b, dir
}

// TestReplicateStore: a standby fed the active's journal (both families)
// in batches of random sizes builds the same state, also after a reopen.
func TestReplicateStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := primary(t, 21, 400)
	if reg := a.Registry(); len(reg.Serials()) == 0 && reg.Epoch() <= 1 && !reg.Heartbeat() {
		t.Fatalf("the active's registry is still empty: the test would not cover the family")
	}
	if a.DB().Len() == 0 {
		t.Fatalf("the active holds no session")
	}
	all := journalPayloads(t, a, 1, a.LastIndex())
	bdir := t.TempDir()
	bopts := persist.Options{SegmentSize: 2048, SnapshotEvery: 60, SnapshotsKept: 1}
	b := mustOpen(t, bdir, bopts)
	rng := rand.New(rand.NewPCG(5, 5))
	for next := 0; next < len(all); {
		n := min(1+rng.IntN(40), len(all)-next)
		if err := b.AppendReplicated(ctx, uint64(next+1), all[next:next+n]); err != nil {
			t.Fatalf("AppendReplicated(%d, %d records): %v", next+1, n, err)
		}
		next += n
	}
	want := stateOf(t, a)
	if got := stateOf(t, b); got != want {
		t.Fatalf("standby state differs (-want +got):\n-%s\n+%s", want, got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = mustOpen(t, bdir, bopts)
	defer b.Close()
	if got := stateOf(t, b); got != want || b.LastIndex() != a.LastIndex() {
		t.Fatalf("after reopen: LastIndex %d (want %d), state equal: %t", b.LastIndex(), a.LastIndex(), got == want)
	}
}

// TestAppendReplicatedBadPayload: a payload that does not decode or that
// the state refuses, in the middle of a batch, keeps the records before
// it (durable), journals nothing from it on, names its index, and leaves
// the store ready for the next batch from that index.
func TestAppendReplicatedBadPayload(t *testing.T) {
	t.Parallel()
	a := primary(t, 8, 30)
	all := journalPayloads(t, a, 1, 30)
	epochDown, err := encode(FamilyRegistry, registryRecordFormat,
		registry.Record{Version: registry.RecordVersion, Kind: registry.KindEpochSet, Epoch: 0})
	if err != nil {
		t.Fatal(err)
	}
	epochUp, err := encode(FamilyRegistry, registryRecordFormat,
		registry.Record{Version: registry.RecordVersion, Kind: registry.KindEpochSet, Epoch: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	removeNobody, err := encode(FamilySession, sessionRecordFormat,
		session.Record{Version: session.RecordVersion, Kind: session.KindSessionRemoved, Session: "nobody", At: t0})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload []byte
		at      int // its place in the batch of records 11-20
		want    error
	}{
		{"not json", []byte("\x00garbage"), 4, ErrUnknownRecord},
		{"unknown family", []byte(`{"type":"heartbeat","v":1,"record":{}}`), 4, ErrUnknownRecord},
		{"newer version", []byte(`{"type":"session","v":2,"record":{}}`), 4, ErrUnknownRecord},
		{"malformed session record", []byte(`{"type":"session","v":1,"record":"x"}`), 4, persist.ErrCorrupt},
		{"session refuses", removeNobody, 4, session.ErrUnknownSession},
		{"registry refuses", epochDown, 4, registry.ErrInvalid},
		{"first of the batch", []byte("{}"), 0, ErrUnknownRecord},
		{"last of the batch", removeNobody, 9, session.ErrUnknownSession},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			opts := persist.Options{SnapshotEvery: -1}
			b, dir := replica(t, a, 10, opts)
			batch := slices.Clone(all[10:20])
			batch[tc.at] = tc.payload
			bad := uint64(11 + tc.at)
			err := b.AppendReplicated(ctx, 11, batch)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("record %d:", bad)) {
				t.Fatalf("AppendReplicated = %v, want %v naming record %d", err, tc.want, bad)
			}
			if b.LastIndex() != bad-1 || b.Journal().LastIndex() != bad-1 {
				t.Fatalf("LastIndex %d, journal %d; want %d", b.LastIndex(), b.Journal().LastIndex(), bad-1)
			}
			if got, want := stateOf(t, b), string(modelAt(t, all[:bad-1])); got != want {
				t.Fatalf("state after the refusal is not the state at %d", bad-1)
			}
			// The store goes on from the bad record's index.
			if err := b.AppendReplicated(ctx, bad+1, all[bad:20]); !errors.Is(err, persist.ErrNotNext) {
				t.Errorf("records after a gap = %v, want ErrNotNext", err)
			}
			if err := b.AppendReplicated(ctx, bad, all[bad-1:20]); err != nil {
				t.Fatalf("the correct batch after the refusal: %v", err)
			}
			want := string(modelAt(t, all[:20]))
			if got := stateOf(t, b); got != want {
				t.Fatalf("state at 20 differs from the active's")
			}
			b.Close()
			b = mustOpen(t, dir, opts)
			defer b.Close()
			if got := stateOf(t, b); got != want || b.LastIndex() != 20 {
				t.Fatalf("after reopen: LastIndex %d, state equal %t", b.LastIndex(), got == want)
			}
		})
	}
	// A record a state accepts but another refuses: the refusal is the
	// standby's state speaking (it differs from the active's).
	t.Run("accepted only from a lower epoch", func(t *testing.T) {
		t.Parallel()
		b, _ := replica(t, a, 0, persist.Options{SnapshotEvery: -1})
		err := b.AppendReplicated(context.Background(), 1, [][]byte{epochUp, epochDown})
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "record 2:") || b.LastIndex() != 1 {
			t.Fatalf("AppendReplicated = %v, last %d", err, b.LastIndex())
		}
		if b.Registry().Epoch() != 1<<40 {
			t.Errorf("epoch %d, want the first record's", b.Registry().Epoch())
		}
	})
}

// TestInstallSnapshotRefused: bytes that do not load as a State are
// refused with ErrBadState before anything changes; the store goes on.
func TestInstallSnapshotRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := primary(t, 4, 30)
	valid := []byte(stateOf(t, a))
	opts := persist.Options{SnapshotEvery: -1}
	b, _ := replica(t, a, 20, opts)
	want := stateOf(t, b)
	for _, tc := range []struct {
		name  string
		index uint64
		state []byte
	}{
		{"garbage", 30, []byte("\x89PNG garbage")},
		{"truncated", 30, valid[:len(valid)/2]},
		{"trailing data", 30, append(slices.Clone(valid), " {}"...)},
		{"newer state version", 30, []byte(`{"v":2,"session":{"v":1,"sessions":[]}}`)},
		{"unknown family", 30, []byte(`{"v":1,"session":{"v":1,"sessions":[]},"heartbeat":{}}`)},
		{"no sessions", 30, []byte(`{"v":1}`)},
		{"sessions do not load", 30, []byte(`{"v":1,"session":{"v":1,"sessions":[null]}}`)},
		{"empty state after records", 30, nil},
	} {
		err := b.InstallSnapshot(ctx, tc.index, tc.state)
		if !errors.Is(err, persist.ErrBadState) {
			t.Errorf("%s: InstallSnapshot = %v, want ErrBadState", tc.name, err)
		}
		if b.LastIndex() != 20 || stateOf(t, b) != want {
			t.Fatalf("%s: a refused install changed the store (last %d)", tc.name, b.LastIndex())
		}
	}
	if err := b.AppendReplicated(ctx, 21, journalPayloads(t, a, 21, 30)); err != nil {
		t.Fatalf("the store after refused installs: %v", err)
	}
	if stateOf(t, b) != stateOf(t, a) {
		t.Errorf("state differs from the active's")
	}
}

// checkAppendReplicated is FuzzAppendReplicated's property: a store at
// record 4 is given records 5.. with payload inserted at place at among
// valid ones. Nothing panics; the call accepts exactly the records a
// state accepts in order, from the first, and names the first it
// refuses; the store's state is the model's, also after a reopen; and
// the store accepts the next record.
// It returns whether the call refused a record.
func checkAppendReplicated(t *testing.T, payload []byte, at int) (refused bool) {
	base := replicaBase(t)
	batch := slices.Insert(slices.Clone(base[4:]), at%(len(base)-3), payload)

	dir := t.TempDir()
	opts := persist.Options{SnapshotEvery: -1}
	s := mustOpen(t, dir, opts)
	defer func() { s.Close() }()
	ctx := context.Background()
	if err := s.AppendReplicated(ctx, 1, base[:4]); err != nil {
		t.Fatal(err)
	}
	model, err := Load(modelAt(t, base[:4]))
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for _, p := range batch {
		if len(p) > persist.MaxPayload {
			break
		}
		r, err := decodeRecord(p)
		if err == nil {
			err = model.Check(r)
		}
		if err != nil {
			break
		}
		if err := model.Apply(r); err != nil {
			t.Fatalf("model: checked, then refused: %v", err)
		}
		accepted++
	}
	want, err := model.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	err = s.AppendReplicated(ctx, 5, batch)
	last := uint64(4 + accepted)
	switch {
	case accepted == len(batch) && err != nil:
		t.Fatalf("AppendReplicated refused a batch the model accepts: %v", err)
	case accepted < len(batch) && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("record %d:", last+1))):
		t.Fatalf("AppendReplicated = %v, want an error naming record %d", err, last+1)
	}
	if s.LastIndex() != last || stateOf(t, s) != string(want) {
		t.Fatalf("after the call: LastIndex %d (want %d), state is the model's: %t", s.LastIndex(), last, stateOf(t, s) == string(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, opts)
	if s.LastIndex() != last || stateOf(t, s) != string(want) {
		t.Fatalf("after reopen: LastIndex %d (want %d), state is the model's: %t", s.LastIndex(), last, stateOf(t, s) == string(want))
	}
	next := encodeTest(t, FamilyRegistry, registryRecordFormat, registry.Record{Version: registry.RecordVersion, Kind: registry.KindHeartbeatSet, On: true})
	if err := s.AppendReplicated(ctx, last+1, [][]byte{next}); err != nil || s.LastIndex() != last+1 {
		t.Fatalf("the next record: %v (LastIndex %d)", err, s.LastIndex())
	}
	return accepted < len(batch)
}

// replicaBase is a valid journal of eight records, sessions and registry
// mixed: the fuzz target's records around the fuzzed one.
func replicaBase(t testing.TB) [][]byte {
	t.Helper()
	sess := func(r session.Record) []byte {
		r.Version, r.At = session.RecordVersion, t0
		return encodeTest(t, FamilySession, sessionRecordFormat, r)
	}
	reg := func(r registry.Record) []byte {
		r.Version, r.At = registry.RecordVersion, t0
		return encodeTest(t, FamilyRegistry, registryRecordFormat, r)
	}
	return [][]byte{
		sess(session.Record{Kind: session.KindSessionCreated, Session: "A",
			Create: &session.Create{Type: session.MetroMirrorFailoverFailback, CGName: "g1", Policy: session.HoldIO}}),
		reg(registry.Record{Kind: registry.KindEpochSet, Epoch: 3}),
		sess(session.Record{Kind: session.KindCopySetsAdded, Session: "A", CopySets: []session.CopySet{copySet(0, 0x10, 1), copySet(0, 0x10, 2)}}),
		reg(registry.Record{Kind: registry.KindStorageAdded, Serial: serial("P", 0),
			Connection: &registry.Connection{Name: "direct", Kind: "direct", Addresses: []string{"10.0.0.1:1750"}}}),
		// Records 5-8, the batch.
		sess(session.Record{Kind: session.KindSessionCreated, Session: "B",
			Create: &session.Create{Type: session.MetroMirrorSingleDirection, Policy: session.ReleaseIO}}),
		sess(session.Record{Kind: session.KindCopySetsAdded, Session: "B", CopySets: []session.CopySet{copySet(1, 0x11, 0)}}),
		reg(registry.Record{Kind: registry.KindHeartbeatSet, On: true}),
		sess(session.Record{Kind: session.KindCopySetsRemoved, Session: "A", CopySets: []session.CopySet{copySet(0, 0x10, 2)}}),
	}
}

func FuzzAppendReplicated(f *testing.F) {
	for _, p := range replicaBase(f) {
		f.Add(p, uint8(0))
		f.Add(p, uint8(2))
	}
	for _, tc := range replicaRegressions {
		f.Add(tc.payload, tc.at)
	}
	f.Fuzz(func(t *testing.T, payload []byte, at uint8) {
		// Each run costs a store and a reopen: long inputs only slow the
		// fuzzer (its minimization above all) without reaching new code.
		if len(payload) > 4096 {
			return
		}
		checkAppendReplicated(t, payload, int(at))
	})
}

// replicaRegressions are FuzzAppendReplicated inputs worth keeping, as
// named cases (found by hand or by the fuzzer).
var replicaRegressions = []struct {
	name    string
	payload []byte
	at      uint8
	refused bool
}{
	{"empty", nil, 1, true},
	{"json null", []byte("null"), 0, true},
	{"null record", []byte(`{"type":"session","v":1,"record":null}`), 2, true},
	{"null registry record", []byte(`{"type":"registry","v":1,"record":null}`), 4, true},
	{"extra envelope field", []byte(`{"type":"session","v":1,"record":{},"x":1}`), 1, true},
	{"two values", []byte(`{"type":"registry","v":1,"record":{}} {}`), 3, true},
	{"duplicate session", []byte(`{"type":"session","v":1,"record":{"v":1,"kind":"session-created","session":"A","at":"2025-03-01T12:00:00Z","create":{"type":"mm-failover-failback","cg_name":"","policy":"hold-io"}}}`), 0, true},
	{"another session, accepted", []byte(`{"type":"session","v":1,"record":{"v":1,"kind":"session-created","session":"C","at":"2025-03-01T12:00:00Z","create":{"type":"mm-failover-failback","cg_name":"","policy":"hold-io"}}}`), 0, false},
	{"heartbeat off, accepted", []byte(`{"type":"registry","v":1,"record":{"version":1,"kind":"heartbeat-set","at":"2025-03-01T12:00:00Z"}}`), 4, false},
	{"deep nesting", []byte(strings.Repeat("[", 512)), 2, true},
}

func TestAppendReplicatedRegressions(t *testing.T) {
	t.Parallel()
	for _, tc := range replicaRegressions {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if refused := checkAppendReplicated(t, tc.payload, int(tc.at)); refused != tc.refused {
				t.Errorf("refused: %t, want %t", refused, tc.refused)
			}
		})
	}
}
