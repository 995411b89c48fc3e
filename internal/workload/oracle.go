package workload

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lockstep-io/lockstep/hal"
)

// ViolationKind says how a chain's blocks break the prefix rule.
type ViolationKind string

const (
	// KindGap: a later write of the chain is present, an earlier one is
	// not (the slot is empty or holds an older write).
	KindGap ViolationKind = "gap"
	// KindCorrupt: the block is not a valid workload record.
	KindCorrupt ViolationKind = "corrupt"
	// KindForeign: the block holds a record of another chain.
	KindForeign ViolationKind = "foreign-chain"
	// KindMisplaced: the block holds a write of the chain that belongs on
	// another volume of the chain.
	KindMisplaced ViolationKind = "misplaced"
)

// Report is the oracle's verdict on an image.
type Report struct {
	// Consistent is true iff every chain holds exactly the state after a
	// prefix of its writes.
	Consistent bool `json:"consistent"`
	// Chains is the number of chains checked.
	Chains int `json:"chains"`
	// Checked is the number of blocks examined (chains times volumes per
	// chain).
	Checked int `json:"checked_blocks"`
	// Inconsistent is the number of chains that are not a prefix.
	Inconsistent int `json:"inconsistent_chains"`
	// Prefix holds, per chain, the highest valid write found. For a
	// consistent chain the image is exactly the state after writes
	// 1..Prefix[c]; 0 means no write of the chain is present.
	Prefix []uint64 `json:"prefix"`
	// First is the first violation, ordered by chain, then by missing seq;
	// nil when consistent.
	First *Violation `json:"first_violation,omitempty"`
	// AckedChecked: CheckAcked also checked that no acknowledged write
	// was lost; Lost counts the chains that lost one, FirstLost names the
	// lowest (lost.go).
	AckedChecked bool       `json:"acked_checked,omitempty"`
	Lost         int        `json:"lost_writes"`
	FirstLost    *LostWrite `json:"first_lost,omitempty"`
}

// Sound is the verdict of a HyperSwap: consistent, and, when checked, no
// acknowledged write lost.
func (r Report) Sound() bool { return r.Consistent && r.Lost == 0 }

// Violation is one way a chain is not a prefix.
type Violation struct {
	Chain int
	Kind  ViolationKind
	// MissingSeq is the write that should be in MissingVolume's slot: the
	// chain's latest write to that volume at or below PresentSeq (0: the
	// slot should be empty).
	MissingSeq uint64
	// PresentSeq is the highest valid write of the chain found, held by
	// PresentVolume (zero VolumeRef when PresentSeq is 0).
	PresentSeq uint64
	// FoundSeq is the write the slot holds instead (0: empty, or not a
	// valid record).
	FoundSeq      uint64
	MissingVolume hal.VolumeRef
	PresentVolume hal.VolumeRef
	// Detail adds what the slot holds, in words.
	Detail string
}

// Check judges img against l: for chain c with n volumes, present[i] is the
// seq found in block c of target i. Let P be the largest; the chain is
// consistent iff every present[i] equals expected[i], the largest s <= P
// with (s-1) mod n == i (0 if none), i.e. iff the image equals the state
// after writes 1..P. A block that is not a record of chain c that belongs
// on target i is a violation in itself. See doc.go for why this is exact.
func Check(l *Layout, img *Image) Report {
	var chains [][]hal.VolumePair
	if l != nil {
		chains = l.chains
	}
	r := Report{Chains: len(chains), Prefix: make([]uint64, len(chains))}
	var ck checker
	for c, pairs := range chains {
		r.Checked += len(pairs)
		p, bad := ck.chain(c, pairs, img)
		r.Prefix[c] = p
		if bad < 0 {
			continue
		}
		r.Inconsistent++
		if r.First == nil {
			r.First = ck.violation(c, pairs, bad, p)
		}
	}
	r.Consistent = r.Inconsistent == 0
	return r
}

// checker holds per-slot findings for one chain; its buffers are reused
// from chain to chain.
type checker struct {
	found []finding
}

type finding struct {
	seq  uint64        // the valid write of the chain found, 0 if none
	kind ViolationKind // set when the block is itself bad
	any  uint64        // the seq the block carried, for the report
	err  error         // decode error of a corrupt block
}

// chain examines one chain and returns its highest valid write and the
// index of its first violation (smallest missing seq, then lowest index),
// or -1 if it is a prefix.
func (ck *checker) chain(c int, pairs []hal.VolumePair, img *Image) (p uint64, bad int) {
	n := uint64(len(pairs))
	ck.found = ck.found[:0]
	for i, pr := range pairs {
		var f finding
		if data, ok := img.Get(pr.Target, uint32(c)); ok {
			ch, seq, err := DecodePayload(data)
			switch {
			case err != nil:
				f = finding{kind: KindCorrupt, err: err}
			case ch != uint32(c):
				f = finding{kind: KindForeign, any: seq, err: fmt.Errorf("chain %d", ch)}
			case (seq-1)%n != uint64(i):
				f = finding{kind: KindMisplaced, any: seq}
			default:
				f = finding{seq: seq, any: seq}
				p = max(p, seq)
			}
		}
		ck.found = append(ck.found, f)
	}
	bad = -1
	var badSeq uint64
	for i, f := range ck.found {
		want := expected(p, n, i)
		if f.kind == "" && f.seq == want {
			continue
		}
		if bad < 0 || want < badSeq {
			bad, badSeq = i, want
		}
	}
	return p, bad
}

// violation describes the finding at index i of chain c, as examined last
// by ck.chain.
func (ck *checker) violation(c int, pairs []hal.VolumePair, i int, p uint64) *Violation {
	n := uint64(len(pairs))
	f := ck.found[i]
	v := &Violation{
		Chain:         c,
		Kind:          f.kind,
		MissingSeq:    expected(p, n, i),
		PresentSeq:    p,
		FoundSeq:      f.seq,
		MissingVolume: pairs[i].Target,
	}
	if p > 0 {
		v.PresentVolume = pairs[(p-1)%n].Target
	}
	slotName := fmt.Sprintf("block %d of %v", c, pairs[i].Target)
	switch f.kind {
	case "":
		v.Kind = KindGap
		if f.seq == 0 {
			v.Detail = slotName + " was never written"
		} else {
			v.Detail = fmt.Sprintf("%s holds write %d", slotName, f.seq)
		}
	case KindCorrupt:
		v.Detail = fmt.Sprintf("%s is not a valid workload record: %v", slotName, f.err)
	case KindForeign:
		v.FoundSeq = f.any
		v.Detail = fmt.Sprintf("%s holds write %d of %v", slotName, f.any, f.err)
	case KindMisplaced:
		v.FoundSeq = f.any
		v.Detail = fmt.Sprintf("%s holds write %d, which belongs on %v", slotName, f.any, pairs[(f.any-1)%n].Target)
	}
	return v
}

// expected is the chain's latest write to index i among writes 1..p of a
// chain of n volumes: the largest s <= p with (s-1) mod n == i, or 0.
func expected(p, n uint64, i int) uint64 {
	if p < uint64(i)+1 {
		return 0
	}
	return p - (p-1-uint64(i))%n
}

// String describes the violation for a storage administrator.
func (v Violation) String() string {
	if v.Kind == KindGap {
		found := "that block was never written"
		if v.FoundSeq > 0 {
			found = fmt.Sprintf("that block holds write %d instead", v.FoundSeq)
		}
		return fmt.Sprintf("chain %d has write %d on %v but not write %d, which belongs on %v (%s)",
			v.Chain, v.PresentSeq, v.PresentVolume, v.MissingSeq, v.MissingVolume, found)
	}
	should := "should be empty"
	if v.MissingSeq > 0 {
		should = fmt.Sprintf("should hold write %d", v.MissingSeq)
	}
	return fmt.Sprintf("chain %d: %s; it %s", v.Chain, v.Detail, should)
}

// String summarises the verdict for a storage administrator.
func (r Report) String() string {
	var b strings.Builder
	if r.Consistent {
		fmt.Fprintf(&b, "consistent: each of %d chains holds a prefix of its writes (%d blocks checked)", r.Chains, r.Checked)
	} else {
		b.WriteString("inconsistent: ")
		if r.First != nil {
			b.WriteString(r.First.String())
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d of %d chains inconsistent", r.Inconsistent, r.Chains)
	}
	switch {
	case !r.AckedChecked:
	case r.Lost == 0:
		b.WriteString("; no acknowledged write lost")
	default:
		fmt.Fprintf(&b, "; ACKNOWLEDGED WRITES LOST on %d of %d chains: ", r.Lost, r.Chains)
		if r.FirstLost != nil {
			b.WriteString(r.FirstLost.String())
		}
	}
	return b.String()
}

// violationJSON is Violation on the wire: volumes as "SERIAL/VVVV" strings.
type violationJSON struct {
	Chain         int           `json:"chain"`
	Kind          ViolationKind `json:"kind"`
	MissingSeq    uint64        `json:"missing_seq"`
	PresentSeq    uint64        `json:"present_seq"`
	FoundSeq      uint64        `json:"found_seq"`
	MissingVolume string        `json:"missing_volume"`
	PresentVolume string        `json:"present_volume,omitempty"`
	Detail        string        `json:"detail"`
}

// MarshalJSON writes volumes as "SERIAL/VVVV".
func (v Violation) MarshalJSON() ([]byte, error) {
	w := violationJSON{
		Chain:         v.Chain,
		Kind:          v.Kind,
		MissingSeq:    v.MissingSeq,
		PresentSeq:    v.PresentSeq,
		FoundSeq:      v.FoundSeq,
		MissingVolume: refString(v.MissingVolume),
		PresentVolume: refString(v.PresentVolume),
		Detail:        v.Detail,
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (v *Violation) UnmarshalJSON(b []byte) error {
	var w violationJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	missing, err := parseRef(w.MissingVolume)
	if err != nil {
		return err
	}
	present, err := parseRef(w.PresentVolume)
	if err != nil {
		return err
	}
	*v = Violation{
		Chain:         w.Chain,
		Kind:          w.Kind,
		MissingSeq:    w.MissingSeq,
		PresentSeq:    w.PresentSeq,
		FoundSeq:      w.FoundSeq,
		MissingVolume: missing,
		PresentVolume: present,
		Detail:        w.Detail,
	}
	return nil
}

func refString(r hal.VolumeRef) string {
	if r == (hal.VolumeRef{}) {
		return ""
	}
	return r.String()
}

// parseRef parses "SERIAL/VVVV"; the empty string is the zero VolumeRef.
func parseRef(s string) (hal.VolumeRef, error) {
	if s == "" {
		return hal.VolumeRef{}, nil
	}
	at := strings.LastIndexByte(s, '/')
	if at <= 0 {
		return hal.VolumeRef{}, fmt.Errorf("workload: volume %q is not SERIAL/VVVV", s)
	}
	vol, err := hal.ParseVolume(s[at+1:])
	if err != nil {
		return hal.VolumeRef{}, fmt.Errorf("workload: volume %q: %w", s, err)
	}
	return hal.VolumeRef{Serial: hal.Serial(s[:at]), Volume: vol}, nil
}
