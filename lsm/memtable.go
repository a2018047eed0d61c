package lsm

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/lsm/internal/skiplist"
)

// memTable is an in-memory sorted run of internal keys: the arena skiplist
// and a hash index over it for point lookups, plus the WAL segment that
// holds its writes and the newest seq it holds.
// The mutable memtable takes the commit path's inserts (one writer at a
// time); once full it is frozen (immutable) and flushed to an L0 table.
//
// # The index is built by the reads, off the write path
//
// The hash index costs each entry it takes a cache miss: a line of a table
// of megabytes, which, written by the commit path, also evicted a line of
// the skiplist the next insert's search needed. A kvnode lsm SET took 5-9%
// more CPU with the writer keeping the index than with the 256 KiB bloom
// filter it replaced (docs/point-reads.md has the evidence). So the writer
// never touches the index: the Gets build it, walking the arena in
// insertion order from indexed (catchUp), and until it covers every entry
// a Get may see, a Get searches the skiplist, as an index-less memtable
// does. A memtable nobody reads is never indexed, and one flushed before
// the reads come never is either.
//
// How much a Get indexes is a rent-or-buy choice. Indexing an entry costs
// about one cache miss, a search about twenty: a search is worth
// catchUpCredit entries. A memtable no write changed since a Get last looked
// (immutable, or idle between a write phase and a read phase) is indexed
// catchUpNodes entries a Get until done. A memtable being written is
// indexed only when the entries missing from the index cost no more than
// the searches the Gets made while they were missing, plus the one this
// Get would make: then the index keeps up with a write rate up to about
// catchUpCredit writes a Get, as when the writer kept it, and past that
// rate no Get indexes what the writes outrun, paying only its search.
type memTable struct {
	sl     *skiplist.Skiplist
	index  *memIndex     // user key -> its newest node, so a Get skips the search
	logNum uint64        // WAL segment of its writes (0 with DisableWAL)
	maxSeq atomic.Uint64 // newest seq inserted
	ikey   []byte        // scratch for building internal keys (writer only)
	dups   dupFinder     // writer only
	// apply's run of inserts (writer only): the internal keys' ends in
	// ikey, the keys sliced from it, the values.
	runEnds   [skiplist.MaxBatch]int
	runKeys   [skiplist.MaxBatch][]byte
	runValues [skiplist.MaxBatch][]byte

	indexMu   sync.Mutex    // held by the Get writing the index (TryLock: the others search)
	indexed   atomic.Uint32 // every node starting below this arena offset is in the index
	indexKeys atomic.Int64  // the index's distinct keys, for the successor's reserve
	keysHint  int           // the predecessor's indexed keys, to size the index once (set before publication)
	// Under indexMu:
	nIndexed int    // entries in the index (duplicates of a key included)
	seen     uint32 // the arena size the last Get that took indexMu saw
	credit   int    // searches made since the last catch-up, in entries (catchUpCredit each)
}

const (
	// catchUpNodes bounds the entries one Get indexes: a Get that finds a
	// whole memtable unindexed (8 MiB of 16-byte keys is 150,000 entries,
	// tens of milliseconds) shares the work with the Gets after it, which
	// search meanwhile.
	catchUpNodes = 4096
	// catchUpCredit is a skiplist search's cost in index inserts, at the
	// low end: in a full 8 MiB memtable of 16-byte keys a search took
	// 2.0-2.5 us and an insert 40-90 ns (BenchmarkMemtableGet's
	// search/present, BenchmarkMemtableCatchUp; docs/point-reads.md).
	catchUpCredit = 32
)

func newMemTable(size int64, logNum uint64) *memTable {
	m := &memTable{sl: skiplist.New(int(size)), index: newMemIndex(size), logNum: logNum}
	m.indexed.Store(m.sl.FirstNode())
	m.seen = m.sl.FirstNode()
	return m
}

// get returns the newest version of ukey with seq <= seq, as
// skiplist.Get. The index answers when the key is absent or its newest
// entry is visible at seq; only an older read (a snapshot, or a reader
// overtaken by a write of its key) searches the list, and so does a read
// while the index does not yet cover every entry it may see.
func (m *memTable) get(ukey []byte, seq uint64) (value []byte, kind base.Kind, found bool) {
	// Every entry visible at seq was whole, and counted in Size, before
	// seq was published, so an index that covers Size covers them.
	if need := uint32(m.sl.Size()); m.indexed.Load() < need && !m.catchUp(need) {
		return m.sl.Get(ukey, seq)
	}
	nd := m.index.find(ukey, m.sl)
	if nd == 0 {
		return nil, 0, false
	}
	if ik := m.sl.NodeKey(nd); base.Seq(ik) <= seq {
		return m.sl.NodeValue(nd), base.KindOf(ik), true
	}
	return m.sl.Get(ukey, seq)
}

// catchUp indexes entries not yet in the index, as much as the rent-or-buy
// rule above allows, unless another Get is writing the index. It reports
// whether the index now covers every node below need.
func (m *memTable) catchUp(need uint32) bool {
	if !m.indexMu.TryLock() {
		return false
	}
	defer m.indexMu.Unlock()
	idle := need == m.seen
	m.seen = need
	if missing := int(m.sl.Len()) - m.nIndexed; !idle && missing > m.credit+catchUpCredit {
		m.credit += catchUpCredit // this Get searches
		return false
	}
	m.credit = max(m.credit-m.catchUpLocked(catchUpNodes), 0)
	return m.indexed.Load() >= need
}

// catchUpLocked indexes up to limit of the entries added since indexed,
// and returns how many it indexed. The caller holds indexMu.
func (m *memTable) catchUpLocked(limit int) int {
	nd, end := m.indexed.Load(), uint32(m.sl.Size())
	if nd >= end {
		return 0
	}
	if m.nIndexed == 0 {
		m.index.reserve(max(int(m.sl.Len()), m.keysHint))
	}
	n := 0
	for ; nd < end && n < limit; n++ {
		ukey := base.UserKey(m.sl.NodeKey(nd))
		m.index.insert(ukey, m.index.tag(ukey), nd, m.sl)
		nd = m.sl.NodeEnd(nd)
	}
	m.nIndexed += n
	m.indexKeys.Store(int64(m.index.keys))
	// After the inserts: a Get that loads indexed finds them in the table
	// it loads next.
	m.indexed.Store(nd)
	return n
}

// memBytes is the memory the memtable holds: its arena in use and its
// index.
func (m *memTable) memBytes() int64 { return m.sl.Size() + m.index.sizeBytes() }

// entryBound is an upper bound on the arena bytes one operation takes beyond
// its key and value.
const entryBound = skiplist.MaxNodeOverhead + base.TrailerSize

// roomFor reports whether the memtable can take a batch of the given encoded
// size and count, at worst.
func (m *memTable) roomFor(size, count int) bool {
	return m.sl.Size()+int64(size)+int64(count*entryBound) <= m.sl.Capacity() && m.index.roomFor(int(m.sl.Len())+count)
}

// apply inserts every operation of b at seq. The caller checked roomFor and
// holds the commit lock. Within a batch a later operation on a key overrides
// an earlier one: both would get the same internal key, so the earlier is
// skipped. It returns the key and value bytes of b's operations.
//
// A batch of more than one operation goes to the skiplist in runs of
// skiplist.MaxBatch (AddBatch), whose searches overlap their cache misses.
func (m *memTable) apply(b *logkv.Batch, seq uint64) (int, error) {
	if b.Len() == 1 {
		r := b.Reader()
		kind, key, value, _ := r.Next()
		if !m.index.roomFor(int(m.sl.Len()) + 1) {
			return len(key) + len(value), skiplist.ErrFull // roomFor said no; the caller checks it
		}
		m.ikey = base.AppendInternalKey(m.ikey[:0], key, seq, baseKind(kind))
		if _, err := m.sl.AddNode(m.ikey, value); err != nil {
			return len(key) + len(value), err
		}
		m.noteSeq(seq)
		return len(key) + len(value), nil
	}
	skip := m.dups.find(b)
	r := b.Reader()
	n := 0
	for i := 0; ; {
		// A run: up to MaxBatch operations not skipped, their internal
		// keys one after the other in m.ikey.
		run := 0
		m.ikey = m.ikey[:0]
		for run < skiplist.MaxBatch {
			kind, key, value, ok := r.Next()
			if !ok {
				break
			}
			n += len(key) + len(value)
			i++
			if skip != nil && skip[i-1] {
				continue
			}
			m.ikey = base.AppendInternalKey(m.ikey, key, seq, baseKind(kind))
			m.runEnds[run], m.runValues[run] = len(m.ikey), value
			run++
		}
		if run == 0 {
			break
		}
		if !m.index.roomFor(int(m.sl.Len()) + run) {
			return n, skiplist.ErrFull // roomFor said no; the caller checks it
		}
		for j, start := 0, 0; j < run; j++ {
			m.runKeys[j] = m.ikey[start:m.runEnds[j]:m.runEnds[j]]
			start = m.runEnds[j]
		}
		_, err := m.sl.AddBatch(m.runKeys[:run], m.runValues[:run])
		clear(m.runValues[:run]) // do not pin the batch's buffer
		if err != nil {
			return n, err
		}
	}
	m.noteSeq(seq)
	return n, nil
}

// noteSeq records that the memtable holds seq.
func (m *memTable) noteSeq(seq uint64) {
	if seq > m.maxSeq.Load() {
		m.maxSeq.Store(seq)
	}
}

// baseKind is the internal key kind of a batch operation's kind.
func baseKind(kind logkv.Kind) base.Kind {
	if kind == logkv.KindDelete {
		return base.KindDelete
	}
	return base.KindSet
}

// dupFinder finds the operations of a batch that a later operation on the
// same key overrides. It keeps its tables between batches, so that the
// commit path allocates nothing for it: a server that turns a client's
// pipeline into one batch calls it on every commit. It belongs to the one
// writer at a time of the memtable.
type dupFinder struct {
	seed  maphash.Seed
	keys  [][]byte
	slots []int32 // open addressing: index into keys + 1, 0 when empty
	skip  []bool
}

// dupFinderKeep bounds the slots a dupFinder keeps for the next batch.
const dupFinderKeep = 1 << 16

// find returns, for each operation of b, whether a later operation has the
// same key, or nil when no key repeats. The result is valid until the next
// call.
func (d *dupFinder) find(b *logkv.Batch) []bool {
	if d.seed == (maphash.Seed{}) {
		d.seed = maphash.MakeSeed()
	}
	d.keys = d.keys[:0]
	r := b.Reader()
	for {
		_, key, _, ok := r.Next()
		if !ok {
			break
		}
		d.keys = append(d.keys, key)
	}
	size := 16
	for size < 2*len(d.keys) {
		size *= 2
	}
	slots := d.slots
	if cap(slots) < size {
		slots = make([]int32, size)
		if size <= dupFinderKeep {
			d.slots = slots
		}
	} else {
		slots = slots[:size]
		clear(slots)
	}
	mask := uint64(size - 1)
	var skip []bool
	for i, key := range d.keys {
		for j := maphash.Bytes(d.seed, key) & mask; ; j = (j + 1) & mask {
			s := slots[j]
			if s == 0 {
				slots[j] = int32(i + 1)
				break
			}
			if string(d.keys[s-1]) == string(key) {
				if skip == nil {
					if cap(d.skip) < len(d.keys) {
						d.skip = make([]bool, len(d.keys))
					}
					skip = d.skip[:len(d.keys)]
					clear(skip)
				}
				skip[s-1] = true
				slots[j] = int32(i + 1)
				break
			}
		}
	}
	clear(d.keys) // do not pin the batch's buffer
	if len(d.keys) > dupFinderKeep {
		d.keys, d.skip = nil, nil
	}
	return skip
}

func (m *memTable) empty() bool { return m.sl.Empty() }

// memIter adapts a skiplist iterator to internalIter.
type memIter struct{ skiplist.Iter }

func (m *memTable) newIter() *memIter { return &memIter{*m.sl.NewIter()} }

func (it *memIter) Error() error { return nil }
func (it *memIter) Close() error { return nil }
