package memory

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/ordtree"
	"unsafe"
)

func init() { logkv.RegisterTyped("memory", Open) }

var (
	_ logkv.Engine        = (*DB)(nil)
	_ logkv.ValueAppender = (*DB)(nil)
	_ logkv.Prefetcher    = (*DB)(nil)
)

// DB is an ordered in-memory engine with MVCC snapshots. All its methods are
// safe for concurrent use. See the package documentation.
type DB struct {
	opts Options

	// mu guards everything below it. Writers, snapshots and iterators take
	// it exclusively; Get and Metrics share it.
	mu        sync.RWMutex
	arena     *ordtree.Arena // the tree's nodes and the records, outside the Go heap
	t         *tree
	dataBytes int64          // key and value bytes of live keys
	live      map[uint64]int // snapshot version -> open snapshots and iterators
	final     logkv.Metrics  // Metrics as Close left them

	writes       uint64
	writeOps     uint64
	bytesWritten uint64

	closed  atomic.Bool
	lastSeq atomic.Uint64
	_       [64]byte // keep the Get counter off the lock's cache line
	gets    atomic.Uint64
}

// Open returns a new, empty memory engine. dir is ignored: the engine keeps
// nothing on disk and nothing across Close. A nil o means the defaults.
func Open(dir string, o *Options) (*DB, error) {
	opts := o.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	a := ordtree.NewArena()
	return &DB{opts: opts, arena: a, t: ordtree.NewIn[val](a, true), live: map[uint64]int{}}, nil
}

// Get returns a copy of the value stored under key, or logkv.ErrNotFound.
func (db *DB) Get(key []byte) ([]byte, error) {
	return db.appendGet(nil, key, true) // nil on an error: dst is nil
}

// AppendGet appends the value stored under key to dst and returns the
// extended slice, or dst and logkv.ErrNotFound (logkv.ValueAppender): Get
// into the caller's buffer, with no allocation when dst has room.
func (db *DB) AppendGet(dst, key []byte) ([]byte, error) {
	return db.appendGet(dst, key, false)
}

// appendGet is Get and AppendGet: the value appended to dst, copied under
// the read lock. With exact and a nil dst, a value is copied into a slice of
// its own length (make and copy: append's growth arithmetic cost ~10% of a
// Get's instructions), so Get's result has no spare capacity.
func (db *DB) appendGet(dst, key []byte, exact bool) ([]byte, error) {
	db.gets.Add(1)
	db.mu.RLock()
	if db.closed.Load() {
		db.mu.RUnlock()
		return dst, logkv.ErrClosed
	}
	v, ok := db.t.Get(unsafeString(key))
	if !ok {
		db.mu.RUnlock()
		return dst, logkv.ErrNotFound
	}
	// The copy is made under the lock: once it is released, a writer may
	// overwrite the key and free the record (no open snapshot holds it).
	b := v.value()
	if exact {
		dst = make([]byte, len(b))
		copy(dst, b)
	} else {
		dst = append(dst, b...)
	}
	db.mu.RUnlock()
	return dst, nil
}

// Prefetch hints that Gets of keys follow (logkv.Prefetcher), as a
// pipeline of GETs makes them: a Get waits for the tree's nodes on its path
// and then its record, cache misses one after another. Prefetch looks keys
// up together, up to ordtree.MaxBatch at a time under one hold of the read
// lock (ordtree's GetBatch: the descents level by level, each child
// prefetched as soon as it is known, so that the keys' misses overlap), then
// prefetches the first recordPrefetch bytes of each present key's record
// (its lengths, key and a small value). The Gets that follow find nodes and
// records in the CPU's caches. It changes nothing visible and counts no Get;
// after Close it does nothing.
func (db *DB) Prefetch(keys [][]byte) {
	var ks [ordtree.MaxBatch]string
	var vs [ordtree.MaxBatch]val
	var found [ordtree.MaxBatch]bool
	for len(keys) > 0 {
		m := min(len(keys), ordtree.MaxBatch)
		for i, k := range keys[:m] {
			ks[i] = unsafeString(k)
		}
		keys = keys[m:]
		db.mu.RLock()
		if db.closed.Load() {
			db.mu.RUnlock()
			return
		}
		db.t.Current().GetBatch(ks[:m], vs[:m], found[:m])
		for i := range m {
			if found[i] {
				ordtree.PrefetchRange(vs[i].record(), recordPrefetch)
			}
		}
		db.mu.RUnlock()
	}
}

// recordPrefetch is how much of a record Prefetch asks for: two cache lines'
// worth, the header, a 16-byte key and a value of up to 100 bytes (the
// record's lengths are in the record itself, which Prefetch does not wait
// for).
const recordPrefetch = 128

// Set stores value under key as a batch of one. o.Sync is accepted and has
// no effect: nothing is durable.
func (db *DB) Set(key, value []byte, o *logkv.WriteOptions) error {
	if err := logkv.CheckKey(key); err != nil {
		return err
	}
	if err := logkv.CheckValue(value); err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	seq, err := db.begin(o)
	if err != nil {
		return err
	}
	db.set(key, value)
	db.commit(seq, 1, len(key)+len(value))
	return nil
}

// Delete removes key as a batch of one.
func (db *DB) Delete(key []byte, o *logkv.WriteOptions) error {
	if err := logkv.CheckKey(key); err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	seq, err := db.begin(o)
	if err != nil {
		return err
	}
	db.del(key)
	db.commit(seq, 1, len(key))
	return nil
}

// Apply commits b atomically: Get and new iterators and snapshots see all of
// it or none. b is validated, and its sequence number checked, before
// anything changes.
func (db *DB) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	if err := b.Err(); err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	seq, err := db.begin(o)
	if err != nil {
		return err
	}
	if b.Empty() {
		return nil
	}
	r := b.Reader()
	n := 0
	for {
		kind, key, value, ok := r.Next()
		if !ok {
			break
		}
		switch kind {
		case logkv.KindSet:
			db.set(key, value)
		case logkv.KindDelete:
			db.del(key)
		}
		n += len(key) + len(value)
	}
	db.commit(seq, b.Len(), n)
	return nil
}

// begin checks that a write may go ahead and returns its sequence number.
// db.mu is held.
func (db *DB) begin(o *logkv.WriteOptions) (uint64, error) {
	if db.closed.Load() {
		return 0, logkv.ErrClosed
	}
	return logkv.SeqFor(o, db.lastSeq.Load())
}

// commit records a committed batch. db.mu is held.
func (db *DB) commit(seq uint64, ops, bytes int) {
	db.lastSeq.Store(seq)
	db.writes++
	db.writeOps += uint64(ops)
	db.bytesWritten += uint64(bytes)
}

// NewIter returns an iterator over the keys within o's bounds as they are
// now: it reads a snapshot of the tree taken here, holds no lock while it
// runs, and sees no later write.
func (db *DB) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	db.mu.Lock()
	if db.closed.Load() {
		db.mu.Unlock()
		return nil, logkv.ErrClosed
	}
	view, ver := db.t.Snapshot()
	db.live[ver]++
	db.mu.Unlock()
	return newIterator(db, view, ver, o), nil
}

// NewSnapshot returns a frozen view of the engine. Taking it costs O(1)
// whatever the size of the data: it is the current root of the tree, which
// later writes copy before they change (path by path). Until it is closed,
// the data it sees stays in memory.
func (db *DB) NewSnapshot() (logkv.Snapshot, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed.Load() {
		return nil, logkv.ErrClosed
	}
	view, ver := db.t.Snapshot()
	db.live[ver]++
	return newSnapshot(db, view, ver, db.lastSeq.Load()), nil
}

// Readers are counted per version in db.live until closed. A reader that
// stayed counted would keep every record and node retired after it in the
// arena for good, so a snapshot or iterator dropped unclosed is released by
// a runtime cleanup once the collector finds it unreachable (nothing can
// read through it then).

// set stores a copy of key and value. db.mu is held.
func (db *DB) set(key, value []byte) {
	v := makeVal(db.arena, key, value)
	k := v.key()
	prev, replaced := db.t.SetOwned(unsafe.String(v.p, len(k)), v)
	db.dataBytes += int64(v.size())
	if replaced {
		db.dispose(prev)
	}
}

// del removes key. db.mu is held.
func (db *DB) del(key []byte) {
	if prev, ok := db.t.Delete(unsafeString(key)); ok {
		db.dispose(prev)
	}
}

// dispose frees the record of a key that left the tree: at once if no
// snapshot or iterator is open (Get copies under the lock, so nothing else
// reads it), else once the readers open now are closed (see release).
// db.mu is held.
func (db *DB) dispose(v val) {
	db.dataBytes -= int64(v.size())
	if len(db.live) == 0 {
		db.arena.Free(v.record(), v.allocSize())
	} else {
		db.arena.Retire(v.record(), v.allocSize(), db.t.Version())
	}
}

// retain marks one more reader of the snapshot taken at ver.
func (db *DB) retain(ver uint64) {
	db.mu.Lock()
	db.live[ver]++
	db.mu.Unlock()
}

// release drops a reader of the snapshot taken at ver. When the newest
// snapshot still open goes, the writer may again change the nodes it
// shared in place.
func (db *DB) release(ver uint64) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.live[ver]--; db.live[ver] > 0 {
		return
	}
	delete(db.live, ver)
	oldest, newest := uint64(math.MaxUint64), uint64(0)
	for v := range db.live {
		oldest, newest = min(oldest, v), max(newest, v)
	}
	db.t.SetShared(newest)
	db.arena.Reclaim(oldest)
	if len(db.live) == 0 && db.closed.Load() {
		db.arena.Destroy() // Close left it to the last reader
	}
}

// LastSeq returns the sequence number of the newest committed batch.
func (db *DB) LastSeq() uint64 { return db.lastSeq.Load() }

// Sync does nothing but report ErrClosed after Close: the engine keeps
// nothing durable.
func (db *DB) Sync() error {
	if db.closed.Load() {
		return logkv.ErrClosed
	}
	return nil
}

// Metrics returns the engine's counters and gauges. MemBytes is the memory
// the engine's arena has mapped: the live tree's nodes and records, data
// kept for open snapshots, and freed blocks kept for reuse.
func (db *DB) Metrics() logkv.Metrics {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed.Load() {
		m := db.final
		m.Gets = db.gets.Load()
		return m
	}
	return db.metrics()
}

// metrics computes Metrics. db.mu is held.
func (db *DB) metrics() logkv.Metrics {
	st := db.t.Stats()
	readers := 0
	for _, n := range db.live {
		readers += n
	}
	nodeBytes := st.Leaves*leafBytes + st.Inners*(innerBytes) + db.t.SideBytes()
	as := db.arena.Stats()
	return logkv.Metrics{
		Keys:         int64(st.Keys),
		MemBytes:     as.Mapped,
		Gets:         db.gets.Load(),
		Writes:       db.writes,
		WriteOps:     db.writeOps,
		BytesWritten: db.bytesWritten,
		Detail: []logkv.Metric{
			{Name: "memory_data_bytes", Help: "Key and value bytes of live keys.", Value: float64(db.dataBytes)},
			{Name: "memory_node_bytes", Help: "Bytes of the live tree's nodes (and their arrays of pointers to key tails past 16 bytes).", Value: float64(nodeBytes)},
			{Name: "memory_arena_bytes", Help: "Bytes the engine's arena (outside the Go heap) has mapped, by use: allocated, retired (freed once the snapshots that may read them close), free (kept for reuse).", Labels: map[string]string{"state": "allocated"}, Value: float64(as.InUse - as.Retired)},
			{Name: "memory_arena_bytes", Help: "Bytes the engine's arena (outside the Go heap) has mapped, by use: allocated, retired (freed once the snapshots that may read them close), free (kept for reuse).", Labels: map[string]string{"state": "retired"}, Value: float64(as.Retired)},
			{Name: "memory_arena_bytes", Help: "Bytes the engine's arena (outside the Go heap) has mapped, by use: allocated, retired (freed once the snapshots that may read them close), free (kept for reuse).", Labels: map[string]string{"state": "free"}, Value: float64(as.Mapped - as.InUse)},
			{Name: "memory_tree_height", Help: "Levels of the B-tree.", Value: float64(db.t.Height())},
			{Name: "memory_tree_nodes", Help: "Nodes of the live tree.", Labels: map[string]string{"kind": "leaf"}, Value: float64(st.Leaves)},
			{Name: "memory_tree_nodes", Help: "Nodes of the live tree.", Labels: map[string]string{"kind": "inner"}, Value: float64(st.Inners)},
			{Name: "memory_open_readers", Help: "Open snapshots and iterators.", Value: float64(readers)},
			{Name: "memory_snapshot_versions", Help: "Distinct tree versions held by open snapshots and iterators.", Value: float64(len(db.live))},
			{Name: "memory_node_copies_total", Help: "Nodes copied because an open snapshot shared them.", Counter: true, Value: float64(st.Copies)},
			{Name: "memory_node_splits_total", Help: "Node splits.", Counter: true, Value: float64(st.Splits)},
			{Name: "memory_node_merges_total", Help: "Node merges on delete.", Counter: true, Value: float64(st.Merges)},
		},
	}
}

// Close drops the engine's data: nothing is kept. Open iterators and
// snapshots become invalid (they return false and ErrClosed). A second Close
// returns ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed.Swap(true) {
		return fmt.Errorf("memory: close: %w", logkv.ErrClosed)
	}
	// Keep the counters for Metrics; let the garbage collector have the
	// data once open snapshots are dropped too.
	db.final = db.metrics()
	db.t.Clear()
	db.dataBytes = 0
	if len(db.live) == 0 {
		db.arena.Destroy()
	} // else the last reader's release destroys it
	return nil
}
