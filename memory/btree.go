package memory

import (
	"bytes"
	"unsafe"
)

// Node geometry. A node holds at most maxItems items; a node other than the
// root, and other than the rightmost node of its level (see splitInsert),
// holds at least minItems. 62 items of 16 bytes plus a 24-byte header is 1016
// bytes, just under the runtime's 1024-byte size class.
const (
	maxItems = 62
	minItems = maxItems / 2
)

// item is one key/value pair. Key and value share one allocation, owned by
// the tree and never changed after the item is inserted: an overwrite
// installs a new item. That is what lets snapshots and iterators hand out
// slices of it.
//
// The item is a pointer and two lengths rather than a slice, which halves its
// size (16 bytes, not 32) and so the size of a node, and the memory and cache
// lines a key costs. Lengths fit: keys are at most 64 KiB and values 32 MiB.
type item struct {
	p    *byte // key then value; nil only in an empty slot
	klen uint32
	vlen uint32
}

func (it *item) key() []byte { return unsafe.Slice(it.p, it.klen) }

// value returns the value, capped so that appending to it cannot write past
// it. Slicing the whole allocation (rather than pointing p past the key)
// keeps the pointer inside the allocation even for an empty value.
func (it *item) value() []byte {
	return unsafe.Slice(it.p, it.klen+it.vlen)[it.klen:]
}

// size is the length of the item's allocation: its key and value bytes.
func (it *item) size() int { return int(it.klen) + int(it.vlen) }

// makeItem copies key and value into one new allocation. key is not empty
// (the engine checks it), so the allocation has an address of its own.
func makeItem(key, value []byte) item {
	kv := make([]byte, len(key)+len(value))
	copy(kv, key)
	copy(kv[len(key):], value)
	return item{p: &kv[0], klen: uint32(len(key)), vlen: uint32(len(value))}
}

// node is a B-tree node. Items are sorted by key; an inner node has n+1
// children, children[i] holding the keys between items[i-1] and items[i].
// Slots past n are zero, so that removed data is not kept alive.
//
// cow is the version of the tree that created the node. A snapshot taken at
// version s may read every node with cow <= s that was reachable at the
// time, so the writer changes such a node only after copying it (see
// tree.mut).
type node struct {
	cow      uint64
	n        int
	children *[maxItems + 1]*node // nil for a leaf
	items    [maxItems]item
}

func (n *node) leaf() bool { return n.children == nil }

// search returns the index of the first item whose key is >= key, and
// whether it is equal.
func (n *node) search(key []byte) (int, bool) {
	lo, hi := 0, n.n
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		it := &n.items[h]
		switch c := bytes.Compare(unsafe.Slice(it.p, it.klen), key); {
		case c < 0:
			lo = h + 1
		case c > 0:
			hi = h
		default:
			return h, true
		}
	}
	return lo, false
}

func (n *node) insertItem(i int, it item) {
	copy(n.items[i+1:n.n+1], n.items[i:n.n])
	n.items[i] = it
	n.n++
}

// removeItem removes item i; on an inner node the caller removes a child too.
func (n *node) removeItem(i int) {
	copy(n.items[i:n.n-1], n.items[i+1:n.n])
	n.n--
	n.items[n.n] = item{}
}

// insertChild makes c child i, shifting the later ones; n.n must already
// count the item that came with it.
func (n *node) insertChild(i int, c *node) {
	copy(n.children[i+1:n.n+1], n.children[i:n.n])
	n.children[i] = c
}

// removeChild removes child i; n.n must already be decremented.
func (n *node) removeChild(i int) {
	copy(n.children[i:n.n+1], n.children[i+1:n.n+2])
	n.children[n.n+1] = nil
}

// Sizes of the two kinds of node, for MemBytes.
const (
	leafBytes  = int64(unsafe.Sizeof(node{}))
	innerBytes = leafBytes + int64(unsafe.Sizeof([maxItems + 1]*node{}))
)

// tree is a B-tree of byte-string keys with lazy copy-on-write, in the
// manner of a persistent data structure: a snapshot is an old root, shared
// with the live tree until a write copies the path it changes. It is not
// safe for concurrent use: the DB serializes writers and excludes readers of
// the live tree while one runs. A root taken by snapshot() is immutable and
// may be read by any number of goroutines.
type tree struct {
	root   *node
	height int // 0 when empty

	// cow is the version stamped on nodes created from now on. shared is the
	// newest version a live snapshot was taken at (0 for none): a node with
	// cow <= shared may be read by a snapshot and is copied before a change.
	// Nodes with cow > shared are changed in place, so that with no live
	// snapshot a write allocates nothing but its item.
	cow    uint64
	shared uint64

	count     int   // live keys
	dataBytes int64 // key and value bytes of live keys
	leaves    int64 // leaf nodes in the live tree
	inners    int64 // inner nodes in the live tree
	copies    uint64
	splits    uint64
	merges    uint64
}

func newTree() tree { return tree{cow: 1} }

// snapshot returns the current root, frozen: the version is bumped so that
// the writer copies every node it shares with the root before changing it.
// ver is the version the snapshot was taken at; the caller marks it live
// with markShared until the snapshot is released.
func (t *tree) snapshot() (root *node, ver uint64) {
	ver = t.cow
	t.cow++
	if ver > t.shared {
		t.shared = ver
	}
	return t.root, ver
}

// mut returns *pn, copied first (and *pn updated) if a snapshot may read it.
func (t *tree) mut(pn **node) *node {
	n := *pn
	if n.cow > t.shared {
		return n
	}
	c := new(node)
	*c = *n
	c.cow = t.cow
	if n.children != nil {
		c.children = new([maxItems + 1]*node)
		*c.children = *n.children
	}
	*pn = c
	t.copies++
	return c
}

func (t *tree) newNode(inner bool) *node {
	n := &node{cow: t.cow}
	if inner {
		n.children = new([maxItems + 1]*node)
		t.inners++
	} else {
		t.leaves++
	}
	return n
}

func (t *tree) freeNode(n *node) {
	if n.leaf() {
		t.leaves--
	} else {
		t.inners--
	}
}

// get returns the item stored under key.
func (t *tree) get(key []byte) (*item, bool) {
	n := t.root
	if n == nil {
		return nil, false
	}
	for {
		i, found := n.search(key)
		if found {
			return &n.items[i], true
		}
		if n.children == nil {
			return nil, false
		}
		n = n.children[i]
	}
}

// set stores it, replacing any item with the same key.
func (t *tree) set(it item) {
	if t.root == nil {
		t.root = t.newNode(false)
		t.height = 1
	}
	old, replaced, med, right := t.insert(&t.root, it, true)
	if right != nil {
		r := t.newNode(true)
		r.items[0] = med
		r.children[0] = t.root
		r.children[1] = right
		r.n = 1
		t.root = r
		t.height++
	}
	if replaced {
		t.dataBytes += int64(it.size() - old.size())
	} else {
		t.count++
		t.dataBytes += int64(it.size())
	}
}

// insert puts it in the subtree at *pn. If the subtree's root had to split,
// it keeps the left half and right is the new right half, med the item
// between them. rightmost says the subtree is the last at its level.
func (t *tree) insert(pn **node, it item, rightmost bool) (old item, replaced bool, med item, right *node) {
	n := t.mut(pn)
	i, found := n.search(it.key())
	if found {
		old = n.items[i]
		n.items[i] = it
		return old, true, item{}, nil
	}
	if n.leaf() {
		if n.n < maxItems {
			n.insertItem(i, it)
			return item{}, false, item{}, nil
		}
		med, right = t.splitInsert(n, i, it, nil, rightmost)
		return item{}, false, med, right
	}
	old, replaced, cmed, cright := t.insert(&n.children[i], it, rightmost && i == n.n)
	if cright == nil {
		return old, replaced, item{}, nil
	}
	if n.n < maxItems {
		n.insertItem(i, cmed)
		n.insertChild(i+1, cright)
		return old, replaced, item{}, nil
	}
	med, right = t.splitInsert(n, i, cmed, cright, rightmost)
	return old, replaced, med, right
}

// splitInsert inserts it at i (and, on an inner node, child c at i+1) into
// the full node n by splitting it: n keeps the left part and the new right
// node and the median item between them are returned.
//
// A node split in the middle ends half full. When keys arrive in ascending
// order that would leave the whole tree half full, so an append to the
// rightmost node at its level instead leaves n full and the new node with
// the one new item; the next appends fill it. Only rightmost nodes can end up
// below minItems this way.
func (t *tree) splitInsert(n *node, i int, it item, c *node, rightmost bool) (item, *node) {
	var items [maxItems + 1]item
	copy(items[:i], n.items[:i])
	items[i] = it
	copy(items[i+1:], n.items[i:])
	var children [maxItems + 2]*node
	if c != nil {
		copy(children[:i+1], n.children[:i+1])
		children[i+1] = c
		copy(children[i+2:], n.children[i+1:])
	}

	m := (maxItems + 1) / 2
	if rightmost && i == maxItems {
		m = maxItems - 1
	}
	right := t.newNode(c != nil)
	t.splits++
	copy(n.items[:], items[:m])
	clear(n.items[m:])
	n.n = m
	right.n = copy(right.items[:], items[m+1:])
	if c != nil {
		copy(n.children[:], children[:m+1])
		clear(n.children[m+1:])
		copy(right.children[:], children[m+1:])
	}
	return items[m], right
}

// has reports whether key is present.
func (t *tree) has(key []byte) bool {
	_, ok := t.get(key)
	return ok
}

// delete removes key, returning whether it was present.
func (t *tree) delete(key []byte) bool {
	if t.root == nil {
		return false
	}
	// With a live snapshot, descending with mut would copy the path even
	// when the key is absent; look first.
	if t.shared != 0 && !t.has(key) {
		return false
	}
	old, found := t.remove(&t.root, key)
	if !found {
		return false
	}
	t.count--
	t.dataBytes -= int64(old.size())
	if r := t.root; r.n == 0 {
		t.freeNode(r)
		if r.leaf() {
			t.root = nil
		} else {
			t.root = r.children[0]
		}
		t.height--
	}
	return true
}

// remove deletes key from the subtree at *pn. It may leave the subtree's
// root below minItems; the caller rebalances.
func (t *tree) remove(pn **node, key []byte) (item, bool) {
	n := t.mut(pn)
	i, found := n.search(key)
	if n.leaf() {
		if !found {
			return item{}, false
		}
		old := n.items[i]
		n.removeItem(i)
		return old, true
	}
	var old item
	if found {
		old = n.items[i]
		n.items[i] = t.popMax(&n.children[i])
	} else {
		var ok bool
		if old, ok = t.remove(&n.children[i], key); !ok {
			return item{}, false
		}
	}
	if n.children[i].n < minItems {
		t.rebalance(n, i)
	}
	return old, true
}

// popMax removes and returns the largest item of the subtree at *pn.
func (t *tree) popMax(pn **node) item {
	n := t.mut(pn)
	if n.leaf() {
		n.n--
		it := n.items[n.n]
		n.items[n.n] = item{}
		return it
	}
	it := t.popMax(&n.children[n.n])
	if n.children[n.n].n < minItems {
		t.rebalance(n, n.n)
	}
	return it
}

// rebalance brings n's child i, below minItems, back to it by merging it with
// a sibling or, when both together would overflow a node, moving one item
// over from the sibling through n.
func (t *tree) rebalance(n *node, i int) {
	if i == n.n {
		i-- // the last child has only a left sibling
	}
	// Children i and i+1, separated by items[i].
	l := t.mut(&n.children[i])
	r := t.mut(&n.children[i+1])
	switch {
	case l.n+r.n+1 <= maxItems:
		l.items[l.n] = n.items[i]
		copy(l.items[l.n+1:], r.items[:r.n])
		if !l.leaf() {
			copy(l.children[l.n+1:], r.children[:r.n+1])
		}
		l.n += r.n + 1
		n.removeItem(i)
		n.removeChild(i + 1)
		t.freeNode(r)
		t.merges++
	case l.n < r.n:
		l.items[l.n] = n.items[i]
		if !l.leaf() {
			l.children[l.n+1] = r.children[0]
		}
		l.n++
		n.items[i] = r.items[0]
		r.removeItem(0)
		if !r.leaf() {
			r.removeChild(0)
		}
	default:
		r.insertItem(0, n.items[i])
		if !r.leaf() {
			r.insertChild(0, l.children[l.n])
			l.children[l.n] = nil
		}
		l.n--
		n.items[i] = l.items[l.n]
		l.items[l.n] = item{}
	}
}
