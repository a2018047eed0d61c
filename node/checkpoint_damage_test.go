package node

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/wire"
)

// Issue 16: a memory node whose checkpoint is damaged started its engine
// empty and failed with "the engine is at seq 0 but the log starts at N",
// naming neither the checkpoint nor the damage nor what to do; with no log
// records at all it started empty and served nothing the checkpoint held.
// It must refuse to start, name the checkpoint file and the damaged frame's
// offset, and say how to recover (a full resync, or kvnode salvage). When
// the log still holds every record from the first on, the checkpoint is
// not needed: the node starts and replays the log.
func TestDamagedCheckpointRefusesToStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		log   string    // "trimmed": starts after the checkpoint; "gone": no records; "whole": from seq 1
		frame wire.Type // the frame damaged
	}{
		{"log starts after the checkpoint", "trimmed", wire.TypeSnapshotChunk},
		{"damaged header frame", "trimmed", wire.TypeCheckpoint},
		{"no log records", "gone", wire.TypeSnapshotChunk},
		{"log holds every record", "whole", wire.TypeSnapshotChunk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			edit := func(c *Config) { c.Engine, c.DataDir = "memory", dir }
			logDir := filepath.Join(dir, logSubdir)
			value := strings.Repeat("v", 4<<10)
			const keys = 600 // 2.4 MiB: three chunks of 1 MiB
			runNode(t, edit, func(n *Node, c *redis.Client) {
				for i := range keys {
					require.NoError(t, c.Set(context.Background(), fmt.Sprintf("k%04d", i), value, 0).Err())
				}
				require.NoError(t, n.rep(t).Checkpoint())
			})
			if tc.log != "whole" {
				// The records are now only in the checkpoint, as after
				// Maintain trimmed the log.
				for _, seg := range filesUnder(t, logDir, ".log") {
					require.NoError(t, os.Remove(seg))
				}
			}
			if tc.log == "trimmed" {
				// A restart loads the checkpoint and starts the log after
				// it.
				runNode(t, edit, func(n *Node, c *redis.Client) {
					require.Equal(t, value, c.Get(context.Background(), "k0000").Val())
					segs := filesUnder(t, logDir, ".log")
					require.Len(t, segs, 1)
					first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(segs[0]), ".log"), 16, 64) // the segment's first seq, in hex
					require.NoError(t, err)
					require.Greater(t, first, uint64(keys), "the log starts after the checkpoint")
				})
			}

			cp := filepath.Join(logDir, "checkpoint")
			off := damageFrame(t, cp, tc.frame)

			cfg := DefaultConfig()
			cfg.Listen, cfg.Admin, cfg.Replication.Listen = "127.0.0.1:0", "127.0.0.1:0", "off"
			edit(&cfg)
			n, err := New(cfg, slog.New(slog.DiscardHandler))
			if tc.log == "whole" {
				require.NoError(t, err, "the log holds every record: the checkpoint is not needed")
				serve(t, n)
				c := dial(t, n, nil)
				size, err := c.DBSize(context.Background()).Result()
				require.NoError(t, err)
				require.EqualValues(t, keys, size, "every key, replayed from the log")
				return
			}
			require.Error(t, err, "a node that needs its damaged checkpoint must not start (it would serve an empty or partial keyspace)")
			msg := err.Error()
			t.Log(msg)
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			require.Contains(t, msg, fmt.Sprintf("%s at offset %d", cp, off), "the error names the checkpoint and the damaged frame's offset")
			require.Contains(t, msg, "kvnode salvage -from "+dir, "the error says how to recover")
		})
	}
}

// runNode starts a node, calls fn, and shuts the node down cleanly.
func runNode(t *testing.T, edit func(*Config), fn func(*Node, *redis.Client)) {
	t.Helper()
	n := newNode(t, edit)
	served := make(chan error, 1)
	go func() { served <- n.Serve() }()
	fn(n, dial(t, n, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, n.Shutdown(ctx))
	require.NoError(t, <-served)
}

// damageFrame flips a byte in the middle of the first frame of type typ in
// checkpoint file cp and returns the frame's offset.
func damageFrame(t *testing.T, cp string, typ wire.Type) int64 {
	t.Helper()
	f, err := os.Open(cp)
	require.NoError(t, err)
	r := wire.NewReader(bufio.NewReader(f))
	start, end := int64(-1), int64(-1)
	for end < 0 {
		at := r.Read()
		fr, err := r.ReadFrame()
		require.NoError(t, err)
		if fr.Type == typ && start < 0 {
			start, end = at, r.Read()
		}
	}
	r.Close()
	require.NoError(t, f.Close())
	b, err := os.ReadFile(cp)
	require.NoError(t, err)
	b[(start+end)/2] ^= 0x5a
	require.NoError(t, os.WriteFile(cp, b, 0o600))
	return start
}
