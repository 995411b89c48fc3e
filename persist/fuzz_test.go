package persist

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// segmentSeed is a valid segment: records 5..5+n-1 after a previous CRC,
// in batches of two.
func segmentSeed(n int) []byte {
	h := segHeader{first: 5, prevCRC: 0xdeadbeef}
	b := h.marshal()
	crc := h.prevCRC
	for i := range n {
		idx := h.first + uint64(i)
		b, crc = appendRecord(b, crc, idx, payloadFor(idx), i%2 == 1 || i == n-1)
	}
	return b
}

// checkSegment is the property FuzzSegment checks on any bytes: the
// decoders never panic; the valid prefix they report re-encodes to the
// same bytes; and judgeTail's evidence, if any, lies after the bad record.
func checkSegment(t *testing.T, data []byte) {
	h, err := parseSegHeader(data)
	if err != nil {
		return
	}
	s := scanRecords(data, h)
	if s.end > len(data) || s.end < segHeaderSize || (s.err == nil) != (s.end == len(data)) {
		t.Fatalf("scan: end %d of %d, err %v", s.end, len(data), s.err)
	}
	// Re-encode what decoded: the same bytes.
	re := h.marshal()
	crc, off := h.prevCRC, segHeaderSize
	for i := h.first; off < s.end; i++ {
		rh, payload, err := decodeRecord(data[off:], crc, i)
		if err != nil {
			t.Fatalf("record %d at %d decoded in the scan but not now: %v", i, off, err)
		}
		re, crc = appendRecord(re, crc, i, payload, rh.commit)
		off += rh.size()
	}
	if !bytes.Equal(re, data[:s.end]) || crc != s.lastCRC {
		t.Fatalf("re-encoding the valid prefix differs")
	}
	if s.err != nil {
		v := judgeTail(data, s.end, s.lastCRC, s.last+1)
		if !v.torn && (v.evidence <= s.end || v.evidence >= len(data)) {
			t.Fatalf("evidence at %d, bad record at %d, %d bytes", v.evidence, s.end, len(data))
		}
	}
}

func FuzzSegment(f *testing.F) {
	good := segmentSeed(7)
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add(segHeader{first: 1}.marshal())
	flipped := bytes.Clone(good)
	flipped[segHeaderSize+recHeaderSize] ^= 1
	f.Add(flipped)
	f.Add(append(bytes.Clone(good), make([]byte, 64)...))
	for _, tc := range segmentRegressions {
		f.Add(tc.data)
	}
	f.Fuzz(checkSegment)
}

// segmentRegressions are inputs the fuzzer found (or that are worth
// keeping by hand), kept as named cases.
var segmentRegressions = []struct {
	name string
	data []byte
}{
	{"header only, max first index", segHeader{first: ^uint64(0)}.marshal()},
	{"max-length header, no payload", func() []byte {
		b := segHeader{first: 1}.marshal()
		rec := make([]byte, recHeaderSize)
		le.PutUint32(rec[4:], MaxPayload|commitFlag)
		le.PutUint64(rec[8:], 1)
		return append(b, rec...)
	}()},
}

func TestSegmentRegressions(t *testing.T) {
	t.Parallel()
	for _, tc := range segmentRegressions {
		t.Run(tc.name, func(t *testing.T) { checkSegment(t, tc.data) })
	}
}

// FuzzRecord: any payload at any index after any CRC decodes back, and
// only at its index and after its CRC.
func FuzzRecord(f *testing.F) {
	f.Add([]byte("x"), uint64(1), uint32(0), true)
	f.Add([]byte{}, uint64(1<<63), uint32(0xffffffff), false)
	f.Fuzz(func(t *testing.T, payload []byte, index uint64, prev uint32, commit bool) {
		if index == 0 || len(payload) > 4096 {
			return
		}
		b, crc := appendRecord(nil, prev, index, payload, commit)
		if len(b)%8 != 0 || len(b) != recordSize(len(payload)) {
			t.Fatalf("record of %d bytes for a %d-byte payload", len(b), len(payload))
		}
		h, got, err := decodeRecord(b, prev, index)
		if err != nil || !bytes.Equal(got, payload) || h.crc != crc || h.commit != commit || h.index != index {
			t.Fatalf("round trip: %v %+v", err, h)
		}
		if _, _, err := decodeRecord(b, prev^1, index); err == nil {
			t.Fatalf("decoded after the wrong CRC")
		}
		if _, _, err := decodeRecord(b, prev, index+1); err == nil {
			t.Fatalf("decoded at the wrong index")
		}
		if _, _, err := decodeRecord(b[:len(b)-1], prev, index); err == nil {
			t.Fatalf("decoded a truncated record")
		}
	})
}

// FuzzSnapshotFile: the snapshot parser never panics and accepts only
// what re-encodes to the same bytes.
func FuzzSnapshotFile(f *testing.F) {
	state := []byte(`{"v":1}`)
	good := append(marshalSnapHeader(42, state), state...)
	f.Add(good)
	f.Add(good[:snapHeaderSize])
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseSnapshot(data)
		if err != nil {
			return
		}
		if re := append(marshalSnapHeader(s.Index, s.State), s.State...); !bytes.Equal(re, data) {
			t.Fatalf("accepted a snapshot that does not re-encode to itself")
		}
	})
}

// checkBackup is FuzzBackup's property: the reader never panics, and
// what it accepts has a known format and matching checksums.
func checkBackup(t *testing.T, data []byte) {
	m, state, err := readBackup(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return
	}
	if m.Format != backupFormat || m.Version != backupVersion || len(m.Members) != 1 {
		t.Fatalf("accepted manifest %+v", m)
	}
	sum := sha256.Sum256(state)
	if hex.EncodeToString(sum[:]) != m.Members[0].SHA256 || int64(len(state)) != m.Members[0].Size {
		t.Fatalf("accepted a state that does not match its checksum")
	}
	_, _ = loadTally(state) // must not panic either
}

func FuzzBackup(f *testing.F) {
	st := member{name: stateName, data: validState(f)}
	f.Add(makeZip(f, manifestFor(f, nil, st), st))
	for _, tc := range badBackups(f) {
		if len(tc.zip) < 64<<10 {
			f.Add(tc.zip)
		}
	}
	for _, tc := range backupRegressions {
		f.Add(tc.data)
	}
	f.Fuzz(checkBackup)
}

// backupRegressions: inputs the fuzzer found, kept as named cases.
var backupRegressions = []struct {
	name string
	data []byte
}{
	{"empty", nil},
	{"end of central directory only", []byte("PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00")},
}

func TestBackupRegressions(t *testing.T) {
	t.Parallel()
	for _, tc := range backupRegressions {
		t.Run(tc.name, func(t *testing.T) { checkBackup(t, tc.data) })
	}
}
