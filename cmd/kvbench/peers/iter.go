package main

import (
	"bytes"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/cmd/kvbench/internal/bench"
)

// cursor is a peer's unbounded ordered cursor, the least each adapter
// provides; bounded turns it into a logkv.Iterator. Positioning methods
// return whether the cursor is at a key.
//
// run is bench.ScanRunner's loop on the cursor's own concrete type, which
// calls the peer's iterator directly, with the bound in the scan's
// direction (the upper one forwards, the lower one in reverse; nil: none)
// checked at each step as bounded's moves check it: a step past it ends the
// run not positioned. Each cursor writes the same loop, of the same shape as
// scanRun's in package bench, because a loop over an interface or a type
// parameter would call the cursor's methods indirectly (Go instantiates a
// generic function once for every pointer type, and calls methods through
// its dictionary), and those calls are what run exists to remove.
type cursor interface {
	run(n int, reverse bool, limit []byte) (done int, bytes int64, ok bool)
	first() bool
	last() bool
	seekGE(k []byte) bool
	seekLT(k []byte) bool
	next() bool
	prev() bool
	key() []byte
	value() []byte
	err() error
	close() error
}

// bounded is a logkv.Iterator over a cursor: it applies the bounds of
// logkv.IterOptions (lower inclusive, upper exclusive) and logkv's rule that
// Next and Prev on an unpositioned iterator return false, which the peers'
// cursors do not all follow.
type bounded struct {
	c            cursor
	lower, upper []byte
	valid        bool
	closed       bool
}

var (
	_ logkv.Iterator   = (*bounded)(nil)
	_ bench.ScanRunner = (*bounded)(nil)
)

func newBounded(c cursor, o *logkv.IterOptions) *bounded {
	it := &bounded{c: c}
	if o != nil {
		// Copied: the caller may reuse its bound buffers.
		if o.LowerBound != nil {
			it.lower = bytes.Clone(o.LowerBound)
		}
		if o.UpperBound != nil {
			it.upper = bytes.Clone(o.UpperBound)
		}
	}
	return it
}

// check sets valid from the cursor's answer and the bounds.
func (it *bounded) check(ok bool) bool {
	if it.closed || !ok || it.c.err() != nil {
		it.valid = false
		return false
	}
	k := it.c.key()
	it.valid = (it.lower == nil || bytes.Compare(k, it.lower) >= 0) &&
		(it.upper == nil || bytes.Compare(k, it.upper) < 0)
	return it.valid
}

func (it *bounded) First() bool {
	if it.lower != nil {
		return it.check(!it.closed && it.c.seekGE(it.lower))
	}
	return it.check(!it.closed && it.c.first())
}

func (it *bounded) Last() bool {
	if it.upper != nil {
		return it.check(!it.closed && it.c.seekLT(it.upper))
	}
	return it.check(!it.closed && it.c.last())
}

func (it *bounded) SeekGE(k []byte) bool {
	if it.lower != nil && bytes.Compare(k, it.lower) < 0 {
		k = it.lower
	}
	return it.check(!it.closed && it.c.seekGE(k))
}

func (it *bounded) SeekLT(k []byte) bool {
	if it.upper != nil && bytes.Compare(k, it.upper) > 0 {
		k = it.upper
	}
	return it.check(!it.closed && it.c.seekLT(k))
}

func (it *bounded) Next() bool {
	if !it.valid {
		return false
	}
	return it.check(it.c.next())
}

func (it *bounded) Prev() bool {
	if !it.valid {
		return false
	}
	return it.check(it.c.prev())
}

// ScanRun runs the cursor's own loop (cursor.run), with the bound a scan in
// that direction can cross.
func (it *bounded) ScanRun(n int, reverse bool) (done int, bytes int64, ok bool) {
	if !it.valid {
		return 0, 0, false
	}
	limit := it.upper
	if reverse {
		limit = it.lower
	}
	done, bytes, ok = it.c.run(n, reverse, limit)
	it.valid = ok && it.c.err() == nil
	return done, bytes, it.valid
}

// within reports whether k, reached by a step in that direction, is within
// limit, the bound in that direction (nil: none): below the upper bound
// forwards, at or above the lower bound in reverse.
func within(k, limit []byte, reverse bool) bool {
	return limit == nil || (bytes.Compare(k, limit) < 0) != reverse
}

func (it *bounded) Valid() bool   { return it.valid }
func (it *bounded) Key() []byte   { return it.c.key() }
func (it *bounded) Value() []byte { return it.c.value() }

func (it *bounded) Error() error {
	if it.closed {
		return nil
	}
	return it.c.err()
}

func (it *bounded) Close() error {
	if it.closed {
		return nil
	}
	err := it.c.err()
	if cerr := it.c.close(); err == nil {
		err = cerr
	}
	it.closed, it.valid = true, false
	return err
}

// forEach calls fn for each operation of b in order.
func forEach(b *logkv.Batch, fn func(kind logkv.Kind, k, v []byte) error) error {
	if err := b.Err(); err != nil {
		return err
	}
	r := b.Reader()
	for {
		kind, k, v, ok := r.Next()
		if !ok {
			return nil
		}
		if err := fn(kind, k, v); err != nil {
			return err
		}
	}
}
