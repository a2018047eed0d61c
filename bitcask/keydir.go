package bitcask

import (
	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/ordtree"
)

// The keydir is an ordered map from key to the location of the key's live
// value: internal/ordtree's copy-on-write B-tree (shared with the memory
// engine), whose nodes keep each key's first 16 bytes inline, with a 12-byte
// val (file id, offset, value length) as the payload. A leaf is 2040 bytes
// (the 2 KiB size class): a 24-byte header and 63 items of 32 bytes (16 of
// prefix, 4 of key length, 12 of val); an internal node adds its 64
// children. A key of at most 17 bytes costs 32 bytes in its node and no
// allocation of its own; a key of 18 to 25 bytes (kvnode's 19-byte key for
// a 16-byte Redis key: dbgen code, slot, key) adds an 8-byte tail word in
// its node's side array (512 bytes a node, made once the node holds such a
// key) and still no allocation of its own; a longer key adds an 8-byte
// pointer slot and its tail. See internal/ordtree's package doc for the
// layout and the search.
//
// clone is a snapshot: O(1), it hands out the root, and the live tree then
// copies each node it shares with a clone before changing it, once (a clone
// is never written, and the keydir does not track when clones are dropped,
// so every node older than the newest clone counts as shared). A tree is not
// safe for concurrent use; DB guards its tree with a lock. A clone may be
// read by any number of goroutines while the original is written.

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

// val is the tree's payload: a loc without the key length, which the tree
// keeps.
type val struct {
	fid  uint32
	off  uint32
	vlen uint32
}

func (v val) loc(klen int) loc { return loc{fid: v.fid, off: v.off, vlen: v.vlen, klen: uint32(klen)} }

// Node types, for the keydir's memory metric.
type (
	node  = ordtree.Node[val]
	inode = ordtree.Inode[val]
)

// tree is the keydir: a live tree, or a clone (frozen, read-only).
type tree struct {
	t    *ordtree.Tree[val] // nil in a clone
	view ordtree.View[val]  // a clone's

	length    int   // keys
	keyBytes  int64 // sum of len(key) over the tree's entries
	tailBytes int64 // ordtree.Stats.TailBytes: key bytes past the 16th of keys over 25 bytes
}

func newTree() *tree { return &tree{t: ordtree.New[val]()} }

// current returns what the tree holds, as a view valid until its next write.
func (t *tree) current() ordtree.View[val] {
	if t.t == nil {
		return t.view
	}
	return t.t.Current()
}

// clone returns a frozen copy of t, sharing its nodes, which t copies
// before changing them.
func (t *tree) clone() *tree {
	c := *t
	if t.t != nil {
		c.view, _ = t.t.Snapshot()
		c.t = nil
	}
	return &c
}

// sync copies the live tree's counters into the fields Metrics reads.
func (t *tree) sync() {
	s := t.t.Stats()
	t.length, t.keyBytes, t.tailBytes = s.Keys, s.KeyBytes, s.TailBytes
}

func (t *tree) get(key string) (loc, bool) {
	v, ok := t.current().Get(key)
	return v.loc(len(key)), ok
}

// set stores e, returning the location it replaced, if any. e.key may alias
// a caller's buffer: the tree keeps its own copy.
func (t *tree) set(e entry) (loc, bool) {
	prev, ok := t.t.Set(e.key, val{fid: e.fid, off: e.off, vlen: e.vlen})
	if !ok {
		t.sync()
	}
	return prev.loc(len(e.key)), ok
}

// repoint moves key's entry from (fid, off) to (toFid, toOff) if it still
// points at (fid, off), in one descent; it reports whether it did.
func (t *tree) repoint(key string, fid, off, toFid, toOff uint32) bool {
	return t.t.Update(key, func(v *val) bool {
		if v.fid != fid || v.off != off {
			return false
		}
		v.fid, v.off = toFid, toOff
		return true
	})
}

// delete removes key, returning the location it held.
func (t *tree) delete(key string) (loc, bool) {
	prev, ok := t.t.Delete(key)
	if ok {
		t.sync()
	}
	return prev.loc(len(key)), ok
}

// warm looks up the keys of ops' deletes, ordtree.MaxBatch at a time
// (GetBatch: the descents of a batch's keys level by level, their cache
// misses overlapped), to bring the nodes a delete's descents read into the
// CPU's caches. Each key alone would wait for its nodes' misses in turn.
// It changes nothing; the caller holds kmu, read or write.
func (t *tree) warm(ops []writeOp) {
	var ks [ordtree.MaxBatch]string
	var vs [ordtree.MaxBatch]val
	var found [ordtree.MaxBatch]bool
	view := t.current()
	m := 0
	for _, op := range ops {
		if op.kind != logkv.KindDelete {
			continue
		}
		ks[m] = unsafeString(op.key)
		if m++; m == len(ks) {
			view.GetBatch(ks[:m], vs[:m], found[:m])
			m = 0
		}
	}
	if m > 0 {
		view.GetBatch(ks[:m], vs[:m], found[:m])
	}
}

// bulkTree builds a tree from entries sorted by key without duplicates,
// packing nodes nearly full (the way recovery loads a keydir). The tails of
// long keys are copied into one allocation, so es's keys may live in
// transient buffers.
func bulkTree(es []entry) *tree {
	t := &tree{t: ordtree.Build(len(es), func(i int) (string, val) {
		e := &es[i]
		return e.key, val{fid: e.fid, off: e.off, vlen: e.vlen}
	})}
	t.sync()
	return t
}

// nodeCount counts the nodes of the live tree, and the bytes of their side
// arrays (the tail words and long-tail pointers of nodes that hold keys
// longer than 17 bytes), for memory metrics.
func (t *tree) nodeCount() (leaves, internal int, side int64) {
	if t.t == nil {
		return 0, 0, 0
	}
	s := t.t.Stats()
	return int(s.Leaves), int(s.Inners), t.t.SideBytes()
}

// treeIter walks a tree that nobody changes while it is in use (a clone).
type treeIter struct {
	t  *tree
	it ordtree.Iter[val]
	ok bool // it was pointed at t
}

func (it *treeIter) init() *ordtree.Iter[val] {
	if !it.ok {
		it.it.Reset(it.t.current())
		it.ok = true
	}
	return &it.it
}

// loc returns the current item's location.
func (it *treeIter) loc() loc { return it.it.Value().loc(it.it.KeyLen()) }

// appendKey appends the current item's key to dst.
func (it *treeIter) appendKey(dst []byte) []byte { return it.it.AppendKey(dst) }

func (it *treeIter) first() bool            { return it.init().First() }
func (it *treeIter) last() bool             { return it.init().Last() }
func (it *treeIter) seekGE(key string) bool { return it.init().SeekGE(key) }
func (it *treeIter) seekLT(key string) bool { return it.init().SeekLT(key) }
func (it *treeIter) next() bool             { return it.init().Next() }
func (it *treeIter) prev() bool             { return it.init().Prev() }
