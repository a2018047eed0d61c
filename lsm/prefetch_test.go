package lsm

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/enginetest"
	"github.com/stretchr/testify/require"
)

// TestPrefetchConcurrent: enginetest.PrefetchStress on a DB of small
// memtables and tables, whose churn flushes the memtable (every flush adds
// a level-0 table, and compactions follow, retiring the tables Prefetch
// reads), then Close. Run it with -race.
func TestPrefetchConcurrent(t *testing.T) {
	db, err := Open(t.TempDir(), &Options{MemtableSize: 64 << 10, TargetFileSize: 16 << 10, LBaseMaxBytes: 64 << 10})
	require.NoError(t, err)
	run := 2 * time.Second
	if testing.Short() || raceEnabled {
		run = 500 * time.Millisecond
	}
	enginetest.PrefetchStress(t, db, run, func() (bool, error) {
		if err := db.flushAll(); err != nil {
			return false, err
		}
		return db.m.compactions.Load() > 0, nil
	})
	require.Positive(t, db.m.compactions.Load(), "no compaction ran")
}

// BenchmarkPrefetch measures what Prefetch saves a pipeline of Gets, as
// bitcask's and memory's do (enginetest.PrefetchGets): random hits in
// groups of 16, each group read by 16 AppendGets one after another (gets),
// or by a Prefetch of its 16 keys then the 16 AppendGets (prefetch). Two
// DBs of 1M keys: kvnode's (node: BenchmarkNodeGet's fill, 19-byte keys,
// 4-byte values) and db_bench's (dbbench: 16-byte keys, 100-byte values,
// written in random order), compactions done. The modes alternate
// $LSM_PREFETCH_ROUNDS times (default 1) on one fill; an op is one Get,
// cpu-ns/op the process's CPU time a Get (nothing else runs).
func BenchmarkPrefetch(b *testing.B) {
	rounds := 1
	if s := os.Getenv("LSM_PREFETCH_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	for _, shape := range []string{"node", "dbbench"} {
		b.Run(shape, func(b *testing.B) {
			var db *DB
			var n int
			var key func(i int, buf []byte) []byte
			if shape == "node" {
				nodeBench.once.Do(nodeBenchFill)
				require.NoError(b, nodeBench.err)
				db, n = nodeBench.db, len(nodeBench.present)
				key = func(i int, buf []byte) []byte { return nodeBenchKey(buf, nodeBench.present[i]) }
			} else {
				db, n, key = prefetchDBBench(b), readBenchKeys, func(i int, buf []byte) []byte { return fmt.Appendf(buf, "%016d", i) }
			}
			cpu := func() int64 { return cpuTime() }
			for range rounds {
				for _, mode := range []string{"gets", "prefetch"} {
					b.Run(mode, func(b *testing.B) { enginetest.PrefetchGets(b, db, n, key, mode == "prefetch", cpu) })
				}
			}
		})
	}
}

// prefetchDB is BenchmarkPrefetch's db_bench-shaped DB, filled once.
var prefetchDB struct {
	db  *DB
	dir string
}

// prefetchDBBench returns prefetchDB's DB, filling it on the first call:
// readBenchKeys keys in a scattered order, in batches of 16, db_bench's values.
func prefetchDBBench(b *testing.B) *DB {
	if prefetchDB.db != nil {
		return prefetchDB.db
	}
	dir, err := os.MkdirTemp("", "lsm-prefetch-")
	require.NoError(b, err)
	b.Cleanup(func() {
		if prefetchDB.db != nil {
			prefetchDB.db.Close()
			prefetchDB.db = nil
		}
		os.RemoveAll(dir)
	})
	db, err := Open(dir, &Options{DisableWAL: true})
	require.NoError(b, err)
	prefetchDB.db, prefetchDB.dir = db, dir
	vals := newDBBenchValues()
	var batch logkv.Batch
	var k []byte
	for j := range readBenchKeys {
		k = dbBenchKey(k, j*7919%readBenchKeys) // a permutation: 7919 is a prime
		batch.Set(k, vals.next(100))
		if batch.Len() == 16 || j == readBenchKeys-1 {
			require.NoError(b, db.Apply(&batch, nil))
			batch.Reset()
		}
	}
	require.NoError(b, db.flushAll())
	db.waitIdle()
	return db
}

// prefetchTestDB returns a DB of 20,000 keys in several tables, compactions
// done, and 16 of its keys, whose blocks are in the block cache.
func prefetchTestDB(t *testing.T) (*DB, [][]byte) {
	db, err := Open(t.TempDir(), &Options{MemtableSize: 64 << 10})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	keys := make([][]byte, 16)
	for i := range 20000 {
		k := fmt.Appendf(nil, "key:%06d", i*7919%20000)
		require.NoError(t, db.Set(k, k, nil))
		if i%1250 == 0 {
			keys[i/1250] = k
		}
	}
	require.NoError(t, db.flushAll())
	db.waitIdle()
	for _, k := range keys {
		_, err := db.Get(k) // their blocks into the cache
		require.NoError(t, err)
	}
	return db, keys
}

// TestPrefetchAllocatesNothing checks that a Prefetch of 16 keys, over the
// memtable and tables whose blocks are cached, allocates nothing: its
// scratch is pooled and reused (sync.Pool drops items under -race, so the
// check is skipped there).
func TestPrefetchAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	db, keys := prefetchTestDB(t)
	require.Zero(t, testing.AllocsPerRun(100, func() { db.Prefetch(keys) }))
}

// TestPrefetchReleasesTables checks that Prefetch gives back every table
// reference it takes: afterwards each open table holds only the table
// cache's own (a table left referenced would never close once compacted
// away).
func TestPrefetchReleasesTables(t *testing.T) {
	db, keys := prefetchTestDB(t)
	db.Prefetch(keys)
	db.tc.mu.Lock()
	defer db.tc.mu.Unlock()
	require.NotEmpty(t, db.tc.entries)
	for num, e := range db.tc.entries {
		require.EqualValues(t, 1, e.refs.Load(), "table %d", num)
	}
}
