package sstable

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// Random values stop costing compression work after a few blocks, and
// compressible values that follow are compressed again.
func TestCompressionEarlyAbort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var entries []kv
	const half = 4000
	for i := range 2 * half {
		v := make([]byte, 100)
		if i < half {
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
		} else {
			copy(v, bytes.Repeat([]byte("abcd"), 25))
		}
		entries = append(entries, kv{key: base.AppendInternalKey(nil, []byte(fmt.Sprintf("key%06d", i)), uint64(i+1), base.KindSet), value: v})
	}
	fs := vfs.NewMem()
	f, err := fs.Create("t.sst")
	require.NoError(t, err)
	w := NewWriter(f, WriterOptions{BlockSize: 4096, Compression: S2})
	blocks := func() uint64 { return w.compressions[None] + w.compressions[S2] }
	for _, e := range entries[:half] {
		require.NoError(t, w.Add(e.key, e.value))
	}
	randomBlocks, randomProbes := blocks(), w.probes
	require.Greater(t, randomBlocks, uint64(100))
	require.Less(t, randomProbes, int(randomBlocks)/4, "%d probes for %d incompressible blocks", randomProbes, randomBlocks)
	require.Zero(t, w.compressions[S2])
	for _, e := range entries[half:] {
		require.NoError(t, w.Add(e.key, e.value))
	}
	compressible := blocks() - randomBlocks
	require.Greater(t, w.compressions[S2]+earlyAbortMaxSkip, compressible, "compression resumes within one skip")
	_, err = w.Close()
	require.NoError(t, err)

	r := openTable(t, fs, "t.sst", ReaderOptions{Cache: NewCache(1 << 20), FileNum: 1})
	it := r.NewIter(nil, nil)
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		require.Equal(t, entries[i].key, it.Key())
		require.Equal(t, entries[i].value, it.Value())
		i++
	}
	require.NoError(t, it.Close())
	require.Equal(t, len(entries), i)
}
