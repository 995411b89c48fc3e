package workload_test

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"

	"github.com/lockstep-io/lockstep/internal/workload"
)

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		chain uint32
		seq   uint64
	}{
		{name: "first write", chain: 0, seq: 1},
		{name: "typical", chain: 17, seq: 4212},
		{name: "last chain", chain: math.MaxUint32, seq: 2},
		{name: "last seq", chain: 3, seq: math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := workload.EncodePayload(tt.chain, tt.seq)
			if len(b) != workload.PayloadSize {
				t.Fatalf("EncodePayload: %d bytes, want %d", len(b), workload.PayloadSize)
			}
			chain, seq, err := workload.DecodePayload(b)
			if err != nil {
				t.Fatalf("DecodePayload: %v", err)
			}
			if d := diff([2]uint64{uint64(tt.chain), tt.seq}, [2]uint64{uint64(chain), seq}); d != "" {
				t.Errorf("DecodePayload (chain, seq) mismatch (-want +got):\n%s", d)
			}
		})
	}
}

// reseal recomputes the checksum of a modified record, so that a test
// reaches the check behind it.
func reseal(b []byte) []byte {
	at := len(b) - 4
	binary.BigEndian.PutUint32(b[at:], crc32.Checksum(b[:at], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestDecodePayloadErrors(t *testing.T) {
	t.Parallel()
	good := func() []byte { return workload.EncodePayload(5, 99) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{name: "nil", in: nil, want: workload.ErrPayloadLength},
		{name: "empty", in: []byte{}, want: workload.ErrPayloadLength},
		{name: "short", in: good()[:workload.PayloadSize-1], want: workload.ErrPayloadLength},
		{name: "long", in: append(good(), 0), want: workload.ErrPayloadLength},
		{name: "block of zeros", in: make([]byte, workload.PayloadSize), want: workload.ErrPayloadMagic},
		{name: "magic", in: func() []byte { b := good(); b[0] = 'X'; return reseal(b) }(), want: workload.ErrPayloadMagic},
		{name: "version 2", in: func() []byte { b := good(); b[7] = 2; return reseal(b) }(), want: workload.ErrPayloadVersion},
		{name: "version 0", in: func() []byte { b := good(); b[7] = 0; return reseal(b) }(), want: workload.ErrPayloadVersion},
		{name: "chain bit flipped", in: func() []byte { b := good(); b[11] ^= 1; return b }(), want: workload.ErrPayloadChecksum},
		{name: "seq bit flipped", in: func() []byte { b := good(); b[19] ^= 0x80; return b }(), want: workload.ErrPayloadChecksum},
		{name: "checksum bit flipped", in: func() []byte { b := good(); b[23] ^= 4; return b }(), want: workload.ErrPayloadChecksum},
		{name: "seq zero", in: workload.EncodePayload(5, 0), want: workload.ErrPayloadSeq},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			chain, seq, err := workload.DecodePayload(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodePayload = (%d, %d, %v), want error %v", chain, seq, err, tt.want)
			}
			if chain != 0 || seq != 0 {
				t.Errorf("DecodePayload returned chain %d, seq %d with an error, want zeros", chain, seq)
			}
		})
	}
}

// Every single-bit error in a record must be caught: the oracle must never
// read a damaged block as another valid write.
func TestDecodePayloadEveryBitFlip(t *testing.T) {
	t.Parallel()
	good := workload.EncodePayload(1234, 56789)
	for bit := range 8 * len(good) {
		b := append([]byte(nil), good...)
		b[bit/8] ^= 1 << (bit % 8)
		if chain, seq, err := workload.DecodePayload(b); err == nil {
			t.Errorf("bit %d flipped: decoded as chain %d seq %d, want an error", bit, chain, seq)
		}
	}
}
