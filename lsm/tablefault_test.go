package lsm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// TestTableShrunkUnderDB: a table file that loses its data while the DB has
// it open (a careless operator, or pages a failing disk cannot read) must
// make a Get return ErrCorrupt naming the file, not kill the process (the
// table's mapping faults; sstable recovers and reads with ReadAt), with and
// without Options.DisableMmap.
func TestTableShrunkUnderDB(t *testing.T) {
	for _, noMmap := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableMmap=%v", noMmap), func(t *testing.T) {
			dir := t.TempDir()
			opts := &Options{DisableMmap: noMmap}
			fillTables(t, dir, opts)
			db, err := Open(dir, opts)
			require.NoError(t, err)
			defer db.Close()
			_, err = db.Get([]byte("key00000000")) // opens the table(s)
			require.NoError(t, err)
			ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			require.NotEmpty(t, ssts)
			for _, s := range ssts {
				require.NoError(t, os.Truncate(s, 4096))
			}
			_, err = db.Get([]byte("key00015000"))
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			require.Contains(t, err.Error(), ".sst at offset ")
		})
	}
}

// fillTables writes 20000 keys into a DB in dir (an OS directory), closes
// it and opens and closes it again, leaving the keys in tables.
func fillTables(t *testing.T, dir string, opts *Options) {
	db, err := Open(dir, opts)
	require.NoError(t, err)
	val := make([]byte, 100)
	for i := range 20000 {
		val[0] = byte(i)
		require.NoError(t, db.Set(fmt.Appendf(nil, "key%08d", i), val, nil))
	}
	require.NoError(t, db.Close())
	db, err = Open(dir, opts) // recovery flushes the WAL's writes to a table
	require.NoError(t, err)
	require.NoError(t, db.Close())
}

// TestSalvageShrunkTable: salvage of a table file cut short on an OS
// filesystem (read without a mapping, so a bad page cannot fault) reports
// the table skipped, naming it, and returns no error.
func TestSalvageShrunkTable(t *testing.T) {
	dir := t.TempDir()
	fillTables(t, dir, nil)
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	require.NotEmpty(t, ssts)
	for _, s := range ssts {
		require.NoError(t, os.Truncate(s, 4096))
	}
	var skipped []Skipped
	require.NoError(t, Salvage(vfs.Default, dir, func(SalvagedEntry) error { return nil },
		func(s Skipped) error { skipped = append(skipped, s); return nil }))
	for _, s := range ssts {
		found := false
		for _, k := range skipped {
			found = found || (k.Path == s && strings.Contains(k.Why, "table unreadable"))
		}
		require.True(t, found, "%s not reported skipped: %+v", s, skipped)
	}
}
