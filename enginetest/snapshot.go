package enginetest

import (
	"fmt"
	"maps"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

func testSnapshot(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("isolation", func(t *testing.T) {
		h := newHarness(t, open, caps)
		before := state{"a": "1", "b": "2", "c": "3", "d": ""}
		fill(t, h.e, before)
		s, err := h.e.NewSnapshot()
		require.NoError(t, err)
		defer func() { require.NoError(t, s.Close(), "snapshot Close") }()
		// An iterator opened on the snapshot before the writes, and one after.
		early := newIterChecker(t, s, before, nil, "snapshot iterator opened before later writes")
		early.step(first)

		set(t, h.e, "a", "1'")   // overwrite
		del(t, h.e, "b")         // delete
		set(t, h.e, "e", "5")    // insert at the end
		set(t, h.e, "0", "0")    // insert at the start
		set(t, h.e, "bb", "new") // insert between
		set(t, h.e, "d", "now")  // overwrite an empty value
		var bt logkv.Batch
		bt.Delete([]byte("c"))
		bt.Set([]byte("b"), []byte("back"))
		bt.Set([]byte("c"), []byte("again"))
		require.NoError(t, h.e.Apply(&bt, nil))
		del(t, h.e, "c")

		requireState(t, s, before, "the snapshot after later writes")
		requireAbsent(t, s, "e", "a key set after the snapshot")
		requireAbsent(t, s, "0", "a key set after the snapshot")
		for _, w := range iterWalks() {
			early.steps(w...)
		}
		early.close()
		late := newIterChecker(t, s, before, &logkv.IterOptions{LowerBound: []byte("a"), UpperBound: []byte("c\x00")}, "snapshot iterator opened after later writes")
		for _, w := range iterWalks() {
			late.steps(w...)
		}
		late.close()
		requireState(t, h.e, state{"0": "0", "a": "1'", "b": "back", "bb": "new", "d": "now", "e": "5"}, "the engine")
	})

	t.Run("seq", func(t *testing.T) {
		h := newHarness(t, open, caps)
		s0, err := h.e.NewSnapshot()
		require.NoError(t, err)
		require.Equal(t, uint64(0), s0.Seq(), "Seq of a snapshot of an empty engine")
		requireState(t, s0, state{})
		set(t, h.e, "a", "1")
		set(t, h.e, "b", "2")
		s1, err := h.e.NewSnapshot()
		require.NoError(t, err)
		require.Equal(t, h.e.LastSeq(), s1.Seq(), "snapshot Seq is LastSeq at its creation")
		seq := h.e.LastSeq()
		require.NoError(t, h.e.Set([]byte("c"), []byte("3"), wo(false, seq+100)))
		s2, err := h.e.NewSnapshot()
		require.NoError(t, err)
		require.Equal(t, seq+100, s2.Seq(), "snapshot Seq after a caller-given Seq")
		set(t, h.e, "d", "4")
		require.Equal(t, seq, s1.Seq(), "a snapshot's Seq does not move")
		require.Equal(t, seq+100, s2.Seq())
		requireState(t, s1, state{"a": "1", "b": "2"})
		requireState(t, s2, state{"a": "1", "b": "2", "c": "3"})
		requireState(t, s0, state{})
		for _, s := range []logkv.Snapshot{s0, s1, s2} {
			require.NoError(t, s.Close())
		}
	})

	t.Run("many", func(t *testing.T) {
		h := newHarness(t, open, caps)
		type snap struct {
			s    logkv.Snapshot
			want state
			seq  uint64
		}
		var snaps []snap
		model := state{}
		n := 60
		if testing.Short() {
			n = 30
		}
		for i := range n {
			k := fmt.Sprintf("k%02d", i%13)
			switch i % 4 {
			case 0, 1:
				v := fmt.Sprintf("v%d", i)
				set(t, h.e, k, v)
				model[k] = v
			case 2:
				del(t, h.e, k)
				delete(model, k)
			case 3:
				var bt logkv.Batch
				for j := range 3 {
					kk := fmt.Sprintf("k%02d", (i+j*5)%13)
					bt.Set([]byte(kk), []byte(fmt.Sprintf("b%d.%d", i, j)))
					model[kk] = fmt.Sprintf("b%d.%d", i, j)
				}
				require.NoError(t, h.e.Apply(&bt, nil))
			}
			s, err := h.e.NewSnapshot()
			require.NoError(t, err)
			snaps = append(snaps, snap{s, maps.Clone(model), h.e.LastSeq()})
			// Close some early, in a different order than creation.
			if i%5 == 4 {
				j := (i * 7) % len(snaps)
				if snaps[j].s != nil {
					require.NoError(t, snaps[j].s.Close())
					snaps[j].s = nil
				}
			}
		}
		for i, sn := range snaps {
			if sn.s == nil {
				continue
			}
			require.Equal(t, sn.seq, sn.s.Seq(), "snapshot %d", i)
			requireState(t, sn.s, sn.want, fmt.Sprintf("snapshot %d at seq %d", i, sn.seq))
			require.NoError(t, sn.s.Close())
		}
		requireState(t, h.e, model, "the engine")
	})

	t.Run("get-result-owned-by-caller", func(t *testing.T) {
		h := newHarness(t, open, caps)
		set(t, h.e, "k", "value")
		s, err := h.e.NewSnapshot()
		require.NoError(t, err)
		defer func() { require.NoError(t, s.Close(), "snapshot Close") }()
		got, err := s.Get([]byte("k"))
		require.NoError(t, err)
		copy(got, "XXXXX")
		requireGet(t, s, "k", "value", "the snapshot, after the caller changed a slice its Get returned")
		requireGet(t, h.e, "k", "value", "the engine, after the caller changed a slice a snapshot's Get returned")
	})

	t.Run("close", func(t *testing.T) {
		h := newHarness(t, open, caps)
		set(t, h.e, "k", "v")
		s, err := h.e.NewSnapshot()
		require.NoError(t, err)
		require.NoError(t, s.Close(), "first snapshot Close")
		requireClosedOK(t, s.Close(), "second snapshot Close")
		_, err = s.Get([]byte("k"))
		require.ErrorIs(t, err, logkv.ErrClosed, "Get on a closed snapshot")
		it, err := s.NewIter(nil)
		if err == nil {
			_ = it.Close()
		}
		require.ErrorIs(t, err, logkv.ErrClosed, "NewIter on a closed snapshot")
		requireGet(t, h.e, "k", "v", "the engine after a snapshot closed")
	})

	t.Run("engine-close-with-open-readers", func(t *testing.T) {
		// Closing the engine while a snapshot and iterators are open must not
		// hang; closing them afterwards must not panic.
		h := newHarness(t, open, caps)
		fill(t, h.e, iterData)
		s, err := h.e.NewSnapshot()
		require.NoError(t, err)
		it, err := h.e.NewIter(nil)
		require.NoError(t, err)
		require.True(t, it.First())
		sit, err := s.NewIter(nil)
		require.NoError(t, err)
		require.True(t, sit.Last())
		require.NoError(t, h.e.Close())
		_ = it.Close()
		_ = sit.Close()
		_ = s.Close()
		requireClosedOK(t, s.Close(), "snapshot Close after the engine closed")
	})
}
