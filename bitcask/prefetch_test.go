package bitcask

import (
	"fmt"
	"testing"
	"time"

	"github.com/logkv/logkv/enginetest"
	"github.com/stretchr/testify/require"
)

// TestPrefetchConcurrent runs enginetest.PrefetchStress with merges
// (automatic and asked for) and rotations of 64 KiB files, on the OS
// filesystem, so that Prefetch reads records from mappings that merges
// release and Close unmaps. Run it with -race.
func TestPrefetchConcurrent(t *testing.T) {
	db, err := Open(t.TempDir(), &Options{MaxFileSize: 64 << 10, MergeThreshold: 0.3})
	require.NoError(t, err)
	run := 2 * time.Second
	if testing.Short() || raceEnabled {
		run = 500 * time.Millisecond
	}
	enginetest.PrefetchStress(t, db, run, db.Merge)
	require.Positive(t, db.MergeStats().Merges, "no merge ran")
}

// TestPrefetchMappedOnly checks Prefetch against records outside a mapping:
// with DisableMmap, and in the active file's write buffer (not yet
// flushed), Gets after it read what they read without it.
func TestPrefetchMappedOnly(t *testing.T) {
	for _, noMmap := range []bool{false, true} {
		t.Run(fmt.Sprint("DisableMmap=", noMmap), func(t *testing.T) {
			db, err := Open(t.TempDir(), &Options{DisableMmap: noMmap, BufferSize: 1 << 20})
			require.NoError(t, err)
			defer db.Close()
			var keys [][]byte
			for i := range 40 {
				k := fmt.Appendf(nil, "k%02d", i)
				keys = append(keys, k)
				require.NoError(t, db.Set(k, append([]byte("v"), k...), nil))
			}
			db.Prefetch(keys)
			for _, k := range keys {
				v, err := db.Get(k)
				require.NoError(t, err)
				require.Equal(t, "v"+string(k), string(v))
			}
		})
	}
}
