package enginetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

func testLimits(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("empty-key", func(t *testing.T) {
		h := newHarness(t, open, caps)
		set(t, h.e, "a", "1")
		seq := h.e.LastSeq()
		require.ErrorIs(t, h.e.Set(nil, []byte("v"), nil), logkv.ErrEmptyKey, "Set(nil key)")
		require.ErrorIs(t, h.e.Set([]byte{}, []byte("v"), nil), logkv.ErrEmptyKey, "Set(empty key)")
		require.ErrorIs(t, h.e.Delete(nil, nil), logkv.ErrEmptyKey, "Delete(nil key)")
		require.ErrorIs(t, h.e.Delete([]byte{}, nil), logkv.ErrEmptyKey, "Delete(empty key)")
		// Get of an empty key cannot find anything; either error is fine.
		_, err := h.e.Get(nil)
		if !errorIsAny(err, logkv.ErrNotFound, logkv.ErrEmptyKey) {
			require.Failf(t, "Get(empty key)", "want ErrNotFound or ErrEmptyKey, got %v", err)
		}
		require.Equal(t, seq, h.e.LastSeq(), "a rejected write consumed a sequence number")
		requireState(t, h.e, state{"a": "1"})
	})

	t.Run("max-key", func(t *testing.T) {
		h := newHarness(t, open, caps)
		k1 := string(bytes.Repeat([]byte{'k'}, logkv.MaxKeySize))
		k2 := string(bytes.Repeat([]byte{'\xff'}, logkv.MaxKeySize))
		k3 := k1[:logkv.MaxKeySize-1] + "l"
		set(t, h.e, k1, "v1")
		var b logkv.Batch
		b.Set([]byte(k2), []byte("v2"))
		b.Set([]byte(k3), []byte("v3"))
		require.NoError(t, b.Err())
		require.NoError(t, h.e.Apply(&b, nil), "Apply of MaxKeySize keys")
		want := state{k1: "v1", k2: "v2", k3: "v3", "k": "short"}
		set(t, h.e, "k", "short")
		requireState(t, h.e, want)
		del(t, h.e, k3)
		delete(want, k3)
		requireState(t, h.e, want, "after deleting a MaxKeySize key")
		keys, _ := scan(t, h.e, &logkv.IterOptions{LowerBound: []byte(k1), UpperBound: []byte(k2)}, false)
		requireKeysEqual(t, []string{k1}, keys, "MaxKeySize bounds")
		if caps.Durable {
			h.reopen()
			requireState(t, h.e, want, "after reopen")
		}
	})

	t.Run("max-value", func(t *testing.T) { testMaxValue(t, open, caps, false) })

	// Reading a 32 MiB value back after a reopen is the slowest check for
	// durable engines (it goes through their files twice, slowly under
	// -race), so it is its own subtest and -short leaves it out.
	t.Run("max-value-reopen", func(t *testing.T) {
		if !caps.Durable {
			t.Skip("engine is not Durable")
		}
		if testing.Short() {
			t.Skip("a 32 MiB value through reopen is left out with -short")
		}
		testMaxValue(t, open, caps, true)
	})

	t.Run("over-limit-rejected", func(t *testing.T) {
		h := newHarness(t, open, caps)
		set(t, h.e, "a", "1")
		seq := h.e.LastSeq()
		longKey := bytes.Repeat([]byte{'k'}, logkv.MaxKeySize+1)
		bigVal := make([]byte, logkv.MaxValueSize+1)
		require.ErrorIs(t, h.e.Set(longKey, []byte("v"), nil), logkv.ErrKeyTooLarge, "Set of a key over MaxKeySize")
		require.ErrorIs(t, h.e.Delete(longKey, nil), logkv.ErrKeyTooLarge, "Delete of a key over MaxKeySize")
		require.ErrorIs(t, h.e.Set([]byte("a"), bigVal, nil), logkv.ErrValueTooLarge, "Set of a value over MaxValueSize")
		require.ErrorIs(t, h.e.Set([]byte("b"), bigVal, wo(true, 0)), logkv.ErrValueTooLarge, "synced Set of a value over MaxValueSize")
		_, err := h.e.Get(longKey)
		if !errorIsAny(err, logkv.ErrNotFound, logkv.ErrKeyTooLarge) {
			require.Failf(t, "Get(key over MaxKeySize)", "want ErrNotFound or ErrKeyTooLarge, got %v", err)
		}
		require.Equal(t, seq, h.e.LastSeq(), "a rejected write consumed a sequence number")
		requireState(t, h.e, state{"a": "1"}, "after rejected writes")
	})

	t.Run("invalid-batch-rejected-whole", func(t *testing.T) {
		h := newHarness(t, open, caps)
		set(t, h.e, "a", "1")
		seq := h.e.LastSeq()
		cases := []struct {
			name  string
			build func(b *logkv.Batch)
			want  error
		}{
			{"empty-key", func(b *logkv.Batch) { b.Set(nil, []byte("v")) }, logkv.ErrEmptyKey},
			{"empty-key-delete", func(b *logkv.Batch) { b.Delete([]byte{}) }, logkv.ErrEmptyKey},
			{"long-key", func(b *logkv.Batch) { b.Set(bytes.Repeat([]byte{'k'}, logkv.MaxKeySize+1), nil) }, logkv.ErrKeyTooLarge},
			{"long-key-delete", func(b *logkv.Batch) { b.Delete(bytes.Repeat([]byte{'k'}, logkv.MaxKeySize+1)) }, logkv.ErrKeyTooLarge},
			{"big-value", func(b *logkv.Batch) { b.Set([]byte("x"), make([]byte, logkv.MaxValueSize+1)) }, logkv.ErrValueTooLarge},
		}
		for _, c := range cases {
			var b logkv.Batch
			b.Set([]byte("b"), []byte("2"))
			b.Delete([]byte("a"))
			c.build(&b)
			b.Set([]byte("c"), []byte("3")) // after the error: ignored by the batch
			require.ErrorIs(t, b.Err(), c.want, "%s: Batch.Err", c.name)
			err := h.e.Apply(&b, nil)
			require.ErrorIs(t, err, c.want, "%s: Apply of a batch holding an invalid operation", c.name)
			require.ErrorIs(t, h.e.Apply(&b, wo(true, seq+10)), c.want, "%s: synced Apply with a given Seq", c.name)
			require.Equal(t, seq, h.e.LastSeq(), "%s: a rejected batch consumed a sequence number", c.name)
			requireState(t, h.e, state{"a": "1"}, c.name+": nothing of a rejected batch may apply")
		}
		if caps.Durable {
			h.reopen()
			requireState(t, h.e, state{"a": "1"}, "after reopen")
			require.Equal(t, seq, h.e.LastSeq(), "after reopen")
		}
	})
}

// errorIsAny reports whether err matches one of targets.
func errorIsAny(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// testMaxValue stores a MaxValueSize value and reads it back through Get and
// an iterator, before a reopen and, if reopen is set, after one.
func testMaxValue(t *testing.T, open OpenFunc, caps Capabilities, reopen bool) {
	h := newHarness(t, open, caps)
	big := bytes.Repeat([]byte("0123456789abcdef"), logkv.MaxValueSize/16)
	big[0], big[len(big)-1] = 'F', 'L'
	require.Len(t, big, logkv.MaxValueSize)
	require.NoError(t, h.e.Set([]byte("big"), big, nil), "Set of a MaxValueSize value")
	set(t, h.e, "small", "s")
	check := func(what string) {
		got, err := h.e.Get([]byte("big"))
		require.NoError(t, err, what)
		require.True(t, bytes.Equal(big, got), "%s: MaxValueSize value read back differs (len %d)", what, len(got))
		it, err := h.e.NewIter(nil)
		require.NoError(t, err)
		require.True(t, it.First(), what)
		require.Equal(t, "big", string(it.Key()), what)
		require.True(t, bytes.Equal(big, it.Value()), "%s: MaxValueSize value through an iterator differs", what)
		require.NoError(t, it.Close())
		requireGet(t, h.e, "small", "s", what)
	}
	check("after Set")
	if reopen {
		h.reopen()
		check("after reopen")
	}
}
