package bitcask

import "github.com/logkv/logkv"

// AppendKeys appends to keys, in order, up to limit keys of the live keydir
// in [lower, upper) (a nil bound is no bound), copying their bytes into
// arena, and returns both. A key appended points into the returned arena,
// so it stays valid until the caller reuses the arena.
//
// It reads the keydir as it is, under the keydir's read lock for the call
// only: it takes no snapshot, so a key written or deleted between two
// calls is seen as of the second. That is its point. A snapshot (NewIter,
// NewSnapshot) clones the keydir in O(1), but the keydir then counts every
// node older than the clone as shared, so each write after it copies the
// path it changes (a 2 KiB leaf and its parents) once more. kvnode's active
// expirer walks its deadline index in cycles every few milliseconds; one
// iterator a cycle made nearly every delete of a mass expiry copy its path,
// under the keydir's write lock, which GETs wait for (issue #15). A walk
// that tolerates seeing changes between pages uses AppendKeys instead.
func (db *DB) AppendKeys(keys [][]byte, arena []byte, lower, upper []byte, limit int) ([][]byte, []byte, error) {
	if db.closed.Load() {
		return keys, arena, logkv.ErrClosed
	}
	if limit <= 0 {
		return keys, arena, nil
	}
	var begins []int // where each appended key begins in arena, which may move as it grows
	db.kmu.RLock()
	ti := treeIter{t: db.tree}
	for ok := ti.seekGE(unsafeString(lower)); ok && len(begins) < limit; ok = ti.next() {
		begin := len(arena)
		arena = ti.appendKey(arena)
		if upper != nil && string(arena[begin:]) >= string(upper) {
			arena = arena[:begin]
			break
		}
		begins = append(begins, begin)
	}
	db.kmu.RUnlock()
	for i, begin := range begins {
		end := len(arena)
		if i+1 < len(begins) {
			end = begins[i+1]
		}
		keys = append(keys, arena[begin:end:end])
	}
	return keys, arena, nil
}
