package sstable

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

func TestCacheBasics(t *testing.T) {
	c := NewCache(cacheShards * 10 << 10)
	require.Nil(t, c.get(1, 0))
	b := []byte("block")
	c.set(1, 0, b)
	require.Equal(t, b, c.get(1, 0))
	require.Nil(t, c.get(2, 0), "file number is part of the key")
	require.Nil(t, c.get(1, 5), "offset is part of the key")
	m := c.Metrics()
	require.Equal(t, uint64(1), m.Hits)
	require.Equal(t, uint64(3), m.Misses)
	require.Equal(t, int64(1), m.Count)
	require.Equal(t, int64(len(b)+cacheEntryOverhead), m.Size)

	c.set(1, 0, []byte("replaced"))
	require.Equal(t, []byte("replaced"), c.get(1, 0))
	require.Equal(t, int64(1), c.Metrics().Count)

	c.set(2, 0, []byte("other"))
	c.EvictFile(1)
	require.Nil(t, c.get(1, 0))
	require.Equal(t, []byte("other"), c.get(2, 0))
	require.Equal(t, int64(1), c.Metrics().Count)

	// Larger than a shard: not cached.
	c.set(3, 0, make([]byte, 20<<10))
	require.Nil(t, c.get(3, 0))
}

func TestCacheBounded(t *testing.T) {
	const capacity = 256 << 10
	c := NewCache(capacity)
	blk := make([]byte, 1000)
	for i := range uint64(10000) {
		c.set(i%7, i*4096, blk)
		require.LessOrEqual(t, c.Metrics().Size, int64(capacity))
	}
	require.Greater(t, c.Metrics().Size, int64(capacity/2), "the cache fills up")
}

// TestCacheClock checks that a referenced block survives a sweep that
// evicts unreferenced ones.
func TestCacheClock(t *testing.T) {
	c := NewCache(cacheShards * 4 * (100 + cacheEntryOverhead))
	blk := make([]byte, 100)
	// Find keys of one shard.
	var keys []uint64
	s0 := c.shard(cacheKey{1, 0})
	for off := uint64(0); len(keys) < 8; off++ {
		if c.shard(cacheKey{1, off}) == s0 {
			keys = append(keys, off)
		}
	}
	for _, k := range keys[:4] {
		c.set(1, k, blk)
	}
	require.NotNil(t, c.get(1, keys[0])) // referenced
	c.set(1, keys[4], blk)               // evicts keys[1], the first unreferenced
	require.NotNil(t, c.get(1, keys[0]))
	require.Nil(t, c.get(1, keys[1]))
	require.NotNil(t, c.get(1, keys[4]))
}

func TestCacheConcurrent(t *testing.T) {
	c := NewCache(64 << 10)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 5000 {
				f, off := rng.Uint64N(4), rng.Uint64N(200)
				if b := c.get(f, off); b != nil {
					require.Equal(t, byte(f+off), b[0])
				} else {
					c.set(f, off, []byte{byte(f + off), 1, 2, 3})
				}
				if rng.IntN(1000) == 0 {
					c.EvictFile(f)
				}
			}
		}()
	}
	wg.Wait()
	m := c.Metrics()
	require.Equal(t, uint64(20000), m.Hits+m.Misses)
	require.LessOrEqual(t, m.Size, m.Capacity)
}

func TestReaderUsesCache(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	entries := genEntries(rng, 500, 2)
	fs := vfs.NewMem()
	writeTable(t, fs, "t.sst", entries, WriterOptions{BlockSize: 512, Compression: Zstd})
	cache := NewCache(8 << 20)
	r := openTable(t, fs, "t.sst", ReaderOptions{Cache: cache, FileNum: 7})
	scan := func() int {
		it := r.NewIter(nil, nil)
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			n++
		}
		require.NoError(t, it.Close())
		return n
	}
	open := r.Metrics().BlockReads
	require.Equal(t, len(entries), scan())
	reads := r.Metrics().BlockReads - open
	require.Positive(t, reads)
	m := cache.Metrics()
	require.Equal(t, reads, m.Misses)
	require.Equal(t, int64(reads), m.Count)

	require.Equal(t, len(entries), scan())
	require.Equal(t, reads, r.Metrics().BlockReads-open, "the second scan reads no block")
	require.Equal(t, reads, cache.Metrics().Hits)

	for _, e := range entries[:50] {
		_, _, ok, err := r.Get(base.UserKey(e.key), base.MaxSeq)
		require.NoError(t, err)
		require.True(t, ok)
	}
	require.Equal(t, reads, r.Metrics().BlockReads-open)

	cache.EvictFile(7)
	require.Zero(t, cache.Metrics().Count)
	require.Equal(t, len(entries), scan())
	require.Equal(t, 2*reads, r.Metrics().BlockReads-open)
}

// checkShards verifies every shard's structure: each live slab entry is
// found from its key's probe start, the slots, the live entries, the ring
// and the free list agree, and the size is the sum of the charges.
func checkShards(t *testing.T, c *Cache) {
	t.Helper()
	for si := range c.shards {
		s := &c.shards[si]
		s.mu.RLock()
		live, slots := 0, 0
		var size int64
		for i := range s.slab {
			e := &s.slab[i]
			if e.block == nil {
				continue
			}
			live++
			size += int64(len(e.block)) + cacheEntryOverhead
			if got := s.slots[s.find(e.key, e.key.hash())]; got != int32(i)+1 {
				t.Fatalf("shard %d: entry %d (key %v) found at slab index %d", si, i, e.key, got-1)
			}
		}
		for _, v := range s.slots {
			if v != 0 {
				slots++
			}
		}
		ring := 0
		if s.hand >= 0 {
			for i := s.hand; ; {
				ring++
				if s.slab[s.slab[i].next].prev != i || ring > len(s.slab) {
					t.Fatalf("shard %d: ring broken at %d", si, i)
				}
				if i = s.slab[i].next; i == s.hand {
					break
				}
			}
		}
		if live != s.count || slots != s.count || ring != s.count || live+len(s.free) != len(s.slab) || size != s.size {
			t.Fatalf("shard %d: count %d, live entries %d, slots %d, ring %d, free %d of %d, size %d want %d",
				si, s.count, live, slots, ring, len(s.free), len(s.slab), s.size, size)
		}
		s.mu.RUnlock()
	}
}

// TestCacheModel runs random sets, gets and file evictions against a model
// of what may be cached: a hit returns the block last set for its key,
// nothing of an evicted file is found, every shard stays consistent
// (checkShards) and within its capacity, and with room for everything a
// set block is found.
func TestCacheModel(t *testing.T) {
	for _, capacity := range []int64{cacheShards * 2 << 10, cacheShards * 64 << 10} {
		c := NewCache(capacity)
		rng := rand.New(rand.NewPCG(uint64(capacity), 3))
		last := map[cacheKey]byte{}
		for i := range 20000 {
			k := cacheKey{rng.Uint64N(4), rng.Uint64N(300)}
			switch op := rng.IntN(10); {
			case op < 5:
				v := byte(rng.Uint32())
				c.set(k.fileNum, k.offset, []byte{v, 1, 2, 3})
				last[k] = v
				if capacity > 300*4*(4+cacheEntryOverhead)*2 {
					require.NotNil(t, c.get(k.fileNum, k.offset), "room for every block")
				}
			case op < 9:
				if b := c.get(k.fileNum, k.offset); b != nil {
					require.Equal(t, last[k], b[0], "key %v", k)
				}
			default:
				c.EvictFile(k.fileNum)
				for off := range uint64(300) {
					require.Nil(t, c.get(k.fileNum, off))
				}
			}
			if i%97 == 0 {
				checkShards(t, c)
			}
			require.LessOrEqual(t, c.Metrics().Size, capacity)
		}
		checkShards(t, c)
	}
}
