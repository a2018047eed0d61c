package enginetest

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

func testBatch(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("apply", func(t *testing.T) {
		h := newHarness(t, open, caps)
		fill(t, h.e, state{"a": "1", "b": "2", "c": "3"})
		seq := h.e.LastSeq()
		var b logkv.Batch
		b.Set([]byte("d"), []byte("4"))
		b.Delete([]byte("b"))
		b.Set([]byte("a"), []byte("1'"))
		b.Delete([]byte("absent"))
		require.Equal(t, 4, b.Len())
		require.NoError(t, h.e.Apply(&b, nil))
		require.Equal(t, seq+1, h.e.LastSeq(), "a batch commits at one sequence number")
		requireState(t, h.e, state{"a": "1'", "c": "3", "d": "4"})
	})

	t.Run("later-ops-win", func(t *testing.T) {
		h := newHarness(t, open, caps)
		fill(t, h.e, state{"x1": "old", "x2": "old", "x3": "old"})
		var b logkv.Batch
		b.Set([]byte("n1"), []byte("first"))
		b.Set([]byte("n1"), []byte("second"))
		b.Set([]byte("n2"), []byte("set"))
		b.Delete([]byte("n2"))
		b.Delete([]byte("n3"))
		b.Set([]byte("n3"), []byte("after-delete"))
		b.Set([]byte("x1"), []byte("new"))
		b.Delete([]byte("x1"))
		b.Delete([]byte("x2"))
		b.Set([]byte("x2"), []byte("new"))
		b.Set([]byte("x3"), []byte("a"))
		b.Set([]byte("x3"), []byte(""))
		b.Set([]byte("n4"), []byte("1"))
		b.Set([]byte("n4"), []byte("2"))
		b.Delete([]byte("n4"))
		b.Set([]byte("n4"), []byte("3"))
		require.NoError(t, h.e.Apply(&b, nil))
		want := state{"n1": "second", "n3": "after-delete", "x2": "new", "x3": "", "n4": "3"}
		requireState(t, h.e, want)
		if caps.Durable {
			h.reopen()
			requireState(t, h.e, want, "after reopen")
		}
	})

	t.Run("empty-is-noop", func(t *testing.T) {
		h := newHarness(t, open, caps)
		var b logkv.Batch
		require.NoError(t, h.e.Apply(&b, nil), "Apply of an empty batch to an empty engine")
		require.Equal(t, uint64(0), h.e.LastSeq(), "an empty batch consumed a sequence number")
		set(t, h.e, "a", "1")
		seq := h.e.LastSeq()
		require.NoError(t, h.e.Apply(&b, wo(true, 0)), "Apply of an empty batch")
		b.Set([]byte("a"), []byte("2"))
		b.Reset()
		require.NoError(t, h.e.Apply(&b, nil), "Apply of a Reset batch")
		require.Equal(t, seq, h.e.LastSeq(), "an empty batch consumed a sequence number")
		requireState(t, h.e, state{"a": "1"})
		set(t, h.e, "b", "2")
		require.Equal(t, seq+1, h.e.LastSeq(), "the write after an empty batch")
	})

	t.Run("reuse-after-apply", func(t *testing.T) {
		h := newHarness(t, open, caps)
		var b logkv.Batch
		b.Set([]byte("key-1"), []byte("value-1"))
		b.Set([]byte("key-2"), []byte("value-2"))
		require.NoError(t, h.e.Apply(&b, nil))
		// Reset keeps the buffer: same-sized operations overwrite the bytes
		// the engine was given, so an engine that kept them sees the change.
		b.Reset()
		b.Set([]byte("key-3"), []byte("XXXXX-3"))
		b.Set([]byte("key-4"), []byte("XXXXX-4"))
		want := state{"key-1": "value-1", "key-2": "value-2"}
		requireState(t, h.e, want, "after the applied batch was reset and refilled")
		require.NoError(t, h.e.Apply(&b, nil))
		want["key-3"], want["key-4"] = "XXXXX-3", "XXXXX-4"
		seq := h.e.LastSeq()
		require.NoError(t, h.e.Apply(&b, nil), "applying the same batch again")
		require.Equal(t, seq+1, h.e.LastSeq(), "a re-applied batch is a new commit")
		requireState(t, h.e, want)
	})

	t.Run("decoded-batch-not-retained", func(t *testing.T) {
		h := newHarness(t, open, caps)
		var src logkv.Batch
		src.Set([]byte("dk-1"), []byte("dv-1"))
		src.Delete([]byte("gone"))
		src.Set([]byte("dk-2"), []byte("dv-2"))
		set(t, h.e, "gone", "soon")
		buf := append([]byte(nil), src.Repr()...)
		b, err := logkv.DecodeBatch(buf)
		require.NoError(t, err)
		require.NoError(t, h.e.Apply(b, nil))
		// The batch aliases buf; after Apply returns the caller may reuse it.
		for i := range buf {
			if buf[i] == 'd' {
				buf[i] = 'Z'
			}
		}
		requireState(t, h.e, state{"dk-1": "dv-1", "dk-2": "dv-2"}, "after the caller reused a decoded batch's buffer")
	})

	t.Run("large", func(t *testing.T) {
		h := newHarness(t, open, caps)
		set(t, h.e, "large/0001", "before")
		set(t, h.e, "zz", "untouched")
		seq := h.e.LastSeq()
		bt, want := largeBatch(1)
		require.NoError(t, h.e.Apply(bt, nil), "Apply of a %d-byte batch", bt.Size())
		require.Equal(t, seq+1, h.e.LastSeq(), "a large batch takes one sequence number")
		want["zz"] = "untouched"
		requireState(t, h.e, want)
		if caps.Durable {
			h.reopen()
			requireState(t, h.e, want, "after reopen")
		}
	})

	t.Run("atomic-under-readers", func(t *testing.T) {
		testBatchAtomicity(t, open, caps)
	})
}

// testBatchAtomicity runs one writer applying batches that keep an invariant
// across several keys (batch i sets every key to i, or every third batch
// deletes them all) against readers using snapshots and iterators, which must
// see the invariant hold and, for snapshots, the batch their Seq names.
func testBatchAtomicity(t *testing.T, open OpenFunc, caps Capabilities) {
	h := newHarness(t, open, caps)
	const nkeys = 16
	batches := 400
	if testing.Short() {
		batches = 400
	}
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("atom/%02d", i)
	}
	set(t, h.e, "before", "x")
	set(t, h.e, "zafter", "x")
	base := h.e.LastSeq()

	// expected returns the state of the keys after batch i (0: none yet).
	expected := func(i uint64) (present bool, value string) {
		if i == 0 || i%3 == 2 {
			return false, ""
		}
		return true, strconv.FormatUint(i, 10)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	fail := func(format string, args ...any) {
		select {
		case errs <- fmt.Errorf(format, args...):
		default:
		}
	}

	wg.Add(1)
	go func() { // writer
		defer wg.Done()
		defer close(done)
		var b logkv.Batch
		for i := uint64(1); i <= uint64(batches); i++ {
			b.Reset()
			present, v := expected(i)
			for j, k := range keys {
				// Touch keys in a varying order so no engine can get away
				// with applying in a fixed one.
				k = keys[(j+int(i))%nkeys]
				if present {
					b.Set([]byte(k), []byte(v))
				} else {
					b.Delete([]byte(k))
				}
			}
			if err := h.e.Apply(&b, nil); err != nil {
				fail("Apply of batch %d: %v", i, err)
				return
			}
		}
	}()

	checkView := func(who string, seq uint64, got map[string]string) {
		i := seq - base
		present, v := expected(i)
		for _, k := range keys {
			gv, ok := got[k]
			if ok != present || gv != v {
				fail("%s at seq %d (batch %d): key %q = %q (present %v), want present %v value %q; whole view: %v",
					who, seq, i, k, gv, ok, present, v, got)
				return
			}
		}
	}

	reader := func(read func() bool) {
		defer wg.Done()
		readLoop(done, read)
	}

	wg.Add(3)
	go reader(func() bool { // snapshot reads by Get
		s, err := h.e.NewSnapshot()
		if err != nil {
			fail("NewSnapshot: %v", err)
			return false
		}
		defer func() {
			if err := s.Close(); err != nil {
				fail("snapshot Close: %v", err)
			}
		}()
		seq := s.Seq()
		if seq < base || seq > base+uint64(batches) {
			fail("snapshot Seq %d outside [%d, %d]", seq, base, base+uint64(batches))
			return false
		}
		got := map[string]string{}
		for _, k := range keys {
			v, err := s.Get([]byte(k))
			switch {
			case err == nil:
				got[k] = string(v)
			case errorIsAny(err, logkv.ErrNotFound):
			default:
				fail("snapshot Get(%q): %v", k, err)
				return false
			}
		}
		checkView("snapshot Get", seq, got)
		return true
	})
	go reader(func() bool { // snapshot reads by a reverse scan
		s, err := h.e.NewSnapshot()
		if err != nil {
			fail("NewSnapshot: %v", err)
			return false
		}
		defer func() {
			if err := s.Close(); err != nil {
				fail("snapshot Close: %v", err)
			}
		}()
		it, err := s.NewIter(&logkv.IterOptions{LowerBound: []byte("atom/"), UpperBound: []byte("atom0")})
		if err != nil {
			fail("snapshot NewIter: %v", err)
			return false
		}
		got := map[string]string{}
		for ok := it.Last(); ok; ok = it.Prev() {
			got[string(it.Key())] = string(it.Value())
		}
		if err := it.Close(); err != nil {
			fail("snapshot iterator: %v", err)
			return false
		}
		checkView("snapshot iterator", s.Seq(), got)
		return true
	})
	go reader(func() bool { // engine iterators: all or none
		it, err := h.e.NewIter(nil)
		if err != nil {
			fail("NewIter: %v", err)
			return false
		}
		got := map[string]string{}
		for ok := it.First(); ok; ok = it.Next() {
			got[string(it.Key())] = string(it.Value())
		}
		if err := it.Close(); err != nil {
			fail("iterator: %v", err)
			return false
		}
		if got["before"] != "x" || got["zafter"] != "x" {
			fail("engine iterator lost keys around the batch: %v", got)
			return false
		}
		var vals []string
		for _, k := range keys {
			if v, ok := got[k]; ok {
				vals = append(vals, v)
			}
		}
		if len(vals) != 0 && len(vals) != nkeys {
			fail("engine iterator saw %d of the %d keys of one batch: %v", len(vals), nkeys, got)
			return false
		}
		for _, v := range vals {
			if v != vals[0] {
				fail("engine iterator saw a mix of batches: %v", got)
				return false
			}
		}
		return true
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, base+uint64(batches), h.e.LastSeq())
	present, v := expected(uint64(batches))
	for _, k := range keys {
		if present {
			requireGet(t, h.e, k, v)
		} else {
			requireAbsent(t, h.e, k)
		}
	}
}
