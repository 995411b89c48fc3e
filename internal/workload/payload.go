package workload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// PayloadSize is the length of one workload record.
const PayloadSize = 24

const (
	payloadMagic   = "LKWR"
	payloadVersion = 1
	payloadCRCAt   = PayloadSize - 4
)

// Errors DecodePayload reports, wrapped with detail.
var (
	ErrPayloadLength   = errors.New("workload: payload has the wrong length")
	ErrPayloadMagic    = errors.New("workload: payload is not a workload record")
	ErrPayloadVersion  = errors.New("workload: unsupported payload version")
	ErrPayloadChecksum = errors.New("workload: payload checksum mismatch")
	ErrPayloadSeq      = errors.New("workload: payload seq is zero")
)

// EncodePayload returns the record for write seq of chain (see doc.go for
// the layout). Seqs start at 1; a record with seq 0 does not decode.
func EncodePayload(chain uint32, seq uint64) []byte {
	b := make([]byte, 0, PayloadSize)
	b = append(b, payloadMagic...)
	b = binary.BigEndian.AppendUint32(b, payloadVersion)
	b = binary.BigEndian.AppendUint32(b, chain)
	b = binary.BigEndian.AppendUint64(b, seq)
	return binary.BigEndian.AppendUint32(b, crc32c(b))
}

// DecodePayload parses a record made by EncodePayload.
func DecodePayload(b []byte) (chain uint32, seq uint64, err error) {
	if len(b) != PayloadSize {
		return 0, 0, fmt.Errorf("%w: %d bytes, want %d", ErrPayloadLength, len(b), PayloadSize)
	}
	if string(b[0:4]) != payloadMagic {
		return 0, 0, fmt.Errorf("%w: magic %q", ErrPayloadMagic, b[0:4])
	}
	if v := binary.BigEndian.Uint32(b[4:8]); v != payloadVersion {
		return 0, 0, fmt.Errorf("%w: %d", ErrPayloadVersion, v)
	}
	if got, want := binary.BigEndian.Uint32(b[payloadCRCAt:]), crc32c(b[:payloadCRCAt]); got != want {
		return 0, 0, fmt.Errorf("%w: stored %08x, computed %08x", ErrPayloadChecksum, got, want)
	}
	chain = binary.BigEndian.Uint32(b[8:12])
	seq = binary.BigEndian.Uint64(b[12:20])
	if seq == 0 {
		return 0, 0, fmt.Errorf("%w: chain %d", ErrPayloadSeq, chain)
	}
	return chain, seq, nil
}

// crc32c is CRC-32 with the Castagnoli polynomial. MakeTable returns a
// shared table for it, built once, so calling it each time costs nothing.
func crc32c(b []byte) uint32 {
	return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
}
