package bitcask

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
)

// Data files (format version 3)
//
// A data file is a sequence of internal/record frames with nothing between
// them, appended and never changed:
//
//	offset  size  field
//	0       4     checksum: CRC-32C (Castagnoli) of bytes 4 .. 8+len, uint32
//	              little-endian; in record frames salted (below)
//	4       4     len: the payload's length, uint32 little-endian
//	8       len   payload
//
// The first frame is the file's header (fileHeaderSize = 32 bytes in all),
// unsalted, written and synced when the file is created, before any record:
//
//	offset  size  field
//	0       4     CRC-32C of bytes 4..32, uint32 LE
//	4       4     len: 24, uint32 LE
//	8       4     magic "bcDF"
//	12      1     version, 3
//	13      1     origin: 0 = written by appends (an active file), 1 = merge output
//	14      2     zero
//	16      8     seq floor, uint64 LE: every batch committed before the file
//	              was created has a sequence number <= floor (it keeps LastSeq
//	              from going back when merges drop the newest records)
//	24      8     salt, uint64 LE: non-zero, drawn at random when the file is
//	              created
//
// Every later frame is one record (recordHeaderSize = 29 bytes, then the key
// and the value), its checksum salted with the header's salt
// (record.Checksum: CRC-32C of the salt's 8 bytes, little-endian, then bytes
// 4..end of the record):
//
//	offset  size  field
//	0       4     salted CRC-32C of bytes 4..end of record, uint32 LE
//	4       4     len: 21+k+v, uint32 LE
//	8       8     synced: how many bytes of this file were durable (fsynced)
//	              when the record was appended, uint64 LE; never more than the
//	              record's own offset
//	16      8     seq, uint64 LE: the batch's sequence number
//	24      1     flags: bit 0 (flagTombstone) the key is deleted, v is 0;
//	              bit 1 (flagMore) more records of the same batch follow;
//	              other bits are zero
//	25      4     k: key length, uint32 LE, 1..MaxKeySize
//	29      k     key
//	29+k    v     value, v = len-21-k, 0..MaxValueSize
//
// Why the salt: recovery (looking for a later record that vouches for
// damaged bytes) and salvage (resynchronising past damage) try every offset
// for a frame that checks out, and a value can hold bytes shaped like a
// whole record with a valid plain CRC: anyone who writes a value could plant
// one. Salted, such a forgery checks out only with the salt, which a writer
// of values never sees (the commit log's format 3 does the same).
//
// A batch of n operations is n consecutive records with the same seq; all but
// the last carry flagMore. Recovery applies a batch only once it has read its
// last record, so a batch whose end never reached the disk is dropped whole.
// A batch never spans two files: the active file rotates between batches.
// Merge output holds single, complete records (flagMore clear), re-framed
// with the output file's salt and their synced field, which is read only in
// the newest append file.
//
// The synced field is what lets recovery tell a torn tail from corruption (as
// the lsm WAL's durable field and the commit log's synced field do): in the
// newest append file, a damaged record at offset X that an intact later record
// says was synced (its synced field exceeds X) is corruption; damage that no
// later record vouches for lies in bytes never acknowledged as durable, and is
// cut as a torn tail. Fsyncs complete between batches, so synced always falls
// on a batch boundary. See recover.go.
//
// # Format versions
//
// Format 2 is format 3 without the salt: a 16-byte header payload (bytes
// 8..24 above, version 2; a 24-byte header frame) and records with plain
// CRC-32C checksums. Open reads format 2 files (a directory upgraded in place
// keeps them until a merge rewrites them; new files are format 3), and
// testdata/format2 is checked to open.
//
// Format 1 had a 20-byte header that was not a frame ("bcDF", version 1,
// origin, zero, floor, CRC) and 21-byte record headers (CRC, seq, flags, key
// length, value length) without the synced field, so its torn tails could not
// be told from damage in acknowledged data. Open refuses a format 1 file with
// an error wrapping ErrFormat that names the file.

const (
	fileHeaderSize  = record.HeaderSize + filePayloadSize
	filePayloadSize = 24
	// fileHeaderSizeV2 and filePayloadSizeV2 are format 2's; no data
	// file's header is shorter.
	fileHeaderSizeV2  = record.HeaderSize + filePayloadSizeV2
	filePayloadSizeV2 = 16
	recordHeaderSize  = record.HeaderSize + payloadHeaderSize
	// payloadHeaderSize is the fixed part of a record's payload: synced,
	// seq, flags, key length.
	payloadHeaderSize = 21
	// maxRecordPayload bounds a record's payload for the frame reader.
	maxRecordPayload = payloadHeaderSize + logkv.MaxKeySize + logkv.MaxValueSize

	fileMagic    = "bcDF"
	fileVersion  = 3
	fileVersion2 = 2

	originAppend = 0
	originMerge  = 1

	flagTombstone = 1 << 0
	flagMore      = 1 << 1
	flagsKnown    = flagTombstone | flagMore
)

// ErrFormat reports a data file in a format this version cannot read. The
// wrapping error names the file. It wraps logkv.ErrFormat (and so
// logkv.ErrCorrupt): errors.Is with either holds.
var ErrFormat = logkv.NewFormatSentinel("bitcask: unsupported data file format")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// newSalt returns a data file's salt: random (math/rand/v2's generator is
// seeded from the operating system, so a writer of values cannot predict
// it) and never 0, which would mean no salt.
func newSalt() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}

// recordSize is the encoded size of a record with the given key and value
// lengths.
func recordSize(klen, vlen int) int { return recordHeaderSize + klen + vlen }

// appendRecord appends one encoded record to dst, framed with salt (0: a
// format 2 record). It builds the internal/record frame in place
// (record.AppendSalted would need the payload in a buffer of its own: one
// more copy of every value written); TestRecordFrame checks that the bytes
// are record.AppendSalted's.
func appendRecord(dst []byte, salt, synced, seq uint64, flags byte, key, value []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(payloadHeaderSize+len(key)+len(value)))
	dst = binary.LittleEndian.AppendUint64(dst, synced)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(key)))
	dst = append(dst, key...)
	dst = append(dst, value...)
	binary.LittleEndian.PutUint32(dst[start:], record.Checksum(dst[start+4:], salt))
	return dst
}

// dataRecord is a decoded record; key and value alias the decoded buffer.
type dataRecord struct {
	synced uint64
	seq    uint64
	flags  byte
	vlen   uint32
	key    []byte
	value  []byte
}

// size is the record's encoded size.
func (r *dataRecord) size() int { return recordSize(len(r.key), len(r.value)) }

// decodeRecord decodes the record at the start of b, a file's whose records
// are framed with salt, checking the frame (its length against the limits,
// then its checksum) and then the payload. On failure it returns a reason;
// the caller names file and offset.
func decodeRecord(b []byte, salt uint64) (r dataRecord, why string) {
	if len(b) < recordHeaderSize {
		return r, "short record header"
	}
	n := binary.LittleEndian.Uint32(b[4:])
	switch {
	case n < payloadHeaderSize || n > maxRecordPayload:
		return r, fmt.Sprintf("record length %d out of range", n)
	case int64(n) > int64(len(b)-record.HeaderSize):
		return r, "record runs past the end of the data"
	}
	end := record.HeaderSize + int(n)
	if record.Checksum(b[4:end], salt) != binary.LittleEndian.Uint32(b) {
		return r, "record checksum mismatch"
	}
	return decodePayload(b[record.HeaderSize:end])
}

// decodePayload decodes a record's payload p, whose frame checked out.
func decodePayload(p []byte) (r dataRecord, why string) {
	if len(p) < payloadHeaderSize {
		return r, "short record payload"
	}
	r.synced = binary.LittleEndian.Uint64(p)
	r.seq = binary.LittleEndian.Uint64(p[8:])
	r.flags = p[16]
	klen := binary.LittleEndian.Uint32(p[17:])
	switch {
	case r.flags&^flagsKnown != 0:
		return r, "unknown record flags"
	case klen == 0 || klen > logkv.MaxKeySize || int64(klen) > int64(len(p)-payloadHeaderSize):
		return r, "bad key length"
	}
	vlen := len(p) - payloadHeaderSize - int(klen)
	switch {
	case vlen > logkv.MaxValueSize:
		return r, "bad value length"
	case r.flags&flagTombstone != 0 && vlen != 0:
		return r, "tombstone with a value"
	}
	kend := payloadHeaderSize + int(klen)
	r.key = p[payloadHeaderSize:kend:kend]
	r.value = p[kend:len(p):len(p)]
	r.vlen = uint32(vlen)
	return r, ""
}

// fileHeader is what a data file's header says.
type fileHeader struct {
	origin byte
	floor  uint64
	salt   uint64 // of the file's record frames; 0 in format 2
	size   int64  // the header frame's size: where the first record starts
}

// appendFileHeader appends a format 3 data file's header frame to dst.
func appendFileHeader(dst []byte, origin byte, floor, salt uint64) []byte {
	p := make([]byte, 0, filePayloadSize)
	p = append(p, fileMagic...)
	p = append(p, fileVersion, origin, 0, 0)
	p = binary.LittleEndian.AppendUint64(p, floor)
	p = binary.LittleEndian.AppendUint64(p, salt)
	return record.Append(dst, p)
}

// decodeFileHeader checks and decodes the data file header at the start of
// b (format 3 or 2). A file in another format returns an error wrapping
// ErrFormat; a damaged header, why.
func decodeFileHeader(path string, b []byte) (h fileHeader, why string, err error) {
	if isFormat1Header(b) {
		return h, "", fmt.Errorf("%w: %s is in data file format 1 (records without their synced length, "+
			"so a torn tail cannot be told from damage to acknowledged data); this version reads formats %d and %d only: "+
			"read the directory with a logkv build from before format 2 and copy the data into a new one, "+
			"or resync the node from its leader or a checkpoint", ErrFormat, path, fileVersion2, fileVersion)
	}
	if len(b) < fileHeaderSizeV2 {
		return h, "short file header", nil
	}
	n := binary.LittleEndian.Uint32(b[4:])
	switch {
	case n != filePayloadSize && n != filePayloadSizeV2:
		return h, "bad file header length", nil
	case int64(n) > int64(len(b)-record.HeaderSize):
		return h, "short file header", nil
	case binary.LittleEndian.Uint32(b) != crc(b[4:record.HeaderSize+n]):
		return h, "file header checksum mismatch", nil
	case string(b[8:12]) != fileMagic:
		return h, "bad file magic", nil
	case b[12] != fileVersion && b[12] != fileVersion2:
		return h, "", fmt.Errorf("%w: %s is in data file format %d; this version reads formats %d and %d", ErrFormat, path, b[12], fileVersion2, fileVersion)
	case (b[12] == fileVersion) != (n == filePayloadSize):
		return h, fmt.Sprintf("file header of %d bytes for format %d", n, b[12]), nil
	case b[13] != originAppend && b[13] != originMerge:
		return h, "unknown file origin", nil
	}
	h = fileHeader{origin: b[13], floor: binary.LittleEndian.Uint64(b[16:]), size: record.HeaderSize + int64(n)}
	if b[12] == fileVersion {
		if h.salt = binary.LittleEndian.Uint64(b[24:]); h.salt == 0 {
			return fileHeader{}, "file header with salt 0", nil
		}
	}
	return h, "", nil
}

// isFormat1Header reports whether b starts with an intact format 1 header:
// magic, version 1, and its CRC over bytes 0..16 at 16.
func isFormat1Header(b []byte) bool {
	return len(b) >= 20 && string(b[:4]) == fileMagic && b[4] == 1 &&
		binary.LittleEndian.Uint32(b[16:]) == crc(b[:16])
}
