package lsm

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// flipBit flips one bit of the file at off.
func flipBit(t *testing.T, fs vfs.FS, path string, off int64) {
	t.Helper()
	f, err := fs.Open(path)
	require.NoError(t, err)
	data, err := io.ReadAll(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Less(t, off, int64(len(data)))
	data[off] ^= 0x10
	w, err := fs.Create(path)
	require.NoError(t, err)
	_, err = w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Sync())
	require.NoError(t, w.Close())
}

func filesOf(t *testing.T, fs vfs.FS, dir string, kind fileKind) []string {
	t.Helper()
	names, err := fs.List(dir)
	require.NoError(t, err)
	var out []string
	for _, n := range names {
		if k, _ := parseName(n); k == kind {
			out = append(out, n)
		}
	}
	return out
}

// TestCorruptWAL flips a bit in a WAL record that valid records follow:
// Open must fail with ErrCorrupt naming the segment, not drop or invent data.
func TestCorruptWAL(t *testing.T) {
	for _, off := range []int64{0, 5, 12, 40} {
		t.Run(fmt.Sprint(off), func(t *testing.T) {
			fs := vfs.NewMem()
			opts := smallOptions(fs)
			opts.MemtableSize = 1 << 20 // keep everything in the WAL
			db, err := Open("db", opts)
			require.NoError(t, err)
			for i := 0; i < 20; i++ {
				require.NoError(t, db.Set(fmt.Appendf(nil, "key%02d", i), []byte("value"), nil))
			}
			require.NoError(t, db.Close())
			logs := filesOf(t, fs, "db", kindLog)
			require.Len(t, logs, 1)
			flipBit(t, fs, "db/"+logs[0], off)
			_, err = Open("db", opts)
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			require.Contains(t, err.Error(), logs[0])
		})
	}
}

// TestTornWALTail cuts the last WAL record short: Open drops only it.
func TestTornWALTail(t *testing.T) {
	fs := vfs.NewMem()
	opts := smallOptions(fs)
	opts.MemtableSize = 1 << 20
	db, err := Open("db", opts)
	require.NoError(t, err)
	for i := 1; i <= 10; i++ {
		require.NoError(t, db.Set(fmt.Appendf(nil, "key%02d", i), []byte("value"), nil))
	}
	require.NoError(t, db.Close())
	logs := filesOf(t, fs, "db", kindLog)
	path := "db/" + logs[0]
	f, err := fs.OpenReadWrite(path)
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	// Cut the closing marker and three bytes of the last record.
	require.NoError(t, f.Truncate(fi.Size()-int64(record.Size(walHeaderSize))-3))
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
	db, err = Open("db", opts)
	require.NoError(t, err)
	defer db.Close()
	require.Equal(t, uint64(9), db.LastSeq())
	_, err = db.Get([]byte("key10"))
	require.ErrorIs(t, err, logkv.ErrNotFound)
	v, err := db.Get([]byte("key09"))
	require.NoError(t, err)
	require.Equal(t, "value", string(v))
}

// TestCorruptTable flips bits in a table: every read either returns the
// right data or ErrCorrupt, and reads touching the damage return ErrCorrupt.
func TestCorruptTable(t *testing.T) {
	for _, where := range []float64{0.1, 0.5, 0.9} {
		t.Run(fmt.Sprint(where), func(t *testing.T) {
			fs := vfs.NewMem()
			opts := smallOptions(fs)
			opts.DisableWAL = true
			opts.L0CompactionThreshold = 100
			opts.L0SlowdownWritesThreshold = 100
			opts.L0StopWritesThreshold = 100
			opts.Compression = "none"
			opts.CacheSize = 1 // no block stays cached
			db, err := Open("db", opts)
			require.NoError(t, err)
			want := map[string]string{}
			for i := 0; i < 400; i++ {
				k, v := fmt.Sprintf("key%04d", i), strings.Repeat(fmt.Sprint(i%10), 50)
				want[k] = v
				require.NoError(t, db.Set([]byte(k), []byte(v), nil))
			}
			require.NoError(t, db.Close())
			tables := filesOf(t, fs, "db", kindTable)
			require.Len(t, tables, 1)
			path := "db/" + tables[0]
			fi, err := fs.Stat(path)
			require.NoError(t, err)
			flipBit(t, fs, path, int64(float64(fi.Size())*where))

			db, err = Open("db", opts)
			if err != nil {
				require.ErrorIs(t, err, logkv.ErrCorrupt)
				return
			}
			defer db.Close()
			corrupt := 0
			for k, v := range want {
				got, err := db.Get([]byte(k))
				if errors.Is(err, logkv.ErrCorrupt) {
					corrupt++
					continue
				}
				require.NoError(t, err, k)
				require.Equal(t, v, string(got), k)
			}
			it, err := db.NewIter(nil)
			if err == nil {
				for ok := it.First(); ok; ok = it.Next() {
					require.Equal(t, want[string(it.Key())], string(it.Value()))
				}
				if it.Error() != nil {
					require.ErrorIs(t, it.Error(), logkv.ErrCorrupt)
					corrupt++
				}
				it.Close()
			} else {
				require.ErrorIs(t, err, logkv.ErrCorrupt)
				corrupt++
			}
			require.Positive(t, corrupt, "a flipped bit went unnoticed")
		})
	}
}
