package sstable

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/logkv/logkv"
)

// The byte layout below is documented in doc.go.

const (
	// blockTrailerSize is the compression type byte and the CRC-32C after
	// every block.
	blockTrailerSize = 5
	// footerSize is the fixed size of the footer at the end of a table.
	footerSize = 64
	// formatVersion is the version this package writes: 2, whose filter
	// is blocked (one cache line a probe).
	formatVersion = 2
	// minFormatVersion is the oldest version it reads: 1, whose filter
	// spreads a key's probes over the whole bit array.
	minFormatVersion = 1
	// magic ends every table.
	magic = "LOGKVSST"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// blockChecksum is the CRC-32C of a stored block followed by its type byte.
func blockChecksum(block []byte, typ byte) uint32 {
	// The type byte is folded in by hand: passing a one-byte slice to
	// crc32.Update would allocate it.
	c := ^crc32.Update(0, crcTable, block)
	c = crcTable[byte(c)^typ] ^ c>>8
	return ^c
}

// handle locates a stored block: its offset in the file and its length,
// the trailer excluded.
type handle struct{ offset, length uint64 }

func (h handle) append(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, h.offset)
	return binary.AppendUvarint(dst, h.length)
}

// decodeHandle decodes a handle from an index entry's value.
func decodeHandle(b []byte) (handle, bool) {
	off, n := binary.Uvarint(b)
	if n <= 0 {
		return handle{}, false
	}
	l, m := binary.Uvarint(b[n:])
	if m <= 0 || n+m != len(b) {
		return handle{}, false
	}
	return handle{off, l}, true
}

// footer is the fixed-size table tail.
type footer struct {
	index, filter, props handle
	version              uint32
}

func (f footer) encode() []byte {
	b := make([]byte, 0, footerSize)
	for _, h := range []handle{f.index, f.filter, f.props} {
		b = binary.LittleEndian.AppendUint64(b, h.offset)
		b = binary.LittleEndian.AppendUint64(b, h.length)
	}
	b = binary.LittleEndian.AppendUint32(b, f.version)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	return append(b, magic...)
}

// whatVersion is what decodeFooter says of a footer of another version.
const whatVersion = "unknown format version"

// ErrFormat reports a table in a format this version cannot read (lsm
// exports it as lsm.ErrFormat). It wraps logkv.ErrFormat.
var ErrFormat = logkv.NewFormatSentinel("lsm: unsupported table format")

// decodeFooter parses b (footerSize bytes); it returns what is wrong, or "".
func decodeFooter(b []byte) (footer, string) {
	if string(b[56:]) != magic {
		return footer{}, "bad magic number: not a table"
	}
	if crc32.Checksum(b[:52], crcTable) != binary.LittleEndian.Uint32(b[52:]) {
		return footer{}, "footer checksum mismatch"
	}
	var f footer
	hs := []*handle{&f.index, &f.filter, &f.props}
	for i, h := range hs {
		h.offset = binary.LittleEndian.Uint64(b[16*i:])
		h.length = binary.LittleEndian.Uint64(b[16*i+8:])
	}
	f.version = binary.LittleEndian.Uint32(b[48:])
	if f.version < minFormatVersion || f.version > formatVersion {
		return footer{}, whatVersion
	}
	return f, ""
}
