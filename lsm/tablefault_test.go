package lsm

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/logkv/logkv"
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
			db, err := Open(dir, opts)
			require.NoError(t, err)
			val := make([]byte, 100)
			for i := range 20000 {
				val[0] = byte(i)
				require.NoError(t, db.Set(fmt.Appendf(nil, "key%08d", i), val, nil))
			}
			require.NoError(t, db.Close())
			db, err = Open(dir, opts)
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
