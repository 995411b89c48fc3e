package workload

import (
	"encoding/json"
	"fmt"

	"github.com/lockstep-io/lockstep/hal"
)

// LostWrite is a write the host acknowledged that the image does not
// hold: the chain's prefix stops below it.
type LostWrite struct {
	Chain int
	// Acked is the chain's last acknowledged write; Prefix the highest
	// write of the chain the image holds (0: none).
	Acked  uint64
	Prefix uint64
	// Missing is the first acknowledged write the image lacks (Prefix+1),
	// and Volume the target its slot is on.
	Missing uint64
	Volume  hal.VolumeRef
}

// lostJSON is LostWrite on the wire: the volume as "SERIAL/VVVV".
type lostJSON struct {
	Chain   int    `json:"chain"`
	Acked   uint64 `json:"acked_seq"`
	Prefix  uint64 `json:"prefix"`
	Missing uint64 `json:"missing_seq"`
	Volume  string `json:"volume"`
}

// MarshalJSON writes the volume as "SERIAL/VVVV".
func (w LostWrite) MarshalJSON() ([]byte, error) {
	return json.Marshal(lostJSON{Chain: w.Chain, Acked: w.Acked, Prefix: w.Prefix, Missing: w.Missing, Volume: refString(w.Volume)})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (w *LostWrite) UnmarshalJSON(b []byte) error {
	var j lostJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	vol, err := parseRef(j.Volume)
	if err != nil {
		return err
	}
	*w = LostWrite{Chain: j.Chain, Acked: j.Acked, Prefix: j.Prefix, Missing: j.Missing, Volume: vol}
	return nil
}

// String describes the lost write for a storage administrator.
func (w LostWrite) String() string {
	return fmt.Sprintf("chain %d: write %d was acknowledged to the application but the image holds the chain only up to write %d: write %d (block %d of %v) is lost",
		w.Chain, w.Acked, w.Prefix, w.Missing, w.Chain, w.Volume)
}

// CheckAcked is Check plus the rule a HyperSwap must keep: no
// acknowledged write is lost. acked holds, per chain, the last write the
// host acknowledged (Status.Acked of the run that wrote the image). A
// chain loses writes iff its prefix P (the highest write of the chain the
// image holds) is below acked: for a consistent chain the image is the
// state after writes 1..P, so it holds every acknowledged write iff P >=
// acked. (A write overwritten in its slot by a later one of the chain
// counts as held: the later one proves the chain got past it.)
//
// Report.Lost counts the chains that lost writes and FirstLost names the
// lowest of them; they are checked only by CheckAcked, and acked must
// have one entry per chain of l.
func CheckAcked(l *Layout, img *Image, acked []uint64) (Report, error) {
	r := Check(l, img)
	if len(acked) != r.Chains {
		return r, fmt.Errorf("workload: %d acknowledged seqs for %d chains", len(acked), r.Chains)
	}
	r.AckedChecked = true
	for c, a := range acked {
		p := r.Prefix[c]
		if p >= a {
			continue
		}
		r.Lost++
		if r.FirstLost == nil {
			pairs := l.chains[c]
			missing := p + 1
			r.FirstLost = &LostWrite{Chain: c, Acked: a, Prefix: p, Missing: missing,
				Volume: pairs[(missing-1)%uint64(len(pairs))].Target}
		}
	}
	return r, nil
}
