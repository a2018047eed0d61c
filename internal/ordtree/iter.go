package ordtree

import "iter"

// View is a frozen tree: its nodes are never changed, so any number of
// goroutines may read it without a lock. Snapshot makes one; the zero View
// is empty.
type View[V any] struct{ root *Node[V] }

// Get returns the payload stored under key in the view.
func (v View[V]) Get(key string) (V, bool) { return get(v.root, key) }

// Iter walks the items of a View in order, keeping the path from the root
// to its position, so that a step is O(1) amortized and allocates nothing
// once its stack has grown. It is not positioned until a First, Last or
// Seek. The zero Iter walks an empty view; Reset points it at another.
type Iter[V any] struct {
	root  *Node[V]
	stack []frame[V]
	buf   [6]frame[V] // the stack's first backing array: 6 levels hold billions of keys
}

// frame is a node on the path to the current item. For the top frame, i is
// the current item. For the frames below it, i is the child the path goes
// through (which lies just before item i).
type frame[V any] struct {
	n *Node[V]
	i int
}

// Reset points it at v, unpositioned.
func (it *Iter[V]) Reset(v View[V]) {
	it.root = v.root
	it.stack = it.buf[:0]
}

// Valid reports whether it is at an item.
func (it *Iter[V]) Valid() bool { return len(it.stack) > 0 }

// Invalidate unpositions it.
func (it *Iter[V]) Invalidate() { it.stack = it.stack[:0] }

// Value returns the current item's payload. Only call it when Valid.
func (it *Iter[V]) Value() *V {
	f := &it.stack[len(it.stack)-1]
	return &f.n.vals[f.i]
}

// KeyLen returns the current key's length. Only call it when Valid.
func (it *Iter[V]) KeyLen() int {
	f := &it.stack[len(it.stack)-1]
	return int(f.n.klens[f.i] & lenMask)
}

// AppendKey appends the current key to dst. Only call it when Valid.
func (it *Iter[V]) AppendKey(dst []byte) []byte {
	f := &it.stack[len(it.stack)-1]
	return f.n.appendKey(dst, f.i)
}

func (it *Iter[V]) push(n *Node[V], i int) { it.stack = append(it.stack, frame[V]{n, i}) }

func (it *Iter[V]) descendFirst(n *Node[V]) {
	for {
		it.push(n, 0)
		if n.leaf() {
			return
		}
		n = n.kids()[0]
	}
}

func (it *Iter[V]) descendLast(n *Node[V]) {
	for {
		if n.leaf() {
			it.push(n, n.n-1)
			return
		}
		it.push(n, n.n)
		n = n.kids()[n.n]
	}
}

// First moves to the smallest key.
func (it *Iter[V]) First() bool {
	it.stack = it.stack[:0]
	if it.root != nil && it.root.n > 0 {
		it.descendFirst(it.root)
	}
	return it.Valid()
}

// Last moves to the largest key.
func (it *Iter[V]) Last() bool {
	it.stack = it.stack[:0]
	if it.root != nil && it.root.n > 0 {
		it.descendLast(it.root)
	}
	return it.Valid()
}

// SeekGE moves to the smallest key >= key.
func (it *Iter[V]) SeekGE(key string) bool {
	it.stack = it.stack[:0]
	n := it.root
	if n == nil || n.n == 0 {
		return false
	}
	k := makeSKey(key)
	for {
		i, found := n.search(&k)
		it.push(n, i)
		if found {
			return true
		}
		if n.leaf() {
			if i < n.n {
				return true
			}
			return it.ascendNext()
		}
		n = n.kids()[i]
	}
}

// SeekLT moves to the largest key < key.
func (it *Iter[V]) SeekLT(key string) bool {
	if !it.SeekGE(key) {
		return it.Last()
	}
	return it.Prev()
}

// ascendNext pops exhausted frames until one has an item after the child it
// came from.
func (it *Iter[V]) ascendNext() bool {
	for {
		it.stack = it.stack[:len(it.stack)-1]
		if len(it.stack) == 0 {
			return false
		}
		f := &it.stack[len(it.stack)-1]
		if f.i < f.n.n {
			return true
		}
	}
}

// Next moves to the next key; false at the end or if not positioned.
func (it *Iter[V]) Next() bool {
	if !it.Valid() {
		return false
	}
	f := &it.stack[len(it.stack)-1]
	f.i++
	if f.n.leaf() {
		if f.i < f.n.n {
			return true
		}
		return it.ascendNext()
	}
	it.descendFirst(f.n.kids()[f.i])
	return true
}

// Prev moves to the previous key; false at the start or if not positioned.
func (it *Iter[V]) Prev() bool {
	if !it.Valid() {
		return false
	}
	f := &it.stack[len(it.stack)-1]
	if !f.n.leaf() {
		it.descendLast(f.n.kids()[f.i])
		return true
	}
	f.i--
	if f.i >= 0 {
		return true
	}
	for {
		it.stack = it.stack[:len(it.stack)-1]
		if len(it.stack) == 0 {
			return false
		}
		f := &it.stack[len(it.stack)-1]
		if f.i > 0 {
			f.i--
			return true
		}
	}
}

// All yields the tree's keys, in order, with their payloads. The key is
// rebuilt in a buffer that the next step overwrites. The tree must not be
// written until the loop ends.
func (t *Tree[V]) All() iter.Seq2[[]byte, *V] {
	return func(yield func([]byte, *V) bool) {
		var it Iter[V]
		it.Reset(t.Current())
		var key []byte
		for ok := it.First(); ok; ok = it.Next() {
			key = it.AppendKey(key[:0])
			if !yield(key, it.Value()) {
				return
			}
		}
	}
}

// Current returns a view of the tree as it is, without taking a snapshot:
// it is valid only until the next write, for a reader that holds the
// owner's lock across its use (or a test).
func (t *Tree[V]) Current() View[V] { return View[V]{root: t.root} }
