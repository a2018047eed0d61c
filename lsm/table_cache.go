package lsm

import (
	"container/list"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/lsm/internal/sstable"
	"github.com/logkv/logkv/vfs"
)

// tableCache keeps up to capacity tables open, least recently used evicted
// first. An entry in use (refs > 0) is never closed: an evicted entry closes
// when its last user releases it.
//
// A Get probes a table in every level, so the lookup is on the read path
// of every point read: besides the map under mu, open entries are found
// without the lock in recent, direct-mapped by file number. A lookup there
// takes a reference only if the entry still has one (tryRef), so it never
// revives a closed reader; the LRU hears of such uses one in
// tableTouchEvery, enough to keep a table in use from being evicted as
// idle.
type tableCache struct {
	fs       vfs.FS
	dir      string
	cache    *sstable.Cache
	capacity int
	noMmap   bool // Options.DisableMmap

	recent [tableRecentSlots]atomic.Pointer[tableEntry]

	mu      sync.Mutex
	entries map[uint64]*tableEntry
	lru     list.List // of *tableEntry, most recent at the front
	closed  bool
}

const (
	// tableRecentSlots is the size of the lock-free lookup: more than the
	// tables a DB of some GiB has in its upper levels, where Gets go most.
	tableRecentSlots = 256
	// tableTouchEvery is how often a lock-free use moves its entry to the
	// LRU's front.
	tableTouchEvery = 64
)

type tableEntry struct {
	num   uint64
	r     *sstable.Reader
	err   error
	ready chan struct{} // closed once r or err is set
	// refs counts users, plus one while in the map. It is atomic so that
	// release takes no lock (a Get releases every table it probes), and it
	// only reaches zero once the entry has left the map: get, under mu,
	// adds to it only while the map's reference is held.
	refs    atomic.Int32
	uses    atomic.Uint32 // lock-free uses, for the LRU (tableTouchEvery)
	elem    *list.Element
	evicted bool
}

// tryRef takes a reference to e if it has one (is in the map or in use),
// and reports whether it did. An entry at zero is closed for good.
func (e *tableEntry) tryRef() bool {
	for {
		r := e.refs.Load()
		if r <= 0 {
			return false
		}
		if e.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func newTableCache(fs vfs.FS, dir string, cache *sstable.Cache, capacity int) *tableCache {
	return &tableCache{fs: fs, dir: dir, cache: cache, capacity: capacity, entries: map[uint64]*tableEntry{}}
}

// get returns the open reader of table f, with a reference the caller must
// release.
func (c *tableCache) get(f *manifest.FileMeta) (*tableEntry, error) {
	slot := &c.recent[f.Num%tableRecentSlots]
	if e := slot.Load(); e != nil && e.num == f.Num && e.tryRef() {
		if e.uses.Add(1)%tableTouchEvery == 0 {
			c.mu.Lock()
			if !e.evicted {
				c.lru.MoveToFront(e.elem)
			}
			c.mu.Unlock()
		}
		return e, nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosedDB
	}
	e, ok := c.entries[f.Num]
	if ok {
		e.refs.Add(1)
		c.lru.MoveToFront(e.elem)
		c.mu.Unlock()
		<-e.ready
		if e.err != nil {
			c.release(e)
			return nil, e.err
		}
		return e, nil
	}
	e = &tableEntry{num: f.Num, ready: make(chan struct{})}
	e.refs.Store(2)
	e.elem = c.lru.PushFront(e)
	c.entries[f.Num] = e
	var victims []*tableEntry
	for c.lru.Len() > c.capacity {
		v := c.lru.Back().Value.(*tableEntry)
		if v == e {
			break
		}
		victims = append(victims, c.removeLocked(v))
	}
	c.mu.Unlock()
	for _, v := range victims {
		c.release(v)
	}

	e.r, e.err = c.open(f)
	close(e.ready)
	if e.err == nil {
		c.mu.Lock()
		if !e.evicted {
			slot.Store(e) // under mu, so removeLocked's clearing cannot come first
		}
		c.mu.Unlock()
	}
	if e.err != nil {
		c.mu.Lock()
		if !e.evicted {
			c.removeLocked(e)
			e.refs.Add(-1)
		}
		c.mu.Unlock()
		c.release(e)
		return nil, e.err
	}
	return e, nil
}

func (c *tableCache) open(f *manifest.FileMeta) (*sstable.Reader, error) {
	return c.openWith(f, c.cache)
}

// openWith opens table f with the given block cache (nil: none), outside the
// table cache.
func (c *tableCache) openWith(f *manifest.FileMeta, cache *sstable.Cache) (*sstable.Reader, error) {
	name := tableName(f.Num)
	file, err := c.fs.Open(joinPath(c.dir, name))
	if err != nil {
		return nil, fmt.Errorf("lsm: open table %s: %w", name, err)
	}
	r, err := sstable.Open(file, int64(f.Size), sstable.ReaderOptions{Cache: cache, FileNum: f.Num, Name: name, DisableMmap: c.noMmap})
	if err != nil {
		file.Close()
		return nil, err
	}
	return r, nil
}

// removeLocked takes e out of the map and LRU; the caller drops the map's
// reference (release) after unlocking.
func (c *tableCache) removeLocked(e *tableEntry) *tableEntry {
	delete(c.entries, e.num)
	c.lru.Remove(e.elem)
	e.evicted = true
	c.recent[e.num%tableRecentSlots].CompareAndSwap(e, nil)
	return e
}

// release drops one reference to e, closing its reader after the last.
func (c *tableCache) release(e *tableEntry) {
	if e.refs.Add(-1) == 0 && e.r != nil {
		e.r.Close()
	}
}

// evict closes table num (once unused): it is being deleted.
func (c *tableCache) evict(num uint64) {
	c.mu.Lock()
	e, ok := c.entries[num]
	if ok {
		c.removeLocked(e)
	}
	c.mu.Unlock()
	if ok {
		c.release(e)
	}
	if c.cache != nil {
		c.cache.EvictFile(num)
	}
}

// close evicts every table; readers in use close when released.
func (c *tableCache) close() {
	c.mu.Lock()
	c.closed = true
	var all []*tableEntry
	for _, e := range c.entries {
		all = append(all, c.removeLocked(e))
	}
	c.mu.Unlock()
	for _, e := range all {
		c.release(e)
	}
}

// len returns the number of open tables.
func (c *tableCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
