package lsm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// salvageAll runs Salvage and resolves its entries as recovery would: the
// highest seq wins a key.
func salvageAll(t *testing.T, fs vfs.FS) (map[string]string, []Skipped) {
	got, seqs := map[string]string{}, map[string]uint64{}
	var skipped []Skipped
	require.NoError(t, Salvage(fs, "db", func(e SalvagedEntry) error {
		if e.Seq >= seqs[string(e.Key)] {
			seqs[string(e.Key)] = e.Seq
			if e.Delete {
				delete(got, string(e.Key))
			} else {
				got[string(e.Key)] = string(e.Value)
			}
		}
		return nil
	}, func(s Skipped) error { skipped = append(skipped, s); return nil }))
	return got, skipped
}

// A damaged data block costs the entries it holds and no others; the rest
// of the table is read from both ends.
func TestSalvageTableAroundADamagedBlock(t *testing.T) {
	fs := vfs.NewMem()
	opts := smallOptions(fs)
	opts.DisableWAL = true
	opts.L0CompactionThreshold, opts.L0SlowdownWritesThreshold, opts.L0StopWritesThreshold = 100, 100, 100
	opts.Compression = "none"
	db, err := Open("db", opts)
	require.NoError(t, err)
	want := map[string]string{}
	for i := range 400 {
		k, v := fmt.Sprintf("key%04d", i), strings.Repeat(fmt.Sprint(i%10), 50)
		want[k] = v
		require.NoError(t, db.Set([]byte(k), []byte(v), nil))
	}
	require.NoError(t, db.Close())
	tables := filesOf(t, fs, "db", kindTable)
	require.Len(t, tables, 1)
	got, skipped := salvageAll(t, fs)
	require.Equal(t, want, got)
	require.Empty(t, skipped)

	fi, err := fs.Stat("db/" + tables[0])
	require.NoError(t, err)
	flipBit(t, fs, "db/"+tables[0], fi.Size()/3) // in a data block
	got, skipped = salvageAll(t, fs)
	require.Len(t, skipped, 1)
	require.Contains(t, skipped[0].Why, "unreadable")
	lost := 0
	for k, v := range want {
		if g, ok := got[k]; ok {
			require.Equal(t, v, g)
		} else {
			lost++
		}
	}
	require.Positive(t, lost)
	require.Less(t, lost, 40, "one 512-byte block's entries, not the rest of the table")
}

// A damaged WAL record costs that record; the records around it are kept.
func TestSalvageWALRecord(t *testing.T) {
	fs := vfs.NewMem()
	opts := smallOptions(fs)
	opts.MemtableSize = 1 << 20 // keep everything in the WAL
	db, err := Open("db", opts)
	require.NoError(t, err)
	for i := range 20 {
		require.NoError(t, db.Set(fmt.Appendf(nil, "key%02d", i), []byte("value"), nil))
	}
	require.NoError(t, db.Close())
	logs := filesOf(t, fs, "db", kindLog)
	require.Len(t, logs, 1)
	flipBit(t, fs, "db/"+logs[0], 40)
	got, skipped := salvageAll(t, fs)
	require.Len(t, skipped, 1)
	require.Len(t, got, 19)
}
