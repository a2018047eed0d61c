package node

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
)

// A data directory in a format this build cannot read (bitcask format 1)
// is refused with logkv.ErrFormat and advice that fits: the version that
// wrote it, or a resync; not the salvage that damaged data gets.
func TestUnreadableFormatRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join("..", "bitcask", "testdata", "format1")
	names, err := os.ReadDir(src)
	require.NoError(t, err)
	eng := filepath.Join(dir, engineSubdir)
	require.NoError(t, os.MkdirAll(eng, 0o700))
	for _, e := range names {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(eng, e.Name()), b, 0o600))
	}

	cfg := DefaultConfig()
	cfg.Listen, cfg.Admin, cfg.Replication.Listen = "127.0.0.1:0", "127.0.0.1:0", "off"
	cfg.Engine, cfg.DataDir = "bitcask", dir
	_, err = New(cfg, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, logkv.ErrFormat)
	require.Contains(t, err.Error(), "cannot read this data's format")
	require.NotContains(t, err.Error(), "kvnode salvage")
}
