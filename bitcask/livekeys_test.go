package bitcask

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
)

func TestAppendKeys(t *testing.T) {
	db := openMem(t, newMem(t), Options{})
	for i := range 100 {
		require.NoError(t, db.Set(fmt.Appendf(nil, "k%03d", i), []byte("v"), nil))
	}
	require.NoError(t, db.Set([]byte("z"), []byte("v"), nil))
	strs := func(keys [][]byte) []string {
		var s []string
		for _, k := range keys {
			s = append(s, string(k))
		}
		return s
	}

	t.Run("bounds and limit", func(t *testing.T) {
		keys, _, err := db.AppendKeys(nil, nil, []byte("k010"), []byte("k013"), 10)
		require.NoError(t, err)
		require.Equal(t, []string{"k010", "k011", "k012"}, strs(keys))
		keys, _, err = db.AppendKeys(nil, nil, []byte("k0105"), nil, 2)
		require.NoError(t, err)
		require.Equal(t, []string{"k011", "k012"}, strs(keys))
		keys, _, err = db.AppendKeys(nil, nil, []byte("k098"), nil, 10)
		require.NoError(t, err)
		require.Equal(t, []string{"k098", "k099", "z"}, strs(keys))
		keys, _, err = db.AppendKeys(nil, nil, nil, []byte("k002"), 10)
		require.NoError(t, err)
		require.Equal(t, []string{"k000", "k001"}, strs(keys))
		keys, _, err = db.AppendKeys(nil, nil, []byte("k050"), nil, 0)
		require.NoError(t, err)
		require.Empty(t, keys)
	})

	t.Run("appends, and its keys survive the arena growing", func(t *testing.T) {
		keys := [][]byte{[]byte("mine")}
		arena := make([]byte, 0, 1) // grows under AppendKeys
		keys, arena, err := db.AppendKeys(keys, arena, []byte("k000"), nil, 50)
		require.NoError(t, err)
		require.Len(t, keys, 51)
		require.Equal(t, "mine", string(keys[0]))
		for i, k := range keys[1:] {
			require.Equal(t, fmt.Sprintf("k%03d", i), string(k))
		}
		require.Equal(t, 50*4, len(arena))
	})

	t.Run("reads the live keydir and takes no snapshot", func(t *testing.T) {
		ver := db.tree.t.Shared()
		keys, _, err := db.AppendKeys(nil, nil, []byte("k020"), []byte("k023"), 10)
		require.NoError(t, err)
		require.Equal(t, []string{"k020", "k021", "k022"}, strs(keys))
		require.NoError(t, db.Delete([]byte("k021"), nil))
		require.NoError(t, db.Set([]byte("k0205"), []byte("v"), nil))
		keys, _, err = db.AppendKeys(nil, nil, []byte("k020"), []byte("k023"), 10)
		require.NoError(t, err)
		require.Equal(t, []string{"k020", "k0205", "k022"}, strs(keys))
		// A snapshot would have made every node written since shared,
		// to be copied by the next write to it (the cost AppendKeys
		// exists to avoid).
		require.Equal(t, ver, db.tree.t.Shared(), "AppendKeys marked the keydir shared")
		it, err := db.NewIter(nil)
		require.NoError(t, err)
		require.NoError(t, it.Close())
		require.NotEqual(t, ver, db.tree.t.Shared(), "the check above cannot fail: an iterator does not mark the keydir shared")
	})

	t.Run("closed", func(t *testing.T) {
		require.NoError(t, db.Close())
		_, _, err := db.AppendKeys(nil, nil, nil, nil, 10)
		require.ErrorIs(t, err, logkv.ErrClosed)
	})
}
