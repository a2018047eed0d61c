package sstable

import (
	"sync"
	"sync/atomic"
)

// cacheShards is the number of independently locked parts of a Cache.
const cacheShards = 16

// cacheEntryOverhead approximates the memory an entry costs beyond its
// block: the entry in its shard's slab and its slots.
const cacheEntryOverhead = 96

// Cache is a sharded, size-bounded cache of decompressed blocks, shared by
// all tables of a DB. Keys are (file number, block offset). Each shard runs
// the CLOCK algorithm: a hit only sets the entry's reference bit under a
// read lock, so concurrent readers of hot blocks do not serialise on a list
// update as with LRU; eviction sweeps a hand over the entries, sparing (and
// clearing) referenced ones once. Cached blocks are never modified or
// reused, so readers keep using a block after it is evicted. Safe for
// concurrent use.
//
// A shard keeps its entries in a slab (a slice whose freed places are
// reused, so an insert allocates nothing once the cache is full) found
// through an open-addressing table of slab indexes keyed by the key's
// hash: at 8M keys nearly every Get missed the cache and paid a lookup, an
// insert and an eviction in a Go map (hashing the 16-byte key each time)
// and an allocated entry.
type Cache struct {
	shards   [cacheShards]cacheShard
	capacity int64
}

// CacheMetrics are a Cache's counters.
type CacheMetrics struct {
	Hits, Misses uint64 // lookups that found / did not find their block
	Size         int64  // bytes held, blocks plus per-entry overhead
	Capacity     int64  // the bound on Size
	Count        int64  // blocks held
}

type cacheKey struct{ fileNum, offset uint64 }

// hash mixes a key into 64 bits: the top cacheShardBits pick the shard, the
// bits below them the slot.
func (k cacheKey) hash() uint64 {
	return (k.fileNum*0x9e3779b97f4a7c15 ^ k.offset) * 0xbf58476d1ce4e5b9
}

const cacheShardBits = 4 // log2(cacheShards)

// cacheEntry is a slab place: a cached block, or a free place (block nil).
type cacheEntry struct {
	key        cacheKey
	block      []byte
	ref        atomic.Bool
	prev, next int32 // the shard's ring, in insertion order (slab indexes)
}

type cacheShard struct {
	mu sync.RWMutex
	// slots is the open-addressing table, linear probing, a power of two
	// long: a slab index plus one, 0 for an empty slot. It is kept at most
	// half full; deletion shifts the following run back (no tombstones).
	slots    []int32
	slab     []cacheEntry
	free     []int32 // slab places to reuse
	count    int
	hand     int32 // next entry the sweep considers; -1 when empty
	size     int64
	capacity int64
	hits     atomic.Uint64
	misses   atomic.Uint64
	_        [64]byte // keep shards' hot fields on separate cache lines
}

// NewCache returns a cache holding at most about capacity bytes.
func NewCache(capacity int64) *Cache {
	c := &Cache{capacity: capacity}
	for i := range c.shards {
		c.shards[i].slots = make([]int32, 16)
		c.shards[i].hand = -1
		c.shards[i].capacity = capacity / cacheShards
	}
	return c
}

func (c *Cache) shard(k cacheKey) *cacheShard {
	return &c.shards[k.hash()>>(64-cacheShardBits)]
}

// find returns the slot holding k (its value is k's slab index plus one) or,
// when k is absent, the empty slot ending its probe run. s.mu must be held.
func (s *cacheShard) find(k cacheKey, h uint64) int {
	mask := uint64(len(s.slots) - 1)
	i := (h << cacheShardBits >> 32) & mask
	for {
		e := s.slots[i]
		if e == 0 || s.slab[e-1].key == k {
			return int(i)
		}
		i = (i + 1) & mask
	}
}

// get returns the cached block, or nil.
func (c *Cache) get(fileNum, offset uint64) []byte {
	k := cacheKey{fileNum, offset}
	h := k.hash()
	s := &c.shards[h>>(64-cacheShardBits)]
	s.mu.RLock()
	var b []byte
	if e := s.slots[s.find(k, h)]; e != 0 {
		ent := &s.slab[e-1]
		b = ent.block
		if !ent.ref.Load() {
			ent.ref.Store(true)
		}
	}
	s.mu.RUnlock()
	if b == nil {
		s.misses.Add(1)
	} else {
		s.hits.Add(1)
	}
	return b
}

// set caches block, which the caller must never modify afterwards. A block
// larger than a shard's share of the capacity is not cached.
func (c *Cache) set(fileNum, offset uint64, block []byte) {
	k := cacheKey{fileNum, offset}
	h := k.hash()
	s := &c.shards[h>>(64-cacheShardBits)]
	charge := int64(len(block)) + cacheEntryOverhead
	if charge > s.capacity || block == nil {
		return // a nil block would read as a miss (and a free slab place)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := s.find(k, h)
	if e := s.slots[slot]; e != 0 {
		ent := &s.slab[e-1]
		s.size += int64(len(block) - len(ent.block))
		ent.block = block
	} else {
		// Make room first, so that the slab place an eviction frees is
		// the one this block takes.
		for s.size+charge > s.capacity && s.hand >= 0 {
			ent := &s.slab[s.hand]
			if ent.ref.Load() {
				ent.ref.Store(false)
				s.hand = ent.next
				continue
			}
			s.remove(s.hand)
		}
		if 2*(s.count+1) > len(s.slots) {
			s.grow()
		}
		slot = s.find(k, h) // the table changed
		var i int32
		if n := len(s.free); n > 0 {
			i = s.free[n-1]
			s.free = s.free[:n-1]
		} else {
			i = int32(len(s.slab))
			s.slab = append(s.slab, cacheEntry{})
		}
		ent := &s.slab[i]
		ent.key, ent.block = k, block
		ent.ref.Store(false)
		s.slots[slot] = i + 1
		s.count++
		s.size += charge
		if s.hand < 0 {
			ent.prev, ent.next = i, i
			s.hand = i
		} else {
			// Insert just behind the hand: the last entry the sweep reaches.
			hand := &s.slab[s.hand]
			ent.prev, ent.next = hand.prev, s.hand
			s.slab[hand.prev].next = i
			hand.prev = i
		}
	}
}

// grow doubles the slot table; s.mu must be held.
func (s *cacheShard) grow() {
	old := s.slots
	s.slots = make([]int32, 2*len(old))
	for _, e := range old {
		if e != 0 {
			k := s.slab[e-1].key
			s.slots[s.find(k, k.hash())] = e
		}
	}
}

// remove drops slab entry i; s.mu must be held.
func (s *cacheShard) remove(i int32) {
	ent := &s.slab[i]
	mask := len(s.slots) - 1
	// Backward-shift deletion: empty the slot, then move back every entry
	// of the run after it that its own probe start does not place after
	// the hole.
	hole := s.find(ent.key, ent.key.hash())
	s.slots[hole] = 0
	for j := (hole + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		k := s.slab[s.slots[j]-1].key
		home := int((k.hash() << cacheShardBits >> 32) & uint64(mask))
		// Move j's entry into the hole unless its home lies cyclically in
		// (hole, j].
		if (j-home)&mask >= (j-hole)&mask {
			s.slots[hole], s.slots[j] = s.slots[j], 0
			hole = j
		}
	}
	s.count--
	s.size -= int64(len(ent.block)) + cacheEntryOverhead
	if ent.next == i {
		s.hand = -1
	} else {
		s.slab[ent.prev].next, s.slab[ent.next].prev = ent.next, ent.prev
		if s.hand == i {
			s.hand = ent.next
		}
	}
	ent.block, ent.key = nil, cacheKey{}
	s.free = append(s.free, i)
}

// EvictFile drops every block of a file: called when a table file is
// deleted, so its blocks stop taking space another table could use.
func (c *Cache) EvictFile(fileNum uint64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for j := range s.slab {
			if e := &s.slab[j]; e.block != nil && e.key.fileNum == fileNum {
				s.remove(int32(j))
			}
		}
		s.mu.Unlock()
	}
}

// Metrics returns the cache's counters.
func (c *Cache) Metrics() CacheMetrics {
	m := CacheMetrics{Capacity: c.capacity}
	for i := range c.shards {
		s := &c.shards[i]
		m.Hits += s.hits.Load()
		m.Misses += s.misses.Load()
		s.mu.RLock()
		m.Size += s.size
		m.Count += int64(s.count)
		s.mu.RUnlock()
	}
	return m
}
