package memory

import (
	"bytes"
	"runtime"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/ordtree"
)

// iterator is a logkv.Iterator over a frozen root: the engine's state when
// the iterator was made, or a snapshot's. It holds no lock. Key and Value
// alias the records in the arena, which are never changed and stay until
// the iterator is closed (the contract promises less: until the next move).
type iterator struct {
	c      ordtree.Iter[val]
	db     *DB
	ver    uint64 // the snapshot version this iterator keeps alive
	lower  []byte
	upper  []byte
	err    error
	closed bool
	leak   runtime.Cleanup // releases ver if the iterator is dropped unclosed
}

var _ logkv.Iterator = (*iterator)(nil)

func newIterator(db *DB, view ordtree.View[val], ver uint64, o *logkv.IterOptions) *iterator {
	it := &iterator{db: db, ver: ver}
	it.leak = runtime.AddCleanup(it, db.release, ver)
	it.c.Reset(view)
	if o != nil {
		// Copy the bounds: the caller may reuse its buffers.
		if o.LowerBound != nil {
			it.lower = append([]byte{}, o.LowerBound...)
		}
		if o.UpperBound != nil {
			it.upper = append([]byte{}, o.UpperBound...)
		}
	}
	return it
}

// ok reports whether the iterator may move, recording ErrClosed if the
// engine was closed under it.
func (it *iterator) ok() bool {
	if it.closed || it.err != nil {
		return false
	}
	if it.db.closed.Load() {
		it.err = logkv.ErrClosed
		it.c.Invalidate()
		return false
	}
	return true
}

// checkUpper ends iteration at the upper bound.
func (it *iterator) checkUpper(valid bool) bool {
	if valid && it.upper != nil && bytes.Compare(it.c.Value().key(), it.upper) >= 0 {
		it.c.Invalidate()
		return false
	}
	return valid
}

// checkLower ends iteration at the lower bound.
func (it *iterator) checkLower(valid bool) bool {
	if valid && it.lower != nil && bytes.Compare(it.c.Value().key(), it.lower) < 0 {
		it.c.Invalidate()
		return false
	}
	return valid
}

// First moves to the smallest key within bounds.
func (it *iterator) First() bool {
	if !it.ok() {
		return false
	}
	if it.lower != nil {
		return it.checkUpper(it.c.SeekGE(unsafeString(it.lower)))
	}
	return it.checkUpper(it.c.First())
}

// Last moves to the largest key within bounds.
func (it *iterator) Last() bool {
	if !it.ok() {
		return false
	}
	if it.upper != nil {
		return it.checkLower(it.c.SeekLT(unsafeString(it.upper)))
	}
	return it.checkLower(it.c.Last())
}

// SeekGE moves to the smallest key >= key within bounds.
func (it *iterator) SeekGE(key []byte) bool {
	if !it.ok() {
		return false
	}
	if it.lower != nil && bytes.Compare(key, it.lower) < 0 {
		key = it.lower
	}
	return it.checkUpper(it.c.SeekGE(unsafeString(key)))
}

// SeekLT moves to the largest key < key within bounds.
func (it *iterator) SeekLT(key []byte) bool {
	if !it.ok() {
		return false
	}
	if it.upper != nil && bytes.Compare(key, it.upper) > 0 {
		key = it.upper
	}
	return it.checkLower(it.c.SeekLT(unsafeString(key)))
}

// Next moves to the next key; false at the end or if not positioned.
func (it *iterator) Next() bool {
	if !it.ok() || !it.c.Valid() {
		return false
	}
	return it.checkUpper(it.c.Next())
}

// Prev moves to the previous key; false at the start or if not positioned.
func (it *iterator) Prev() bool {
	if !it.ok() || !it.c.Valid() {
		return false
	}
	return it.checkLower(it.c.Prev())
}

// Valid reports whether the iterator is at a key.
func (it *iterator) Valid() bool { return !it.closed && it.c.Valid() }

// Key returns the current key. Only call it when Valid.
func (it *iterator) Key() []byte { return it.c.Value().key() }

// Value returns the current value. Only call it when Valid.
func (it *iterator) Value() []byte { return it.c.Value().value() }

// Error returns the first error the iterator met.
func (it *iterator) Error() error { return it.err }

// Close releases the iterator's hold on its snapshot of the tree and returns
// Error's result. Calling it twice is safe.
func (it *iterator) Close() error {
	if !it.closed {
		it.closed = true
		it.c = ordtree.Iter[val]{}
		it.leak.Stop()
		it.db.release(it.ver)
	}
	return it.err
}
