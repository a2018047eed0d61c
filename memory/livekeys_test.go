package memory

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
)

func TestAppendKeys(t *testing.T) {
	db, err := Open("", nil)
	require.NoError(t, err)
	for i := range 60 {
		require.NoError(t, db.Set(fmt.Appendf(nil, "a%02d", i), []byte("v"), nil))
	}
	require.NoError(t, db.Set([]byte("b"), []byte("v"), nil))
	list := func(lower, upper string, limit int) string {
		t.Helper()
		var lo, up []byte
		if lower != "" {
			lo = []byte(lower)
		}
		if upper != "" {
			up = []byte(upper)
		}
		// A one-byte arena grows under the call: the keys must follow it.
		keys, arena, err := db.AppendKeys([][]byte{[]byte("x")}, make([]byte, 0, 1), lo, up, limit)
		require.NoError(t, err)
		require.Equal(t, "x", string(keys[0]))
		n := 0
		var s []string
		for _, k := range keys[1:] {
			s = append(s, string(k))
			n += len(k)
		}
		require.Len(t, arena, n, "the arena holds the keys appended, nothing else")
		return strings.Join(s, " ")
	}
	for _, c := range []struct {
		lower, upper string
		limit        int
		want         string
	}{
		{"a10", "a13", 10, "a10 a11 a12"},
		{"a105", "", 2, "a11 a12"},
		{"a58", "", 10, "a58 a59 b"},
		{"", "a02", 10, "a00 a01"},
		{"a30", "", 0, ""},
		{"c", "", 10, ""},
	} {
		require.Equal(t, c.want, list(c.lower, c.upper, c.limit), "[%q, %q) limit %d", c.lower, c.upper, c.limit)
	}

	// It reads the tree as it is and marks nothing shared: a snapshot
	// would make the next write to every node copy it.
	shared := db.t.Shared()
	require.NoError(t, db.Delete([]byte("a21"), nil))
	require.NoError(t, db.Set([]byte("a205"), []byte("v"), nil))
	require.Equal(t, "a20 a205 a22", list("a20", "a23", 10))
	require.Equal(t, shared, db.t.Shared(), "AppendKeys took a snapshot")
	it, err := db.NewIter(nil)
	require.NoError(t, err)
	require.NotEqual(t, shared, db.t.Shared(), "an iterator marks the tree shared, so the check above can fail")
	require.NoError(t, it.Close())

	require.NoError(t, db.Close())
	_, _, err = db.AppendKeys(nil, nil, nil, nil, 10)
	require.ErrorIs(t, err, logkv.ErrClosed)
}
