package enginetest

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

func testBasic(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("empty-engine", func(t *testing.T) {
		h := newHarness(t, open, caps)
		require.Equal(t, uint64(0), h.e.LastSeq(), "LastSeq of a new engine")
		requireAbsent(t, h.e, "a")
		requireState(t, h.e, state{})
	})

	t.Run("get-set-delete-overwrite", func(t *testing.T) {
		h := newHarness(t, open, caps)
		e := h.e
		requireAbsent(t, e, "k")
		set(t, e, "k", "v1")
		requireGet(t, e, "k", "v1")
		set(t, e, "k", "v2")
		requireGet(t, e, "k", "v2", "after an overwrite")
		set(t, e, "k2", "x")
		del(t, e, "k")
		requireAbsent(t, e, "k", "after Delete")
		requireGet(t, e, "k2", "x", "Delete of one key must not touch another")
		del(t, e, "k")
		del(t, e, "never-set")
		requireAbsent(t, e, "never-set", "deleting an absent key is not an error")
		set(t, e, "k", "v3")
		requireGet(t, e, "k", "v3", "set after delete")
		requireState(t, e, state{"k": "v3", "k2": "x"})
	})

	t.Run("not-found-is-wrapped-sentinel", func(t *testing.T) {
		h := newHarness(t, open, caps)
		set(t, h.e, "b", "1")
		for _, k := range []string{"a", "ba", "c", "\x00", "\xff"} {
			requireAbsent(t, h.e, k)
		}
	})

	t.Run("binary-keys-and-values", func(t *testing.T) {
		h := newHarness(t, open, caps)
		want := state{
			"\x00":         "zero",
			"\x00\x00":     "\x00\x00\x00",
			"a\x00b":       "nul inside",
			"\xff":         "\xff\xfe",
			"\xff\xff\xff": "",
			"a":            "a",
			"a\xff":        "high",
		}
		fill(t, h.e, want)
		requireState(t, h.e, want)
	})

	t.Run("get-result-owned-by-caller", func(t *testing.T) {
		h := newHarness(t, open, caps)
		want := state{"j": "before", "k": "value", "l": "after"}
		var bt logkv.Batch
		for _, k := range want.sortedKeys() {
			bt.Set([]byte(k), []byte(want[k]))
		}
		require.NoError(t, h.e.Apply(&bt, nil))
		got, err := h.e.Get([]byte("k"))
		require.NoError(t, err)
		for i := range got {
			got[i] = 'X'
		}
		requireState(t, h.e, want, "after the caller changed a slice Get returned")
		// Appending to the result must not write into the engine either (an
		// engine returning a slice of a larger buffer would be changed past
		// the value's end).
		for _, k := range want.sortedKeys() {
			got, err := h.e.Get([]byte(k))
			require.NoError(t, err)
			_ = append(got, "tail-written-past-len"...)
		}
		requireState(t, h.e, want, "after the caller appended to slices Get returned")
	})

	t.Run("caller-buffers-reusable", func(t *testing.T) {
		h := newHarness(t, open, caps)
		key := []byte("key-1")
		val := []byte("value-1")
		require.NoError(t, h.e.Set(key, val, nil))
		copy(key, "key-2")
		copy(val, "XXXXXXX")
		requireGet(t, h.e, "key-1", "value-1", "after the caller reused the buffers passed to Set")
		requireAbsent(t, h.e, "key-2")
		require.NoError(t, h.e.Set(key, val, nil)) // key-2
		require.NoError(t, h.e.Delete(key, nil))
		copy(key, "key-1")
		requireAbsent(t, h.e, "key-2", "after the caller reused the buffer passed to Delete")
		requireGet(t, h.e, "key-1", "value-1")

		// Get's key argument may be reused too.
		k := []byte("key-1")
		_, err := h.e.Get(k)
		require.NoError(t, err)
		copy(k, "zzzzz")
		requireGet(t, h.e, "key-1", "value-1")
		requireState(t, h.e, state{"key-1": "value-1"})
	})

	t.Run("empty-value", func(t *testing.T) {
		h := newHarness(t, open, caps)
		require.NoError(t, h.e.Set([]byte("nil"), nil, nil), "Set with a nil value")
		require.NoError(t, h.e.Set([]byte("empty"), []byte{}, nil), "Set with an empty value")
		var b logkv.Batch
		b.Set([]byte("batch-empty"), nil)
		require.NoError(t, h.e.Apply(&b, nil))
		for _, k := range []string{"nil", "empty", "batch-empty"} {
			v, err := h.e.Get([]byte(k))
			require.NoError(t, err, "Get(%q): an empty value is a value, not an absent key", k)
			require.Empty(t, v, "Get(%q)", k)
		}
		requireAbsent(t, h.e, "absent")
		want := state{"nil": "", "empty": "", "batch-empty": ""}
		requireState(t, h.e, want)
		set(t, h.e, "empty", "now-full")
		require.NoError(t, h.e.Set([]byte("empty"), nil, nil))
		requireState(t, h.e, want, "after overwriting with an empty value")
		if caps.Durable {
			h.reopen()
			requireState(t, h.e, want, "after reopen")
		}
	})

	t.Run("many-keys", func(t *testing.T) {
		h := newHarness(t, open, caps)
		n := 2000
		if testing.Short() {
			n = 500
		}
		want := state{}
		var b logkv.Batch
		for i := range n {
			k := string(bytes.Repeat([]byte{byte('a' + i%26)}, 1+i%7)) + string(rune('0'+i%10)) + strconv.Itoa(i)
			v := strconv.Itoa(i * 7)
			want[k] = v
			if i%3 == 0 {
				set(t, h.e, k, v)
			} else {
				b.Set([]byte(k), []byte(v))
				if b.Len() >= 50 {
					require.NoError(t, h.e.Apply(&b, nil))
					b.Reset()
				}
			}
		}
		require.NoError(t, h.e.Apply(&b, nil))
		requireState(t, h.e, want)
	})
}
