// Package workload owns the dependent-write workload and the consistency
// oracle that judges the secondary (H2) image (internal/scenario/doc.go). Every claim
// the product makes about consistency is checked by this package, so the
// rules below are exact, not heuristics.
//
// # Chains and the slot model
//
// The workload runs K independent chains of dependent writes. Write seq
// (1, 2, 3, ...) of a chain is issued only after write seq-1 completed, as
// an application writes a log record and only then the data page. A
// [Layout] gives chain c an ordered list of n >= 2 volume pairs; write seq
// goes to the Source (H1) volume at index (seq-1) mod n, always at block c,
// the chain's slot on that volume. A later write of the chain to the same
// volume overwrites the slot. Cyclic neighbours in the list (the last and
// the first too) have sources on different storage systems, so every two
// consecutive writes of a chain cross storage systems: a fault that stops
// mirroring on one system but not on another (the failure a freeze must
// prevent) can leave write seq on the secondary without write seq-1, and the
// oracle sees it. Two writes on one system could never show that.
//
// Each written block holds one record naming its chain and seq (see
// Payload below).
//
// # Why the oracle is exact
//
// The secondary is consistent when, for every chain, the writes it holds
// form a prefix 1..P of the chain: it is a state the primary really passed
// through, so an application restarted on it finds every write that any
// write it sees depended on.
//
// After the prefix 1..P, the slot on the volume at index i holds the
// chain's latest write to that volume at or below P: expected[i], the
// largest s <= P with (s-1) mod n == i, or nothing if there is none
// (P < i+1). Conversely, in the state after 1..P, write P itself is
// present and every other slot holds less, so P is the largest seq present.
// Hence an image is the state after some prefix iff, with P the largest seq
// found, every slot holds exactly expected[i]. [Check] tests precisely that,
// per chain, after rejecting any block that is not a valid record of that
// chain for that index (corrupt, of another chain, or misplaced). Chains
// are independent: no write of one chain waits for another, so no order
// between chains is implied or checked.
//
// Overwriting hides history: if write s was lost but s+n, to the same slot,
// later landed, the slot looks as if s had landed. The verdict is about the
// image, and such an image is a state the chain could have been in, so it
// is rightly consistent.
//
// When Check finds violations it reports the first, ordered by chain and
// then by the missing seq (expected[i] of the bad slot), naming the volume
// that holds the highest write P and the volume that misses an earlier one.
//
// # No acknowledged write lost
//
// A HyperSwap moves the application's writes from H1 to H2; the image it
// leaves on H2 must be a prefix, and must also hold every write the host
// acknowledged. [CheckAcked] adds that rule: with acked[c] the chain's
// last acknowledged write ([Status].Acked after the run stopped) and P
// its prefix, the chain lost a write iff P < acked[c] (for a prefix, the
// image is the state after 1..P, which holds writes 1..acked[c] iff P >=
// acked[c]). It names the first lost write: the chain, P+1 and the volume
// its slot is on. The prefix rule alone cannot see this loss: an image
// that stops early is still a prefix.
//
// # Payload
//
// A record is PayloadSize (24) bytes, integers big-endian:
//
//	offset  size  field
//	0       4     magic "LKWR"
//	4       4     format version, 1
//	8       4     chain
//	12      8     seq (>= 1)
//	20      4     CRC-32C (Castagnoli) of bytes 0..19
//
// # Image encoding
//
// An [Image] holds the target blocks the oracle read. It travels (lab API,
// saved files) as MarshalBinary / [UnmarshalImage] bytes, integers
// big-endian:
//
//	header   magic "LKIM" (4) | version uint16 = 1 | count uint32
//	record   serial length uint8 (1..64) | serial bytes
//	         | volume uint16 | block uint32
//	         | data length uint16 (0..4096) | data bytes
//	trailer  CRC-32C (Castagnoli) of header and records, uint32
//
// count records follow the header, in strictly ascending order of (serial,
// volume, block), so every image has exactly one encoding and no block
// appears twice. A record is a written block; a block that was never
// written has no record. The decoder bounds every length, refuses a count
// larger than the remaining input could hold (so a short input never
// causes a large allocation), refuses trailing bytes and never panics.
//
// # Runner
//
// [Start] runs one goroutine per chain against a [Host]. A failed write is
// retried with the same seq after Options.RetryDelay: the application
// waits, it never skips a write. Waits use the injected clock.
package workload
