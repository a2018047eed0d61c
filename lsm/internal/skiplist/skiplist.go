package skiplist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"unsafe"

	"github.com/logkv/logkv/internal/ordtree"
	"github.com/logkv/logkv/lsm/internal/base"
)

// MaxHeight is the tallest tower a node can have. With a branching factor of
// 4 it indexes 4^12 (16M) entries in O(log n), far more than a memtable holds.
const MaxHeight = 12

// ErrFull is returned by the writers (Add, AddNode, AddBatch) when the
// arena has no room for an entry; the caller rotates to a new memtable.
var ErrFull = errors.New("skiplist: arena full")

// Node layout in the arena, at a 4-byte aligned offset:
//
//	offset  size      field
//	0       4         key length (internal key, trailer included)
//	4       4         value length
//	8       4         height h, 1..MaxHeight
//	12      8         prefix: the user key's first 8 bytes, zero-padded,
//	                  big-endian (compared as an integer before the key)
//	20      4*h       tower: offsets of the next node at each level (0 = nil)
//	20+4h   klen      key
//	...     vlen      value
//
// The prefix sits in the cache line that the search loads anyway for the
// tower, so most comparisons never touch the key's own bytes.
const nodeHeader = 20

// Skiplist is an ordered map from internal keys to values, held in one
// arena. Its writers, Add, AddNode and AddBatch, must be called by one
// goroutine at a time (one call of any of them at once); every other method
// may run concurrently with a writer and with each other.
type Skiplist struct {
	buf    []byte
	used   int // bytes allocated; touched only by the writer
	head   uint32
	height atomic.Uint32
	count  atomic.Int64
	size   atomic.Int64 // bytes allocated, for readers
	rng    *rand.Rand

	// The writer's finger: the last node added and, at each level, the last
	// node before it. An add just after the last one (a sequential fill)
	// takes its predecessors from here instead of searching.
	hint     uint32
	hintPrev [MaxHeight]uint32
}

// New returns an empty skiplist in an arena of size bytes.
func New(size int) *Skiplist {
	if size < 1024 {
		size = 1024
	}
	s := &Skiplist{buf: make([]byte, size), used: 4, rng: rand.New(rand.NewPCG(rand.Uint64(), 0))}
	s.head, _ = s.alloc(0, 0, MaxHeight)
	s.height.Store(1)
	s.size.Store(int64(s.used))
	return s
}

// MaxNodeOverhead is the most arena space an entry takes beyond its key and
// value (header, tallest tower, alignment).
const MaxNodeOverhead = nodeHeader + 4*MaxHeight + 3

// Size returns the bytes of the arena in use.
func (s *Skiplist) Size() int64 { return s.size.Load() }

// Capacity returns the arena's size.
func (s *Skiplist) Capacity() int64 { return int64(len(s.buf)) }

// Len returns the number of entries.
func (s *Skiplist) Len() int64 { return s.count.Load() }

// Empty reports whether the skiplist holds no entry.
func (s *Skiplist) Empty() bool { return s.count.Load() == 0 }

func (s *Skiplist) alloc(klen, vlen, h int) (uint32, bool) {
	n := nodeHeader + 4*h + klen + vlen
	n = (n + 3) &^ 3
	if s.used+n > len(s.buf) {
		return 0, false
	}
	off := uint32(s.used)
	s.used += n
	b := s.buf[off:]
	binary.LittleEndian.PutUint32(b[0:], uint32(klen))
	binary.LittleEndian.PutUint32(b[4:], uint32(vlen))
	binary.LittleEndian.PutUint32(b[8:], uint32(h))
	return off, true
}

// prefixOf returns the prefix of a user key (see the node layout).
func prefixOf(ukey []byte) uint64 {
	if len(ukey) >= 8 {
		return binary.BigEndian.Uint64(ukey)
	}
	var b [8]byte
	copy(b[:], ukey)
	return binary.BigEndian.Uint64(b[:])
}

func (s *Skiplist) nodePrefix(nd uint32) uint64 {
	return binary.LittleEndian.Uint64(s.buf[nd+12:])
}

func (s *Skiplist) next(nd uint32, level int) uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&s.buf[nd+nodeHeader+uint32(4*level)])).Load()
}

func (s *Skiplist) setNext(nd uint32, level int, to uint32) {
	(*atomic.Uint32)(unsafe.Pointer(&s.buf[nd+nodeHeader+uint32(4*level)])).Store(to)
}

func (s *Skiplist) nodeKey(nd uint32) []byte {
	b := s.buf[nd:]
	klen := binary.LittleEndian.Uint32(b[0:])
	h := binary.LittleEndian.Uint32(b[8:])
	start := nd + nodeHeader + 4*h
	return s.buf[start : start+klen : start+klen]
}

func (s *Skiplist) nodeValue(nd uint32) []byte {
	b := s.buf[nd:]
	klen := binary.LittleEndian.Uint32(b[0:])
	vlen := binary.LittleEndian.Uint32(b[4:])
	h := binary.LittleEndian.Uint32(b[8:])
	start := nd + nodeHeader + 4*h + klen
	return s.buf[start : start+vlen : start+vlen]
}

// cmpNode orders the search key (ukey with its prefix, trailer) against
// node nd.
func (s *Skiplist) cmpNode(ukey []byte, prefix, trailer uint64, nd uint32) int {
	if np := s.nodePrefix(nd); prefix != np {
		if prefix < np {
			return -1
		}
		return 1
	}
	return compare(ukey, trailer, s.nodeKey(nd))
}

// compare orders an internal key given as (ukey, trailer) against a node's.
func compare(ukey []byte, trailer uint64, nk []byte) int {
	n := len(nk) - base.TrailerSize
	if c := bytes.Compare(ukey, nk[:n]); c != 0 {
		return c
	}
	nt := binary.LittleEndian.Uint64(nk[n:])
	switch {
	case trailer > nt:
		return -1
	case trailer < nt:
		return 1
	}
	return 0
}

// findGE fills prev (if non-nil) with the last node < key at each level and
// returns the first node >= key (0 if none).
//
// It returns the node it compared, never a second load of x's next: a
// concurrent Add may link a node between x and that one, and such a node can
// sort before the key (a newer version of it), which a reader at an older
// sequence number must not see.
func (s *Skiplist) findGE(ukey []byte, trailer uint64, prev *[MaxHeight]uint32) uint32 {
	x := s.head
	prefix := prefixOf(ukey)
	var nx uint32
	for level := int(s.height.Load()) - 1; level >= 0; level-- {
		for {
			nx = s.next(x, level)
			if nx == 0 || s.cmpNode(ukey, prefix, trailer, nx) <= 0 {
				break
			}
			x = nx
		}
		if prev != nil {
			prev[level] = x
		}
	}
	return nx
}

// findLT returns the last node < key, or 0 if none.
func (s *Skiplist) findLT(ukey []byte, trailer uint64) uint32 {
	x := s.head
	prefix := prefixOf(ukey)
	for level := int(s.height.Load()) - 1; level >= 0; level-- {
		for {
			nx := s.next(x, level)
			if nx == 0 || s.cmpNode(ukey, prefix, trailer, nx) <= 0 {
				break
			}
			x = nx
		}
	}
	if x == s.head {
		return 0
	}
	return x
}

func (s *Skiplist) findLast() uint32 {
	x := s.head
	for level := int(s.height.Load()) - 1; level >= 0; level-- {
		for {
			nx := s.next(x, level)
			if nx == 0 {
				break
			}
			x = nx
		}
	}
	if x == s.head {
		return 0
	}
	return x
}

func (s *Skiplist) randomHeight() int {
	h := 1
	r := s.rng.Uint32()
	for h < MaxHeight && r&3 == 0 {
		h++
		r >>= 2
	}
	return h
}

// Add inserts the internal key ikey with value. Keys must be unique (the
// caller gives every version its own sequence number). It returns ErrFull
// when the arena cannot hold the entry. Only one goroutine may call Add at a
// time.
func (s *Skiplist) Add(ikey, value []byte) error {
	_, err := s.AddNode(ikey, value)
	return err
}

// AddNode is Add, and returns the new entry's node: its offset in the
// arena, never 0, for NodeKey and NodeValue. A hash index over the list
// keeps nodes to answer a point lookup without the search.
func (s *Skiplist) AddNode(ikey, value []byte) (uint32, error) {
	if len(ikey) < base.TrailerSize {
		return 0, errors.New("skiplist: key shorter than its trailer")
	}
	ukey := ikey[:len(ikey)-base.TrailerSize]
	trailer := binary.LittleEndian.Uint64(ikey[len(ikey)-base.TrailerSize:])
	var prev [MaxHeight]uint32
	if !s.afterHint(ukey, trailer, &prev) {
		for l := range prev {
			prev[l] = s.head
		}
		s.findGE(ukey, trailer, &prev)
	}
	h := s.randomHeight()
	nd, ok := s.alloc(len(ikey), len(value), h)
	if !ok {
		return 0, ErrFull
	}
	binary.LittleEndian.PutUint64(s.buf[nd+12:], prefixOf(ukey))
	start := nd + nodeHeader + uint32(4*h)
	copy(s.buf[start:], ikey)
	copy(s.buf[start+uint32(len(ikey)):], value)
	if cur := int(s.height.Load()); h > cur {
		for l := cur; l < h; l++ {
			prev[l] = s.head
		}
		s.height.Store(uint32(h))
	}
	// Link bottom-up: a reader that sees the node at level l finds it linked
	// at every level below.
	for l := 0; l < h; l++ {
		s.setNext(nd, l, s.next(prev[l], l))
		s.setNext(prev[l], l, nd)
	}
	s.count.Add(1)
	s.size.Store(int64(s.used))
	s.hint, s.hintPrev = nd, prev
	return nd, nil
}

// MaxBatch is the most entries AddBatch searches for together; it inserts
// a longer batch in runs of MaxBatch.
const MaxBatch = 16

// searchKey is an internal key as the search compares it.
type searchKey struct {
	ukey    []byte
	prefix  uint64
	trailer uint64
}

func makeSearchKey(ikey []byte) searchKey {
	ukey := ikey[:len(ikey)-base.TrailerSize]
	return searchKey{ukey: ukey, prefix: prefixOf(ukey), trailer: binary.LittleEndian.Uint64(ikey[len(ikey)-base.TrailerSize:])}
}

// AddBatch inserts ikeys[i] with values[i] for every i (values has ikeys'
// length), as that many Adds would, and returns how many it inserted: all
// of them, or, with ErrFull, those before the first the arena had no room
// for; none if a key is shorter than its trailer. The keys must be unique
// among themselves and in the list, in any order. It is a writer, as Add:
// one goroutine at a time calls either.
//
// It searches for up to MaxBatch keys at once (findBatch), so that the
// cache misses of their searches overlap instead of following one
// another, then links them one by one (linkBatch).
func (s *Skiplist) AddBatch(ikeys, values [][]byte) (int, error) {
	for _, k := range ikeys {
		if len(k) < base.TrailerSize {
			return 0, errors.New("skiplist: key shorter than its trailer")
		}
	}
	var b batch
	done := 0
	for done < len(ikeys) {
		m := min(len(ikeys)-done, MaxBatch)
		for i := range m {
			b.keys[i] = makeSearchKey(ikeys[done+i])
		}
		s.findBatch(&b, m)
		n, err := s.linkBatch(&b, ikeys[done:done+m], values[done:done+m])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// batch is AddBatch's working state for one run of keys.
type batch struct {
	keys [MaxBatch]searchKey
	// prev[i][l] is the last node < keys[i] at level l when findBatch
	// looked, and next[i][l] the node after it there then.
	prev [MaxBatch][MaxHeight]uint32
	next [MaxBatch][MaxHeight]uint32
}

// findBatch fills b.prev and b.next for b's first m keys. Every key starts
// at the head and moves one step a round: a comparison with the node
// ahead at its level, then either onto that node or down (past every
// level where the node ahead is the same one). The
// node a key compares next is prefetched as soon as it is known, and the
// other keys' steps run before it is needed, so up to m nodes are in
// flight at once where one search waits for each of its nodes in turn.
func (s *Skiplist) findBatch(b *batch, m int) {
	top := int(s.height.Load()) - 1
	var x, nx [MaxBatch]uint32
	var lvl [MaxBatch]int
	for i := range m {
		for l := top + 1; l < MaxHeight; l++ {
			b.prev[i][l], b.next[i][l] = s.head, 0
		}
		x[i], lvl[i], nx[i] = s.head, top, s.next(s.head, top)
	}
	for left := m; left > 0; {
		for i := range m {
			l := lvl[i]
			if l < 0 {
				continue
			}
			k := &b.keys[i]
			c := nx[i]
			var nc uint32
			if c != 0 && s.cmpNode(k.ukey, k.prefix, k.trailer, c) > 0 {
				x[i] = c
				nc = s.next(c, l)
			} else {
				// Down, past the levels where x's next is c too: the key
				// is not after c.
				for {
					b.prev[i][l], b.next[i][l] = x[i], c
					if l--; l < 0 {
						break
					}
					if nc = s.next(x[i], l); nc != c {
						break
					}
				}
				lvl[i] = l
				if l < 0 {
					left--
					continue
				}
			}
			nx[i] = nc
			if nc != 0 {
				s.prefetchNode(nc, len(k.ukey))
			}
		}
	}
}

// prefetchNode prefetches node nd's header and prefix, and the end of its
// key if the node is one level tall with a user key of klen bytes (the
// common case; a guess otherwise).
func (s *Skiplist) prefetchNode(nd uint32, klen int) {
	ordtree.PrefetchRange(unsafe.Pointer(&s.buf[nd]), nodeHeader+4+klen+base.TrailerSize)
}

// linkBatch allocates and links nodes for b's keys (ikeys, values), in
// their order. A node linked earlier in the run may lie between a key and
// the predecessor findBatch found for it at a level: if that predecessor's
// next changed since, the key walks forward from it to its place. It
// returns how many keys it linked, with ErrFull if not all. The arena's
// size is published once, after the links, so a reader walking the arena
// (FirstNode) finds only linked nodes.
func (s *Skiplist) linkBatch(b *batch, ikeys, values [][]byte) (int, error) {
	n := 0
	var err error
	for i := range ikeys {
		k := &b.keys[i]
		h := s.randomHeight()
		nd, ok := s.alloc(len(ikeys[i]), len(values[i]), h)
		if !ok {
			err = ErrFull
			break
		}
		binary.LittleEndian.PutUint64(s.buf[nd+12:], k.prefix)
		start := nd + nodeHeader + uint32(4*h)
		copy(s.buf[start:], ikeys[i])
		copy(s.buf[start+uint32(len(ikeys[i])):], values[i])
		if h > int(s.height.Load()) {
			s.height.Store(uint32(h))
		}
		// Link bottom-up: a reader that sees the node at level l finds it
		// linked at every level below. At each level the node's own next
		// is set before its predecessor points to it, so a reader that
		// reaches the node goes on to the rest of the level.
		for l := 0; l < h; l++ {
			p := b.prev[i][l]
			nx := s.next(p, l)
			if nx != b.next[i][l] {
				for nx != 0 && s.cmpNode(k.ukey, k.prefix, k.trailer, nx) > 0 {
					p, nx = nx, s.next(nx, l)
				}
			}
			s.setNext(nd, l, nx)
			linkStored()
			s.setNext(p, l, nd)
			linkStored()
		}
		n++
	}
	if n > 0 {
		s.count.Add(int64(n))
		s.size.Store(int64(s.used))
		// The hint's predecessors above its height may now be stale.
		s.hint = 0
	}
	return n, err
}

// linkStored is called after each store of a link in linkBatch: a no-op
// but for tests, which check there what a concurrent reader could see.
var linkStored = func() {}

// NodeKey returns the internal key of node nd, which AddNode returned. It
// aliases the arena, as Iter.Key does. Any goroutine may call it once the
// node's offset reached it through a synchronizing operation (an atomic
// store by the writer after AddNode returned, loaded by the reader).
func (s *Skiplist) NodeKey(nd uint32) []byte { return s.nodeKey(nd) }

// NodeValue returns the value of node nd, as NodeKey.
func (s *Skiplist) NodeValue(nd uint32) []byte { return s.nodeValue(nd) }

// FirstNode returns the offset where the arena's first entry starts (or
// will): nodes lie in the arena in the order the writers (Add, AddNode,
// AddBatch) added them, each followed by the next (NodeEnd), up to Size.
// Every node that starts below a Size a reader loaded is whole and
// linked, so a reader may walk them in that order while a writer runs.
func (s *Skiplist) FirstNode() uint32 { return s.NodeEnd(s.head) }

// NodeEnd returns the offset just past node nd: the next node's, if any.
func (s *Skiplist) NodeEnd(nd uint32) uint32 {
	b := s.buf[nd:]
	n := nodeHeader + 4*binary.LittleEndian.Uint32(b[8:]) + binary.LittleEndian.Uint32(b[0:]) + binary.LittleEndian.Uint32(b[4:])
	return nd + (n+3)&^3
}

// afterHint fills prev with the key's predecessors if the key goes right
// after the last node added (nothing lies between them), and reports
// whether it did. Then at each level the predecessor is the last node if it
// is that tall, else the last node's own predecessor there: any node in
// between would lie between them at level 0 too.
func (s *Skiplist) afterHint(ukey []byte, trailer uint64, prev *[MaxHeight]uint32) bool {
	if s.hint == 0 {
		return false
	}
	prefix := prefixOf(ukey)
	if s.cmpNode(ukey, prefix, trailer, s.hint) <= 0 {
		return false
	}
	if nx := s.next(s.hint, 0); nx != 0 && s.cmpNode(ukey, prefix, trailer, nx) >= 0 {
		return false
	}
	h := int(binary.LittleEndian.Uint32(s.buf[s.hint+8:]))
	for l := range prev {
		if l < h {
			prev[l] = s.hint
		} else {
			prev[l] = s.hintPrev[l]
		}
	}
	return true
}

// Get returns the value and kind of the newest version of ukey with a
// sequence number <= seq.
func (s *Skiplist) Get(ukey []byte, seq uint64) (value []byte, kind base.Kind, found bool) {
	nd := s.findGE(ukey, base.MakeTrailer(seq, base.KindSet), nil)
	if nd == 0 {
		return nil, 0, false
	}
	k := s.nodeKey(nd)
	if !bytes.Equal(k[:len(k)-base.TrailerSize], ukey) {
		return nil, 0, false
	}
	return s.nodeValue(nd), base.KindOf(k), true
}

// Iter is an iterator over a Skiplist's entries in internal key order. It
// sees entries added before or during its use (each move reads the list as
// it is). Key and Value alias the arena: they stay valid as long as the
// Skiplist is reachable.
type Iter struct {
	s  *Skiplist
	nd uint32
}

// NewIter returns an unpositioned iterator.
func (s *Skiplist) NewIter() *Iter { return &Iter{s: s} }

// Valid reports whether the iterator is at an entry.
func (it *Iter) Valid() bool { return it.nd != 0 }

// Key returns the current internal key.
func (it *Iter) Key() []byte { return it.s.nodeKey(it.nd) }

// Value returns the current value.
func (it *Iter) Value() []byte { return it.s.nodeValue(it.nd) }

// First moves to the first entry.
func (it *Iter) First() bool { it.nd = it.s.next(it.s.head, 0); return it.nd != 0 }

// Last moves to the last entry.
func (it *Iter) Last() bool { it.nd = it.s.findLast(); return it.nd != 0 }

// SeekGE moves to the first entry >= ikey.
func (it *Iter) SeekGE(ikey []byte) bool {
	n := len(ikey) - base.TrailerSize
	it.nd = it.s.findGE(ikey[:n], binary.LittleEndian.Uint64(ikey[n:]), nil)
	return it.nd != 0
}

// SeekLT moves to the last entry < ikey.
func (it *Iter) SeekLT(ikey []byte) bool {
	n := len(ikey) - base.TrailerSize
	it.nd = it.s.findLT(ikey[:n], binary.LittleEndian.Uint64(ikey[n:]))
	return it.nd != 0
}

// Next moves to the next entry.
func (it *Iter) Next() bool {
	if it.nd == 0 {
		return false
	}
	it.nd = it.s.next(it.nd, 0)
	return it.nd != 0
}

// Prev moves to the previous entry (a search from the head: the list is
// singly linked).
func (it *Iter) Prev() bool {
	if it.nd == 0 {
		return false
	}
	k := it.s.nodeKey(it.nd)
	n := len(k) - base.TrailerSize
	it.nd = it.s.findLT(k[:n], binary.LittleEndian.Uint64(k[n:]))
	return it.nd != 0
}
