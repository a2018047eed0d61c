package bitcask

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
)

// Data files (format version 2)
//
// A data file is a sequence of internal/record frames with nothing between
// them, appended and never changed:
//
//	offset  size  field
//	0       4     CRC-32C (Castagnoli) of bytes 4 .. 8+len, uint32 little-endian
//	4       4     len: the payload's length, uint32 little-endian
//	8       len   payload
//
// The first frame is the file's header (fileHeaderSize = 24 bytes in all),
// written and synced when the file is created, before any record:
//
//	offset  size  field
//	0       4     CRC-32C of bytes 4..24, uint32 LE
//	4       4     len: 16, uint32 LE
//	8       4     magic "bcDF"
//	12      1     version, 2
//	13      1     origin: 0 = written by appends (an active file), 1 = merge output
//	14      2     zero
//	16      8     seq floor, uint64 LE: every batch committed before the file
//	              was created has a sequence number <= floor (it keeps LastSeq
//	              from going back when merges drop the newest records)
//
// Every later frame is one record (recordHeaderSize = 29 bytes, then the key
// and the value):
//
//	offset  size  field
//	0       4     CRC-32C of bytes 4..end of record, uint32 LE
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
// A batch of n operations is n consecutive records with the same seq; all but
// the last carry flagMore. Recovery applies a batch only once it has read its
// last record, so a batch whose end never reached the disk is dropped whole.
// A batch never spans two files: the active file rotates between batches.
// Merge output holds single, complete records (flagMore clear), copied with
// their synced field, which is read only in the newest append file.
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
// Format 1 had a 20-byte header that was not a frame ("bcDF", version 1,
// origin, zero, floor, CRC) and 21-byte record headers (CRC, seq, flags, key
// length, value length) without the synced field, so its torn tails could not
// be told from damage in acknowledged data. Open refuses a format 1 file with
// an error wrapping ErrFormat that names the file.

const (
	fileHeaderSize   = record.HeaderSize + filePayloadSize
	filePayloadSize  = 16
	recordHeaderSize = record.HeaderSize + payloadHeaderSize
	// payloadHeaderSize is the fixed part of a record's payload: synced,
	// seq, flags, key length.
	payloadHeaderSize = 21
	// maxRecordPayload bounds a record's payload for the frame reader.
	maxRecordPayload = payloadHeaderSize + logkv.MaxKeySize + logkv.MaxValueSize

	fileMagic   = "bcDF"
	fileVersion = 2

	originAppend = 0
	originMerge  = 1

	flagTombstone = 1 << 0
	flagMore      = 1 << 1
	flagsKnown    = flagTombstone | flagMore
)

// ErrFormat reports a data file in a format this version cannot read. The
// wrapping error names the file.
var ErrFormat = errors.New("bitcask: unsupported data file format")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// recordSize is the encoded size of a record with the given key and value
// lengths.
func recordSize(klen, vlen int) int { return recordHeaderSize + klen + vlen }

// appendRecord appends one encoded record to dst. It builds the
// internal/record frame in place (record.Append would need the payload in a
// buffer of its own: one more copy of every value written); TestRecordFrame
// checks that the bytes are record.Append's.
func appendRecord(dst []byte, synced, seq uint64, flags byte, key, value []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(payloadHeaderSize+len(key)+len(value)))
	dst = binary.LittleEndian.AppendUint64(dst, synced)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(key)))
	dst = append(dst, key...)
	dst = append(dst, value...)
	binary.LittleEndian.PutUint32(dst[start:], crc(dst[start+4:]))
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

// decodeRecord decodes the record at the start of b, checking the frame (its
// length against the limits, then its checksum) and then the payload. On
// failure it returns a reason; the caller names file and offset.
func decodeRecord(b []byte) (r dataRecord, why string) {
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
	if crc(b[4:end]) != binary.LittleEndian.Uint32(b) {
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

// appendFileHeader appends a data file's header frame to dst.
func appendFileHeader(dst []byte, origin byte, floor uint64) []byte {
	p := make([]byte, 0, filePayloadSize)
	p = append(p, fileMagic...)
	p = append(p, fileVersion, origin, 0, 0)
	p = binary.LittleEndian.AppendUint64(p, floor)
	return record.Append(dst, p)
}

// decodeFileHeader checks and decodes a data file header. A file in another
// format returns an error wrapping ErrFormat; a damaged header, why.
func decodeFileHeader(path string, b []byte) (origin byte, floor uint64, why string, err error) {
	if isFormat1Header(b) {
		return 0, 0, "", fmt.Errorf("%w: %s is in data file format 1 (records without their synced length, "+
			"so a torn tail cannot be told from damage to acknowledged data); this version reads format %d only: "+
			"read the directory with a logkv build from before format 2 and copy the data into a new one, "+
			"or resync the node from its leader or a checkpoint", ErrFormat, path, fileVersion)
	}
	switch {
	case len(b) < fileHeaderSize:
		return 0, 0, "short file header", nil
	case binary.LittleEndian.Uint32(b[4:]) != filePayloadSize:
		return 0, 0, "bad file header length", nil
	case binary.LittleEndian.Uint32(b) != crc(b[4:fileHeaderSize]):
		return 0, 0, "file header checksum mismatch", nil
	case string(b[8:12]) != fileMagic:
		return 0, 0, "bad file magic", nil
	case b[12] != fileVersion:
		return 0, 0, "", fmt.Errorf("%w: %s is in data file format %d; this version reads format %d", ErrFormat, path, b[12], fileVersion)
	case b[13] != originAppend && b[13] != originMerge:
		return 0, 0, "unknown file origin", nil
	}
	return b[13], binary.LittleEndian.Uint64(b[16:]), "", nil
}

// isFormat1Header reports whether b starts with an intact format 1 header:
// magic, version 1, and its CRC over bytes 0..16 at 16.
func isFormat1Header(b []byte) bool {
	return len(b) >= 20 && string(b[:4]) == fileMagic && b[4] == 1 &&
		binary.LittleEndian.Uint32(b[16:]) == crc(b[:16])
}
