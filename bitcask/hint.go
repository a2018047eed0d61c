package bitcask

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"unsafe"

	"github.com/logkv/logkv"
)

// Hint files
//
// A hint file NNNNNNNN.hint lists every record of the closed data file
// NNNNNNNN.data without its value, sorted by key, so that Open builds the
// keydir by merging sorted runs instead of reading the data. It is written
// once the data file is closed (rotation, merge output, Close), after the
// data file's last sync, so its data size is also the witness of how long
// the data file is: a hint whose data size differs from its data file's is
// corruption of the data file (see recover.go). Entries describe records of
// data file format 2 (a record of key length k and value length v takes
// 29+k+v bytes).
//
//	offset  size  field
//	0       4     magic "bcHT"
//	4       1     version, 1
//	5       3     zero
//	8       8     data size: the length of the data file described, uint64 LE
//	16      8     count: the number of entries, uint64 LE
//	24      ...   count entries, sorted by (key, offset), each:
//	                shared    uvarint: bytes shared with the previous key
//	                unshared  uvarint: bytes that follow (shared+unshared is
//	                          1..MaxKeySize)
//	                suffix    unshared bytes
//	                seq       uvarint
//	                offset    uvarint: the record's offset in the data file
//	                value len uvarint, 0..MaxValueSize (0 for a tombstone)
//	                flags     1 byte: bit 0 tombstone
//	end-4   4     CRC-32C of every byte before it, uint32 LE
//
// A decoder checks the checksum first, then every length against the limits
// and the data size, and the order, before it allocates per entry.

const (
	hintHeaderSize = 24
	hintMagic      = "bcHT"
	hintVersion    = 1
	minHintEntry   = 6 // shared, unshared, one key byte, seq, offset, vlen, flags - 1
)

// keyArena hands out keys as strings carved from shared chunks: Open loads a
// million keys with a few hundred allocations instead of a million. The
// chunks are garbage once Open (or a merge) is done: the keydir keeps each
// key's first 16 bytes in its nodes and copies the rest (bulkTree). limit,
// when set, bounds the chunk size: the keys of one file take no more bytes
// than the file, and Open of many small files should not clear a MiB each.
type keyArena struct {
	buf   []byte
	limit int
}

const arenaChunk = 1 << 20

func (a *keyArena) str(k []byte) string {
	if len(k) == 0 {
		return ""
	}
	if len(a.buf)+len(k) > cap(a.buf) {
		chunk := arenaChunk
		if a.limit > 0 {
			chunk = min(chunk, a.limit)
		}
		a.buf = make([]byte, 0, max(chunk, len(k)))
	}
	start := len(a.buf)
	a.buf = append(a.buf, k...)
	return unsafe.String(&a.buf[start], len(k))
}

// hintEntry describes one record of a data file.
type hintEntry struct {
	key  string
	seq  uint64
	off  uint32
	vlen uint32
	tomb bool
}

func (e *hintEntry) size() int64 { return int64(recordSize(len(e.key), int(e.vlen))) }

func sortHints(es []hintEntry) {
	slices.SortFunc(es, func(a, b hintEntry) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.off, b.off)
	})
}

// encodeHint encodes entries sorted by sortHints.
func encodeHint(dataSize int64, es []hintEntry) []byte {
	b := make([]byte, 0, hintHeaderSize+len(es)*16+4)
	b = append(b, hintMagic...)
	b = append(b, hintVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(dataSize))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(es)))
	prev := ""
	for i := range es {
		e := &es[i]
		shared := 0
		for shared < len(prev) && shared < len(e.key) && prev[shared] == e.key[shared] {
			shared++
		}
		b = binary.AppendUvarint(b, uint64(shared))
		b = binary.AppendUvarint(b, uint64(len(e.key)-shared))
		b = append(b, e.key[shared:]...)
		b = binary.AppendUvarint(b, e.seq)
		b = binary.AppendUvarint(b, uint64(e.off))
		b = binary.AppendUvarint(b, uint64(e.vlen))
		var flags byte
		if e.tomb {
			flags = flagTombstone
		}
		b = append(b, flags)
		prev = e.key
	}
	return binary.LittleEndian.AppendUint32(b, crc(b))
}

// decodeHint decodes a hint file. name is used in errors, which wrap
// logkv.ErrCorrupt.
func decodeHint(name string, b []byte) (dataSize int64, es []hintEntry, err error) {
	bad := func(off int, format string, args ...any) error {
		return logkv.CorruptError(name, int64(off), format, args...)
	}
	if len(b) < hintHeaderSize+4 {
		return 0, nil, bad(0, "hint file of %d bytes is too short", len(b))
	}
	body := b[:len(b)-4]
	if crc(body) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return 0, nil, bad(len(b)-4, "hint file checksum mismatch")
	}
	if string(b[:4]) != hintMagic || b[4] != hintVersion {
		return 0, nil, bad(0, "bad hint magic or version")
	}
	size := binary.LittleEndian.Uint64(b[8:])
	count := binary.LittleEndian.Uint64(b[16:])
	if size > maxFileSizeLimit+logkv.MaxBatchSize*8 || size < fileHeaderSizeV2 {
		return 0, nil, bad(8, "data size %d out of range", size)
	}
	if count > uint64(len(body)-hintHeaderSize)/minHintEntry {
		return 0, nil, bad(16, "count %d does not fit in %d bytes", count, len(body))
	}
	es = make([]hintEntry, 0, count)
	arena := keyArena{limit: len(b)} // shared prefixes make the keys longer than b: chunks follow
	off := hintHeaderSize
	var key []byte
	var prevKey string
	var prevOff uint32
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(body[off:])
		if n <= 0 {
			return 0, false
		}
		off += n
		return v, true
	}
	for i := uint64(0); i < count; i++ {
		start := off
		shared, ok1 := uv()
		unshared, ok2 := uv()
		if !ok1 || !ok2 || shared > uint64(len(key)) || unshared > uint64(len(body)-off) ||
			shared+unshared == 0 || shared+unshared > logkv.MaxKeySize {
			return 0, nil, bad(start, "bad key lengths in hint entry %d", i)
		}
		key = append(key[:shared], body[off:off+int(unshared)]...)
		off += int(unshared)
		seq, ok1 := uv()
		roff, ok2 := uv()
		vlen, ok3 := uv()
		if !ok1 || !ok2 || !ok3 || off >= len(body) {
			return 0, nil, bad(start, "truncated hint entry %d", i)
		}
		flags := body[off]
		off++
		tomb := flags&flagTombstone != 0
		if flags&^flagTombstone != 0 || vlen > logkv.MaxValueSize || (tomb && vlen != 0) ||
			roff < fileHeaderSizeV2 || roff+uint64(recordSize(len(key), int(vlen))) > size {
			return 0, nil, bad(start, "bad record location in hint entry %d", i)
		}
		var k string
		switch c := bytes.Compare(key, []byte(prevKey)); {
		case i > 0 && c == 0:
			if uint32(roff) <= prevOff {
				return 0, nil, bad(start, "hint entries out of order")
			}
			k = prevKey // the same key again: share its string
		case i > 0 && c < 0:
			return 0, nil, bad(start, "hint entries out of order")
		default:
			k = arena.str(key)
		}
		es = append(es, hintEntry{key: k, seq: seq, off: uint32(roff), vlen: uint32(vlen), tomb: tomb})
		prevKey, prevOff = k, uint32(roff)
	}
	if off != len(body) {
		return 0, nil, bad(off, "%d bytes after the last hint entry", len(body)-off)
	}
	return int64(size), es, nil
}
