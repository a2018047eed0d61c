package memory

import (
	"unsafe"

	"github.com/logkv/logkv/internal/ordtree"
)

// val is the tree's payload for one key: a pointer into its record, in the
// engine's arena (outside the Go heap, see ordtree.Arena), which holds, byte
// by byte,
//
//	[0:4)             the key's length, a native-endian uint32
//	[4:8)             the value's length, a native-endian uint32
//	[8:8+klen)        the key
//	[8+klen:8+klen+vlen) the value
//
// The pointer is to the key, byte 8, so that the tree finds a long key's
// tail through it (ordtree.NewIn with keyInVal) and keeps no array of
// pointers to tails, 8 bytes a slot.
//
// A record is never changed once the key is set: an overwrite installs a new
// one, and the old one is freed once no open snapshot or iterator can read
// it (DB.dispose). That is what lets snapshots and iterators hand out slices
// of it. Keeping the lengths there rather than in the node makes the payload
// one pointer, 8 bytes a slot: the tree's nodes are then 1792 bytes, not
// 2304. Lengths fit: keys are at most 64 KiB and values 32 MiB.
type val struct{ p *byte }

const valHeader = 8

// record returns the start of the record.
func (v val) record() unsafe.Pointer { return unsafe.Add(unsafe.Pointer(v.p), -valHeader) }

func (v val) lens() (klen, vlen uint32) {
	h := (*[2]uint32)(v.record())
	return h[0], h[1]
}

func (v val) key() []byte {
	klen, _ := v.lens()
	return unsafe.Slice(v.p, klen)
}

// value returns the value, capped so that appending to it cannot write past
// it. Slicing from the key keeps the pointer inside the record even for an
// empty value.
func (v val) value() []byte {
	klen, vlen := v.lens()
	return unsafe.Slice(v.p, klen+vlen)[klen:]
}

// size is the key and value bytes (what Metrics counts as data).
func (v val) size() int {
	klen, vlen := v.lens()
	return int(klen) + int(vlen)
}

// allocSize is the record's size in the arena.
func (v val) allocSize() int { return valHeader + v.size() }

// makeVal copies key and value into a new record in a, which is 8-byte
// aligned, so the header can be read as uint32s.
func makeVal(a *ordtree.Arena, key, value []byte) val {
	p := a.Alloc(valHeader + len(key) + len(value))
	kv := unsafe.Slice((*byte)(p), valHeader+len(key)+len(value))
	h := (*[2]uint32)(p)
	h[0], h[1] = uint32(len(key)), uint32(len(value))
	copy(kv[valHeader:], key)
	copy(kv[valHeader+len(key):], value)
	return val{p: &kv[valHeader]}
}

// tree is the engine's ordered map.
type tree = ordtree.Tree[val]

// unsafeString views b as a string for a lookup; the tree keeps none of it
// (Delete and Get copy nothing and hold nothing).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Node sizes, for MemBytes.
const (
	leafBytes  = int64(unsafe.Sizeof(ordtree.Node[val]{}))
	innerBytes = int64(unsafe.Sizeof(ordtree.Inode[val]{}))
)
