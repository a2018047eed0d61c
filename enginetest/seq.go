package enginetest

import (
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

func testSeq(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("assigned", func(t *testing.T) {
		h := newHarness(t, open, caps)
		e := h.e
		require.Equal(t, uint64(0), e.LastSeq())
		set(t, e, "a", "1")
		require.Equal(t, uint64(1), e.LastSeq(), "after the first Set")
		del(t, e, "absent")
		require.Equal(t, uint64(2), e.LastSeq(), "a Delete of an absent key is a committed batch too")
		del(t, e, "a")
		require.Equal(t, uint64(3), e.LastSeq(), "after Delete")
		var bt logkv.Batch
		bt.Set([]byte("b"), []byte("2"))
		bt.Set([]byte("c"), []byte("3"))
		bt.Delete([]byte("d"))
		require.NoError(t, e.Apply(&bt, nil))
		require.Equal(t, uint64(4), e.LastSeq(), "a batch of three takes one sequence number")
		require.NoError(t, e.Set([]byte("e"), []byte("5"), wo(true, 0)))
		require.Equal(t, uint64(5), e.LastSeq(), "after a synced Set")
		require.NoError(t, e.Set([]byte("f"), []byte("6"), &logkv.WriteOptions{}))
		require.Equal(t, uint64(6), e.LastSeq(), "after a Set with zero WriteOptions")
	})

	t.Run("caller-given", func(t *testing.T) {
		h := newHarness(t, open, caps)
		e := h.e
		require.NoError(t, e.Set([]byte("a"), []byte("1"), wo(false, 10)), "Seq 10 on an empty engine")
		require.Equal(t, uint64(10), e.LastSeq())
		require.NoError(t, e.Set([]byte("b"), []byte("2"), wo(true, 11)), "the next Seq")
		require.Equal(t, uint64(11), e.LastSeq())
		require.NoError(t, e.Delete([]byte("a"), wo(false, 20)), "a gap")
		require.Equal(t, uint64(20), e.LastSeq())
		var bt logkv.Batch
		bt.Set([]byte("c"), []byte("3"))
		require.NoError(t, e.Apply(&bt, wo(false, 25)))
		require.Equal(t, uint64(25), e.LastSeq())
		set(t, e, "d", "4")
		require.Equal(t, uint64(26), e.LastSeq(), "an assigned Seq after a given one")
		big := uint64(1) << 48
		require.NoError(t, e.Set([]byte("e"), []byte("5"), wo(false, big)), "a large gap")
		require.Equal(t, big, e.LastSeq())
		set(t, e, "f", "6")
		require.Equal(t, big+1, e.LastSeq())
		want := state{"b": "2", "c": "3", "d": "4", "e": "5", "f": "6"}
		requireState(t, e, want)
		if caps.Durable {
			h.reopen()
			require.Equal(t, big+1, h.e.LastSeq(), "LastSeq after reopen")
			requireState(t, h.e, want, "after reopen")
			set(t, h.e, "g", "7")
			require.Equal(t, big+2, h.e.LastSeq(), "the first assigned Seq after reopen")
		}
	})

	t.Run("not-increasing-rejected", func(t *testing.T) {
		h := newHarness(t, open, caps)
		e := h.e
		require.NoError(t, e.Set([]byte("a"), []byte("1"), wo(false, 100)))
		set(t, e, "b", "2") // 101
		want := state{"a": "1", "b": "2"}
		var bt logkv.Batch
		bt.Set([]byte("a"), []byte("changed"))
		bt.Set([]byte("z"), []byte("new"))
		var empty logkv.Batch
		for _, seq := range []uint64{101, 100, 50, 1} {
			for _, sync := range []bool{false, true} {
				o := wo(sync, seq)
				require.ErrorIs(t, e.Set([]byte("a"), []byte("x"), o), logkv.ErrSeqNotIncreasing, "Set with Seq %d after 101", seq)
				require.ErrorIs(t, e.Set([]byte("new"), []byte("x"), o), logkv.ErrSeqNotIncreasing, "Set with Seq %d after 101", seq)
				require.ErrorIs(t, e.Delete([]byte("a"), o), logkv.ErrSeqNotIncreasing, "Delete with Seq %d after 101", seq)
				require.ErrorIs(t, e.Apply(&bt, o), logkv.ErrSeqNotIncreasing, "Apply with Seq %d after 101", seq)
				require.ErrorIs(t, e.Apply(&empty, o), logkv.ErrSeqNotIncreasing, "Apply of an empty batch with Seq %d after 101: the Seq is still checked", seq)
				require.Equal(t, uint64(101), e.LastSeq())
				requireState(t, e, want, "after writes rejected for their Seq")
			}
		}
		// An empty batch with a valid Seq commits nothing and consumes none.
		require.NoError(t, e.Apply(&empty, wo(false, 200)), "empty batch with a valid Seq")
		require.Equal(t, uint64(101), e.LastSeq(), "an empty batch with a given Seq consumed it")
		set(t, e, "c", "3")
		require.Equal(t, uint64(102), e.LastSeq())
		want["c"] = "3"
		if caps.Durable {
			h.reopen()
			require.Equal(t, uint64(102), h.e.LastSeq(), "after reopen")
			require.ErrorIs(t, h.e.Set([]byte("a"), []byte("x"), wo(false, 102)), logkv.ErrSeqNotIncreasing, "after reopen")
			requireState(t, h.e, want, "after reopen")
		}
	})
}
