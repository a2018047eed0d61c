package node

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// A node whose engine finds damaged data refuses to start, names the
// damage, and says how to recover (a full resync from a healthy node).
func TestCorruptDataRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *Config) { c.Engine, c.DataDir = "bitcask", dir }
	n := newNode(t, edit)
	serve(t, n)
	c := dial(t, n, nil)
	ctx := context.Background()
	for i := range 100 {
		require.NoError(t, c.Set(ctx, "k"+strings.Repeat("x", i), "v", 0).Err())
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, n.Shutdown(sctx))

	// A data file one byte longer than its hint says: the hint is its
	// size's witness, so this is damage, not a torn tail.
	var damaged string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && damaged == "" && strings.HasSuffix(p, ".hint") {
			damaged = strings.TrimSuffix(p, ".hint") + ".data"
		}
		return err
	}))
	require.NotEmpty(t, damaged, "a closed bitcask file with a hint")
	f, err := os.OpenFile(damaged, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{0})
	require.NoError(t, err)
	require.NoError(t, f.Close())

	cfg := DefaultConfig()
	cfg.Listen, cfg.Admin, cfg.Replication.Listen = "127.0.0.1:0", "127.0.0.1:0", "off"
	edit(&cfg)
	_, err = New(cfg, slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	require.Contains(t, err.Error(), filepath.Base(damaged), "the error names the damaged file")
	require.Contains(t, err.Error(), "-replicaof", "the error says how to recover")
}
