package workload_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/workload"
)

func ref(serial string, vol hal.Volume) hal.VolumeRef {
	return hal.VolumeRef{Serial: hal.Serial(serial), Volume: vol}
}

// sampleImage covers the edges of the format: an empty written block,
// the longest serial and the largest block.
func sampleImage() *workload.Image {
	img := &workload.Image{}
	img.Set(ref("LAB.2107-75S0001", 0x1001), 0, workload.EncodePayload(0, 1))
	img.Set(ref("LAB.2107-75S0001", 0x1001), 7, workload.EncodePayload(7, 3))
	img.Set(ref("LAB.2107-75S0002", 0x2003), 0xFFFFFFFF, []byte{})
	img.Set(ref(strings.Repeat("S", workload.MaxSerialLen), 0xFEFF), 1, bytes.Repeat([]byte{0xA5}, workload.MaxBlockData))
	return img
}

func TestImageRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		img  *workload.Image
	}{
		{name: "zero image", img: &workload.Image{}},
		{name: "nil image", img: nil},
		{name: "sample", img: sampleImage()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := tt.img.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			got, err := workload.UnmarshalImage(b)
			if err != nil {
				t.Fatalf("UnmarshalImage: %v", err)
			}
			if d := diff(tt.img.Blocks(), got.Blocks()); d != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", d)
			}
			again, err := got.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Errorf("re-encoding differs (err %v): the encoding is not canonical", err)
			}
		})
	}
}

func TestImageEmptyBlockIsNotUnwritten(t *testing.T) {
	t.Parallel()
	img := sampleImage()
	vol := ref("LAB.2107-75S0002", 0x2003)
	if data, ok := img.Get(vol, 0xFFFFFFFF); !ok || data == nil || len(data) != 0 {
		t.Errorf("Get(empty written block) = %v, %v; want empty, true", data, ok)
	}
	if data, ok := img.Get(vol, 5); ok || data != nil {
		t.Errorf("Get(unwritten block) = %v, %v; want nil, false", data, ok)
	}
	n := img.Len()
	img.Set(vol, 0xFFFFFFFF, nil)
	if _, ok := img.Get(vol, 0xFFFFFFFF); ok || img.Len() != n-1 {
		t.Errorf("Set(nil) did not make the block unwritten")
	}
}

func TestImageMarshalLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		vol  hal.VolumeRef
		data []byte
		want string
	}{
		{name: "empty serial", vol: ref("", 0x1001), data: []byte{1}, want: "serial is 0 bytes"},
		{name: "long serial", vol: ref(strings.Repeat("S", workload.MaxSerialLen+1), 0x1001), data: []byte{1}, want: "serial is 65 bytes"},
		{name: "large block", vol: ref("LAB.1", 0x1001), data: make([]byte, workload.MaxBlockData+1), want: "4097 bytes of data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := sampleImage()
			img.Set(tt.vol, 1, tt.data)
			_, err := img.MarshalBinary()
			if !errors.Is(err, workload.ErrBadImage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("MarshalBinary error %v, want ErrBadImage containing %q", err, tt.want)
			}
		})
	}
}

// rawImage assembles an encoding by hand, so that malformed ones can carry
// a correct checksum and reach the check under test.
type rawImage struct {
	b []byte
}

func newRaw(magic string, version uint16, count uint32) *rawImage {
	r := &rawImage{b: []byte(magic)}
	r.b = binary.BigEndian.AppendUint16(r.b, version)
	r.b = binary.BigEndian.AppendUint32(r.b, count)
	return r
}

func (r *rawImage) record(serial string, vol uint16, block uint32, data []byte) *rawImage {
	r.b = append(r.b, byte(len(serial)))
	r.b = append(r.b, serial...)
	r.b = binary.BigEndian.AppendUint16(r.b, vol)
	r.b = binary.BigEndian.AppendUint32(r.b, block)
	r.b = binary.BigEndian.AppendUint16(r.b, uint16(len(data)))
	r.b = append(r.b, data...)
	return r
}

func (r *rawImage) raw(b ...byte) *rawImage { r.b = append(r.b, b...); return r }

func (r *rawImage) sealed() []byte { return reseal(append(r.b, 0, 0, 0, 0)) }

func TestUnmarshalImageErrors(t *testing.T) {
	t.Parallel()
	valid, err := sampleImage().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0x10
	payload := workload.EncodePayload(1, 1)

	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{name: "nil", in: nil, want: "0 bytes, shorter than header"},
		{name: "short", in: valid[:13], want: "shorter than header"},
		{name: "bad magic", in: newRaw("LKIX", 1, 0).sealed(), want: "magic"},
		{name: "version 2", in: newRaw("LKIM", 2, 0).sealed(), want: "version 2"},
		{name: "count beyond input", in: newRaw("LKIM", 1, 0xFFFFFFFF).sealed(), want: "4294967295 records cannot fit in 0 bytes"},
		{name: "count beyond records", in: newRaw("LKIM", 1, 2).record("A", 1, 1, nil).sealed(), want: "2 records cannot fit in 10 bytes"},
		{name: "count short of records", in: newRaw("LKIM", 1, 1).record("A", 1, 1, nil).record("A", 1, 2, nil).sealed(), want: "10 trailing bytes after 1 records"},
		{name: "trailing byte", in: newRaw("LKIM", 1, 0).raw(0).sealed(), want: "1 trailing bytes"},
		{name: "serial length zero", in: newRaw("LKIM", 1, 1).raw(0, 'A', 0, 1, 0, 0, 0, 1, 0, 0).sealed(), want: "record 0: serial length 0"},
		{name: "serial too long", in: newRaw("LKIM", 1, 1).record(strings.Repeat("S", 65), 1, 1, nil).sealed(), want: "serial length 65"},
		{name: "serial length beyond input", in: newRaw("LKIM", 1, 1).raw(60, 'A', 0, 1, 0, 0, 0, 1, 0, 0).sealed(), want: "record 0: truncated"},
		{name: "data too long", in: newRaw("LKIM", 1, 1).raw(1, 'A', 0, 1, 0, 0, 0, 1, 0x10, 0x01).sealed(), want: "data length 4097"},
		{name: "data length beyond input", in: newRaw("LKIM", 1, 1).raw(1, 'A', 0, 1, 0, 0, 0, 1, 0, 5, 1, 2).sealed(), want: "truncated data"},
		{name: "duplicate block", in: newRaw("LKIM", 1, 2).record("A", 1, 1, payload).record("A", 1, 1, payload).sealed(), want: "record 1 (A/0001 block 1) is out of order or repeated"},
		{name: "blocks out of order", in: newRaw("LKIM", 1, 2).record("A", 1, 2, nil).record("A", 1, 1, nil).sealed(), want: "out of order"},
		{name: "volumes out of order", in: newRaw("LKIM", 1, 2).record("A", 2, 1, nil).record("A", 1, 9, nil).sealed(), want: "out of order"},
		{name: "serials out of order", in: newRaw("LKIM", 1, 2).record("B", 1, 1, nil).record("A", 9, 9, nil).sealed(), want: "out of order"},
		{name: "checksum", in: append(bytes.Clone(valid[:len(valid)-1]), valid[len(valid)-1]^1), want: "checksum mismatch"},
		{name: "bit flip in a record", in: flipped, want: "checksum mismatch"},
		{name: "unsealed", in: append(newRaw("LKIM", 1, 0).b, 1, 2, 3, 4), want: "checksum mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img, err := workload.UnmarshalImage(tt.in)
			if err == nil {
				t.Fatalf("UnmarshalImage accepted %x as %d blocks, want error %q", tt.in, img.Len(), tt.want)
			}
			if !errors.Is(err, workload.ErrBadImage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("UnmarshalImage error %q, want ErrBadImage containing %q", err, tt.want)
			}
		})
	}
}

// Every truncation and every single-bit flip of a valid encoding must be
// refused, never misread.
func TestUnmarshalImageDamage(t *testing.T) {
	t.Parallel()
	valid, err := sampleImage().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(valid) {
		if _, err := workload.UnmarshalImage(valid[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: accepted", n, len(valid))
		}
	}
	small, err := newImageOf(map[hal.VolumeRef][]byte{ref("LAB.1", 0x1001): workload.EncodePayload(3, 9)}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for bit := range 8 * len(small) {
		b := bytes.Clone(small)
		b[bit/8] ^= 1 << (bit % 8)
		if _, err := workload.UnmarshalImage(b); err == nil {
			t.Errorf("bit %d flipped: accepted", bit)
		}
	}
}

func newImageOf(blocks map[hal.VolumeRef][]byte) *workload.Image {
	img := &workload.Image{}
	for vol, data := range blocks {
		img.Set(vol, 3, data)
	}
	return img
}

func TestUnmarshalImageDoesNotAlias(t *testing.T) {
	t.Parallel()
	b, err := sampleImage().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	img, err := workload.UnmarshalImage(b)
	if err != nil {
		t.Fatal(err)
	}
	want := img.Blocks()
	for i := range b {
		b[i] = 0
	}
	if d := diff(want, img.Blocks()); d != "" {
		t.Errorf("image changed with its input buffer (-want +got):\n%s", d)
	}
}

func TestCapture(t *testing.T) {
	t.Parallel()
	l := mustLayout(t, makePairs(2, 2), 3, 2)
	d := prefixDisk(l, []uint64{5, 0, 1})
	img, err := workload.Capture(d, l)
	if err != nil {
		t.Fatal(err)
	}
	// Chain 0 wrote both its slots, chain 1 none, chain 2 one.
	if img.Len() != 3 {
		t.Errorf("captured %d blocks, want 3: %+v", img.Len(), img.Blocks())
	}
	c0 := l.Chain(0)
	buf := d.blocks[c0[0].Target][0]
	want := bytes.Clone(buf)
	buf[0] ^= 0xFF // the reader reusing its buffer must not change the image
	if got, _ := img.Get(c0[0].Target, 0); !bytes.Equal(got, want) {
		t.Errorf("image shares memory with the reader: got %x, want %x", got, want)
	}

	d.err = errors.New("medium error")
	if _, err := workload.Capture(d, l); err == nil || !strings.Contains(err.Error(), "medium error") {
		t.Errorf("Capture with a failing reader: error %v, want the read error", err)
	}
}
