package memory

import (
	"unsafe"

	"github.com/logkv/logkv/internal/ordtree"
)

// val is the tree's payload for one key: the allocation holding the key's
// bytes and then its value's. The allocation is owned by the tree and never
// changed after the key is set: an overwrite installs a new one. That is
// what lets snapshots and iterators hand out slices of it, and lets the tree
// point at a long key's tail inside it instead of copying it
// (ordtree.Tree.SetOwned).
//
// A pointer and two lengths rather than a slice keep it at 16 bytes. Lengths
// fit: keys are at most 64 KiB and values 32 MiB.
type val struct {
	p    *byte // key then value
	klen uint32
	vlen uint32
}

func (v *val) key() []byte { return unsafe.Slice(v.p, v.klen) }

// value returns the value, capped so that appending to it cannot write past
// it. Slicing the whole allocation (rather than pointing p past the key)
// keeps the pointer inside the allocation even for an empty value.
func (v *val) value() []byte {
	return unsafe.Slice(v.p, v.klen+v.vlen)[v.klen:]
}

// size is the length of the allocation: the key and value bytes.
func (v *val) size() int { return int(v.klen) + int(v.vlen) }

// makeVal copies key and value into one new allocation. key is not empty
// (the engine checks it), so the allocation has an address of its own.
func makeVal(key, value []byte) val {
	kv := make([]byte, len(key)+len(value))
	copy(kv, key)
	copy(kv[len(key):], value)
	return val{p: &kv[0], klen: uint32(len(key)), vlen: uint32(len(value))}
}

// tree is the engine's ordered map.
type tree = ordtree.Tree[val]

// set stores v under its key, returning the change in key and value bytes.
func set(t *tree, v val) int64 {
	prev, replaced := t.SetOwned(unsafe.String(v.p, v.klen), v)
	if replaced {
		return int64(v.size() - prev.size())
	}
	return int64(v.size())
}

// del removes key, returning the change in key and value bytes.
func del(t *tree, key []byte) int64 {
	prev, ok := t.Delete(unsafeString(key))
	if !ok {
		return 0
	}
	return -int64(prev.size())
}

// unsafeString views b as a string for a lookup; the tree keeps none of it
// (Delete and Get copy nothing and hold nothing).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Node sizes, for MemBytes.
const (
	leafBytes  = int64(unsafe.Sizeof(ordtree.Node[val]{}))
	innerBytes = int64(unsafe.Sizeof(ordtree.Inode[val]{}))
	tailsBytes = int64(unsafe.Sizeof([ordtree.MaxItems]*byte{}))
)
