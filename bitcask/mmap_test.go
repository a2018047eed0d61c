//go:build unix

package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
)

// truncatedDB opens a DB on the OS filesystem whose first data file is
// sealed and mapped, then truncates that file to one page behind the DB's
// back (as another process, a bad copy or a filesystem could; a page the
// disk cannot read faults the same way). It returns the DB, the file and a
// key whose record lies wholly past the new end: reading it from the
// mapping raises SIGBUS.
func truncatedDB(t *testing.T) (*DB, *dataFile, []byte) {
	t.Helper()
	db, err := Open(t.TempDir(), &Options{DisableAutoMerge: true, MaxFileSize: 64 << 10})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	val := bytes.Repeat([]byte("v"), 200)
	for i := range 1000 {
		require.NoError(t, db.Set(fmt.Appendf(nil, "key%06d", i), val, nil))
	}
	page := int64(os.Getpagesize())
	db.kmu.RLock()
	df := db.files[db.active.id-1]
	require.False(t, df.active)
	var key []byte
	for i := range 1000 {
		k := fmt.Appendf(nil, "key%06d", i)
		if e, ok := db.tree.get(string(k)); ok && e.fid == df.id && int64(e.off) >= 2*page {
			key = k
			break
		}
	}
	db.kmu.RUnlock()
	require.NotNil(t, key, "no record past the second page of %s", df.path)
	require.NotNil(t, df.mm.Load(), "the sealed file is not mapped")
	require.NoError(t, os.Truncate(df.path, page))
	return db, df, key
}

// requireTruncated checks that err is ErrCorrupt naming df's file, a record
// running past its end and an offset of at least minOff.
func requireTruncated(t *testing.T, err error, df *dataFile, minOff int64) {
	t.Helper()
	require.Error(t, err)
	require.True(t, errors.Is(err, logkv.ErrCorrupt), "%v", err)
	msg := err.Error()
	require.Contains(t, msg, df.path)
	require.Contains(t, msg, "runs past the end of the file")
	_, rest, ok := strings.Cut(msg, "offset ")
	require.True(t, ok, "%v", err)
	off, _ := strconv.ParseInt(strings.FieldsFunc(rest, func(r rune) bool { return r < '0' || r > '9' })[0], 10, 64)
	require.GreaterOrEqual(t, off, minOff, "%v", err)
}

// TestMappedTruncatedGet: a Get of a record in the part of a sealed, mapped
// data file truncated after Open returns ErrCorrupt naming the file and
// offset, and the process survives; the file's mapping is not used again.
// Without readMapped's guard the test binary dies ("fatal error: fault").
func TestMappedTruncatedGet(t *testing.T) {
	db, df, key := truncatedDB(t)
	_, err := db.Get(key)
	requireTruncated(t, err, df, 2*int64(os.Getpagesize()))
	require.True(t, df.faulted.Load())
	require.NotNil(t, df.mm.Load(), "the mapping stays until the file is released")
	// Straight to ReadAt: with the mapping swapped for zeros (restored
	// for the unmap), a read from it would report a bad record length.
	mm := df.mm.Load()
	zeros := make([]byte, len(*mm))
	df.mm.Store(&zeros)
	_, err = db.AppendGet(make([]byte, 0, 512), key)
	df.mm.Store(mm)
	requireTruncated(t, err, df, 2*int64(os.Getpagesize()))
	// A record in the first page still reads, through ReadAt.
	v, err := db.Get([]byte("key000000"))
	require.NoError(t, err)
	require.Len(t, v, 200)
}

// TestMappedTruncatedSnapshot: the same through a snapshot's Get and an
// iterator's Value, which read through the same path.
func TestMappedTruncatedSnapshot(t *testing.T) {
	t.Run("get", func(t *testing.T) {
		db, df, key := truncatedDB(t)
		s, err := db.NewSnapshot()
		require.NoError(t, err)
		defer s.Close()
		_, err = s.Get(key)
		requireTruncated(t, err, df, 2*int64(os.Getpagesize()))
		require.True(t, df.faulted.Load())
	})
	t.Run("iterator", func(t *testing.T) {
		db, df, _ := truncatedDB(t)
		it, err := db.NewIter(nil)
		require.NoError(t, err)
		n := 0
		for it.First(); it.Valid(); it.Next() {
			if it.Value() == nil {
				break
			}
			n++
		}
		// The first record read past the page may start in it.
		minOff := int64(os.Getpagesize()) - 300
		requireTruncated(t, it.Error(), df, minOff)
		require.Greater(t, n, 0, "the records in the first page read")
		require.True(t, df.faulted.Load())
		requireTruncated(t, it.Close(), df, minOff)
	})
}

// TestMappedGuardRepanics: a panic in the guarded read that is not a fault
// (a value, or a runtime error without an address) is raised again, and the
// file is not marked faulted.
func TestMappedGuardRepanics(t *testing.T) {
	df := &dataFile{}
	require.PanicsWithValue(t, "not a fault", func() {
		var ok bool
		defer df.recoverFault(&ok, false)
		panic("not a fault")
	})
	var idx []int
	i := 3
	require.Panics(t, func() {
		var ok bool
		defer df.recoverFault(&ok, false)
		_ = idx[i]
	})
	require.False(t, df.faulted.Load())
}
