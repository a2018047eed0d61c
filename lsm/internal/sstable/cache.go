package sstable

import (
	"sync"
	"sync/atomic"
)

// cacheShards is the number of independently locked parts of a Cache.
const cacheShards = 16

// cacheEntryOverhead approximates the memory an entry costs beyond its
// block: the entry struct and its map slot.
const cacheEntryOverhead = 96

// Cache is a sharded, size-bounded cache of decompressed blocks, shared by
// all tables of a DB. Keys are (file number, block offset). Each shard runs
// the CLOCK algorithm: a hit only sets the entry's reference bit under a
// read lock, so concurrent readers of hot blocks do not serialise on a list
// update as with LRU; eviction sweeps a hand over the entries, sparing (and
// clearing) referenced ones once. Cached blocks are never modified or
// reused, so readers keep using a block after it is evicted. Safe for
// concurrent use.
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

type cacheEntry struct {
	key        cacheKey
	block      []byte
	ref        atomic.Bool
	prev, next *cacheEntry // the shard's ring, in insertion order
}

type cacheShard struct {
	mu       sync.RWMutex
	m        map[cacheKey]*cacheEntry
	hand     *cacheEntry // next entry the sweep considers; nil when empty
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
		c.shards[i].m = make(map[cacheKey]*cacheEntry)
		c.shards[i].capacity = capacity / cacheShards
	}
	return c
}

func (c *Cache) shard(k cacheKey) *cacheShard {
	h := (k.fileNum*0x9e3779b97f4a7c15 ^ k.offset) * 0xbf58476d1ce4e5b9
	return &c.shards[h>>60]
}

// get returns the cached block, or nil.
func (c *Cache) get(fileNum, offset uint64) []byte {
	k := cacheKey{fileNum, offset}
	s := c.shard(k)
	s.mu.RLock()
	e := s.m[k]
	var b []byte
	if e != nil {
		b = e.block
		if !e.ref.Load() {
			e.ref.Store(true)
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
	s := c.shard(k)
	charge := int64(len(block)) + cacheEntryOverhead
	if charge > s.capacity {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[k]; e != nil {
		s.size += int64(len(block) - len(e.block))
		e.block = block
	} else {
		e := &cacheEntry{key: k, block: block}
		s.m[k] = e
		s.size += charge
		if s.hand == nil {
			e.prev, e.next = e, e
			s.hand = e
		} else {
			// Insert just behind the hand: the last entry the sweep reaches.
			e.prev, e.next = s.hand.prev, s.hand
			e.prev.next, s.hand.prev = e, e
		}
	}
	for s.size > s.capacity && s.hand != nil {
		e := s.hand
		if e.ref.Load() {
			e.ref.Store(false)
			s.hand = e.next
			continue
		}
		s.remove(e)
	}
}

// remove unlinks e; s.mu must be held.
func (s *cacheShard) remove(e *cacheEntry) {
	delete(s.m, e.key)
	s.size -= int64(len(e.block)) + cacheEntryOverhead
	if e.next == e {
		s.hand = nil
	} else {
		e.prev.next, e.next.prev = e.next, e.prev
		if s.hand == e {
			s.hand = e.next
		}
	}
	e.prev, e.next, e.block = nil, nil, nil
}

// EvictFile drops every block of a file: called when a table file is
// deleted, so its blocks stop taking space another table could use.
func (c *Cache) EvictFile(fileNum uint64) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if k.fileNum == fileNum {
				s.remove(e)
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
		m.Count += int64(len(s.m))
		s.mu.RUnlock()
	}
	return m
}
