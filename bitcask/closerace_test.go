package bitcask

import (
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// TestReadCutByClose checks what a read that Close overtakes returns: a
// Get, a snapshot's Get or an iterator checks that the DB is open, takes
// its file reference and reads; Close, in between, closes every file, held
// or not. The read must then fail with logkv.ErrClosed, as one that started
// after Close does, not with the file's "file already closed". The test
// takes the reference itself and reads after Close, which is the race's
// outcome without its timing (enginetest's PrefetchStress met it in CI:
// "read .../00000024.data at 45278: ... file already closed").
func TestReadCutByClose(t *testing.T) {
	db, err := Open(t.TempDir(), &Options{DisableMmap: true})
	require.NoError(t, err)
	key := []byte("k")
	require.NoError(t, db.Set(key, []byte("value"), &logkv.WriteOptions{Sync: true}))
	db.kmu.RLock()
	e, ok := db.tree.get(unsafeString(key))
	require.True(t, ok)
	df := db.files[e.fid]
	df.refs.Add(1) // as AppendGet does before it reads
	db.kmu.RUnlock()
	require.NoError(t, db.Close())
	_, err = db.readValue(df, e.off, key, e.vlen, nil)
	require.ErrorIs(t, err, logkv.ErrClosed)
	db.unref(df)
}
