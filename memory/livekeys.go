package memory

import (
	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/ordtree"
)

// AppendKeys appends to keys, in order, up to limit keys of the live tree
// in [lower, upper) (a nil bound is no bound), copying their bytes into
// arena, and returns both. A key appended points into the returned arena,
// so it stays valid until the caller reuses the arena.
//
// It reads the tree as it is, under the read lock for the call only, and
// takes no snapshot, so a key written or deleted between two calls is seen
// as of the second. That is its point: while a snapshot or iterator is
// open, every write copies the tree path it changes (the nodes the view
// shares) and retires the record it replaces. kvnode's active expirer
// walks its deadline index with one reader per cycle, a cycle every few
// milliseconds, and deletes keys all over the tree meanwhile: with an
// iterator, nearly every delete of a mass expiry copied a leaf and its
// parents (issue #15). A walk that tolerates seeing changes between pages
// uses AppendKeys instead (bitcask.DB.AppendKeys is the same for its
// keydir).
func (db *DB) AppendKeys(keys [][]byte, arena []byte, lower, upper []byte, limit int) ([][]byte, []byte, error) {
	if limit <= 0 {
		return keys, arena, nil
	}
	db.mu.RLock()
	if db.closed.Load() {
		db.mu.RUnlock()
		return keys, arena, logkv.ErrClosed
	}
	var c ordtree.Iter[val]
	c.Reset(db.t.Current())
	// The keys' lengths for now (nothing pointing into the tree's records
	// outlives the lock); their places once arena has stopped moving.
	var lensBuf [128]int
	lens := lensBuf[:0]
	for ok := c.SeekGE(unsafeString(lower)); ok && len(lens) < limit; ok = c.Next() {
		k := c.Value().key()
		if upper != nil && string(k) >= string(upper) {
			break
		}
		arena = append(arena, k...)
		lens = append(lens, len(k))
	}
	db.mu.RUnlock()
	begin := len(arena)
	for _, n := range lens {
		begin -= n
	}
	for _, n := range lens {
		keys = append(keys, arena[begin:begin+n:begin+n])
		begin += n
	}
	return keys, arena, nil
}
