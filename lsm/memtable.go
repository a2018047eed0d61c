package lsm

import (
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/lsm/internal/skiplist"
)

// memTable is an in-memory sorted run of internal keys: the arena skiplist,
// plus the WAL segment that holds its writes and the newest seq it holds.
// The mutable memtable takes the commit path's inserts (one writer at a
// time); once full it is frozen (immutable) and flushed to an L0 table.
type memTable struct {
	sl     *skiplist.Skiplist
	logNum uint64        // WAL segment of its writes (0 with DisableWAL)
	maxSeq atomic.Uint64 // newest seq inserted
	ikey   []byte        // scratch for building internal keys (writer only)
}

func newMemTable(size int64, logNum uint64) *memTable {
	return &memTable{sl: skiplist.New(int(size)), logNum: logNum}
}

// entryBound is an upper bound on the arena bytes one operation takes beyond
// its key and value.
const entryBound = skiplist.MaxNodeOverhead + base.TrailerSize

// roomFor reports whether the memtable can take a batch of the given encoded
// size and count, at worst.
func (m *memTable) roomFor(size, count int) bool {
	return m.sl.Size()+int64(size)+int64(count*entryBound) <= m.sl.Capacity()
}

// apply inserts every operation of b at seq. The caller checked roomFor and
// holds the commit lock. Within a batch a later operation on a key overrides
// an earlier one: both would get the same internal key, so the earlier is
// skipped. It returns the key and value bytes of b's operations.
func (m *memTable) apply(b *logkv.Batch, seq uint64) (int, error) {
	var skip map[int]bool
	if b.Len() > 1 {
		skip = duplicates(b)
	}
	r := b.Reader()
	n := 0
	for i := 0; ; i++ {
		kind, key, value, ok := r.Next()
		if !ok {
			break
		}
		n += len(key) + len(value)
		if skip[i] {
			continue
		}
		k := base.KindSet
		if kind == logkv.KindDelete {
			k = base.KindDelete
		}
		m.ikey = base.AppendInternalKey(m.ikey[:0], key, seq, k)
		if err := m.sl.Add(m.ikey, value); err != nil {
			return n, err
		}
	}
	if seq > m.maxSeq.Load() {
		m.maxSeq.Store(seq)
	}
	return n, nil
}

// duplicates returns the indexes of operations overridden by a later one on
// the same key, or nil if there are none.
func duplicates(b *logkv.Batch) map[int]bool {
	r := b.Reader()
	n := b.Len()
	if n <= 8 {
		var keys [8][]byte
		var skip map[int]bool
		for i := 0; i < n; i++ {
			_, key, _, _ := r.Next()
			keys[i] = key
			for j := 0; j < i; j++ {
				if string(keys[j]) == string(key) {
					if skip == nil {
						skip = map[int]bool{}
					}
					skip[j] = true
				}
			}
		}
		return skip
	}
	last := make(map[string]int, n)
	var skip map[int]bool
	for i := 0; i < n; i++ {
		_, key, _, _ := r.Next()
		if j, ok := last[string(key)]; ok {
			if skip == nil {
				skip = map[int]bool{}
			}
			skip[j] = true
		}
		last[string(key)] = i
	}
	return skip
}

func (m *memTable) empty() bool { return m.sl.Empty() }

// memIter adapts a skiplist iterator to internalIter.
type memIter struct{ skiplist.Iter }

func (m *memTable) newIter() *memIter { return &memIter{*m.sl.NewIter()} }

func (it *memIter) Error() error { return nil }
func (it *memIter) Close() error { return nil }
