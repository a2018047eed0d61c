package sstable

import (
	"bytes"
	"fmt"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
)

// Iter walks a table's internal keys in base.Compare order, optionally
// restricted to user keys in [lower, upper). Key and Value are valid until
// the next move. Positioning methods return whether the iterator is at an
// entry. An error (ErrCorrupt naming file and offset, or I/O) stops it and is
// reported by Error. After Next runs off the end, Prev moves to the last
// entry; after Prev runs off the start, Next moves to the first. Not safe for
// concurrent use.
type Iter struct {
	r            *Reader
	s            *iterState // nil once closed
	dataH        handle     // the block s.data holds
	dataLoaded   bool
	compaction   bool   // read through s.ra, bypassing the cache
	lower, upper []byte // user-key bounds, nil when unbounded
	lowerKey     []byte // lower with the smallest trailer: the first key of lower
	upperKey     []byte // upper with the smallest trailer
	valid        bool
	dir          int8 // when not valid: +1 past the end, -1 before the start
	err          error
}

// NewIter returns an iterator over the table's internal keys whose user keys
// lie in [lower, upper); nil means unbounded. The bounds are copied. Blocks
// wholly outside the bounds are not read.
func (r *Reader) NewIter(lower, upper []byte) *Iter {
	i := &Iter{r: r, dir: -1}
	if r.closed.Load() {
		i.err = logkv.ErrClosed
		return i
	}
	i.s = r.newState()
	i.s.ra.reset(readaheadMin, readaheadMax)
	if lower != nil || upper != nil {
		// One allocation for both bounds' seek keys.
		buf := make([]byte, 0, len(lower)+len(upper)+2*base.TrailerSize)
		if lower != nil {
			buf = base.AppendInternalKey(buf, lower, base.MaxSeq, base.KindSet)
			i.lowerKey = buf[:len(buf):len(buf)]
			i.lower = base.UserKey(i.lowerKey)
		}
		if upper != nil {
			start := len(buf)
			buf = base.AppendInternalKey(buf, upper, base.MaxSeq, base.KindSet)
			i.upperKey = buf[start:]
			i.upper = base.UserKey(i.upperKey)
		}
	}
	i.err = i.s.index.init(r.index, true, r.name, r.indexOff)
	return i
}

// NewCompactionIter returns an iterator for a forward pass over the whole
// table, as a compaction makes: it reads the file sequentially in 256 KiB
// chunks (readaheadMax) into buffers it reuses, and neither consults nor fills the block
// cache, so that compactions do not evict the blocks readers need. Every
// Iter method works, but only forward iteration is efficient.
func (r *Reader) NewCompactionIter() *Iter {
	i := r.NewIter(nil, nil)
	if i.err == nil {
		i.compaction = true
		i.s.ra.reset(readaheadMax, readaheadMax)
	}
	return i
}

func (i *Iter) usable() bool {
	i.valid = false
	return i.err == nil
}

// loadBlock makes s.data iterate the block the index iterator points at.
func (i *Iter) loadBlock() bool {
	h, ok := decodeHandle(i.s.index.val)
	if !ok {
		i.err = i.r.corrupt(i.r.indexOff, "index: bad block handle %x", i.s.index.val)
		return false
	}
	if i.dataLoaded && h == i.dataH {
		return true
	}
	i.dataLoaded = false
	var b []byte
	var err error
	if i.compaction {
		b, err = i.r.readaheadBlock(h, &i.s.ra, true)
	} else {
		b, err = i.r.dataBlock(h, &i.s.ra)
	}
	if err != nil {
		i.err = err
		return false
	}
	if err := i.s.data.init(b, true, i.r.name, int64(h.offset)); err != nil {
		i.err = err
		return false
	}
	i.dataH, i.dataLoaded = h, true
	return true
}

// skipForward moves past exhausted blocks to the next entry, stopping at a
// block that starts at or after upper.
func (i *Iter) skipForward() bool {
	s := i.s
	for !s.data.valid {
		if err := s.data.err; err != nil {
			i.err = err
			return false
		}
		// Every key of a later block sorts after this block's separator.
		if i.upper != nil && bytes.Compare(base.UserKey(s.index.key), i.upper) >= 0 {
			return false
		}
		if !s.index.Next() {
			i.err = s.index.err
			return false
		}
		if !i.loadBlock() {
			return false
		}
		s.data.First()
	}
	return true
}

// skipBackward moves before exhausted blocks to the previous entry,
// stopping at a block that ends before lower.
func (i *Iter) skipBackward() bool {
	s := i.s
	for !s.data.valid {
		if err := s.data.err; err != nil {
			i.err = err
			return false
		}
		if !s.index.Prev() {
			i.err = s.index.err
			return false
		}
		// Every key of this block sorts at or before its separator.
		if i.lower != nil && bytes.Compare(base.UserKey(s.index.key), i.lower) < 0 {
			return false
		}
		if !i.loadBlock() {
			return false
		}
		s.data.Last()
	}
	return true
}

func (i *Iter) finishForward(ok bool) bool {
	if ok && i.upper != nil && bytes.Compare(base.UserKey(i.s.data.key), i.upper) >= 0 {
		ok = false
	}
	i.valid, i.dir = ok && i.err == nil, 1
	return i.valid
}

func (i *Iter) finishBackward(ok bool) bool {
	if ok && i.lower != nil && bytes.Compare(base.UserKey(i.s.data.key), i.lower) < 0 {
		ok = false
	}
	i.valid, i.dir = ok && i.err == nil, -1
	return i.valid
}

// First moves to the first entry (the first at or after lower).
func (i *Iter) First() bool {
	if !i.usable() {
		return false
	}
	if i.lower != nil {
		return i.seekGE(i.lowerKey)
	}
	if !i.s.index.First() {
		i.err = i.s.index.err
		return i.finishForward(false)
	}
	if !i.loadBlock() {
		return false
	}
	i.s.data.First()
	return i.finishForward(i.skipForward())
}

// Last moves to the last entry (the last before upper).
func (i *Iter) Last() bool {
	if !i.usable() {
		return false
	}
	if i.upper != nil {
		return i.seekLT(i.upperKey)
	}
	if !i.s.index.Last() {
		i.err = i.s.index.err
		return i.finishBackward(false)
	}
	if !i.loadBlock() {
		return false
	}
	i.s.data.Last()
	return i.finishBackward(i.skipBackward())
}

func (i *Iter) checkSeekKey(ikey []byte) bool {
	if len(ikey) < base.TrailerSize {
		i.err = fmt.Errorf("sstable: seek key %q is not an internal key", ikey)
		return false
	}
	return true
}

// SeekGE moves to the first entry >= ikey in base.Compare order (and at or
// after lower).
func (i *Iter) SeekGE(ikey []byte) bool {
	if i.err != nil || !i.checkSeekKey(ikey) {
		i.valid = false
		return false
	}
	if i.lower != nil && bytes.Compare(base.UserKey(ikey), i.lower) < 0 {
		ikey = i.lowerKey
	}
	if s := i.s; i.valid && base.Compare(s.data.key, ikey) < 0 && base.Compare(ikey, s.index.key) <= 0 {
		// The target is after the current entry and at or before the
		// current block's separator: every earlier block is below it, so
		// the block alone answers (or, if it holds nothing >= ikey, the
		// next one), without an index search. Merging iterators seek
		// forward a little at a time.
		s.data.SeekGE(ikey)
		return i.finishForward(i.skipForward())
	}
	i.valid = false
	return i.seekGE(ikey)
}

func (i *Iter) seekGE(ikey []byte) bool {
	if !i.s.index.SeekGE(ikey) {
		i.err = i.s.index.err
		return i.finishForward(false)
	}
	if !i.loadBlock() {
		return false
	}
	i.s.data.SeekGE(ikey)
	return i.finishForward(i.skipForward())
}

// SeekLT moves to the last entry < ikey in base.Compare order (and before
// upper).
func (i *Iter) SeekLT(ikey []byte) bool {
	if !i.usable() || !i.checkSeekKey(ikey) {
		return false
	}
	if i.upper != nil && bytes.Compare(base.UserKey(ikey), i.upper) >= 0 {
		ikey = i.upperKey
	}
	return i.seekLT(ikey)
}

func (i *Iter) seekLT(ikey []byte) bool {
	s := i.s
	if s.index.SeekGE(ikey) {
		if !i.loadBlock() {
			return false
		}
		s.data.SeekLT(ikey)
	} else {
		if s.index.err != nil {
			i.err = s.index.err
			return false
		}
		// Every separator, so every key, is < ikey.
		if !s.index.Last() {
			i.err = s.index.err
			return i.finishBackward(false)
		}
		if !i.loadBlock() {
			return false
		}
		s.data.Last()
	}
	return i.finishBackward(i.skipBackward())
}

// Next moves to the next entry.
func (i *Iter) Next() bool {
	if !i.valid {
		if i.err == nil && i.dir < 0 {
			return i.First()
		}
		return false
	}
	i.s.data.Next()
	return i.finishForward(i.skipForward())
}

// Prev moves to the previous entry.
func (i *Iter) Prev() bool {
	if !i.valid {
		if i.err == nil && i.dir > 0 {
			return i.Last()
		}
		return false
	}
	i.s.data.Prev()
	return i.finishBackward(i.skipBackward())
}

// Valid reports whether the iterator is at an entry.
func (i *Iter) Valid() bool { return i.valid }

// Key returns the current internal key; nil if not Valid.
func (i *Iter) Key() []byte {
	if !i.valid {
		return nil
	}
	return i.s.data.key
}

// Value returns the current value; nil if not Valid.
func (i *Iter) Value() []byte {
	if !i.valid {
		return nil
	}
	return i.s.data.val
}

// Error returns the error that stopped the iterator, if any; after Close,
// logkv.ErrClosed.
func (i *Iter) Error() error { return i.err }

// Close releases the iterator and returns the error that stopped it, if
// any. Later calls return logkv.ErrClosed.
func (i *Iter) Close() error {
	if i.s == nil {
		return logkv.ErrClosed
	}
	err := i.err
	s := i.s
	i.s, i.valid, i.err = nil, false, logkv.ErrClosed
	s.data = blockIter{key: s.data.key[:0], cache: s.data.cache[:0], cacheKeys: s.data.cacheKeys[:0]}
	s.index = blockIter{key: s.index.key[:0], cache: s.index.cache[:0], cacheKeys: s.index.cacheKeys[:0]}
	i.r.getState.Put(s)
	return err
}
