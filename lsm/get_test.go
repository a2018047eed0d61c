package lsm

import (
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// TestGetFromTableOwnsValue checks that values a Get reads from a table
// (handed over without the second copy the memtable path makes) are the
// caller's: changing one changes no later Get's, and an empty value is
// present, not nil.
func TestGetFromTableOwnsValue(t *testing.T) {
	db, err := Open("db", smallOptions(vfs.NewMem()))
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Set([]byte("a"), []byte("value"), nil))
	require.NoError(t, db.Set([]byte("empty"), []byte{}, nil))
	require.NoError(t, db.Set([]byte("gone"), []byte("x"), nil))
	require.NoError(t, db.Delete([]byte("gone"), nil))
	require.NoError(t, db.flushAll())
	rs := db.loadReadState()
	require.True(t, rs.mem.empty() && len(rs.imm) == 0, "the keys are in tables now")
	rs.unref()

	v1, err := db.Get([]byte("a"))
	require.NoError(t, err)
	copy(v1, "XXXXX")
	v2, err := db.Get([]byte("a"))
	require.NoError(t, err)
	require.Equal(t, "value", string(v2))

	e, err := db.Get([]byte("empty"))
	require.NoError(t, err)
	require.NotNil(t, e)
	require.Empty(t, e)

	_, err = db.Get([]byte("gone"))
	require.ErrorIs(t, err, logkv.ErrNotFound)
}
