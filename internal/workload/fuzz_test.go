package workload_test

import (
	"bytes"
	"testing"

	"github.com/lockstep-io/lockstep/internal/workload"
)

// FuzzUnmarshalImage feeds the image reader arbitrary bytes: it must never
// panic, and whatever it accepts must re-encode to exactly the same bytes
// (the encoding is canonical, so nothing accepted can be misread).
//
// Inputs stay small (seeds, and a cap on what is decoded): the fuzzer
// minimises every new input in time quadratic in its length, seconds for
// a few hundred bytes, minutes for a 4 KiB block. A few records show every
// path; the table tests cover the size limits.
func FuzzUnmarshalImage(f *testing.F) {
	small := &workload.Image{}
	small.Set(ref("LAB.2107-75S0001", 0x1001), 0, workload.EncodePayload(0, 1))
	small.Set(ref("LAB.2107-75S0001", 0x1001), 7, workload.EncodePayload(7, 3))
	small.Set(ref("LAB.2107-75S0002", 0x2003), 0xFFFFFFFF, []byte{})
	for _, img := range []*workload.Image{{}, small} {
		b, err := img.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("LKIM"))
	f.Add(newRaw("LKIM", 1, 0xFFFFFFFF).sealed())
	f.Add(newRaw("LKIM", 1, 2).record("A", 1, 1, []byte{1, 2}).record("B", 2, 0, nil).sealed())
	f.Add(newRaw("LKIM", 1, 1).raw(0xFF, 'A', 0, 1, 0, 0, 0, 1, 0xFF, 0xFF).sealed())
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzImage {
			return
		}
		checkImageDecode(t, b)
		// Random bytes almost never carry a valid checksum; sealed, they
		// reach the accepting paths too.
		checkImageDecode(t, reseal(append(bytes.Clone(b), 0, 0, 0, 0)))
	})
}

const maxFuzzImage = 256

func checkImageDecode(t *testing.T, b []byte) {
	t.Helper()
	img, err := workload.UnmarshalImage(b)
	if err != nil {
		if img != nil {
			t.Fatalf("UnmarshalImage returned an image with error %v", err)
		}
		return
	}
	again, err := img.MarshalBinary()
	if err != nil {
		t.Fatalf("accepted image does not re-encode: %v", err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("accepted %x, re-encoded as %x", b, again)
	}
}

// FuzzDecodePayload: never panic, and accept only what EncodePayload makes.
func FuzzDecodePayload(f *testing.F) {
	f.Add(workload.EncodePayload(0, 1))
	f.Add(workload.EncodePayload(17, 4212))
	f.Add(workload.EncodePayload(0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF))
	f.Add(workload.EncodePayload(3, 0))
	f.Add([]byte{})
	f.Add(make([]byte, workload.PayloadSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		chain, seq, err := workload.DecodePayload(b)
		if err != nil {
			if chain != 0 || seq != 0 {
				t.Fatalf("error %v with chain %d seq %d", err, chain, seq)
			}
			return
		}
		if seq == 0 {
			t.Fatalf("accepted seq 0 from %x", b)
		}
		if want := workload.EncodePayload(chain, seq); !bytes.Equal(b, want) {
			t.Fatalf("accepted %x as chain %d seq %d, which encodes as %x", b, chain, seq, want)
		}
	})
}
