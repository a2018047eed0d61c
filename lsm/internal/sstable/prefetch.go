package sstable

import (
	"encoding/binary"
	"unsafe"

	"github.com/logkv/logkv/internal/ordtree"
	"github.com/logkv/logkv/lsm/internal/base"
)

// PrefetchProbes is the most (key, table) lookups a PrefetchBatch holds.
const PrefetchProbes = 128

// prefetchRestarts is the most restart points of a data block whose keys
// Prefetch brings in.
const prefetchRestarts = 32

// probe is one key's lookup in one table, and how far Prefetch took it.
type probe struct {
	r     *Reader
	key   []byte
	hash  uint64 // HashKey(key)
	t     uint64 // pad8 of key past the index summary's prefix
	g     int    // the summary node (or, at the bottom, entry) key descends to
	live  bool   // still to go on with
	shard *cacheShard
	ck    cacheKey
	ch    uint64 // ck.hash()
	block []byte // the cached data block, once found
}

// PrefetchBatch gathers lookups of keys in tables for Prefetch. Its
// buffers are reused from one batch to the next: keep one per goroutine
// (a pool), and Reset it after Prefetch so that it keeps no key or Reader.
type PrefetchBatch struct {
	probes [PrefetchProbes]probe
	n      int
	it     blockIter // the index block's, for the entries' handles
	ikey   []byte
}

// Add adds the lookup of ukey (of HashKey h) in r, and reports whether
// there was room. r must stay open until Prefetch returns.
func (b *PrefetchBatch) Add(r *Reader, ukey []byte, h uint64) bool {
	if b.n == len(b.probes) {
		return false
	}
	b.probes[b.n] = probe{r: r, key: ukey, hash: h}
	b.n++
	return true
}

// Reset empties b, dropping its references to keys, Readers and blocks.
func (b *PrefetchBatch) Reset() {
	clear(b.probes[:b.n])
	b.n = 0
	b.it.data, b.it.restarts, b.it.val, b.it.err = nil, nil, nil, nil
}

// Prefetch brings into the CPU's caches what AppendGet of each lookup added
// will read, stage by stage over all of them so that the cache misses of
// different lookups are in flight together rather than one after another:
//  1. the filter's line (one 64-byte block of a blocked filter);
//  2. for the lookups the filters pass, the index summary's nodes
//     (indexSearch), one level at a time, each next node prefetched as
//     soon as its parent names it, down to the node of the summary's keys;
//  3. the index entry: its restart array slot, then the entry itself;
//  4. the block cache: the slot of the entry's block, then its slab entry;
//  5. the cached data block's restart array, then its restart points' keys,
//     which the block's binary search reads;
//  6. that search, then the lines of the restart interval it names, which
//     the Get scans for the key.
//
// Blocks not in the cache are left to the Gets (they read the file). It
// changes nothing visible (no counter, no cache reference bit) and
// allocates nothing once b's buffers have grown.
func (b *PrefetchBatch) Prefetch() {
	ps := b.probes[:b.n]
	// 1: the filters' lines.
	for i := range ps {
		p := &ps[i]
		r := p.r
		p.live = !r.closed.Load()
		if p.live && r.hasFlt && r.filter.nblocks > 0 {
			f := &r.filter
			off := ((p.hash >> 32) * f.nblocks >> 32) * filterBlockBytes
			ordtree.PrefetchRange(unsafe.Pointer(&f.bits[off]), filterBlockBytes)
		}
	}
	// 2: the filters decide (their lines are on their way), then the
	// summary descents, level by level.
	depth := 0
	for i := range ps {
		p := &ps[i]
		if !p.live {
			continue
		}
		r := p.r
		s := r.isearch
		if (r.hasFlt && !r.filter.mayContain(p.hash)) || s == nil || len(s.keys) == 0 {
			p.live = false
			continue
		}
		if p.t, p.live = s.target(p.key); !p.live {
			continue
		}
		p.g = 0
		depth = max(depth, len(s.levels))
	}
	for l := 0; l < depth; l++ {
		for i := range ps {
			p := &ps[i]
			if !p.live {
				continue
			}
			s := p.r.isearch
			if l >= len(s.levels) {
				continue
			}
			j, end := nodeLowerBound(s.levels[l], p.g, p.t)
			if j == end {
				p.live = false
				continue
			}
			p.g = j
			next := s.keys
			if l+1 < len(s.levels) {
				next = s.levels[l+1]
			}
			ordtree.PrefetchRange(unsafe.Pointer(&next[j*searchFanout]), searchFanout*8)
		}
	}
	// 3: the entry in the summary's bottom node, then its slot in the index
	// block's restart array (entry i is restart point i).
	for i := range ps {
		p := &ps[i]
		if !p.live {
			continue
		}
		j, _ := nodeLowerBound(p.r.isearch.keys, p.g, p.t)
		p.g = j
		if slot, ok := restartSlot(p.r.index, j); ok {
			ordtree.PrefetchRange(unsafe.Pointer(&p.r.index[slot]), 4)
		} else {
			p.live = false
		}
	}
	for i := range ps {
		p := &ps[i]
		if !p.live {
			continue
		}
		slot, _ := restartSlot(p.r.index, p.g)
		if off := int(binary.LittleEndian.Uint32(p.r.index[slot:])); off < slot {
			ordtree.PrefetchRange(unsafe.Pointer(&p.r.index[off]), 32)
		}
	}
	// 4: the entry's handle (the index search as AppendGet's), its block's
	// cache slot, then the slab entry the slot names.
	for i := range ps {
		p := &ps[i]
		if !p.live {
			continue
		}
		r := p.r
		p.live = false
		if r.cache == nil || b.it.init(r.index, true, r.name, r.indexOff) != nil {
			continue
		}
		b.ikey = base.AppendInternalKey(b.ikey[:0], p.key, base.MaxSeq, base.KindSet)
		if !r.isearch.seekGE(&b.it, p.key, b.ikey) {
			continue
		}
		h, ok := decodeHandle(b.it.val)
		if !ok {
			continue
		}
		p.ck = cacheKey{r.fileNum, h.offset}
		p.ch = p.ck.hash()
		p.shard = &r.cache.shards[p.ch>>(64-cacheShardBits)]
		p.live = true
		s := p.shard
		s.mu.RLock()
		if len(s.slots) > 0 {
			mask := uint64(len(s.slots) - 1)
			ordtree.PrefetchRange(unsafe.Pointer(&s.slots[(p.ch<<cacheShardBits>>32)&mask]), 4)
		}
		s.mu.RUnlock()
	}
	for i := range ps {
		p := &ps[i]
		if !p.live {
			continue
		}
		p.findCached(false)
	}
	// 5: the block (immutable once cached, and on the heap: holding it
	// keeps it whatever the cache does), its restart array, then its
	// restart points' keys.
	for i := range ps {
		p := &ps[i]
		if !p.live {
			continue
		}
		p.findCached(true)
		if len(p.block) < 4 {
			p.live = false
			continue
		}
		n := min(len(p.block), 4+4*prefetchRestarts)
		ordtree.PrefetchRange(unsafe.Pointer(&p.block[len(p.block)-n]), n)
	}
	for i := range ps {
		p := &ps[i]
		if !p.live {
			continue
		}
		blk := p.block
		for j := range prefetchRestarts {
			slot, ok := restartSlot(blk, j)
			if !ok {
				break
			}
			if off := int(binary.LittleEndian.Uint32(blk[slot:])); off < slot-4*j {
				ordtree.PrefetchRange(unsafe.Pointer(&blk[off]), 32)
			}
		}
	}
	// 6: the block's restart search (its keys now on their way), then the
	// lines of the restart interval that holds the key, which the Get scans.
	for i := range ps {
		p := &ps[i]
		if !p.live {
			continue
		}
		it := &b.it
		if it.init(p.block, true, "", 0) != nil || it.numRestarts == 0 {
			continue
		}
		b.ikey = base.AppendInternalKey(b.ikey[:0], p.key, base.MaxSeq, base.KindSet)
		j, ok := it.searchRestarts(b.ikey)
		if !ok {
			continue
		}
		from, ok := it.restart(max(j-1, 0))
		if !ok {
			continue
		}
		to := len(it.data)
		if j < it.numRestarts {
			if to, ok = it.restart(j); !ok {
				continue
			}
			to = min(to+32, len(it.data))
		}
		if to > from {
			ordtree.PrefetchRange(unsafe.Pointer(&it.data[from]), to-from)
		}
	}
}

// findCached looks p's block up in its cache shard, under the shard's read
// lock: with take, it keeps the block found in p.block (cached blocks are
// immutable heap memory, which p's reference keeps whatever the cache does
// later); without, it prefetches the slab entry naming it. It touches no
// counter and no reference bit.
func (p *probe) findCached(take bool) {
	s := p.shard
	s.mu.RLock()
	if len(s.slots) > 0 {
		if e := s.slots[s.find(p.ck, p.ch)]; e != 0 {
			if take {
				p.block = s.slab[e-1].block
			} else {
				ordtree.PrefetchRange(unsafe.Pointer(&s.slab[e-1]), int(unsafe.Sizeof(cacheEntry{})))
			}
		}
	}
	s.mu.RUnlock()
}

// restartSlot returns the offset in block of restart point i's slot in its
// restart array, and whether the block has such a point.
func restartSlot(block []byte, i int) (int, bool) {
	if len(block) < 4 {
		return 0, false
	}
	nr := uint64(binary.LittleEndian.Uint32(block[len(block)-4:]))
	if nr*4+4 > uint64(len(block)) || uint64(i) >= nr {
		return 0, false
	}
	return len(block) - 4 - int(nr)*4 + 4*i, true
}
