package enginetest

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// state is a model of an engine's contents: key to value. Values are strings
// so that an empty value ("") is distinct from an absent key.
type state map[string]string

// sortedKeys returns s's keys in byte-wise order (Go compares strings by
// bytes, as the contract orders keys).
func (s state) sortedKeys() []string {
	return slices.Sorted(maps.Keys(s))
}

// requireGet checks that r holds want under key.
func requireGet(t *testing.T, r logkv.Reader, key, want string, msgAndArgs ...any) {
	t.Helper()
	got, err := r.Get([]byte(key))
	require.NoError(t, err, "Get(%q) %s", key, fmt.Sprint(msgAndArgs...))
	require.Equal(t, want, string(got), "Get(%q) %s", key, fmt.Sprint(msgAndArgs...))
}

// requireAbsent checks that r reports ErrNotFound for key.
func requireAbsent(t *testing.T, r logkv.Reader, key string, msgAndArgs ...any) {
	t.Helper()
	got, err := r.Get([]byte(key))
	require.ErrorIs(t, err, logkv.ErrNotFound, "Get(%q) of an absent key returned %q: %s", key, got, fmt.Sprint(msgAndArgs...))
}

// scan collects the keys and values of r within o, going forward with First
// and Next, or backward with Last and Prev. The result is in byte-wise order
// either way.
func scan(t *testing.T, r logkv.Reader, o *logkv.IterOptions, backward bool) ([]string, []string) {
	t.Helper()
	it, err := r.NewIter(o)
	require.NoError(t, err, "NewIter")
	var keys, vals []string
	if backward {
		for ok := it.Last(); ok; ok = it.Prev() {
			keys = append(keys, string(it.Key()))
			vals = append(vals, string(it.Value()))
		}
		slices.Reverse(keys)
		slices.Reverse(vals)
	} else {
		for ok := it.First(); ok; ok = it.Next() {
			keys = append(keys, string(it.Key()))
			vals = append(vals, string(it.Value()))
		}
	}
	require.NoError(t, it.Error(), "iterator Error after a scan")
	require.NoError(t, it.Close(), "iterator Close")
	return keys, vals
}

// requireState checks that r holds exactly want: a forward and a backward
// scan, and a Get of every key in want.
func requireState(t *testing.T, r logkv.Reader, want state, msgAndArgs ...any) {
	t.Helper()
	requireScan(t, r, want, msgAndArgs...)
	for k, v := range want {
		requireGet(t, r, k, v, msgAndArgs...)
	}
}

// requireScan checks that a forward and a backward scan of r see exactly
// want.
func requireScan(t *testing.T, r logkv.Reader, want state, msgAndArgs ...any) {
	t.Helper()
	wantKeys := want.sortedKeys()
	wantVals := make([]string, len(wantKeys))
	for i, k := range wantKeys {
		wantVals[i] = want[k]
	}
	for _, backward := range []bool{false, true} {
		keys, vals := scan(t, r, nil, backward)
		dir := "forward"
		if backward {
			dir = "backward"
		}
		requireKeysEqual(t, wantKeys, keys, "%s scan: %s", dir, fmt.Sprint(msgAndArgs...))
		require.Equal(t, wantVals, append([]string{}, vals...), "%s scan values: %s", dir, fmt.Sprint(msgAndArgs...))
	}
}

// requireKeysEqual compares key lists and, when they differ, names the first
// difference (key lists get long).
func requireKeysEqual(t *testing.T, want, got []string, format string, args ...any) {
	t.Helper()
	if slices.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	w, g := "<end>", "<end>"
	if i < len(want) {
		w = fmt.Sprintf("%q", want[i])
	}
	if i < len(got) {
		g = fmt.Sprintf("%q", got[i])
	}
	require.Failf(t, "keys differ", "at index %d: want %s, got %s (want %d keys, got %d)\nwant: %q\ngot:  %q\n%s",
		i, w, g, len(want), len(got), want, got, fmt.Sprintf(format, args...))
}

// wo returns write options.
func wo(sync bool, seq uint64) *logkv.WriteOptions {
	return &logkv.WriteOptions{Sync: sync, Seq: seq}
}

// set stores key=value in e and fails t on error.
func set(t *testing.T, w logkv.Writer, key, value string) {
	t.Helper()
	require.NoError(t, w.Set([]byte(key), []byte(value), nil), "Set(%q)", key)
}

// del deletes key from e and fails t on error.
func del(t *testing.T, w logkv.Writer, key string) {
	t.Helper()
	require.NoError(t, w.Delete([]byte(key), nil), "Delete(%q)", key)
}

// fill stores every key of s in e, one Set each, in key order.
func fill(t *testing.T, w logkv.Writer, s state) {
	t.Helper()
	for _, k := range s.sortedKeys() {
		set(t, w, k, s[k])
	}
}
