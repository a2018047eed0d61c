package enginetest

import (
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

func testClosed(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("every-method", func(t *testing.T) {
		h := newHarness(t, open, caps)
		e := h.e
		set(t, e, "k", "v")
		set(t, e, "k2", "v2")
		seq := e.LastSeq()
		m := e.Metrics()
		require.NoError(t, e.Close(), "first Close")

		_, err := e.Get([]byte("k"))
		require.ErrorIs(t, err, logkv.ErrClosed, "Get after Close")
		_, err = e.Get([]byte("absent"))
		require.ErrorIs(t, err, logkv.ErrClosed, "Get of an absent key after Close")
		require.ErrorIs(t, e.Set([]byte("k"), []byte("x"), nil), logkv.ErrClosed, "Set after Close")
		require.ErrorIs(t, e.Set([]byte("k"), []byte("x"), wo(true, seq+1)), logkv.ErrClosed, "synced Set with a Seq after Close")
		require.ErrorIs(t, e.Delete([]byte("k"), nil), logkv.ErrClosed, "Delete after Close")
		var bt logkv.Batch
		bt.Set([]byte("k"), []byte("x"))
		require.ErrorIs(t, e.Apply(&bt, nil), logkv.ErrClosed, "Apply after Close")
		it, err := e.NewIter(nil)
		if err == nil {
			_ = it.Close()
		}
		require.ErrorIs(t, err, logkv.ErrClosed, "NewIter after Close")
		s, err := e.NewSnapshot()
		if err == nil {
			_ = s.Close()
		}
		require.ErrorIs(t, err, logkv.ErrClosed, "NewSnapshot after Close")
		require.ErrorIs(t, e.Sync(), logkv.ErrClosed, "Sync after Close")

		require.Equal(t, seq, e.LastSeq(), "LastSeq keeps answering after Close")
		m2 := e.Metrics()
		require.Equal(t, m.Writes, m2.Writes, "Metrics keep answering after Close")
		require.Equal(t, m.WriteOps, m2.WriteOps, "Metrics keep answering after Close")

		requireClosedOK(t, e.Close(), "second engine Close")
		requireClosedOK(t, e.Close(), "third engine Close")

		if caps.Durable {
			// The writes refused after Close must not have reached the disk.
			h.e = open(t, h.dir)
			require.Equal(t, seq, h.e.LastSeq(), "after reopen")
			requireState(t, h.e, state{"k": "v", "k2": "v2"}, "after reopen")
		}
	})

	t.Run("close-empty", func(t *testing.T) {
		h := newHarness(t, open, caps)
		require.NoError(t, h.e.Close(), "Close of an engine never written")
		requireClosedOK(t, h.e.Close(), "second Close")
		if caps.Durable {
			h.e = open(t, h.dir)
			require.Equal(t, uint64(0), h.e.LastSeq())
			requireState(t, h.e, state{})
		}
	})
}
