package lsm

import (
	"sync"
	"unsafe"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/ordtree"
	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/lsm/internal/sstable"
)

var _ logkv.Prefetcher = (*DB)(nil)

const (
	// prefetchKeys is the most keys Prefetch looks at: a pipeline's 16
	// GETs.
	prefetchKeys = 16
	// prefetchTables is the most tables it holds (it prefetches at most
	// sstable.PrefetchProbes (key, table) lookups): a key is probed in
	// every level, and in every overlapping table of level 0.
	prefetchTables = 64
)

// prefetchScratch is Prefetch's working memory, pooled so that a Prefetch
// allocates nothing.
type prefetchScratch struct {
	batch   sstable.PrefetchBatch
	entries [prefetchTables]*tableEntry
	ne      int
}

var prefetchPool = sync.Pool{New: func() any { return new(prefetchScratch) }}

// Prefetch hints that Gets of keys follow (logkv.Prefetcher): for the first
// 16 valid keys and every table a Get of the key would probe at the current
// version, it brings the table's filter line and index summary nodes into
// the CPU's caches, all keys' misses overlapped (sstable.Prefetch). It
// holds the read state and a reference to each table it reads, as a Get
// does, and releases them before it returns; it changes nothing visible and
// counts no Get.
func (d *DB) Prefetch(keys [][]byte) {
	if len(keys) < 1 || d.closed.Load() {
		return
	}
	rs := d.loadReadState()
	defer rs.unref()
	sc := prefetchPool.Get().(*prefetchScratch)
	n := 0
	for _, key := range keys {
		if n == prefetchKeys {
			break
		}
		if logkv.CheckKey(key) != nil {
			continue
		}
		n++
		rs.mem.index.prefetch(key)
		for _, m := range rs.imm {
			m.index.prefetch(key)
		}
		h := sstable.HashKey(key)
		l0 := rs.v.Levels[0]
		for i := len(l0) - 1; i >= 0; i-- {
			if inRange(l0[i], key) {
				d.prefetchProbe(sc, l0[i], key, h)
			}
		}
		for lvl := 1; lvl < manifest.NumLevels; lvl++ {
			files := rs.v.Levels[lvl]
			if i := manifest.SearchLevel(files, key); i < len(files) && inRange(files[i], key) {
				d.prefetchProbe(sc, files[i], key, h)
			}
		}
	}
	sc.batch.Prefetch()
	sc.batch.Reset() // keep no key, no Reader, no block
	for i := range sc.ne {
		d.tc.release(sc.entries[i])
	}
	clear(sc.entries[:sc.ne])
	sc.ne = 0
	prefetchPool.Put(sc)
}

// prefetchProbe adds the lookup of key (of hash h) in table f to sc,
// taking a reference to f's open Reader unless sc holds one already. It
// adds nothing once sc is full, or if f cannot be opened (the Get will say
// why).
func (d *DB) prefetchProbe(sc *prefetchScratch, f *manifest.FileMeta, key []byte, h uint64) {
	var e *tableEntry
	for _, x := range sc.entries[:sc.ne] {
		if x.num == f.Num {
			e = x
			break
		}
	}
	if e == nil {
		if sc.ne == prefetchTables {
			return
		}
		var err error
		if e, err = d.tc.get(f); err != nil {
			return
		}
		sc.entries[sc.ne] = e
		sc.ne++
	}
	sc.batch.Add(e.r, key, h)
}

// prefetch brings into the CPU's caches the slot of x's table where a
// find of ukey starts.
func (x *memIndex) prefetch(ukey []byte) {
	slots := x.tab.Load().slots
	if len(slots) > 0 {
		ordtree.PrefetchRange(unsafe.Pointer(&slots[home(x.tag(ukey), len(slots))]), 8)
	}
}
