package lsm

import (
	"log/slog"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestOptionsYAML(t *testing.T) {
	var o Options
	require.NoError(t, yaml.Unmarshal([]byte(`
memtable_size: 1048576
l0_compaction_threshold: 6
compression: zstd
bloom_bits_per_key: -1
disable_wal: true
sync_writes: true
`), &o))
	require.Equal(t, int64(1<<20), o.MemtableSize)
	require.Equal(t, 6, o.L0CompactionThreshold)
	require.Equal(t, "zstd", o.Compression)
	require.True(t, o.DisableWAL)
	o.EnsureDefaults()
	require.NoError(t, o.Validate())
	require.Equal(t, 0, o.writerOptions().BloomBitsPerKey, "negative disables the filter")
	require.Equal(t, 10, o.LevelMultiplier, "defaults filled")
	require.Same(t, slog.Default(), o.Logger, "a nil Logger means the process's default")
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]Options{
		"compression":   {Compression: "lz4"},
		"memtable":      {MemtableSize: 10},
		"l0-thresholds": {L0CompactionThreshold: 8, L0SlowdownWritesThreshold: 4},
	} {
		t.Run(name, func(t *testing.T) {
			o.FS = nil
			_, err := Open(t.TempDir(), &o)
			require.ErrorIs(t, err, errOptions)
		})
	}
}

func TestRegistered(t *testing.T) {
	e, err := logkv.Open("lsm", t.TempDir(), nil)
	require.NoError(t, err)
	require.NoError(t, e.Close())
	_, err = logkv.Open("lsm", t.TempDir(), struct{}{})
	require.Error(t, err)
}

func TestSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	require.NoError(t, err)
	defer db.Close()
	_, err = Open(dir, nil)
	require.ErrorIs(t, err, vfs.ErrLocked)
}
