package bitcask

import (
	"cmp"
	"encoding/binary"
	"strings"
	"sync/atomic"
	"unsafe"
)

// The keydir is an ordered map from key to the location of the key's live
// value: a B-tree (items in every node, as in a textbook B-tree) with lazy
// path copying, so that a snapshot is O(1): Clone hands out the root and
// gives both trees fresh copy-on-write ids; whichever tree later writes to a
// shared node copies it first (and the path down to it). Nodes a tree owns
// (same cow id) are changed in place, so a run of writes without snapshots
// allocates only on splits.
//
// # Node layout
//
// A node keeps its items as parallel arrays (structure of arrays), so that a
// search reads one small contiguous array and nothing else:
//
//	pfx   [maxItems]prefix  the key's first 16 bytes, zero padded, as two
//	                        big-endian uint64s (hi, lo): 16 bytes an item
//	locs  [maxItems]loc     file id, offset, value length and key length:
//	                        16 bytes an item
//	tails *[maxItems]*byte  the key's bytes past the 16th (klen-16 of them),
//	                        or nil; the array itself is allocated only once
//	                        the node holds a key longer than 16 bytes
//
// A leaf is 2 KiB (a 32-byte header and 63 items of 32 bytes). An internal
// node (inode) is a node with its 64 children inline after it, so a descent
// takes no extra cache miss for a separate child array. A key of at most 16
// bytes costs 32 bytes in its node and no allocation of its own; a longer
// key adds an 8-byte pointer slot and its tail. With nodes 50-100% full
// (about 70% after random inserts, full after Open) that is 32 to 64 bytes
// per key, plus the tail.
//
// In a keydir larger than the CPU caches, the cost of a lookup is its cache
// misses, so search does not bisect (each step of a bisection waits for the
// line the step before chose): it compares every 8th prefix, whose loads do
// not depend on each other and so are fetched in parallel, then the 7 or
// fewer prefixes after the last one below the key.
//
// Order is exactly bytewise (bytes.Compare): compare hi, then lo (unsigned,
// which for big-endian words is the bytewise order of the 16 padded bytes),
// then, if both keys are longer than 16 bytes, their tails, else their
// lengths. The padding is sound: where two padded prefixes first differ,
// either both bytes are real, or the zero is padding and its key, shorter,
// is a prefix of the other and so sorts first, as the nonzero byte says.
// Where they are equal, the shorter key (if either is at most 16 bytes
// long) is a prefix of the longer, so length decides.
//
// A tree is not safe for concurrent use; DB guards its tree with a lock. A
// clone that nobody writes to (a snapshot's) may be read by any number of
// goroutines while the original is written, because writes never touch a
// shared node. Tails are never written after they are made, so nodes copied
// for copy-on-write share them.

const (
	maxItems  = 63           // items per node; odd so a split leaves equal halves
	minItems  = maxItems / 2 // fewest items in a non-root node
	prefixLen = 16           // key bytes kept inline in a node
)

// entry is a key and the location of its value, the form in which keys go
// into the tree (set, bulkTree).
type entry struct {
	key  string
	fid  uint32
	off  uint32
	vlen uint32
}

// loc is where a key's live value is: the record at off in data file fid.
// vlen together with klen (the key's length) gives the record's size. The
// seq is not kept (recovery reads it from hints and records).
type loc struct {
	fid  uint32
	off  uint32
	vlen uint32
	klen uint32
}

// prefix is a key's first 16 bytes, zero padded, as big-endian words.
type prefix struct{ hi, lo uint64 }

// skey is a key prepared for searching: its prefix, length and tail.
type skey struct {
	prefix
	klen uint32
	tail string // the bytes past the prefix; "" for a short key
}

func makeSKey(key string) skey {
	k := skey{klen: uint32(len(key))}
	if len(key) >= prefixLen {
		b := unsafe.Slice(unsafe.StringData(key), prefixLen)
		k.hi = binary.BigEndian.Uint64(b[:8])
		k.lo = binary.BigEndian.Uint64(b[8:])
		k.tail = key[prefixLen:]
		return k
	}
	var b [prefixLen]byte
	copy(b[:], key)
	k.hi = binary.BigEndian.Uint64(b[:8])
	k.lo = binary.BigEndian.Uint64(b[8:])
	return k
}

// item is one node slot, moved whole between nodes.
type item struct {
	p    prefix
	l    loc
	tail *byte // nil unless l.klen > prefixLen
}

// node is a B-tree node; a leaf is just a node, an internal node is the
// node at the start of an inode. The pointer comes first so that the
// garbage collector, which scans an object only up to its last pointer,
// skips a leaf's item arrays.
type node struct {
	tails *[maxItems]*byte // nil until an item has a tail
	cow   uint64
	n     int
	inner bool // the node is an inode's
	pfx   [maxItems]prefix
	locs  [maxItems]loc
}

// inode is an internal node: a node and its children inline, so that a
// descent takes no extra cache miss for a separate child array.
type inode struct {
	node
	children [maxItems + 1]*node
}

func (n *node) leaf() bool { return !n.inner }

// kids returns the children of an internal node. n is then the first field
// of an inode allocation, so the conversion stays inside that object.
func (n *node) kids() *[maxItems + 1]*node {
	return &(*inode)(unsafe.Pointer(n)).children
}

// cmp compares item i with k.
func (n *node) cmp(i int, k *skey) int {
	p := &n.pfx[i]
	switch {
	case p.hi < k.hi:
		return -1
	case p.hi > k.hi:
		return 1
	case p.lo < k.lo:
		return -1
	case p.lo > k.lo:
		return 1
	}
	l := n.locs[i].klen
	if l > prefixLen && k.klen > prefixLen {
		return strings.Compare(unsafe.String(n.tails[i], l-prefixLen), k.tail)
	}
	return cmp.Compare(l, k.klen)
}

func (p prefix) less(q prefix) bool { return p.hi < q.hi || (p.hi == q.hi && p.lo < q.lo) }

// search returns the index of the first item >= k and whether it equals k.
// It counts the items whose prefixes are below k's by strides of 8, then
// one by one (see the note on node layout); the items sharing k's prefix,
// if any, follow, ordered by tail and length, and are bisected with full
// comparisons.
func (n *node) search(k *skey) (int, bool) {
	i := 0
	for i+7 < n.n && n.pfx[i+7].less(k.prefix) {
		i += 8
	}
	for i < n.n && n.pfx[i].less(k.prefix) {
		i++
	}
	j := i
	for j < n.n && n.pfx[j] == k.prefix {
		j++
	}
	if i == j {
		return i, false // no item has k's prefix
	}
	for i < j {
		m := int(uint(i+j) >> 1)
		if n.cmp(m, k) < 0 {
			i = m + 1
		} else {
			j = m
		}
	}
	return i, i < n.n && n.cmp(i, k) == 0
}

func (n *node) item(i int) item {
	it := item{p: n.pfx[i], l: n.locs[i]}
	if n.tails != nil {
		it.tail = n.tails[i]
	}
	return it
}

// setItem stores it in slot i of the owned node n.
func (n *node) setItem(i int, it item) {
	n.pfx[i], n.locs[i] = it.p, it.l
	if it.tail != nil && n.tails == nil {
		n.tails = new([maxItems]*byte)
	}
	if n.tails != nil {
		n.tails[i] = it.tail
	}
}

// clearItems drops slots [i, j) of the owned node n (their tails, so that
// the collector can free them; the rest is plain data).
func (n *node) clearItems(i, j int) {
	if n.tails != nil {
		clear(n.tails[i:j])
	}
}

// copyItems copies src's slots [i, j) to dst's slots from d; dst is owned
// and may be src (overlapping ranges are fine, as with copy).
func copyItems(dst *node, d int, src *node, i, j int) {
	copy(dst.pfx[d:], src.pfx[i:j])
	copy(dst.locs[d:], src.locs[i:j])
	switch {
	case src.tails != nil:
		if dst.tails == nil {
			dst.tails = new([maxItems]*byte)
		}
		copy(dst.tails[d:], src.tails[i:j])
	case dst.tails != nil:
		clear(dst.tails[d : d+j-i])
	}
}

// appendKey appends item i's key to dst.
func (n *node) appendKey(dst []byte, i int) []byte {
	var b [prefixLen]byte
	binary.BigEndian.PutUint64(b[:8], n.pfx[i].hi)
	binary.BigEndian.PutUint64(b[8:], n.pfx[i].lo)
	l := int(n.locs[i].klen)
	if l <= prefixLen {
		return append(dst, b[:l]...)
	}
	dst = append(dst, b[:]...)
	return append(dst, unsafe.String(n.tails[i], l-prefixLen)...)
}

var cowIDs atomic.Uint64

type tree struct {
	root      *node
	cow       uint64
	length    int
	keyBytes  int64 // sum of len(key) over the tree's entries
	tailBytes int64 // sum of the tails' lengths (key bytes past 16)
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
	if leaf {
		return &node{cow: t.cow}
	}
	return &(&inode{node: node{cow: t.cow, inner: true}}).node
}

// mut returns n if t owns it, else a copy of n that t owns.
func (t *tree) mut(n *node) *node {
	if n.cow == t.cow {
		return n
	}
	var c *node
	if n.inner {
		in := &inode{children: *n.kids()}
		in.node = *n
		c = &in.node
	} else {
		c = new(node)
		*c = *n
	}
	c.cow = t.cow
	if n.tails != nil {
		tl := *n.tails
		c.tails = &tl
	}
	return c
}

func (t *tree) get(key string) (loc, bool) {
	k := makeSKey(key)
	n := t.root
	for n != nil {
		i, found := n.search(&k)
		if found {
			return n.locs[i], true
		}
		if n.leaf() {
			break
		}
		n = n.kids()[i]
	}
	return loc{}, false
}

// split moves the upper half of the full, owned node n to a new node and
// returns the middle item and the new node.
func (t *tree) split(n *node) (item, *node) {
	const mid = maxItems / 2
	r := t.newNode(n.leaf())
	copyItems(r, 0, n, mid+1, n.n)
	r.n = n.n - (mid + 1)
	if !n.leaf() {
		copy(r.kids()[:], n.kids()[mid+1:n.n+1])
		clear(n.kids()[mid+1 : n.n+1])
	}
	m := n.item(mid)
	n.clearItems(mid, n.n)
	n.n = mid
	return m, r
}

// set stores e, returning the location it replaced, if any. e.key may alias
// a caller's buffer: the tree keeps its own copy.
func (t *tree) set(e entry) (loc, bool) {
	k := makeSKey(e.key)
	l := loc{fid: e.fid, off: e.off, vlen: e.vlen, klen: k.klen}
	if t.root == nil {
		t.root = t.newNode(true)
	}
	t.root = t.mut(t.root)
	if t.root.n == maxItems {
		left := t.root
		m, right := t.split(left)
		t.root = t.newNode(false)
		t.root.setItem(0, m)
		t.root.kids()[0], t.root.kids()[1] = left, right
		t.root.n = 1
	}
	n := t.root
	for {
		i, found := n.search(&k)
		if found {
			prev := n.locs[i]
			n.locs[i] = l // the stored key (and tail) stays
			return prev, true
		}
		if n.leaf() {
			copyItems(n, i+1, n, i, n.n)
			it := item{p: k.prefix, l: l}
			if k.klen > prefixLen {
				it.tail = unsafe.StringData(strings.Clone(k.tail)) // the caller's key may be transient
				t.tailBytes += int64(len(k.tail))
			}
			n.setItem(i, it)
			n.n++
			t.length++
			t.keyBytes += int64(k.klen)
			return loc{}, false
		}
		c := t.mut(n.kids()[i])
		n.kids()[i] = c
		if c.n == maxItems {
			m, right := t.split(c)
			copyItems(n, i+1, n, i, n.n)
			copy(n.kids()[i+2:n.n+2], n.kids()[i+1:n.n+1])
			n.setItem(i, m)
			n.kids()[i+1] = right
			n.n++
			switch d := n.cmp(i, &k); {
			case d == 0:
				prev := n.locs[i]
				n.locs[i] = l
				return prev, true
			case d < 0:
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
	k := makeSKey(key)
	t.root = t.mut(t.root)
	n := t.root
	for {
		i, found := n.search(&k)
		if found {
			l := &n.locs[i]
			if l.fid != fid || l.off != off {
				return false
			}
			l.fid, l.off = toFid, toOff
			return true
		}
		if n.leaf() {
			return false
		}
		c := t.mut(n.kids()[i])
		n.kids()[i] = c
		n = c
	}
}

// delete removes key, returning the location it held.
func (t *tree) delete(key string) (loc, bool) {
	if t.root == nil {
		return loc{}, false
	}
	if _, ok := t.get(key); !ok {
		return loc{}, false // no copying on the path to nowhere
	}
	k := makeSKey(key)
	t.root = t.mut(t.root)
	prev, ok := t.del(t.root, &k, false)
	if t.root.n == 0 {
		if t.root.leaf() {
			t.root = nil
		} else {
			t.root = t.root.kids()[0]
		}
	}
	if ok {
		t.length--
		t.keyBytes -= int64(prev.l.klen)
		if prev.l.klen > prefixLen {
			t.tailBytes -= int64(prev.l.klen - prefixLen)
		}
	}
	return prev.l, ok
}

// del removes k (or, with max, the largest item) from the subtree of the
// owned node n, leaving n possibly below minItems for its parent to fix.
func (t *tree) del(n *node, k *skey, max bool) (item, bool) {
	var i int
	var found bool
	if max {
		i, found = n.n-1, true
	} else {
		i, found = n.search(k)
	}
	if n.leaf() {
		if !found {
			return item{}, false
		}
		prev := n.item(i)
		copyItems(n, i, n, i+1, n.n)
		n.n--
		n.clearItems(n.n, n.n+1)
		return prev, true
	}
	var prev item
	switch {
	case found && max:
		i++ // the largest item lives in the last child
		c := t.mut(n.kids()[i])
		n.kids()[i] = c
		prev, _ = t.del(c, nil, true)
	case found:
		prev = n.item(i)
		c := t.mut(n.kids()[i])
		n.kids()[i] = c
		pred, _ := t.del(c, nil, true) // the predecessor takes its place
		n.setItem(i, pred)
	default:
		c := t.mut(n.kids()[i])
		n.kids()[i] = c
		var ok bool
		if prev, ok = t.del(c, k, false); !ok {
			return item{}, false
		}
	}
	if n.kids()[i].n < minItems {
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
	left, right := t.mut(n.kids()[i]), t.mut(n.kids()[i+1])
	n.kids()[i], n.kids()[i+1] = left, right
	switch {
	case left.n+right.n+1 <= maxItems:
		// Merge right and the separator into left.
		left.setItem(left.n, n.item(i))
		copyItems(left, left.n+1, right, 0, right.n)
		if !left.leaf() {
			copy(left.kids()[left.n+1:], right.kids()[:right.n+1])
		}
		left.n += right.n + 1
		copyItems(n, i, n, i+1, n.n)
		copy(n.kids()[i+1:n.n], n.kids()[i+2:n.n+1])
		n.n--
		n.clearItems(n.n, n.n+1)
		n.kids()[n.n+1] = nil
	case left.n > right.n:
		// Rotate right: left's last item goes up, the separator comes down.
		copyItems(right, 1, right, 0, right.n)
		right.setItem(0, n.item(i))
		n.setItem(i, left.item(left.n-1))
		left.clearItems(left.n-1, left.n)
		if !left.leaf() {
			copy(right.kids()[1:right.n+2], right.kids()[:right.n+1])
			right.kids()[0] = left.kids()[left.n]
			left.kids()[left.n] = nil
		}
		left.n--
		right.n++
	default:
		// Rotate left.
		left.setItem(left.n, n.item(i))
		n.setItem(i, right.item(0))
		copyItems(right, 0, right, 1, right.n)
		right.clearItems(right.n-1, right.n)
		if !left.leaf() {
			left.kids()[left.n+1] = right.kids()[0]
			copy(right.kids()[:right.n], right.kids()[1:right.n+1])
			right.kids()[right.n] = nil
		}
		left.n++
		right.n--
	}
}

// bulkTree builds a tree from entries sorted by key without duplicates,
// packing nodes nearly full (the way recovery loads a keydir). The tails of
// long keys are copied into one allocation (live while any of them is in
// the tree), so es's keys may live in transient buffers.
func bulkTree(es []entry) *tree {
	t := newTree()
	t.length = len(es)
	for i := range es {
		t.keyBytes += int64(len(es[i].key))
		if len(es[i].key) > prefixLen {
			t.tailBytes += int64(len(es[i].key) - prefixLen)
		}
	}
	if len(es) == 0 {
		return t
	}
	slab := make([]byte, 0, t.tailBytes)
	leafItem := func(j int) item {
		e := &es[j]
		k := makeSKey(e.key)
		it := item{p: k.prefix, l: loc{fid: e.fid, off: e.off, vlen: e.vlen, klen: k.klen}}
		if k.klen > prefixLen {
			start := len(slab)
			slab = append(slab, k.tail...)
			it.tail = &slab[start]
		}
		return it
	}
	count, at := len(es), leafItem
	var children []*node
	for {
		n := count
		nodes := (n + 1 + maxItems) / (maxItems + 1) // nodes on this level
		if nodes < 1 {
			nodes = 1
		}
		per := n - (nodes - 1) // items left for the nodes after the separators
		var level []*node
		var seps []item
		pos, child := 0, 0
		for k := 0; k < nodes; k++ {
			size := per / nodes
			if k < per%nodes {
				size++
			}
			nd := t.newNode(children == nil)
			for j := range size {
				nd.setItem(j, at(pos+j))
			}
			nd.n = size
			pos += size
			if children != nil {
				copy(nd.kids()[:], children[child:child+size+1])
				child += size + 1
			}
			level = append(level, nd)
			if k < nodes-1 {
				seps = append(seps, at(pos))
				pos++
			}
		}
		if nodes == 1 {
			t.root = level[0]
			return t
		}
		count, at, children = len(seps), func(j int) item { return seps[j] }, level
	}
}

// nodeCount counts the nodes reachable from the root, and those of them
// with a tails array (for memory metrics).
func (t *tree) nodeCount() (leaves, internal, tailed int) {
	var walk func(n *node)
	walk = func(n *node) {
		if n.tails != nil {
			tailed++
		}
		if n.leaf() {
			leaves++
			return
		}
		internal++
		for i := 0; i <= n.n; i++ {
			walk(n.kids()[i])
		}
	}
	if t.root != nil {
		walk(t.root)
	}
	return leaves, internal, tailed
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

// loc returns the current item's location.
func (it *treeIter) loc() loc {
	f := &it.stack[len(it.stack)-1]
	return f.n.locs[f.i]
}

// appendKey appends the current item's key to dst.
func (it *treeIter) appendKey(dst []byte) []byte {
	f := &it.stack[len(it.stack)-1]
	return f.n.appendKey(dst, f.i)
}

func (it *treeIter) descendFirst(n *node) {
	for {
		it.stack = append(it.stack, frame{n, 0})
		if n.leaf() {
			return
		}
		n = n.kids()[0]
	}
}

func (it *treeIter) descendLast(n *node) {
	for {
		if n.leaf() {
			it.stack = append(it.stack, frame{n, n.n - 1})
			return
		}
		it.stack = append(it.stack, frame{n, n.n})
		n = n.kids()[n.n]
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
	k := makeSKey(key)
	for {
		i, found := n.search(&k)
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
		n = n.kids()[i]
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
	it.descendFirst(f.n.kids()[f.i])
	return true
}

func (it *treeIter) prev() bool {
	if !it.valid() {
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
