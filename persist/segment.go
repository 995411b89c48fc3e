package persist

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
)

// The segment and record formats (doc.go has the byte layout). Everything
// here is a pure function of bytes, so that the decoders can be fuzzed
// and the recovery rules tested without files.

const (
	// formatVersion is the version of the segment and snapshot formats.
	formatVersion = 1

	segMagic      = "LKSTPSEG"
	segHeaderSize = 32
	segSuffix     = ".seg"

	recHeaderSize = 16
	// MaxPayload is the largest record payload: it bounds what a damaged
	// length field can make a reader allocate.
	MaxPayload = 64 << 20

	// The second word of a record header: payload length in bits 0-26,
	// bits 27-30 reserved (zero), bit 31 set on the last record of a
	// write batch (the records one fsync made durable).
	lengthMask   = 1<<27 - 1
	commitFlag   = 1 << 31
	reservedBits = ^uint32(lengthMask | commitFlag)
)

var (
	le         = binary.LittleEndian
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// segHeader starts every segment file. prevCRC, the CRC of the record
// before first, lets a segment be verified alone and ties it to the
// segment before it.
type segHeader struct {
	first   uint64
	prevCRC uint32
}

func (h segHeader) marshal() []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	le.PutUint32(b[8:], formatVersion)
	// b[12:16] reserved, zero
	le.PutUint64(b[16:], h.first)
	le.PutUint32(b[24:], h.prevCRC)
	le.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

// parseSegHeader checks and decodes a segment header. Its error says what
// is wrong, for a message that also names the file.
func parseSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize {
		return segHeader{}, fmt.Errorf("header truncated (%d of %d bytes)", len(b), segHeaderSize)
	}
	if string(b[:8]) != segMagic {
		return segHeader{}, fmt.Errorf("not a journal segment (magic %q)", b[:8])
	}
	if crc32.Checksum(b[:28], castagnoli) != le.Uint32(b[28:]) {
		return segHeader{}, fmt.Errorf("header checksum mismatch")
	}
	if v := le.Uint32(b[8:]); v != formatVersion {
		return segHeader{}, fmt.Errorf("segment format version %d, this build reads %d", v, formatVersion)
	}
	if le.Uint32(b[12:]) != 0 {
		return segHeader{}, fmt.Errorf("reserved header bytes set")
	}
	h := segHeader{first: le.Uint64(b[16:]), prevCRC: le.Uint32(b[24:])}
	if h.first == 0 {
		return segHeader{}, fmt.Errorf("first index 0")
	}
	return h, nil
}

// segName is the file name of the segment whose first record is first:
// 16 hex digits, so that names sort in index order.
func segName(first uint64) string { return fmt.Sprintf("%016x%s", first, segSuffix) }

// parseIndexName reads the index from a segment or snapshot file name.
func parseIndexName(name, suffix string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, suffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 64)
	return n, err == nil
}

// recordSize is the size of a record with an n-byte payload on disk:
// header, payload, zero padding to a multiple of 8.
func recordSize(n int) int { return (recHeaderSize + n + 7) &^ 7 }

// appendRecord encodes a record after dst. Its CRC is CRC32C over
// everything after the CRC field (length word, index, payload, padding),
// seeded with prevCRC, the CRC of the record before it: the chain makes a
// record valid only in its place. It returns the new CRC.
func appendRecord(dst []byte, prevCRC uint32, index uint64, payload []byte, commit bool) ([]byte, uint32) {
	start := len(dst)
	size := recordSize(len(payload))
	dst = slices.Grow(dst, size)[:start+size]
	r := dst[start:]
	word := uint32(len(payload))
	if commit {
		word |= commitFlag
	}
	le.PutUint32(r[4:], word)
	le.PutUint64(r[8:], index)
	n := copy(r[recHeaderSize:], payload)
	clear(r[recHeaderSize+n:]) // padding
	crc := crc32.Update(prevCRC, castagnoli, r[4:])
	le.PutUint32(r, crc)
	return dst, crc
}

// recHeader is a record header read without checking the CRC.
type recHeader struct {
	crc    uint32
	n      int // payload length
	commit bool
	index  uint64
}

func (h recHeader) size() int { return recordSize(h.n) }

// parseRecHeader reads a record header that is well formed on its own:
// complete, reserved bits clear, length within MaxPayload, index not 0
// (so a run of zeroes is never a record).
func parseRecHeader(b []byte) (recHeader, bool) {
	if len(b) < recHeaderSize {
		return recHeader{}, false
	}
	word := le.Uint32(b[4:])
	h := recHeader{
		crc:    le.Uint32(b),
		n:      int(word & lengthMask),
		commit: word&commitFlag != 0,
		index:  le.Uint64(b[8:]),
	}
	if word&reservedBits != 0 || h.n > MaxPayload || h.index == 0 {
		return recHeader{}, false
	}
	return h, true
}

// recordError says why a record did not decode.
type recordError string

func (e recordError) Error() string { return string(e) }

const (
	errTruncated = recordError("record truncated")
	errHeader    = recordError("malformed record header")
	errIndex     = recordError("record index out of sequence")
	errChecksum  = recordError("record checksum mismatch")
)

// decodeRecord decodes the record at the start of b, which must carry
// index want and follow a record whose CRC was prevCRC. The payload
// aliases b.
func decodeRecord(b []byte, prevCRC uint32, want uint64) (recHeader, []byte, error) {
	if len(b) < recHeaderSize {
		return recHeader{}, nil, errTruncated
	}
	h, ok := parseRecHeader(b)
	if !ok {
		return recHeader{}, nil, errHeader
	}
	if h.index != want {
		return recHeader{}, nil, errIndex
	}
	if h.size() > len(b) {
		return recHeader{}, nil, errTruncated
	}
	if crc32.Update(prevCRC, castagnoli, b[4:h.size()]) != h.crc {
		return recHeader{}, nil, errChecksum
	}
	return h, b[recHeaderSize : recHeaderSize+h.n], nil
}

// segScan is what scanning a segment's records found.
type segScan struct {
	count   int    // valid records
	last    uint64 // index of the last valid record; first-1 when none
	lastCRC uint32 // CRC of the last valid record; the header's prevCRC when none
	end     int    // offset just after the last valid record
	err     error  // why decoding stopped before the end of b; nil if it reached it
}

// scanRecords decodes the records of a whole segment file b (header
// included, already checked) until the end or the first bad record.
func scanRecords(b []byte, h segHeader) segScan {
	s := segScan{last: h.first - 1, lastCRC: h.prevCRC, end: segHeaderSize}
	for s.end < len(b) {
		rh, _, err := decodeRecord(b[s.end:], s.lastCRC, s.last+1)
		if err != nil {
			s.err = err
			return s
		}
		s.count++
		s.last, s.lastCRC = rh.index, rh.crc
		s.end += rh.size()
	}
	return s
}
