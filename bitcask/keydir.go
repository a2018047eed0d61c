package bitcask

import (
	"strings"
	"sync/atomic"
)

// The keydir is an ordered map from key to the location of the key's live
// value: a B-tree (items in every node, as in a textbook B-tree) with lazy
// path copying, so that a snapshot is O(1): Clone hands out the root and
// gives both trees fresh copy-on-write ids; whichever tree later writes to a
// shared node copies it first (and the path down to it). Nodes a tree owns
// (same cow id) are changed in place, so a run of writes without snapshots
// allocates only on splits.
//
// A tree is not safe for concurrent use; DB guards its tree with a lock. A
// clone that nobody writes to (a snapshot's) may be read by any number of
// goroutines while the original is written, because writes never touch a
// shared node.

const (
	maxItems = 63           // items per node; odd so a split leaves equal halves
	minItems = maxItems / 2 // fewest items in a non-root node
)

// entry is one live key: its value is the record at off in data file fid.
// It is 32 bytes: the key's string header (16) and three uint32s. The seq is
// not kept here (recovery reads it from hints and records); vlen together
// with len(key) gives the record's size.
type entry struct {
	key  string
	fid  uint32
	off  uint32
	vlen uint32
}

type node struct {
	cow      uint64
	n        int
	items    [maxItems]entry
	children *[maxItems + 1]*node // nil for a leaf
}

func (n *node) leaf() bool { return n.children == nil }

// search returns the index of the first item >= key and whether it equals key.
func (n *node) search(key string) (int, bool) {
	lo, hi := 0, n.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.items[m].key < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n.n && n.items[lo].key == key
}

var cowIDs atomic.Uint64

type tree struct {
	root     *node
	cow      uint64
	length   int
	keyBytes int64 // sum of len(key) over the tree's entries
}

func newTree() *tree { return &tree{cow: cowIDs.Add(1)} }

// clone returns a tree sharing t's nodes; both copy a shared node before
// changing it.
func (t *tree) clone() *tree {
	t.cow = cowIDs.Add(1)
	c := *t
	c.cow = cowIDs.Add(1)
	return &c
}

func (t *tree) newNode(leaf bool) *node {
	n := &node{cow: t.cow}
	if !leaf {
		n.children = new([maxItems + 1]*node)
	}
	return n
}

// mut returns n if t owns it, else a copy of n that t owns.
func (t *tree) mut(n *node) *node {
	if n.cow == t.cow {
		return n
	}
	c := &node{cow: t.cow, n: n.n, items: n.items}
	if n.children != nil {
		ch := *n.children
		c.children = &ch
	}
	return c
}

func (t *tree) get(key string) (entry, bool) {
	n := t.root
	for n != nil {
		i, found := n.search(key)
		if found {
			return n.items[i], true
		}
		if n.leaf() {
			break
		}
		n = n.children[i]
	}
	return entry{}, false
}

// split moves the upper half of the full, owned node n to a new node and
// returns the middle item and the new node.
func (t *tree) split(n *node) (entry, *node) {
	const mid = maxItems / 2
	r := t.newNode(n.leaf())
	r.n = copy(r.items[:], n.items[mid+1:n.n])
	if !n.leaf() {
		copy(r.children[:], n.children[mid+1:n.n+1])
		clear(n.children[mid+1 : n.n+1])
	}
	m := n.items[mid]
	clear(n.items[mid:n.n])
	n.n = mid
	return m, r
}

// set stores e, returning the entry it replaced, if any. e.key may alias a
// caller's buffer: the tree keeps its own copy.
func (t *tree) set(e entry) (entry, bool) {
	if t.root == nil {
		t.root = t.newNode(true)
	}
	t.root = t.mut(t.root)
	if t.root.n == maxItems {
		left := t.root
		m, right := t.split(left)
		t.root = t.newNode(false)
		t.root.items[0] = m
		t.root.children[0], t.root.children[1] = left, right
		t.root.n = 1
	}
	n := t.root
	for {
		i, found := n.search(e.key)
		if found {
			prev := n.items[i]
			e.key = prev.key // keep the stored key; the caller's may be transient
			n.items[i] = e
			return prev, true
		}
		if n.leaf() {
			copy(n.items[i+1:n.n+1], n.items[i:n.n])
			e.key = strings.Clone(e.key) // the caller's key may be transient
			n.items[i] = e
			n.n++
			t.length++
			t.keyBytes += int64(len(e.key))
			return entry{}, false
		}
		c := t.mut(n.children[i])
		n.children[i] = c
		if c.n == maxItems {
			m, right := t.split(c)
			copy(n.items[i+1:n.n+1], n.items[i:n.n])
			copy(n.children[i+2:n.n+2], n.children[i+1:n.n+1])
			n.items[i] = m
			n.children[i+1] = right
			n.n++
			switch {
			case e.key == m.key:
				prev := n.items[i]
				e.key = prev.key
				n.items[i] = e
				return prev, true
			case e.key > m.key:
				c = right
			}
		}
		n = c
	}
}

// repoint moves key's entry from (fid, off) to (toFid, toOff) if it still
// points at (fid, off), in one descent; it reports whether it did.
func (t *tree) repoint(key string, fid, off, toFid, toOff uint32) bool {
	if t.root == nil {
		return false
	}
	t.root = t.mut(t.root)
	n := t.root
	for {
		i, found := n.search(key)
		if found {
			e := &n.items[i]
			if e.fid != fid || e.off != off {
				return false
			}
			e.fid, e.off = toFid, toOff
			return true
		}
		if n.leaf() {
			return false
		}
		c := t.mut(n.children[i])
		n.children[i] = c
		n = c
	}
}

// delete removes key, returning the entry it held.
func (t *tree) delete(key string) (entry, bool) {
	if t.root == nil {
		return entry{}, false
	}
	if _, ok := t.get(key); !ok {
		return entry{}, false // no copying on the path to nowhere
	}
	t.root = t.mut(t.root)
	prev, ok := t.del(t.root, key, false)
	if t.root.n == 0 {
		if t.root.leaf() {
			t.root = nil
		} else {
			t.root = t.root.children[0]
		}
	}
	if ok {
		t.length--
		t.keyBytes -= int64(len(prev.key))
	}
	return prev, ok
}

// del removes key (or, with max, the largest item) from the subtree of the
// owned node n, leaving n possibly below minItems for its parent to fix.
func (t *tree) del(n *node, key string, max bool) (entry, bool) {
	var i int
	var found bool
	if max {
		i, found = n.n-1, true
	} else {
		i, found = n.search(key)
	}
	if n.leaf() {
		if !found {
			return entry{}, false
		}
		prev := n.items[i]
		copy(n.items[i:n.n-1], n.items[i+1:n.n])
		n.n--
		n.items[n.n] = entry{}
		return prev, true
	}
	var prev entry
	switch {
	case found && max:
		i++ // the largest item lives in the last child
		c := t.mut(n.children[i])
		n.children[i] = c
		prev, _ = t.del(c, "", true)
	case found:
		prev = n.items[i]
		c := t.mut(n.children[i])
		n.children[i] = c
		n.items[i], _ = t.del(c, "", true) // the predecessor takes its place
	default:
		c := t.mut(n.children[i])
		n.children[i] = c
		var ok bool
		if prev, ok = t.del(c, key, false); !ok {
			return entry{}, false
		}
	}
	if n.children[i].n < minItems {
		t.rebalance(n, i)
	}
	return prev, true
}

// rebalance fixes the underfull child i of the owned node n by merging it
// with a sibling or moving one item over from a sibling.
func (t *tree) rebalance(n *node, i int) {
	if i == n.n {
		i--
	}
	left, right := t.mut(n.children[i]), t.mut(n.children[i+1])
	n.children[i], n.children[i+1] = left, right
	switch {
	case left.n+right.n+1 <= maxItems:
		// Merge right and the separator into left.
		left.items[left.n] = n.items[i]
		copy(left.items[left.n+1:], right.items[:right.n])
		if !left.leaf() {
			copy(left.children[left.n+1:], right.children[:right.n+1])
		}
		left.n += right.n + 1
		copy(n.items[i:n.n-1], n.items[i+1:n.n])
		copy(n.children[i+1:n.n], n.children[i+2:n.n+1])
		n.n--
		n.items[n.n] = entry{}
		n.children[n.n+1] = nil
	case left.n > right.n:
		// Rotate right: left's last item goes up, the separator comes down.
		copy(right.items[1:right.n+1], right.items[:right.n])
		right.items[0] = n.items[i]
		n.items[i] = left.items[left.n-1]
		left.items[left.n-1] = entry{}
		if !left.leaf() {
			copy(right.children[1:right.n+2], right.children[:right.n+1])
			right.children[0] = left.children[left.n]
			left.children[left.n] = nil
		}
		left.n--
		right.n++
	default:
		// Rotate left.
		left.items[left.n] = n.items[i]
		n.items[i] = right.items[0]
		copy(right.items[:right.n-1], right.items[1:right.n])
		right.items[right.n-1] = entry{}
		if !left.leaf() {
			left.children[left.n+1] = right.children[0]
			copy(right.children[:right.n], right.children[1:right.n+1])
			right.children[right.n] = nil
		}
		left.n++
		right.n--
	}
}

// bulkTree builds a tree from entries sorted by key without duplicates,
// packing nodes nearly full (the way recovery loads a keydir).
func bulkTree(es []entry) *tree {
	t := newTree()
	t.length = len(es)
	for i := range es {
		t.keyBytes += int64(len(es[i].key))
	}
	if len(es) == 0 {
		return t
	}
	items, children := es, []*node(nil)
	for {
		n := len(items)
		count := (n + 1 + maxItems) / (maxItems + 1) // nodes on this level
		if count < 1 {
			count = 1
		}
		per := n - (count - 1) // items left for the nodes after the separators
		var nodes []*node
		var seps []entry
		pos, child := 0, 0
		for k := 0; k < count; k++ {
			size := per / count
			if k < per%count {
				size++
			}
			nd := t.newNode(children == nil)
			nd.n = copy(nd.items[:], items[pos:pos+size])
			pos += size
			if children != nil {
				copy(nd.children[:], children[child:child+size+1])
				child += size + 1
			}
			nodes = append(nodes, nd)
			if k < count-1 {
				seps = append(seps, items[pos])
				pos++
			}
		}
		if count == 1 {
			t.root = nodes[0]
			return t
		}
		items, children = seps, nodes
	}
}

// nodeCount counts the nodes reachable from the root (for memory metrics).
func (t *tree) nodeCount() (leaves, internal int) {
	var walk func(n *node)
	walk = func(n *node) {
		if n.leaf() {
			leaves++
			return
		}
		internal++
		for i := 0; i <= n.n; i++ {
			walk(n.children[i])
		}
	}
	if t.root != nil {
		walk(t.root)
	}
	return leaves, internal
}

// treeIter walks a tree that nobody changes while it is in use (a clone).
type treeIter struct {
	t     *tree
	stack []frame
}

// frame is a node on the path to the current item. For the top frame, i is
// the current item. For the frames below it, i is the child the path goes
// through (which lies just before items[i]).
type frame struct {
	n *node
	i int
}

func (it *treeIter) valid() bool { return len(it.stack) > 0 }

func (it *treeIter) cur() *entry {
	f := &it.stack[len(it.stack)-1]
	return &f.n.items[f.i]
}

func (it *treeIter) descendFirst(n *node) {
	for {
		it.stack = append(it.stack, frame{n, 0})
		if n.leaf() {
			return
		}
		n = n.children[0]
	}
}

func (it *treeIter) descendLast(n *node) {
	for {
		if n.leaf() {
			it.stack = append(it.stack, frame{n, n.n - 1})
			return
		}
		it.stack = append(it.stack, frame{n, n.n})
		n = n.children[n.n]
	}
}

func (it *treeIter) first() bool {
	it.stack = it.stack[:0]
	if it.t.root != nil && it.t.root.n > 0 {
		it.descendFirst(it.t.root)
	}
	return it.valid()
}

func (it *treeIter) last() bool {
	it.stack = it.stack[:0]
	if it.t.root != nil && it.t.root.n > 0 {
		it.descendLast(it.t.root)
	}
	return it.valid()
}

// seekGE positions at the first item >= key.
func (it *treeIter) seekGE(key string) bool {
	it.stack = it.stack[:0]
	n := it.t.root
	if n == nil || n.n == 0 {
		return false
	}
	for {
		i, found := n.search(key)
		it.stack = append(it.stack, frame{n, i})
		if found {
			return true
		}
		if n.leaf() {
			if i < n.n {
				return true
			}
			return it.ascendNext()
		}
		n = n.children[i]
	}
}

// seekLT positions at the last item < key.
func (it *treeIter) seekLT(key string) bool {
	if !it.seekGE(key) {
		return it.last()
	}
	return it.prev()
}

// ascendNext pops exhausted frames until one has an item after the child it
// came from.
func (it *treeIter) ascendNext() bool {
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

func (it *treeIter) next() bool {
	if !it.valid() {
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
	it.descendFirst(f.n.children[f.i])
	return true
}

func (it *treeIter) prev() bool {
	if !it.valid() {
		return false
	}
	f := &it.stack[len(it.stack)-1]
	if !f.n.leaf() {
		it.descendLast(f.n.children[f.i])
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
