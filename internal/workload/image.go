package workload

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/lockstep-io/lockstep/hal"
)

// Reader reads a block of a volume; a never-written block returns
// (nil, nil).
type Reader interface {
	Read(vol hal.VolumeRef, block uint32) ([]byte, error)
}

// Limits of the image encoding; see doc.go.
const (
	MaxSerialLen = 64
	MaxBlockData = 4096
)

const (
	imageMagic   = "LKIM"
	imageVersion = 1
	imageHeader  = 4 + 2 + 4 // magic, version, count
	imageTrailer = 4         // CRC32C
	// minRecord is the smallest encoded record (a 1-byte serial, no data).
	// Bounding the count by the input length divided by it means a short
	// input can never make the decoder allocate much.
	minRecord = 1 + 1 + 2 + 4 + 2
)

// ErrBadImage reports an image that cannot be encoded or decoded.
var ErrBadImage = errors.New("workload: bad image")

// Image is what the oracle judges: the blocks read from the target
// volumes. A block that was never written is absent; a block that was
// written holds its bytes (possibly empty, which is never a valid record).
// The zero Image is empty and ready to use. An Image is not safe for
// concurrent modification.
type Image struct {
	blocks map[slot][]byte
}

// slot names one block of one volume.
type slot struct {
	vol   hal.VolumeRef
	block uint32
}

func compareSlots(a, b slot) int {
	return cmp.Or(compareRefs(a.vol, b.vol), cmp.Compare(a.block, b.block))
}

// Block is one entry of an Image.
type Block struct {
	Volume hal.VolumeRef
	Block  uint32
	Data   []byte
}

// Capture reads, for every chain c of l, block c of each of the chain's
// target volumes.
func Capture(r Reader, l *Layout) (*Image, error) {
	img := &Image{}
	for c, chain := range l.chains {
		for _, p := range chain {
			data, err := r.Read(p.Target, uint32(c))
			if err != nil {
				return nil, fmt.Errorf("workload: capture chain %d: read %v block %d: %w", c, p.Target, c, err)
			}
			img.Set(p.Target, uint32(c), data)
		}
	}
	return img, nil
}

// Set records what a read of block of vol returned: a copy of data, or, for
// nil, that the block was never written.
func (img *Image) Set(vol hal.VolumeRef, block uint32, data []byte) {
	k := slot{vol, block}
	if data == nil {
		delete(img.blocks, k)
		return
	}
	if img.blocks == nil {
		img.blocks = make(map[slot][]byte)
	}
	img.blocks[k] = bytes.Clone(data)
}

// Get returns the bytes of block of vol and whether the block was written.
// The caller must not modify them.
func (img *Image) Get(vol hal.VolumeRef, block uint32) ([]byte, bool) {
	if img == nil {
		return nil, false
	}
	data, ok := img.blocks[slot{vol, block}]
	return data, ok
}

// Len is the number of written blocks in the image.
func (img *Image) Len() int {
	if img == nil {
		return 0
	}
	return len(img.blocks)
}

// Blocks lists the written blocks ordered by volume (serial, then volume
// id), then block number, with copies of their data.
func (img *Image) Blocks() []Block {
	keys := img.sortedSlots()
	out := make([]Block, len(keys))
	for i, k := range keys {
		out[i] = Block{Volume: k.vol, Block: k.block, Data: bytes.Clone(img.blocks[k])}
	}
	return out
}

func (img *Image) sortedSlots() []slot {
	if img == nil {
		return nil
	}
	keys := make([]slot, 0, len(img.blocks))
	for k := range img.blocks {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareSlots)
	return keys
}

// MarshalBinary encodes the image in the format described in doc.go. The
// encoding is canonical: equal images encode to equal bytes.
func (img *Image) MarshalBinary() ([]byte, error) {
	keys := img.sortedSlots()
	if uint64(len(keys)) > math.MaxUint32 {
		return nil, fmt.Errorf("%w: %d blocks, at most %d", ErrBadImage, len(keys), uint64(math.MaxUint32))
	}
	size := imageHeader + imageTrailer
	for _, k := range keys {
		data := img.blocks[k]
		switch {
		case len(k.vol.Serial) == 0 || len(k.vol.Serial) > MaxSerialLen:
			return nil, fmt.Errorf("%w: volume %v: serial is %d bytes, want 1 to %d", ErrBadImage, k.vol, len(k.vol.Serial), MaxSerialLen)
		case len(data) > MaxBlockData:
			return nil, fmt.Errorf("%w: %v block %d: %d bytes of data, at most %d", ErrBadImage, k.vol, k.block, len(data), MaxBlockData)
		}
		size += minRecord - 1 + len(k.vol.Serial) + len(data)
	}
	b := make([]byte, 0, size)
	b = append(b, imageMagic...)
	b = binary.BigEndian.AppendUint16(b, imageVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		data := img.blocks[k]
		b = append(b, byte(len(k.vol.Serial)))
		b = append(b, k.vol.Serial...)
		b = binary.BigEndian.AppendUint16(b, uint16(k.vol.Volume))
		b = binary.BigEndian.AppendUint32(b, k.block)
		b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
		b = append(b, data...)
	}
	return binary.BigEndian.AppendUint32(b, crc32c(b)), nil
}

// UnmarshalImage is the oracle's image reader: it decodes what
// MarshalBinary produced, from any source (a file, the lab API). It
// rejects, never panics on, anything else: bad magic or version, lengths
// beyond the limits, records out of order or repeated, a count the input
// cannot hold, trailing bytes, a checksum mismatch. The image does not
// share memory with b.
func UnmarshalImage(b []byte) (*Image, error) {
	if len(b) < imageHeader+imageTrailer {
		return nil, fmt.Errorf("%w: %d bytes, shorter than header and checksum", ErrBadImage, len(b))
	}
	body := b[:len(b)-imageTrailer]
	img, perr := parseImage(body)
	// The structure is parsed before the checksum is compared so that a
	// fuzzer's mutations reach the record parser; a damaged image is
	// reported as a checksum mismatch, the likelier cause, whatever else
	// failed.
	if got, want := binary.BigEndian.Uint32(b[len(body):]), crc32c(body); got != want {
		return nil, fmt.Errorf("%w: checksum mismatch: stored %08x, computed %08x", ErrBadImage, got, want)
	}
	if perr != nil {
		return nil, perr
	}
	return img, nil
}

// parseImage decodes header and records; b excludes the checksum trailer.
func parseImage(b []byte) (*Image, error) {
	if string(b[0:4]) != imageMagic {
		return nil, fmt.Errorf("%w: magic %q, want %q", ErrBadImage, b[0:4], imageMagic)
	}
	if v := binary.BigEndian.Uint16(b[4:6]); v != imageVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadImage, v, imageVersion)
	}
	count := binary.BigEndian.Uint32(b[6:10])
	rest := b[imageHeader:]
	if uint64(count) > uint64(len(rest)/minRecord) {
		return nil, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrBadImage, count, len(rest))
	}
	img := &Image{blocks: make(map[slot][]byte, count)}
	var prev slot
	for i := range count {
		k, data, n, err := parseRecord(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %s", ErrBadImage, i, err)
		}
		// Strictly ascending order makes the encoding canonical and rules
		// out two records for one block.
		if i > 0 && compareSlots(prev, k) >= 0 {
			return nil, fmt.Errorf("%w: record %d (%v block %d) is out of order or repeated", ErrBadImage, i, k.vol, k.block)
		}
		img.blocks[k] = data
		prev = k
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after %d records", ErrBadImage, len(rest), count)
	}
	return img, nil
}

// parseRecord decodes one record at the start of b and returns its length.
func parseRecord(b []byte) (k slot, data []byte, n int, err error) {
	if len(b) < 1 {
		return slot{}, nil, 0, errors.New("truncated serial length")
	}
	serialLen := int(b[0])
	if serialLen == 0 || serialLen > MaxSerialLen {
		return slot{}, nil, 0, fmt.Errorf("serial length %d, want 1 to %d", serialLen, MaxSerialLen)
	}
	fixed := 1 + serialLen + 2 + 4 + 2
	if len(b) < fixed {
		return slot{}, nil, 0, errors.New("truncated")
	}
	k.vol.Serial = hal.Serial(b[1 : 1+serialLen])
	at := 1 + serialLen
	k.vol.Volume = hal.Volume(binary.BigEndian.Uint16(b[at:]))
	k.block = binary.BigEndian.Uint32(b[at+2:])
	dataLen := int(binary.BigEndian.Uint16(b[at+6:]))
	if dataLen > MaxBlockData {
		return slot{}, nil, 0, fmt.Errorf("data length %d, at most %d", dataLen, MaxBlockData)
	}
	if len(b) < fixed+dataLen {
		return slot{}, nil, 0, errors.New("truncated data")
	}
	// A copy, never nil, so an empty written block stays distinct from a
	// never-written one.
	data = append([]byte{}, b[fixed:fixed+dataLen]...)
	return k, data, fixed + dataLen, nil
}
