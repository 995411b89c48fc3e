package persist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The store's tests run on a state machine of their own, bytes and all:
// persist knows no domain, and its tests prove it. A tally is a set of
// keys and an epoch; its records are text payloads:
//
//	add <key>      refused if the key is there (errTallyExists)
//	del <key>      refused if it is not (errTallyAbsent)
//	epoch <n>      refused if n is below the epoch (errTallyEpoch)
//
// with keys of 1-16 bytes of [a-z0-9]. Anything else does not decode
// (errTallyUnknown): a record of a format this build does not know. Its
// snapshot is
//
//	tally 1\nepoch <n>\nkeys <count>\n<key>\n...
//
// keys in ascending order; Load refuses anything else, including a
// count that does not match (a truncated state).

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	errTallyExists  = errors.New("tally: key exists")
	errTallyAbsent  = errors.New("tally: no such key")
	errTallyEpoch   = errors.New("tally: epoch goes down")
	errTallyUnknown = errors.New("tally: unknown record")
	errTallyState   = errors.New("tally: invalid state")
)

// tallyRec is a decoded tally record.
type tallyRec struct {
	op  string // add, del, epoch
	key string
	n   uint64
}

func add(key string) tallyRec { return tallyRec{op: "add", key: key} }
func del(key string) tallyRec { return tallyRec{op: "del", key: key} }
func epochRec(n uint64) tallyRec {
	return tallyRec{op: "epoch", n: n}
}

func (r tallyRec) String() string {
	if r.op == "epoch" {
		return "epoch " + strconv.FormatUint(r.n, 10)
	}
	return r.op + " " + r.key
}

func validKey(k string) bool {
	if len(k) == 0 || len(k) > 16 {
		return false
	}
	for _, c := range []byte(k) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func encodeTally(r tallyRec) ([]byte, error) {
	if r.op != "epoch" && !validKey(r.key) {
		return nil, fmt.Errorf("tally: key %q", r.key)
	}
	return []byte(r.String()), nil
}

// decodeTally accepts exactly what encodeTally makes.
func decodeTally(p []byte) (tallyRec, error) {
	op, arg, ok := strings.Cut(string(p), " ")
	var r tallyRec
	switch {
	case !ok:
	case op == "add" || op == "del":
		r = tallyRec{op: op, key: arg}
	case op == "epoch":
		n, err := strconv.ParseUint(arg, 10, 64)
		if err != nil {
			return tallyRec{}, fmt.Errorf("%w: %q", errTallyUnknown, p)
		}
		r = tallyRec{op: op, n: n}
	}
	if r.op == "" || r.String() != string(p) || (r.op != "epoch" && !validKey(r.key)) {
		return tallyRec{}, fmt.Errorf("%w: %q", errTallyUnknown, p)
	}
	return r, nil
}

type tally struct {
	keys  map[string]bool
	epoch uint64
}

var _ StateMachine[*tally, tallyRec] = (*tally)(nil)

func emptyTally() *tally { return &tally{keys: map[string]bool{}} }

// tallyCodec is the test stores' Codec.
var tallyCodec = Codec[*tally, tallyRec]{Empty: emptyTally, Load: loadTally, Encode: encodeTally, Decode: decodeTally}

func (s *tally) Check(r tallyRec) error {
	switch r.op {
	case "add":
		if s.keys[r.key] {
			return fmt.Errorf("%w: %s", errTallyExists, r.key)
		}
	case "del":
		if !s.keys[r.key] {
			return fmt.Errorf("%w: %s", errTallyAbsent, r.key)
		}
	case "epoch":
		if r.n < s.epoch {
			return fmt.Errorf("%w: %d after %d", errTallyEpoch, r.n, s.epoch)
		}
	default:
		return fmt.Errorf("%w: op %q", errTallyUnknown, r.op)
	}
	return nil
}

func (s *tally) Apply(r tallyRec) error {
	if err := s.Check(r); err != nil {
		return err
	}
	switch r.op {
	case "add":
		s.keys[r.key] = true
	case "del":
		delete(s.keys, r.key)
	case "epoch":
		s.epoch = r.n
	}
	return nil
}

func (s *tally) sorted() []string {
	keys := make([]string, 0, len(s.keys))
	for k := range s.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (s *tally) Snapshot() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "tally 1\nepoch %d\nkeys %d\n", s.epoch, len(s.keys))
	for _, k := range s.sorted() {
		b.WriteString(k + "\n")
	}
	return b.Bytes(), nil
}

func (s *tally) Clone() *tally {
	c := &tally{keys: make(map[string]bool, len(s.keys)), epoch: s.epoch}
	for k := range s.keys {
		c.keys[k] = true
	}
	return c
}

func loadTally(b []byte) (*tally, error) {
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 || lines[0] != "tally 1" || lines[len(lines)-1] != "" {
		return nil, fmt.Errorf("%w: header", errTallyState)
	}
	s := emptyTally()
	e, ok := strings.CutPrefix(lines[1], "epoch ")
	var err error
	if s.epoch, err = strconv.ParseUint(e, 10, 64); !ok || err != nil || strconv.FormatUint(s.epoch, 10) != e {
		return nil, fmt.Errorf("%w: epoch line %q", errTallyState, lines[1])
	}
	keys := lines[3 : len(lines)-1]
	if lines[2] != fmt.Sprintf("keys %d", len(keys)) {
		return nil, fmt.Errorf("%w: %q for %d keys", errTallyState, lines[2], len(keys))
	}
	for i, k := range keys {
		if !validKey(k) || (i > 0 && keys[i-1] >= k) {
			return nil, fmt.Errorf("%w: key %q", errTallyState, k)
		}
		s.keys[k] = true
	}
	return s, nil
}

// testStore is a Store of tallies.
type testStore = Store[*tally, tallyRec]

func mustOpenStore(t testing.TB, dir string, opts Options) *testStore {
	t.Helper()
	s, err := OpenStore(dir, tallyCodec, opts)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	return s
}

// stateOf is the store's published state, encoded: equal states give
// equal bytes.
func stateOf(t testing.TB, s *testStore) string {
	t.Helper()
	var b []byte
	var err error
	s.View(func(st *tally) { b, err = st.Snapshot() })
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tallyOf is a copy of the store's published state.
func tallyOf(s *testStore) *tally {
	var c *tally
	s.View(func(st *tally) { c = st.Clone() })
	return c
}

// payloadOf is the journal payload of r.
func payloadOf(t testing.TB, r tallyRec) []byte {
	t.Helper()
	b, err := encodeTally(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// modelAt is the state encoding that payloads build from the empty state.
func modelAt(t testing.TB, payloads [][]byte) []byte {
	t.Helper()
	st := emptyTally()
	for i, p := range payloads {
		r, err := decodeTally(p)
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

// recGen makes random tally records, valid and refused, over a small
// world so that keys collide often and the epoch now and then goes back.
type recGen struct {
	rng   *rand.Rand
	epoch uint64
}

func newGen(seed uint64) *recGen { return &recGen{rng: rand.New(rand.NewPCG(seed, 0x9e55)), epoch: 1} }

func (g *recGen) pick(n int) int { return g.rng.IntN(n) }

// record is a random record; st (may be nil) steers it toward the keys
// the state holds, so that deletions are often accepted.
func (g *recGen) record(st *tally) tallyRec {
	key := fmt.Sprintf("k%d", g.pick(12))
	switch g.pick(6) {
	case 0, 1, 2:
		return add(key)
	case 3, 4:
		if st != nil && len(st.keys) > 0 && g.pick(2) == 0 {
			keys := st.sorted()
			key = keys[g.pick(len(keys))]
		}
		return del(key)
	}
	// Mostly up, sometimes down (refused).
	g.epoch = max(g.epoch+uint64(g.pick(3)), 1) - 1
	return epochRec(g.epoch)
}

// fill proposes random records until the store holds n.
func fill(t testing.TB, s *testStore, g *recGen, n uint64) {
	t.Helper()
	for s.LastIndex() < n {
		_ = s.Propose(context.Background(), g.record(tallyOf(s)))
	}
}

// TestTally: the test machine keeps the contract of StateMachine and
// Codec that the store's tests rely on: Apply refuses what Check refuses
// and changes nothing then; a snapshot loads back to an equal state;
// decode accepts exactly what encode makes.
func TestTally(t *testing.T) {
	t.Parallel()
	g := newGen(1)
	st := emptyTally()
	for range 2000 {
		r := g.record(st)
		before, _ := st.Snapshot()
		cerr := st.Check(r)
		if after, _ := st.Snapshot(); !bytes.Equal(before, after) {
			t.Fatalf("Check(%s) changed the state", r)
		}
		aerr := st.Apply(r)
		if (cerr == nil) != (aerr == nil) {
			t.Fatalf("Check(%s) = %v, Apply = %v", r, cerr, aerr)
		}
		if after, _ := st.Snapshot(); aerr != nil && !bytes.Equal(before, after) {
			t.Fatalf("a refused Apply(%s) changed the state", r)
		}
		p := payloadOf(t, r)
		if back, err := decodeTally(p); err != nil || back != r {
			t.Fatalf("decode(encode(%s)) = %v, %v", r, back, err)
		}
		b, _ := st.Snapshot()
		re, err := loadTally(b)
		if err != nil {
			t.Fatalf("load(%q): %v", b, err)
		}
		if b2, _ := re.Snapshot(); !bytes.Equal(b, b2) {
			t.Fatalf("load(snapshot) differs")
		}
	}
	for _, p := range []string{"", "add", "add ", "add A", "add a b", "epoch -1", "epoch 01", "nop x", "del " + strings.Repeat("a", 17)} {
		if _, err := decodeTally([]byte(p)); !errors.Is(err, errTallyUnknown) {
			t.Errorf("decode(%q) = %v, want errTallyUnknown", p, err)
		}
	}
}
