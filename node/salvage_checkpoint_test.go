package node

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv/replicate/wire"
)

// Issue 16: a damaged last checkpoint chunk lost the keyspace's meta rows,
// which sort last: kvnode salvage kept the chunks before the damage, but
// without the format row a node refused the result, and without a flushed
// database's generation row its keys were hidden. Salvage now restores
// both (restoreMeta) and reports it. A memory node with keys in database 0
// and, after a FLUSHDB, in database 1 (generation 1) writes a checkpoint;
// the log before it is removed, one byte of the last chunk is flipped, and
// a node started on the salvage must serve every key of the chunks before
// the damage, in both databases, and none of the flushed ones.
func TestSalvageDamagedLastCheckpointChunk(t *testing.T) {
	dir := t.TempDir()
	n := newNode(t, func(c *Config) { c.Engine, c.DataDir, c.Password = "memory", dir, adminPassword }) // FLUSHDB needs an admin
	served := make(chan error, 1)
	go func() { served <- n.Serve() }()
	ctx := context.Background()
	c := dial(t, n, func(o *redis.Options) { o.PoolSize, o.Password = 1, adminPassword })
	for i := range 10 {
		require.NoError(t, c.Set(ctx, fmt.Sprintf("zero%d", i), "v0", 0).Err())
	}
	c1 := dial(t, n, func(o *redis.Options) { o.PoolSize, o.DB, o.Password = 1, 1, adminPassword })
	require.NoError(t, c1.Set(ctx, "flushed", "old", 0).Err())
	require.NoError(t, c1.FlushDB(ctx).Err())
	value := strings.Repeat("v", 4<<10)
	for i := range 600 { // 2.4 MiB: three chunks of 1 MiB
		require.NoError(t, c1.Set(ctx, fmt.Sprintf("one%04d", i), value, 0).Err())
	}
	require.NoError(t, n.rep(t).Checkpoint())
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, n.Shutdown(sctx))
	require.NoError(t, <-served)
	for _, seg := range filesUnder(t, filepath.Join(dir, logSubdir), ".log") {
		require.NoError(t, os.Remove(seg)) // the keys are only in the checkpoint
	}

	// Flip a byte in the middle of the last chunk.
	cp := filepath.Join(dir, logSubdir, "checkpoint")
	f, err := os.Open(cp)
	require.NoError(t, err)
	r := wire.NewReader(bufio.NewReader(f))
	var last, end int64 = -1, -1
	for {
		at := r.Read()
		fr, err := r.ReadFrame()
		require.NoError(t, err)
		if fr.Type == wire.TypeSnapshotEnd {
			end = at
			break
		}
		if fr.Type == wire.TypeSnapshotChunk {
			last = at
		}
	}
	r.Close()
	require.NoError(t, f.Close())
	require.Positive(t, last, "a chunk before the last")
	b, err := os.ReadFile(cp)
	require.NoError(t, err)
	b[(last+end)/2] ^= 0x5a
	require.NoError(t, os.WriteFile(cp, b, 0o600))

	to := filepath.Join(t.TempDir(), "salvaged")
	var out, errOut bytes.Buffer
	require.Equal(t, 0, Main([]string{"salvage", "-from", dir, "-to", to}, &out, &errOut), errOut.String())
	report := out.String()
	t.Log(report)
	require.Contains(t, report, fmt.Sprintf("%s: offset %d", cp, last), "the report names the checkpoint and the damaged chunk's offset")
	require.Contains(t, report, "format row was in the damaged part: restored as format 2")
	require.Contains(t, report, "database 1's generation row was in the damaged part: restored as 1")

	n2 := startNode(t, func(c *Config) { c.Engine, c.DataDir = "memory", to }) // refused without the format row
	s0 := dial(t, n2, nil)
	for i := range 10 {
		require.Equal(t, "v0", s0.Get(ctx, fmt.Sprintf("zero%d", i)).Val())
	}
	s1 := dial(t, n2, func(o *redis.Options) { o.DB = 1 })
	keys, err := s1.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.NotContains(t, keys, "flushed", "a key FLUSHDB removed stays removed")
	require.Greater(t, len(keys), 100, "database 1's keys of the chunks before the damage (generation 1)")
	require.Less(t, len(keys), 600, "the damaged chunk's keys are lost: the log was removed")
	for _, k := range keys {
		require.Equal(t, value, s1.Get(ctx, k).Val(), k)
	}
}
