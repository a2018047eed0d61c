package ordtree

import (
	"cmp"
	"encoding/binary"
	"strings"
	"unsafe"
)

const (
	// MaxItems is the most items a node holds; odd so a split leaves equal
	// halves.
	MaxItems = 63
	// MinItems is the fewest items in a node other than the root.
	MinItems = MaxItems / 2
	// PrefixLen is how many of a key's bytes a node keeps inline.
	PrefixLen = 16
	// wideLen is the longest key whose bytes a node keeps without a tail
	// pointer: the prefix, the tail hint and a tail word of 8 more bytes
	// (see tailSet).
	wideLen = PrefixLen + 1 + 8
)

// A node's klens entry holds the key's length in its low 24 bits and, for
// a key longer than PrefixLen, the first byte of its tail in the high 8
// (the tail hint). Keys are at most 64 KiB, so the length fits. The hint
// decides most comparisons of keys that share their inline prefix without
// reading the node's side array; for a key of PrefixLen+1 bytes it is the
// whole tail, and the node needs no side array. Up to wideLen bytes, the
// rest of the tail is in the side array's tail word (see tailSet).
const (
	lenMask   = 1<<24 - 1
	hintShift = 24
)

// tailSet is a node's side array, made once the node holds a key longer
// than PrefixLen+1 (never in a tree that finds tails through the payload).
// w holds each such key's tail bytes after the hint (bytes 18 to 25 of the
// key), zero padded, as a big-endian word: a key of up to wideLen bytes (a
// 16-byte Redis key behind kvnode's dbgen code and 2-byte slot is 19) is
// then whole in its node, with no allocation of its own and nothing for
// the collector to mark. long, made only once the node holds a key longer
// than wideLen, points at each such key's whole tail. long comes first, so
// that the collector, which scans an object up to its last pointer, reads
// one word of the 512 bytes.
type tailSet struct {
	long *[MaxItems]*byte
	w    [MaxItems]uint64
}

// tailWord returns tail's bytes 1 to 8 as tailSet.w holds them.
func tailWord(tail string) uint64 {
	if len(tail) > 8 {
		return binary.BigEndian.Uint64(unsafe.Slice(unsafe.StringData(tail[1:]), 8))
	}
	var b [8]byte
	if len(tail) > 1 {
		copy(b[:], tail[1:])
	}
	return binary.BigEndian.Uint64(b[:])
}

// prefix is a key's first 16 bytes, zero padded, as big-endian words.
type prefix struct{ hi, lo uint64 }

func (p prefix) less(q prefix) bool { return p.hi < q.hi || (p.hi == q.hi && p.lo < q.lo) }

// skey is a key prepared for searching: its prefix, length and tail.
type skey struct {
	prefix
	klen uint32
	tail string // the bytes past the prefix; "" for a short key
	t0   byte   // tail[0], or 0
	// touch receives loads made early so that their cache misses overlap
	// other work (see search); it is never read, but stores to it are not
	// optimised away as dead loads would be.
	touch uint32
}

// entry returns k's klens entry: its length, and its tail hint.
func (k *skey) entry() uint32 { return k.klen | uint32(k.t0)<<hintShift }

func makeSKey(key string) skey {
	k := skey{klen: uint32(len(key))}
	if len(key) >= PrefixLen {
		b := unsafe.Slice(unsafe.StringData(key), PrefixLen)
		k.hi = binary.BigEndian.Uint64(b[:8])
		k.lo = binary.BigEndian.Uint64(b[8:])
		k.tail = key[PrefixLen:]
		if len(k.tail) > 0 {
			k.t0 = k.tail[0]
		}
		return k
	}
	var b [PrefixLen]byte
	copy(b[:], key)
	k.hi = binary.BigEndian.Uint64(b[:8])
	k.lo = binary.BigEndian.Uint64(b[8:])
	return k
}

// item is one node slot, moved whole between nodes.
type item[V any] struct {
	p    prefix
	ent  uint32 // the klens entry: length and tail hint
	w    uint64 // the tail word (tailSet.w), 0 for a key of at most PrefixLen+1 bytes
	tail *byte  // the whole tail of a key longer than wideLen (any longer than PrefixLen+1 with keyInVal); else nil
	v    V
}

// Node is a B-tree node; a leaf is just a Node, an internal node is the Node
// at the start of an Inode. It is exported only so that its owners can size
// it (unsafe.Sizeof) for memory metrics. The pointer comes first so that the
// garbage collector, which scans an object only up to its last pointer,
// skips a leaf's arrays when V holds no pointer.
type Node[V any] struct {
	tails *tailSet // nil until an item is longer than PrefixLen+1
	tag   uint64   // the version that made the node <<2 | tagKeyInVal | tagInner
	n     int
	pfx   [MaxItems]prefix
	klens [MaxItems]uint32
	vals  [MaxItems]V
}

// Inode is an internal node: a Node and its children inline, so that a
// descent takes no extra cache miss for a separate child array.
type Inode[V any] struct {
	Node[V]
	children [MaxItems + 1]*Node[V]
}

// A node's tag bits below its version.
const (
	tagInner    = 1 // the node is the Node of an Inode
	tagKeyInVal = 2 // the payload's first word points at the key (see NewIn)
	tagShift    = 2
)

func (n *Node[V]) leaf() bool { return n.tag&tagInner == 0 }

// tail returns item i's tail, for a key longer than wideLen (longer than
// PrefixLen with keyInVal): from the tails, or past the prefix of the key
// the payload points at.
func (n *Node[V]) tail(i int) *byte {
	if n.tag&tagKeyInVal != 0 {
		return (*byte)(unsafe.Add(*(*unsafe.Pointer)(unsafe.Pointer(&n.vals[i])), PrefixLen))
	}
	return n.tails.long[i]
}

// cow returns the version of the tree that made n. The version shares a
// word with the leaf bit so that a node's header is 24 bytes, which is
// what fits a node with an 8-byte payload in the runtime's 1792-byte size
// class and one with a 12-byte payload in 2048 bytes.
func (n *Node[V]) cow() uint64 { return n.tag >> tagShift }

// kids returns the children of an internal node. n is then the first field
// of an Inode allocation, so the conversion stays inside that object.
func (n *Node[V]) kids() *[MaxItems + 1]*Node[V] {
	return &(*Inode[V])(unsafe.Pointer(n)).children
}

// cmp compares item i with k.
func (n *Node[V]) cmp(i int, k *skey) int {
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
	e := n.klens[i]
	l := e & lenMask
	if l > PrefixLen && k.klen > PrefixLen {
		if h := byte(e >> hintShift); h != k.t0 {
			return cmp.Compare(h, k.t0)
		}
		if l == PrefixLen+1 || k.klen == PrefixLen+1 {
			return cmp.Compare(l, k.klen) // one tail is the hint alone
		}
		if n.tag&tagKeyInVal == 0 {
			// k's word is made here, not with k: items that tie with k
			// on prefix and hint are few.
			if w, kw := n.tails.w[i], tailWord(k.tail); w != kw {
				return cmp.Compare(w, kw)
			}
			if l <= wideLen || k.klen <= wideLen {
				// The words are padded as the prefixes are: the shorter
				// tail is then a prefix of the other.
				return cmp.Compare(l, k.klen)
			}
		}
		return strings.Compare(unsafe.String(n.tail(i), l-PrefixLen), k.tail)
	}
	return cmp.Compare(l, k.klen)
}

// search returns the index of the first item >= k and whether it equals k.
// It counts the items whose prefixes are below k's by strides of 8, then
// one by one (see the package doc); the items sharing k's prefix, if any,
// follow, ordered by tail and length, and are bisected with full
// comparisons.
func (n *Node[V]) search(k *skey) (int, bool) {
	i := 0
	for i+7 < n.n && n.pfx[i+7].less(k.prefix) {
		i += 8
	}
	// The item is one of the 8 from i: load their length entries' line
	// now, and their payloads' (or children's), so that those misses come
	// while the prefixes are compared below, not after.
	if i < n.n && unsafe.Sizeof(n.vals[0]) >= 4 {
		k.touch ^= n.klens[i] ^ *(*uint32)(unsafe.Pointer(&n.vals[i]))
		if !n.leaf() {
			k.touch ^= *(*uint32)(unsafe.Pointer(&n.kids()[i]))
		}
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

func (n *Node[V]) item(i int) item[V] {
	it := item[V]{p: n.pfx[i], ent: n.klens[i], v: n.vals[i]}
	if n.tails != nil {
		it.w = n.tails.w[i]
		if n.tails.long != nil {
			it.tail = n.tails.long[i]
		}
	}
	return it
}

// setItem stores it in slot i of the owned node n.
func (n *Node[V]) setItem(a *Arena, i int, it item[V]) {
	n.pfx[i], n.klens[i], n.vals[i] = it.p, it.ent, it.v
	if n.tag&tagKeyInVal != 0 {
		return
	}
	if n.tails == nil {
		if it.ent&lenMask <= PrefixLen+1 {
			return
		}
		n.tails = newTails(a)
	}
	n.tails.w[i] = it.w
	if it.tail != nil && n.tails.long == nil {
		n.tails.long = newLong(a)
	}
	if n.tails.long != nil {
		n.tails.long[i] = it.tail
	}
}

// newTails allocates a node's tailSet, in a if it is not nil.
func newTails(a *Arena) *tailSet {
	if a == nil {
		return new(tailSet)
	}
	return (*tailSet)(a.Alloc(TailsSize))
}

// newLong allocates a tailSet's long array, in a if it is not nil.
func newLong(a *Arena) *[MaxItems]*byte {
	if a == nil {
		return new([MaxItems]*byte)
	}
	return (*[MaxItems]*byte)(a.Alloc(longSize))
}

// TailsSize is the bytes of a node's side array (see TailedNodes), and
// longSize those of the array of long tails a side array may add.
const (
	TailsSize = int(unsafe.Sizeof(tailSet{}))
	longSize  = int(unsafe.Sizeof([MaxItems]*byte{}))
)

// clearItems zeroes slots [i, j) of the owned node n, so that the collector
// can free what their tails and payloads point at.
func (n *Node[V]) clearItems(i, j int) {
	if n.tails != nil {
		clear(n.tails.w[i:j])
		if n.tails.long != nil {
			clear(n.tails.long[i:j])
		}
	}
	clear(n.vals[i:j])
}

// copyItems copies src's slots [i, j) to dst's slots from d; dst is owned
// and may be src (overlapping ranges are fine, as with copy).
func copyItems[V any](a *Arena, dst *Node[V], d int, src *Node[V], i, j int) {
	copy(dst.pfx[d:], src.pfx[i:j])
	copy(dst.klens[d:], src.klens[i:j])
	copy(dst.vals[d:], src.vals[i:j])
	switch {
	case src.tails != nil:
		if dst.tails == nil {
			dst.tails = newTails(a)
		}
		copy(dst.tails.w[d:], src.tails.w[i:j])
		switch {
		case src.tails.long != nil:
			if dst.tails.long == nil {
				dst.tails.long = newLong(a)
			}
			copy(dst.tails.long[d:], src.tails.long[i:j])
		case dst.tails.long != nil:
			clear(dst.tails.long[d : d+j-i])
		}
	case dst.tails != nil:
		clear(dst.tails.w[d : d+j-i])
		if dst.tails.long != nil {
			clear(dst.tails.long[d : d+j-i])
		}
	}
}

// appendKey appends item i's key to dst.
func (n *Node[V]) appendKey(dst []byte, i int) []byte {
	var b [PrefixLen]byte
	binary.BigEndian.PutUint64(b[:8], n.pfx[i].hi)
	binary.BigEndian.PutUint64(b[8:], n.pfx[i].lo)
	e := n.klens[i]
	l := int(e & lenMask)
	switch {
	case l <= PrefixLen:
		return append(dst, b[:l]...)
	case l == PrefixLen+1:
		return append(append(dst, b[:]...), byte(e>>hintShift)) // the hint is the tail
	case l <= wideLen && n.tag&tagKeyInVal == 0:
		var w [8]byte
		binary.BigEndian.PutUint64(w[:], n.tails.w[i])
		dst = append(append(dst, b[:]...), byte(e>>hintShift))
		return append(dst, w[:l-PrefixLen-1]...)
	}
	dst = append(dst, b[:]...)
	return append(dst, unsafe.String(n.tail(i), l-PrefixLen)...)
}

// Tree is an ordered map from byte-string keys to payloads of type V. The
// zero Tree is not usable: make one with New or Build.
type Tree[V any] struct {
	root *Node[V]

	// cow is the version stamped on nodes created from now on. shared is the
	// newest version an open view may have been taken at (0 for none): a node
	// with cow <= shared may be read by a view and is copied before a change.
	cow    uint64
	shared uint64

	length    int
	keyBytes  int64 // sum of the keys' lengths
	tailBytes int64 // sum of the lengths of the tails kept outside the nodes (see tailLen)
	leaves    int64
	inners    int64
	copies    uint64
	splits    uint64
	merges    uint64

	arena *Arena // where nodes live; nil for the Go heap
	flags uint64 // tagKeyInVal, for the nodes' tags
}

// New returns an empty tree whose nodes live in the Go heap.
func New[V any]() *Tree[V] { return &Tree[V]{cow: 1} }

// NewIn returns an empty tree whose nodes live in a (see Arena). Nothing in
// a may point into the Go heap, so V must hold no pointer but into a, and
// keys go in only by SetOwned, their tails in a too. The owner frees what
// the tree retires (Arena.Reclaim) as views close, and a itself once the
// tree and its views are gone.
//
// With keyInVal, V's first word must be a pointer to the key's bytes (as
// the memory engine's payload points into the record that holds its key):
// the tree then finds a long key's tail there, and keeps no tails array, 8
// bytes a slot.
func NewIn[V any](a *Arena, keyInVal bool) *Tree[V] {
	t := &Tree[V]{cow: 1, arena: a}
	if keyInVal {
		if unsafe.Sizeof(*new(V)) < unsafe.Sizeof(unsafe.Pointer(nil)) {
			panic("ordtree: NewIn with keyInVal needs a payload that starts with a pointer")
		}
		t.flags = tagKeyInVal
	}
	return t
}

// Stats are a tree's counters and gauges, for metrics.
type Stats struct {
	Keys      int    // keys in the tree
	KeyBytes  int64  // sum of the keys' lengths
	TailBytes int64  // sum of the key bytes past the 16th of the keys whose tails are kept outside the nodes: over 25 bytes (over 17 with keyInVal)
	Leaves    int64  // leaf nodes
	Inners    int64  // internal nodes
	Copies    uint64 // nodes copied because a view shared them
	Splits    uint64 // node splits
	Merges    uint64 // node merges on delete
}

// Len returns the number of keys in the tree.
func (t *Tree[V]) Len() int { return t.length }

// Stats returns the tree's counters.
func (t *Tree[V]) Stats() Stats {
	return Stats{Keys: t.length, KeyBytes: t.keyBytes, TailBytes: t.tailBytes,
		Leaves: t.leaves, Inners: t.inners, Copies: t.copies, Splits: t.splits, Merges: t.merges}
}

// Height returns the number of levels of the tree (0 when empty).
func (t *Tree[V]) Height() int {
	h := 0
	for n := t.root; n != nil; h++ {
		if n.leaf() {
			return h + 1
		}
		n = n.kids()[0]
	}
	return h
}

// tailLen is how many bytes of a key of klen bytes the tree keeps outside
// its node (counted in tailBytes): the tail of a key longer than wideLen,
// or with keyInVal longer than PrefixLen+1, else none.
func (t *Tree[V]) tailLen(klen uint32) int64 {
	if klen > wideLen || (t.flags&tagKeyInVal != 0 && klen > PrefixLen+1) {
		return int64(klen - PrefixLen)
	}
	return 0
}

// TailedNodes counts the nodes that have a side array of TailsSize bytes (a
// key longer than 17 bytes), for memory metrics. It walks the whole tree.
func (t *Tree[V]) TailedNodes() int64 {
	c, _ := t.sideArrays()
	return c
}

// SideBytes returns the bytes of the nodes' side arrays: TailsSize a node
// with a key longer than 17 bytes, and an array of 63 pointers more for a
// node with a key longer than 25. It walks the whole tree.
func (t *Tree[V]) SideBytes() int64 {
	c, long := t.sideArrays()
	return c*int64(TailsSize) + long*int64(longSize)
}

// sideArrays counts the nodes with a side array, and those whose side array
// has a long array.
func (t *Tree[V]) sideArrays() (c, long int64) {
	var walk func(n *Node[V])
	walk = func(n *Node[V]) {
		if n.tails != nil {
			c++
			if n.tails.long != nil {
				long++
			}
		}
		if n.leaf() {
			return
		}
		for i := 0; i <= n.n; i++ {
			walk(n.kids()[i])
		}
	}
	if t.root != nil {
		walk(t.root)
	}
	return c, long
}

// Snapshot returns a frozen view of the tree and the version it was taken
// at. The owner counts the version as shared (see SetShared) until the view
// is released; Snapshot itself raises Shared to it.
func (t *Tree[V]) Snapshot() (View[V], uint64) {
	ver := t.cow
	t.cow++
	t.shared = max(t.shared, ver)
	return View[V]{root: t.root}, ver
}

// Shared returns the newest version an open view may have been taken at.
func (t *Tree[V]) Shared() uint64 { return t.shared }

// SetShared tells the tree the newest version an open view was taken at (0
// for none) when views are released: nodes of later versions are then
// changed in place. Setting it lower than a version still read corrupts that
// view.
func (t *Tree[V]) SetShared(ver uint64) { t.shared = ver }

// Version returns the tree's current version: what Arena.Retire is told
// for a block that a write replaces now.
func (t *Tree[V]) Version() uint64 { return t.cow }

// Clear drops every key (the views keep theirs). In an arena, the nodes
// are retired at the current version.
func (t *Tree[V]) Clear() {
	if t.arena != nil && t.root != nil {
		var walk func(n *Node[V])
		walk = func(n *Node[V]) {
			if !n.leaf() {
				for _, c := range n.kids()[:n.n+1] {
					walk(c)
				}
			}
			t.retireNode(n)
		}
		walk(t.root)
	}
	*t = Tree[V]{cow: t.cow, shared: t.shared, copies: t.copies, splits: t.splits, merges: t.merges, arena: t.arena, flags: t.flags}
}

// nodeSize returns the bytes of n's allocation: a Node or an Inode.
func nodeSize[V any](leaf bool) int {
	if leaf {
		return int(unsafe.Sizeof(Node[V]{}))
	}
	return int(unsafe.Sizeof(Inode[V]{}))
}

func (t *Tree[V]) newNode(leaf bool) *Node[V] {
	var n *Node[V]
	switch {
	case t.arena != nil:
		n = (*Node[V])(t.arena.Alloc(nodeSize[V](leaf)))
	case leaf:
		n = new(Node[V])
	default:
		n = &new(Inode[V]).Node
	}
	if leaf {
		t.leaves++
		n.tag = t.cow<<tagShift | t.flags
	} else {
		t.inners++
		n.tag = t.cow<<tagShift | t.flags | tagInner
	}
	return n
}

// freeNode drops n, which has left the tree and which no view can read.
func (t *Tree[V]) freeNode(n *Node[V]) {
	if n.leaf() {
		t.leaves--
	} else {
		t.inners--
	}
	if t.arena != nil {
		if n.tails != nil {
			if n.tails.long != nil {
				t.arena.Free(unsafe.Pointer(n.tails.long), longSize)
			}
			t.arena.Free(unsafe.Pointer(n.tails), TailsSize)
		}
		t.arena.Free(unsafe.Pointer(n), nodeSize[V](n.leaf()))
	}
}

// retireNode hands n, which a view may still read, to the arena to free
// once the views older than now are closed.
func (t *Tree[V]) retireNode(n *Node[V]) {
	if n.tails != nil {
		if n.tails.long != nil {
			t.arena.Retire(unsafe.Pointer(n.tails.long), longSize, t.cow)
		}
		t.arena.Retire(unsafe.Pointer(n.tails), TailsSize, t.cow)
	}
	t.arena.Retire(unsafe.Pointer(n), nodeSize[V](n.leaf()), t.cow)
}

// mut returns n if no view can read it, else a copy of n that only t has.
func (t *Tree[V]) mut(n *Node[V]) *Node[V] {
	if n.cow() > t.shared {
		return n
	}
	t.copies++
	var c *Node[V]
	switch {
	case t.arena != nil:
		c = (*Node[V])(t.arena.Alloc(nodeSize[V](n.leaf())))
		*c = *n
		if !n.leaf() {
			*c.kids() = *n.kids()
		}
		t.retireNode(n)
	case !n.leaf():
		in := &Inode[V]{children: *n.kids()}
		in.Node = *n
		c = &in.Node
	default:
		c = new(Node[V])
		*c = *n
	}
	c.tag = t.cow<<tagShift | n.tag&(1<<tagShift-1)
	if n.tails != nil {
		c.tails = newTails(t.arena)
		*c.tails = *n.tails
		if n.tails.long != nil {
			c.tails.long = newLong(t.arena)
			*c.tails.long = *n.tails.long
		}
	}
	return c
}

// Get returns the payload stored under key.
func (t *Tree[V]) Get(key string) (V, bool) { return get(t.root, key) }

func get[V any](n *Node[V], key string) (V, bool) {
	k := makeSKey(key)
	for n != nil {
		i, found := n.search(&k)
		if found {
			return n.vals[i], true
		}
		if n.leaf() {
			break
		}
		n = n.kids()[i]
	}
	var zero V
	return zero, false
}

// split moves the upper half of the full, owned node n to a new node and
// returns the middle item and the new node. When the key about to go in is
// past n's last item and n is the last node of its level (appending), the
// new node takes only n's last item: keys set in ascending order then leave
// nodes full instead of half full, as bulk loading would. Only a level's
// last node may so be left with fewer than MinItems items; deletes
// rebalance it as any other.
func (t *Tree[V]) split(n *Node[V], appending bool) (item[V], *Node[V]) {
	mid := MaxItems / 2
	if appending {
		mid = MaxItems - 2
	}
	t.splits++
	r := t.newNode(n.leaf())
	copyItems(t.arena, r, 0, n, mid+1, n.n)
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

// Set stores v under key, returning the payload it replaced, if any. The
// tree copies key's bytes past the 16th, so key may alias a caller's buffer.
func (t *Tree[V]) Set(key string, v V) (V, bool) { return t.set(key, v, false) }

// SetOwned is Set for a key whose bytes the caller never changes nor frees
// while the tree or a view may hold it (say, a key stored next to its value
// in an allocation the payload keeps alive): the tree points at its tail
// instead of copying it.
func (t *Tree[V]) SetOwned(key string, v V) (V, bool) { return t.set(key, v, true) }

func (t *Tree[V]) set(key string, v V, owned bool) (V, bool) {
	if t.arena != nil && !owned {
		panic("ordtree: Set on a tree in an arena; use SetOwned") // a tail on the heap would be invisible to the collector
	}
	k := makeSKey(key)
	if t.root == nil {
		t.root = t.newNode(true)
	}
	t.root = t.mut(t.root)
	if t.root.n == MaxItems {
		left := t.root
		m, right := t.split(left, left.cmp(left.n-1, &k) < 0)
		t.root = t.newNode(false)
		t.root.setItem(t.arena, 0, m)
		t.root.kids()[0], t.root.kids()[1] = left, right
		t.root.n = 1
	}
	n := t.root
	edge := true // n is the last node of its level
	for {
		i, found := n.search(&k)
		if found {
			return t.replace(n, i, &k, v, owned), true
		}
		if n.leaf() {
			copyItems(t.arena, n, i+1, n, i, n.n)
			it := item[V]{p: k.prefix, ent: k.entry(), w: tailWord(k.tail), v: v}
			if tl := t.tailLen(k.klen); tl > 0 {
				if owned {
					it.tail = unsafe.StringData(k.tail)
				} else {
					it.tail = unsafe.StringData(strings.Clone(k.tail)) // the caller's key may be transient
				}
				t.tailBytes += tl
			}
			n.setItem(t.arena, i, it)
			n.n++
			t.length++
			t.keyBytes += int64(k.klen)
			var zero V
			return zero, false
		}
		c := t.mut(n.kids()[i])
		n.kids()[i] = c
		edge = edge && i == n.n
		if c.n == MaxItems {
			appending := edge && c.cmp(c.n-1, &k) < 0
			if j, ok := t.spill(n, i, appending); ok {
				sep := min(i, j) // the separator between c and the sibling moved
				switch d := n.cmp(sep, &k); {
				case d == 0:
					return t.replace(n, sep, &k, v, owned), true
				case d < 0:
					c = n.kids()[sep+1]
				default:
					c = n.kids()[sep]
				}
			} else {
				m, right := t.split(c, appending)
				copyItems(t.arena, n, i+1, n, i, n.n)
				copy(n.kids()[i+2:n.n+2], n.kids()[i+1:n.n+1])
				n.setItem(t.arena, i, m)
				n.kids()[i+1] = right
				n.n++
				switch d := n.cmp(i, &k); {
				case d == 0:
					return t.replace(n, i, &k, v, owned), true
				case d < 0:
					c = right
				}
			}
		}
		n = c
	}
}

// spill makes room in the full, owned leaf n.kids()[i] (n owned) by moving
// items through the separator to a sibling that has room, left first, as a
// B*-tree does instead of splitting: random inserts then leave leaves about
// 85% full rather than the 70% that splitting in halves gives, 7 bytes a key
// less for the memory engine. It moves half the sibling's room, so that
// the next inserts there do not spill again at once, and returns the
// sibling's index. Keys appended past the end split instead (see split);
// internal nodes always split, being few.
func (t *Tree[V]) spill(n *Node[V], i int, appending bool) (int, bool) {
	c := n.kids()[i]
	if !c.leaf() || appending {
		return 0, false
	}
	if i > 0 && n.kids()[i-1].n <= MaxItems-2 {
		l := t.mut(n.kids()[i-1])
		n.kids()[i-1] = l
		m := (MaxItems - l.n) / 2
		// l takes the separator and c's first m-1 items; c's m-th goes up.
		l.setItem(t.arena, l.n, n.item(i-1))
		copyItems(t.arena, l, l.n+1, c, 0, m-1)
		l.n += m
		n.setItem(t.arena, i-1, c.item(m-1))
		copyItems(t.arena, c, 0, c, m, c.n)
		c.clearItems(c.n-m, c.n)
		c.n -= m
		return i - 1, true
	}
	if i < n.n && n.kids()[i+1].n <= MaxItems-2 {
		r := t.mut(n.kids()[i+1])
		n.kids()[i+1] = r
		m := (MaxItems - r.n) / 2
		// r takes c's last m-1 items and the separator; c's m-th from
		// last goes up.
		copyItems(t.arena, r, m, r, 0, r.n)
		r.setItem(t.arena, m-1, n.item(i))
		copyItems(t.arena, r, 0, c, c.n-m+1, c.n)
		r.n += m
		n.setItem(t.arena, i, c.item(c.n-m))
		c.clearItems(c.n-m, c.n)
		c.n -= m
		return i + 1, true
	}
	return 0, false
}

// replace stores v in item i of the owned node n, whose key is k, and
// returns the payload it held. An owned key's tail is repointed at the new
// key's bytes: the old ones may be freed with the old payload (the memory
// engine's records hold their key), and on the heap the old tail would keep
// the old payload's allocation alive.
func (t *Tree[V]) replace(n *Node[V], i int, k *skey, v V, owned bool) V {
	prev := n.vals[i]
	n.vals[i] = v
	if owned && k.klen > wideLen && n.tails != nil && n.tails.long != nil {
		n.tails.long[i] = unsafe.StringData(k.tail)
	}
	return prev
}

// Update calls f with key's payload, which f may change, in one descent; it
// reports whether key is in the tree and f returned true. The path to key is
// copied if a view shares it, whatever f decides.
func (t *Tree[V]) Update(key string, f func(v *V) bool) bool {
	if t.root == nil {
		return false
	}
	k := makeSKey(key)
	t.root = t.mut(t.root)
	n := t.root
	for {
		i, found := n.search(&k)
		if found {
			return f(&n.vals[i])
		}
		if n.leaf() {
			return false
		}
		c := t.mut(n.kids()[i])
		n.kids()[i] = c
		n = c
	}
}

// Delete removes key, returning the payload it held.
func (t *Tree[V]) Delete(key string) (V, bool) {
	var zero V
	if t.root == nil {
		return zero, false
	}
	if _, ok := t.Get(key); !ok {
		return zero, false // no copying on the path to nowhere
	}
	k := makeSKey(key)
	t.root = t.mut(t.root)
	prev, ok := t.del(t.root, &k, false)
	if old := t.root; old.n == 0 {
		if old.leaf() {
			t.root = nil
		} else {
			t.root = old.kids()[0]
		}
		t.freeNode(old) // mut made it the tree's own
	}
	if !ok {
		return zero, false
	}
	t.length--
	klen := prev.ent & lenMask
	t.keyBytes -= int64(klen)
	t.tailBytes -= t.tailLen(klen)
	return prev.v, true
}

// del removes k (or, with max, the largest item) from the subtree of the
// owned node n, leaving n possibly below MinItems for its parent to fix.
func (t *Tree[V]) del(n *Node[V], k *skey, max bool) (item[V], bool) {
	var i int
	var found bool
	if max {
		i, found = n.n-1, true
	} else {
		i, found = n.search(k)
	}
	if n.leaf() {
		if !found {
			return item[V]{}, false
		}
		prev := n.item(i)
		copyItems(t.arena, n, i, n, i+1, n.n)
		n.n--
		n.clearItems(n.n, n.n+1)
		return prev, true
	}
	var prev item[V]
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
		n.setItem(t.arena, i, pred)
	default:
		c := t.mut(n.kids()[i])
		n.kids()[i] = c
		var ok bool
		if prev, ok = t.del(c, k, false); !ok {
			return item[V]{}, false
		}
	}
	if n.kids()[i].n < MinItems {
		t.rebalance(n, i)
	}
	return prev, true
}

// rebalance fixes the underfull child i of the owned node n by merging it
// with a sibling or moving one item over from a sibling.
func (t *Tree[V]) rebalance(n *Node[V], i int) {
	if i == n.n {
		i--
	}
	left, right := t.mut(n.kids()[i]), t.mut(n.kids()[i+1])
	n.kids()[i], n.kids()[i+1] = left, right
	switch {
	case left.n+right.n+1 <= MaxItems:
		// Merge right and the separator into left.
		t.merges++
		left.setItem(t.arena, left.n, n.item(i))
		copyItems(t.arena, left, left.n+1, right, 0, right.n)
		if !left.leaf() {
			copy(left.kids()[left.n+1:], right.kids()[:right.n+1])
		}
		left.n += right.n + 1
		t.freeNode(right) // mut made it the tree's own
		copyItems(t.arena, n, i, n, i+1, n.n)
		copy(n.kids()[i+1:n.n], n.kids()[i+2:n.n+1])
		n.n--
		n.clearItems(n.n, n.n+1)
		n.kids()[n.n+1] = nil
	case left.n > right.n:
		// Rotate right: left's last item goes up, the separator comes down.
		copyItems(t.arena, right, 1, right, 0, right.n)
		right.setItem(t.arena, 0, n.item(i))
		n.setItem(t.arena, i, left.item(left.n-1))
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
		left.setItem(t.arena, left.n, n.item(i))
		n.setItem(t.arena, i, right.item(0))
		copyItems(t.arena, right, 0, right, 1, right.n)
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

// Build builds a tree from n keys sorted bytewise without duplicates, the
// i-th given by at(i), packing nodes nearly full (the way bitcask's recovery
// loads its keydir). The tails of long keys are copied into one allocation
// (live while any of them is in the tree), so the keys may live in transient
// buffers.
func Build[V any](n int, at func(i int) (key string, v V)) *Tree[V] {
	t := New[V]()
	t.length = n
	for i := range n {
		key, _ := at(i)
		t.keyBytes += int64(len(key))
		t.tailBytes += t.tailLen(uint32(len(key)))
	}
	if n == 0 {
		return t
	}
	slab := make([]byte, 0, t.tailBytes)
	leafItem := func(j int) item[V] {
		key, v := at(j)
		k := makeSKey(key)
		it := item[V]{p: k.prefix, ent: k.entry(), w: tailWord(k.tail), v: v}
		if k.klen > wideLen {
			start := len(slab)
			slab = append(slab, k.tail...)
			it.tail = &slab[start]
		}
		return it
	}
	count, itemAt := n, leafItem
	var children []*Node[V]
	for {
		nodes := (count + 1 + MaxItems) / (MaxItems + 1) // nodes on this level
		if nodes < 1 {
			nodes = 1
		}
		per := count - (nodes - 1) // items left for the nodes after the separators
		var level []*Node[V]
		var seps []item[V]
		pos, child := 0, 0
		for k := 0; k < nodes; k++ {
			size := per / nodes
			if k < per%nodes {
				size++
			}
			nd := t.newNode(children == nil)
			for j := range size {
				nd.setItem(t.arena, j, itemAt(pos+j))
			}
			nd.n = size
			pos += size
			if children != nil {
				copy(nd.kids()[:], children[child:child+size+1])
				child += size + 1
			}
			level = append(level, nd)
			if k < nodes-1 {
				seps = append(seps, itemAt(pos))
				pos++
			}
		}
		if nodes == 1 {
			t.root = level[0]
			return t
		}
		count, itemAt, children = len(seps), func(j int) item[V] { return seps[j] }, level
	}
}
