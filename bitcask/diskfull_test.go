package bitcask

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// A full disk is not the end of the engine: a flush that fails part way
// keeps what it wrote and the rest of the buffer, reads find every record
// (one may lie half in the file and half in the buffer), a Sync reports the
// failure while it lasts, and once space is back the next flush writes the
// rest, without a reopen. A rotation that cannot create the next file
// leaves none behind and appends to the old one. Under a node, whose commit log holds the
// writes, this keeps a full disk from failing the node for good.
func TestDiskFullFlushRetried(t *testing.T) {
	for seed := range uint64(6) {
		mem := newMem(t)
		full := vfs.NewDiskFull()
		efs := vfs.NewErrorFS(mem, full)
		efs.SetShortWrites(rand.New(rand.NewPCG(seed, 9)))
		db := openMem(t, efs, Options{BufferSize: 256, MaxFileSize: 2 << 10, DisableAutoMerge: true})
		want := map[string]string{}
		set := func(i int) error {
			k, v := kv(i)
			err := db.Set([]byte(k), []byte(v), nil)
			if err == nil {
				want[k] = v
			}
			return err
		}
		for i := range 50 {
			require.NoError(t, set(i))
		}
		require.NoError(t, db.Sync())

		full.Fill()
		for i := 50; i < 120; i++ {
			require.NoError(t, set(i), "seed %d: the write is applied and buffered", seed)
		}
		require.Positive(t, full.Failed(), "flushes failed meanwhile")
		require.ErrorIs(t, db.Sync(), syscall.ENOSPC)
		for k, v := range want {
			got, err := db.Get([]byte(k))
			require.NoError(t, err, "seed %d key %s", seed, k)
			require.Equal(t, v, string(got))
		}

		full.Free()
		require.NoError(t, db.Sync(), "written once space is back")
		for i := 120; i < 200; i++ {
			require.NoError(t, set(i), "rotations work again")
		}
		require.NoError(t, set(500))
		require.NoError(t, db.Close())

		db = openMem(t, mem, Options{})
		for k, v := range want {
			requireValue(t, db, k, v)
		}
		n := 0
		it, err := db.NewIter(nil)
		require.NoError(t, err)
		for range logkv.All(it) {
			n++
		}
		require.NoError(t, it.Close())
		require.Equal(t, len(want), n, fmt.Sprint("seed ", seed))
		require.NoError(t, db.Close())
	}
}
