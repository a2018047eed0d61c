package main

import (
	"bytes"

	"github.com/logkv/logkv"
)

// cursor is a peer's unbounded ordered cursor, the least each adapter
// provides; bounded turns it into a logkv.Iterator. Positioning methods
// return whether the cursor is at a key.
type cursor interface {
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

var _ logkv.Iterator = (*bounded)(nil)

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
