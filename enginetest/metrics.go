package enginetest

import (
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

func testMetrics(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("counters", func(t *testing.T) {
		h := newHarness(t, open, caps)
		e := h.e
		m0 := e.Metrics()
		type delta struct{ gets, writes, ops, bytes uint64 }
		check := func(what string, d delta) {
			t.Helper()
			m := e.Metrics()
			require.Equal(t, d.gets, m.Gets-m0.Gets, "%s: Gets counts Get calls on the engine and its snapshots", what)
			require.Equal(t, d.writes, m.Writes-m0.Writes, "%s: Writes counts committed batches", what)
			require.Equal(t, d.ops, m.WriteOps-m0.WriteOps, "%s: WriteOps counts operations of committed batches", what)
			require.Equal(t, d.bytes, m.BytesWritten-m0.BytesWritten, "%s: BytesWritten counts key and value bytes of committed operations", what)
			require.GreaterOrEqual(t, m.Keys, int64(0), "%s: Keys", what)
			require.GreaterOrEqual(t, m.DiskBytes, int64(0), "%s: DiskBytes", what)
			require.GreaterOrEqual(t, m.MemBytes, int64(0), "%s: MemBytes", what)
		}
		check("a new engine", delta{})
		set(t, e, "ab", "xyz")
		check("one Set", delta{0, 1, 1, 5})
		del(t, e, "ab")
		check("a Delete", delta{0, 2, 2, 7})
		var bt logkv.Batch
		bt.Set([]byte("k1"), []byte("v1"))
		bt.Set([]byte("k2"), []byte(""))
		bt.Delete([]byte("k3"))
		require.NoError(t, e.Apply(&bt, nil))
		check("a batch of three", delta{0, 3, 5, 7 + 4 + 2 + 2})
		var empty logkv.Batch
		require.NoError(t, e.Apply(&empty, nil))
		require.ErrorIs(t, e.Set(nil, []byte("v"), nil), logkv.ErrEmptyKey)
		require.ErrorIs(t, e.Set([]byte("x"), []byte("v"), wo(false, 1)), logkv.ErrSeqNotIncreasing)
		check("an empty batch and rejected writes", delta{0, 3, 5, 15})
		_, _ = e.Get([]byte("k1"))
		_, _ = e.Get([]byte("absent"))
		check("two Gets", delta{2, 3, 5, 15})
		s, err := e.NewSnapshot()
		require.NoError(t, err)
		_, _ = s.Get([]byte("k1"))
		require.NoError(t, s.Close())
		check("a snapshot Get", delta{3, 3, 5, 15})
	})
}
