package lsm

import (
	"bytes"
	"hash/maphash"
	"sync/atomic"

	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/lsm/internal/skiplist"
)

// memIndex is a hash index over the user keys of one memtable: each key
// maps to the skiplist node of its newest entry. A point lookup at the
// latest state (every Get a server answers) then costs one hash, one slot
// load and one node load, where the skiplist search took a dependent load
// and a key comparison per level, about twenty cache misses in an 8 MiB
// arena: the search was a fifth of a kvnode lsm GET's CPU. The skiplist
// stays for order (iterators, flush) and for reads at an older sequence
// number than the newest entry of their key (snapshots, and a reader racing
// the writer), which the index sends back to the search.
//
// The index is exact, so it is also the memtable's filter: a key it does
// not hold is absent from the memtable, without a false positive (the
// bloom filter it replaced spared the search for about 98% of absent keys).
//
// # Layout
//
// An open-addressing table with linear probing, of n 64-bit slots (n need
// not be a power of two). A slot is 0 when empty, else
//
//	bits 63..32  tag: the top 32 bits of the key's 64-bit maphash
//	bits 31..0   the node's offset in the arena (never 0)
//
// A key's first probe is slot tag*n>>32, so the tag alone places a slot
// and the table grows without hashing a key again. A probe compares tags
// first and loads a node only when they match (a false match is one in
// 2^32 per occupied slot probed).
//
// # Concurrency
//
// One goroutine at a time inserts: the Get catching the index up, under
// memTable.indexMu (the commit path never writes the index; see memTable).
// Readers probe without locks, and only once the memtable's indexed offset
// covers every entry they may see: the inserter stores that offset after
// the inserts, and a reader loads it before the table. Growing builds a
// whole new table and publishes it with one atomic pointer store before
// the offset that needs it; the old table is never written again, so a
// reader still on it finds every entry that was inserted when it loaded
// the offset.
//
// # Size
//
// The table doubles when it is three quarters full, from 1024 slots up to
// one slot per 32 arena bytes (8 bytes a slot: a quarter of the arena, the
// most an arena of the smallest entries could need). An entry takes at
// least 32 arena bytes, so an arena of tiny entries can fill the largest
// table first: then the memtable reports no room (roomFor) and rotates, as
// when its arena is full. With 16-byte keys and 100-byte values the table
// takes 6-12% of the arena; with 3-byte values 25-50%.
type memIndex struct {
	seed     maphash.Seed
	tab      atomic.Pointer[memIndexTable]
	keys     int // distinct keys held (inserter only)
	maxSlots int
}

type memIndexTable struct {
	slots []atomic.Uint64
}

const (
	memIndexMinSlots       = 1024
	memIndexArenaBytesSlot = 32 // the smallest arena entry: one slot each at most
)

func newMemIndex(arenaBytes int64) *memIndex {
	x := &memIndex{seed: maphash.MakeSeed(), maxSlots: max(int(arenaBytes/memIndexArenaBytesSlot), memIndexMinSlots)}
	x.tab.Store(&memIndexTable{slots: make([]atomic.Uint64, min(memIndexMinSlots, x.maxSlots))})
	return x
}

// reserve sizes an empty index for about keys distinct keys, so that it
// need not grow through every size as the Gets fill it: the first
// catch-up reserves for the entries the memtable holds, or the keys its
// predecessor's index held if more, a workload's next memtable taking
// about as many keys as its last. Growing costs an allocation and a
// rehash of the table each time, 2 MiB of garbage a default memtable.
func (x *memIndex) reserve(keys int) {
	if x.keys != 0 {
		return
	}
	n := min(max(keys/3*5, memIndexMinSlots), x.maxSlots) // load 0.6 when it gets there
	if n > len(x.tab.Load().slots) {
		x.tab.Store(&memIndexTable{slots: make([]atomic.Uint64, n)})
	}
}

// sizeBytes is the index's memory.
func (x *memIndex) sizeBytes() int64 { return int64(len(x.tab.Load().slots)) * 8 }

// roomFor reports whether the index could hold n distinct keys without
// passing its largest table's three quarters. The memtable asks it for
// its entry count, which bounds its distinct keys whether or not they are
// all in the index yet.
func (x *memIndex) roomFor(n int) bool { return n <= x.maxSlots/4*3 }

// home returns the first slot probed for a tag in a table of n slots.
func home(tag uint32, n int) int { return int(uint64(tag) * uint64(n) >> 32) }

// find returns the node of ukey's newest entry, or 0 when the memtable
// holds no entry of ukey.
func (x *memIndex) find(ukey []byte, sl *skiplist.Skiplist) uint32 {
	tag := x.tag(ukey)
	slots := x.tab.Load().slots
	n := len(slots)
	for i := home(tag, n); ; {
		v := slots[i].Load()
		if v == 0 {
			return 0
		}
		if uint32(v>>32) == tag {
			if nd := uint32(v); bytes.Equal(base.UserKey(sl.NodeKey(nd)), ukey) {
				return nd
			}
		}
		if i++; i == n {
			i = 0
		}
	}
}

// tag returns ukey's tag (see the layout), for insert.
func (x *memIndex) tag(ukey []byte) uint32 { return uint32(maphash.Bytes(x.seed, ukey) >> 32) }

// insert records nd as the newest entry of ukey, whose tag is tag. Only the
// goroutine holding memTable.indexMu calls it, for a node the skiplist
// holds whole. An entry older than the one the index holds (never, while
// nodes are indexed in the arena's order and seqs only grow) leaves the
// slot as it is.
func (x *memIndex) insert(ukey []byte, tag uint32, nd uint32, sl *skiplist.Skiplist) {
	slots := x.tab.Load().slots
	n := len(slots)
	for i := home(tag, n); ; {
		v := slots[i].Load()
		if v == 0 {
			slots[i].Store(uint64(tag)<<32 | uint64(nd))
			x.keys++
			if x.keys > n/4*3 && n < x.maxSlots {
				x.grow(min(2*n, x.maxSlots))
			}
			return
		}
		if uint32(v>>32) == tag {
			if old := sl.NodeKey(uint32(v)); bytes.Equal(base.UserKey(old), ukey) {
				if base.Seq(sl.NodeKey(nd)) >= base.Seq(old) {
					slots[i].Store(uint64(tag)<<32 | uint64(nd))
				}
				return
			}
		}
		if i++; i == n {
			i = 0
		}
	}
}

// grow moves the index to a table of n slots. Readers keep probing the old
// table, which stays whole, until they load the new one.
func (x *memIndex) grow(n int) {
	old := x.tab.Load().slots
	slots := make([]atomic.Uint64, n)
	for j := range old {
		v := old[j].Load()
		if v == 0 {
			continue
		}
		i := home(uint32(v>>32), n)
		for slots[i].Load() != 0 {
			if i++; i == n {
				i = 0
			}
		}
		slots[i].Store(v)
	}
	x.tab.Store(&memIndexTable{slots: slots})
}
