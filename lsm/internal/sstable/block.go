package sstable

import (
	"bytes"
	"encoding/binary"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
)

// blockWriter builds one block: entries with keys prefix-compressed against
// the previous key, a full key at every restart point, and the restart array
// at the end (see doc.go, "Blocks").
type blockWriter struct {
	restartInterval int
	buf             []byte
	restarts        []uint32
	lastKey         []byte
	count           int
}

func (w *blockWriter) add(key, value []byte) {
	shared := 0
	if w.count%w.restartInterval == 0 {
		w.restarts = append(w.restarts, uint32(len(w.buf)))
	} else {
		n := min(len(key), len(w.lastKey))
		for shared < n && key[shared] == w.lastKey[shared] {
			shared++
		}
	}
	w.buf = binary.AppendUvarint(w.buf, uint64(shared))
	w.buf = binary.AppendUvarint(w.buf, uint64(len(key)-shared))
	w.buf = binary.AppendUvarint(w.buf, uint64(len(value)))
	w.buf = append(w.buf, key[shared:]...)
	w.buf = append(w.buf, value...)
	w.lastKey = append(w.lastKey[:0], key...)
	w.count++
}

// estimatedSize is the size finish would return.
func (w *blockWriter) estimatedSize() int { return len(w.buf) + 4*len(w.restarts) + 4 }

// finish appends the restart array and returns the block. The bytes are
// valid until reset.
func (w *blockWriter) finish() []byte {
	for _, r := range w.restarts {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, r)
	}
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(w.restarts)))
	return w.buf
}

func (w *blockWriter) reset() {
	w.buf = w.buf[:0]
	w.restarts = w.restarts[:0]
	w.lastKey = w.lastKey[:0]
	w.count = 0
}

// cachedEntry is an entry of the restart interval blockIter.Prev walks back
// through: decoding forward from a restart point is the only way to recover
// prefix-compressed keys, so one pass caches the whole interval.
type cachedEntry struct {
	offset, next     int // the entry's offset and the next entry's
	keyStart, keyEnd int // in blockIter.cacheKeys
	valStart, valEnd int // in blockIter.data
}

// blockIter iterates over one decoded block. Every length read from the block
// is checked against the block's size before use; a violation makes the
// iterator invalid with err wrapping logkv.ErrCorrupt.
type blockIter struct {
	data        []byte // the entries, the restart array excluded
	restarts    []byte // numRestarts little-endian uint32 offsets into data
	numRestarts int
	internal    bool // keys must be internal keys (at least a trailer long)

	offset, next int    // the current entry's offset and the next entry's
	key          []byte // the current key (owned buffer)
	val          []byte // the current value (a slice of data)
	valid        bool
	err          error

	cache     []cachedEntry
	cacheKeys []byte
	cacheIdx  int // the current entry's index in cache, or -1

	name     string // file name and block offset, for errors
	blockOff int64
}

func (b *blockIter) corrupt(format string, args ...any) bool {
	if b.err == nil {
		b.err = logkv.CorruptError(b.name, b.blockOff, "block: "+format, args...)
	}
	b.valid = false
	return false
}

// init points b at block, checking the restart array. name and off identify
// the block in errors.
func (b *blockIter) init(block []byte, internal bool, name string, off int64) error {
	*b = blockIter{key: b.key[:0], cache: b.cache[:0], cacheKeys: b.cacheKeys[:0], cacheIdx: -1,
		internal: internal, name: name, blockOff: off}
	if len(block) < 4 {
		b.corrupt("%d bytes, too short for a restart count", len(block))
		return b.err
	}
	n := uint64(binary.LittleEndian.Uint32(block[len(block)-4:]))
	if n*4+4 > uint64(len(block)) {
		b.corrupt("%d restarts do not fit in %d bytes", n, len(block))
		return b.err
	}
	end := len(block) - 4 - int(n)*4
	b.data, b.restarts, b.numRestarts = block[:end], block[end:len(block)-4], int(n)
	if n == 0 && end > 0 {
		b.corrupt("entries without restart points")
		return b.err
	}
	if n > 0 && binary.LittleEndian.Uint32(b.restarts) != 0 {
		b.corrupt("first restart point is not at 0")
		return b.err
	}
	return nil
}

// restart returns the offset of restart point i, checked against the block.
func (b *blockIter) restart(i int) (int, bool) {
	r := binary.LittleEndian.Uint32(b.restarts[4*i:])
	if uint64(r) >= uint64(len(b.data)) {
		return 0, b.corrupt("restart %d at offset %d past the entries (%d bytes)", i, r, len(b.data))
	}
	return int(r), true
}

// decode reads the entry at off, its key prefix-decoded against b.key, and
// makes it current.
func (b *blockIter) decode(off int) bool {
	d := b.data
	if off >= len(d) {
		b.valid = false
		return false
	}
	p := off
	var shared, unshared, vlen uint64
	if p+3 <= len(d) && d[p]|d[p+1]|d[p+2] < 0x80 {
		shared, unshared, vlen = uint64(d[p]), uint64(d[p+1]), uint64(d[p+2])
		p += 3
	} else {
		var n int
		if shared, n = binary.Uvarint(d[p:]); n <= 0 {
			return b.corrupt("bad shared length varint at %d", p)
		}
		p += n
		if unshared, n = binary.Uvarint(d[p:]); n <= 0 {
			return b.corrupt("bad key length varint at %d", p)
		}
		p += n
		if vlen, n = binary.Uvarint(d[p:]); n <= 0 {
			return b.corrupt("bad value length varint at %d", p)
		}
		p += n
	}
	rest := uint64(len(d) - p)
	if shared > uint64(len(b.key)) || unshared > rest || vlen > rest-unshared {
		return b.corrupt("entry at %d: lengths %d+%d+%d overflow (previous key %d bytes, %d left)",
			off, shared, unshared, vlen, len(b.key), rest)
	}
	kEnd := p + int(unshared)
	b.key = append(b.key[:shared], d[p:kEnd]...)
	if b.internal && len(b.key) < base.TrailerSize {
		return b.corrupt("entry at %d: key of %d bytes is not an internal key", off, len(b.key))
	}
	b.val = d[kEnd : kEnd+int(vlen) : kEnd+int(vlen)]
	b.offset, b.next = off, kEnd+int(vlen)
	b.valid = true
	return true
}

// restartKey returns the full key stored at restart point i (a slice of the
// block, not copied).
func (b *blockIter) restartKey(i int) ([]byte, bool) {
	off, ok := b.restart(i)
	if !ok {
		return nil, false
	}
	d := b.data
	p := off
	var shared, unshared uint64
	if p+3 <= len(d) && d[p]|d[p+1]|d[p+2] < 0x80 {
		shared, unshared = uint64(d[p]), uint64(d[p+1])
		p += 3
	} else {
		var n int
		if shared, n = binary.Uvarint(d[p:]); n <= 0 {
			return nil, b.corrupt("bad shared length varint at %d", p)
		}
		p += n
		if unshared, n = binary.Uvarint(d[p:]); n <= 0 {
			return nil, b.corrupt("bad key length varint at %d", p)
		}
		p += n
		if _, n = binary.Uvarint(d[p:]); n <= 0 {
			return nil, b.corrupt("bad value length varint at %d", p)
		}
		p += n
	}
	if shared != 0 || unshared > uint64(len(d)-p) {
		return nil, b.corrupt("restart entry at %d: shared %d, key length %d", off, shared, unshared)
	}
	k := d[p : p+int(unshared)]
	if b.internal && len(k) < base.TrailerSize {
		return nil, b.corrupt("restart entry at %d: key of %d bytes is not an internal key", off, len(k))
	}
	return k, true
}

// searchRestarts returns the index of the first restart point whose key is
// >= target (numRestarts if none).
func (b *blockIter) searchRestarts(target []byte) (int, bool) {
	lo, hi := 0, b.numRestarts
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		k, ok := b.restartKey(m)
		if !ok {
			return 0, false
		}
		if base.Compare(k, target) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, true
}

func (b *blockIter) First() bool {
	if b.err != nil {
		return false
	}
	b.cacheIdx = -1
	b.key = b.key[:0]
	return b.decode(0)
}

func (b *blockIter) Next() bool {
	if !b.valid {
		return false
	}
	b.cacheIdx = -1
	return b.decode(b.next)
}

// SeekGE moves to the first entry >= target in base.Compare order.
func (b *blockIter) SeekGE(target []byte) bool {
	if b.err != nil || b.numRestarts == 0 {
		b.valid = false
		return false
	}
	b.cacheIdx = -1
	i, ok := b.searchRestarts(target)
	if !ok {
		return false
	}
	if i > 0 {
		i--
	}
	off, ok := b.restart(i)
	if !ok {
		return false
	}
	b.key = b.key[:0]
	for ok := b.decode(off); ok; ok = b.decode(b.next) {
		if base.Compare(b.key, target) >= 0 {
			return true
		}
	}
	return false
}

// seekRestart moves to the entry at restart point i, or past the end (not
// valid, no error) if i is numRestarts.
func (b *blockIter) seekRestart(i int) bool {
	b.cacheIdx = -1
	if b.err != nil || i >= b.numRestarts {
		b.valid = false
		return false
	}
	off, ok := b.restart(i)
	if !ok {
		return false
	}
	b.key = b.key[:0]
	return b.decode(off)
}

// fill decodes the entries from offset start while they are before limit
// (and < target, if target is not nil) into the Prev cache, and makes the
// last of them current. exact demands that the last entry ends at limit.
func (b *blockIter) fill(start, limit int, target []byte, exact bool) bool {
	b.cache, b.cacheKeys = b.cache[:0], b.cacheKeys[:0]
	b.key = b.key[:0]
	off := start
	for off < limit {
		if !b.decode(off) {
			if b.err == nil {
				return b.corrupt("entries end before %d", limit)
			}
			return false
		}
		if target != nil && base.Compare(b.key, target) >= 0 {
			break
		}
		ks := len(b.cacheKeys)
		b.cacheKeys = append(b.cacheKeys, b.key...)
		vs := b.next - len(b.val)
		b.cache = append(b.cache, cachedEntry{offset: off, next: b.next,
			keyStart: ks, keyEnd: len(b.cacheKeys), valStart: vs, valEnd: b.next})
		off = b.next
	}
	if exact && off != limit {
		return b.corrupt("entry overruns offset %d", limit)
	}
	if len(b.cache) == 0 {
		b.valid = false
		return false
	}
	return b.fromCache(len(b.cache) - 1)
}

func (b *blockIter) fromCache(i int) bool {
	e := &b.cache[i]
	b.cacheIdx = i
	b.key = append(b.key[:0], b.cacheKeys[e.keyStart:e.keyEnd]...)
	b.val = b.data[e.valStart:e.valEnd:e.valEnd]
	b.offset, b.next = e.offset, e.next
	b.valid = true
	return true
}

// Last moves to the last entry.
func (b *blockIter) Last() bool {
	if b.err != nil || b.numRestarts == 0 {
		b.valid = false
		return false
	}
	off, ok := b.restart(b.numRestarts - 1)
	if !ok {
		return false
	}
	return b.fill(off, len(b.data), nil, true)
}

// SeekLT moves to the last entry < target in base.Compare order.
func (b *blockIter) SeekLT(target []byte) bool {
	if b.err != nil || b.numRestarts == 0 {
		b.valid = false
		return false
	}
	i, ok := b.searchRestarts(target)
	if !ok {
		return false
	}
	if i == 0 {
		b.valid = false
		return false
	}
	start, ok := b.restart(i - 1)
	if !ok {
		return false
	}
	limit := len(b.data)
	if i < b.numRestarts {
		if limit, ok = b.restart(i); !ok {
			return false
		}
	}
	return b.fill(start, limit, target, false)
}

// Prev moves to the previous entry.
func (b *blockIter) Prev() bool {
	if !b.valid {
		return false
	}
	if b.cacheIdx > 0 {
		return b.fromCache(b.cacheIdx - 1)
	}
	cur := b.offset
	if cur == 0 {
		b.valid = false
		return false
	}
	// The last restart point before cur starts the interval holding the
	// previous entry.
	lo, hi := 0, b.numRestarts
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		r, ok := b.restart(m)
		if !ok {
			return false
		}
		if r < cur {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return b.corrupt("no restart point before entry at %d", cur)
	}
	start, _ := b.restart(lo - 1)
	return b.fill(start, cur, nil, true)
}

// lookup scans the block for key; used for the properties block, whose keys
// are plain names.
func (b *blockIter) lookup(key []byte) ([]byte, bool) {
	for ok := b.First(); ok; ok = b.Next() {
		if bytes.Equal(b.key, key) {
			return b.val, true
		}
	}
	return nil, false
}
