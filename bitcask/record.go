package bitcask

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/logkv/logkv"
)

// Data files
//
// A data file is a header followed by records, appended and never changed.
//
// The header (fileHeaderSize = 20 bytes):
//
//	offset  size  field
//	0       4     magic "bcDF"
//	4       1     version, 1
//	5       1     origin: 0 = written by appends (an active file), 1 = merge output
//	6       2     zero
//	8       8     seq floor, uint64 little-endian: every batch committed before
//	              the file was created has a sequence number <= floor (it keeps
//	              LastSeq from going back when merges drop the newest records)
//	16      4     CRC-32C (Castagnoli) of bytes 0..16, little-endian
//
// A record (recordHeaderSize = 21 bytes, then the key and the value):
//
//	offset  size  field
//	0       4     CRC-32C of bytes 4..end of record, little-endian
//	4       8     seq, uint64 little-endian: the batch's sequence number
//	12      1     flags: bit 0 (flagTombstone) the key is deleted, value len is 0;
//	              bit 1 (flagMore) more records of the same batch follow;
//	              other bits are zero
//	13      4     key len, uint32 little-endian, 1..MaxKeySize
//	17      4     value len, uint32 little-endian, 0..MaxValueSize
//	21      k     key
//	21+k    v     value
//
// A batch of n operations is n consecutive records with the same seq; all but
// the last carry flagMore. Recovery applies a batch only once it has read its
// last record, so a batch whose end never reached the disk is dropped whole.
// A batch never spans two files: the active file rotates between batches.
// Merge output holds single, complete records (flagMore clear).

const (
	fileHeaderSize   = 20
	recordHeaderSize = 21

	fileMagic   = "bcDF"
	fileVersion = 1

	originAppend = 0
	originMerge  = 1

	flagTombstone = 1 << 0
	flagMore      = 1 << 1
	flagsKnown    = flagTombstone | flagMore
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// recordSize is the encoded size of a record with the given key and value
// lengths.
func recordSize(klen, vlen int) int { return recordHeaderSize + klen + vlen }

// appendRecord appends one encoded record to dst.
func appendRecord(dst []byte, seq uint64, flags byte, key, value []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(key)))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(value)))
	dst = append(dst, key...)
	dst = append(dst, value...)
	binary.LittleEndian.PutUint32(dst[start:], crc(dst[start+4:]))
	return dst
}

// recordHeader is a decoded record header.
type recordHeader struct {
	crc   uint32
	seq   uint64
	flags byte
	klen  uint32
	vlen  uint32
}

func (h recordHeader) size() int { return recordSize(int(h.klen), int(h.vlen)) }

// decodeHeader decodes a record header and checks its fields against the
// limits (but not the checksum, which covers the rest of the record). ok is
// false if b is too short or a field is out of range.
func decodeHeader(b []byte) (h recordHeader, why string) {
	if len(b) < recordHeaderSize {
		return h, "short record header"
	}
	h = recordHeader{
		crc:   binary.LittleEndian.Uint32(b[0:]),
		seq:   binary.LittleEndian.Uint64(b[4:]),
		flags: b[12],
		klen:  binary.LittleEndian.Uint32(b[13:]),
		vlen:  binary.LittleEndian.Uint32(b[17:]),
	}
	switch {
	case h.flags&^flagsKnown != 0:
		return h, "unknown record flags"
	case h.klen == 0 || h.klen > logkv.MaxKeySize:
		return h, "bad key length"
	case h.vlen > logkv.MaxValueSize:
		return h, "bad value length"
	case h.flags&flagTombstone != 0 && h.vlen != 0:
		return h, "tombstone with a value"
	}
	return h, ""
}

// record is a decoded record; key and value alias the decoded buffer.
type record struct {
	recordHeader
	key, value []byte
}

// decodeRecord decodes the record at the start of b, checking lengths and the
// checksum. On failure it returns a reason; the caller names file and offset.
func decodeRecord(b []byte) (r record, why string) {
	h, why := decodeHeader(b)
	if why != "" {
		return r, why
	}
	n := h.size()
	if len(b) < n {
		return r, "record runs past the end of the data"
	}
	if crc(b[4:n]) != h.crc {
		return r, "record checksum mismatch"
	}
	r.recordHeader = h
	r.key = b[recordHeaderSize : recordHeaderSize+h.klen : recordHeaderSize+h.klen]
	r.value = b[recordHeaderSize+h.klen : n : n]
	return r, ""
}

func appendFileHeader(dst []byte, origin byte, floor uint64) []byte {
	start := len(dst)
	dst = append(dst, fileMagic...)
	dst = append(dst, fileVersion, origin, 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, floor)
	return binary.LittleEndian.AppendUint32(dst, crc(dst[start:]))
}

// decodeFileHeader checks and decodes a data file header.
func decodeFileHeader(b []byte) (origin byte, floor uint64, why string) {
	switch {
	case len(b) < fileHeaderSize:
		return 0, 0, "short file header"
	case string(b[:4]) != fileMagic:
		return 0, 0, "bad file magic"
	case binary.LittleEndian.Uint32(b[16:]) != crc(b[:16]):
		return 0, 0, "file header checksum mismatch"
	case b[4] != fileVersion:
		return 0, 0, "unknown file version"
	case b[5] != originAppend && b[5] != originMerge:
		return 0, 0, "unknown file origin"
	}
	return b[5], binary.LittleEndian.Uint64(b[8:]), ""
}
