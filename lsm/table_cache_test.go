package lsm

import (
	"fmt"
	"sync"
	"testing"

	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/lsm/internal/sstable"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// writeTestTables writes n one-key tables (key "k<i>" = "v<i>") to fs and
// returns their metas.
func writeTestTables(t *testing.T, fs vfs.FS, n int) []*manifest.FileMeta {
	var metas []*manifest.FileMeta
	for i := range n {
		num := uint64(i + 1)
		f, err := fs.Create(joinPath("db", tableName(num)))
		require.NoError(t, err)
		w := sstable.NewWriter(f, sstable.WriterOptions{})
		require.NoError(t, w.Add(base.AppendInternalKey(nil, fmt.Appendf(nil, "k%d", i), 1, base.KindSet), fmt.Appendf(nil, "v%d", i)))
		m, err := w.Close()
		require.NoError(t, err)
		metas = append(metas, &manifest.FileMeta{Num: num, Size: m.Size, Smallest: m.Smallest, Largest: m.Largest})
	}
	return metas
}

// TestTableCacheLockFree checks the lock-free lookup: a second get of an
// open table is the same entry, an evicted entry leaves the lookup and is
// closed once unused (never handed out again), and the next get reopens.
func TestTableCacheLockFree(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAll("db", 0o755))
	metas := writeTestTables(t, fs, 3)
	c := newTableCache(fs, "db", nil, 2)
	defer c.close()

	e1, err := c.get(metas[0])
	require.NoError(t, err)
	c.release(e1)
	again, err := c.get(metas[0])
	require.NoError(t, err)
	require.Same(t, e1, again, "an open table is found again")
	require.Equal(t, int32(2), e1.refs.Load(), "the map's reference and ours")
	c.release(again)

	// Two more tables in a cache of two: the first, least recently used,
	// goes, and with no user left it closes.
	for _, f := range metas[1:] {
		e, err := c.get(f)
		require.NoError(t, err)
		c.release(e)
	}
	require.True(t, e1.evicted)
	require.Zero(t, e1.refs.Load())
	require.False(t, e1.tryRef(), "a closed entry takes no reference")
	require.Nil(t, c.recent[metas[0].Num%tableRecentSlots].Load())

	e, err := c.get(metas[0])
	require.NoError(t, err)
	require.NotSame(t, e1, e, "an evicted table is opened again")
	v, _, ok, err := e.r.Get([]byte("k0"), 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "v0", string(v))
	c.release(e)
}

// TestTableCacheConcurrent runs Gets through the cache against evictions
// (more tables than its capacity, and explicit evicts as compaction does):
// no Get may meet a closed reader. Run it with -race.
func TestTableCacheConcurrent(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAll("db", 0o755))
	metas := writeTestTables(t, fs, 6)
	c := newTableCache(fs, "db", nil, 3)
	defer c.close()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				j := (i*7 + g) % len(metas)
				if g == 0 && i%50 == 0 {
					c.evict(metas[j].Num)
					continue
				}
				e, err := c.get(metas[j])
				if err != nil {
					t.Error(err)
					return
				}
				v, _, ok, err := e.r.Get(fmt.Appendf(nil, "k%d", j), 1)
				c.release(e)
				if err != nil || !ok || string(v) != fmt.Sprintf("v%d", j) {
					t.Errorf("table %d: %q %v %v", j, v, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
