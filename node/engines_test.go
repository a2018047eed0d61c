package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logkv/logkv/bitcask"
	"github.com/logkv/logkv/lsm"
	"github.com/logkv/logkv/memory"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The engine is switched by the config file alone; the same client-visible
// behaviour holds for each, and each keeps acknowledged writes across a
// restart (memory through the commit log and its checkpoint).
func TestEngineSwitchByConfig(t *testing.T) {
	for _, engine := range []string{"lsm", "bitcask", "memory"} {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "kvnode.yaml")
			require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(
				"engine: %s\ndata_dir: %s\nlisten: 127.0.0.1:0\nadmin: \"off\"\nreplication:\n  listen: \"off\"\n",
				engine, filepath.Join(dir, "data"))), 0o644))
			start := func() (*Node, chan error) {
				cfg, err := LoadConfig(path)
				require.NoError(t, err)
				n, err := New(cfg, slog.New(slog.DiscardHandler))
				require.NoError(t, err)
				served := make(chan error, 1)
				go func() { served <- n.Serve() }()
				return n, served
			}
			stop := func(n *Node, served chan error) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				require.NoError(t, n.Shutdown(ctx))
				require.NoError(t, <-served)
			}
			ctx := context.Background()
			n, served := start()
			c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
			require.Contains(t, c.Info(ctx, "server").Val(), "logkv_engine:"+engine)
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := range 500 {
					p.Set(ctx, fmt.Sprintf("k%03d", i), i, 0)
				}
				return nil
			})
			require.NoError(t, err)
			require.NoError(t, c.MSet(ctx, "a", "1", "b", "2").Err())
			require.Equal(t, int64(1), c.Del(ctx, "k000").Val())
			require.Equal(t, int64(3), c.Incr(ctx, "b").Val())
			keys, _, err := c.Scan(ctx, 0, "k00*", 1000).Result() // examines every key: keys are stored by slot
			require.NoError(t, err)
			require.Equal(t, walkOrder("k001", "k002", "k003", "k004", "k005", "k006", "k007", "k008", "k009"), toAny(keys))
			c.Close()
			stop(n, served)

			n, served = start()
			defer stop(n, served)
			c = redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
			defer c.Close()
			require.Equal(t, "499", c.Get(ctx, "k499").Val())
			require.Equal(t, "3", c.Get(ctx, "b").Val())
			require.ErrorIs(t, c.Get(ctx, "k000").Err(), redis.Nil)
			var all []string
			it := c.Scan(ctx, 0, "", 1000).Iterator()
			for it.Next(ctx) {
				all = append(all, it.Val())
			}
			require.NoError(t, it.Err())
			require.Len(t, all, 501)
			if engine == "bitcask" {
				require.Equal(t, int64(501), c.DBSize(ctx).Val(), "bitcask's key count is exact")
			}
		})
	}
}

// The node learns how to run its engine from the engine's options
// (logkv's capability interfaces), not from its name: lsm runs with the
// commit log as its WAL and syncs every 64 MiB of log; memory is
// checkpointed and needs no data_dir under durability none; bitcask keeps
// its own data files either way.
func TestEngineCapabilities(t *testing.T) {
	cfg := func(engine, opts string) *Config {
		c := DefaultConfig()
		c.Engine = engine
		if opts != "" {
			require.NoError(t, yaml.Unmarshal([]byte(opts), &c.EngineOptions))
			c.EngineOptions = *c.EngineOptions.Content[0]
		}
		return &c
	}

	opts, err := cfg("lsm", "memtable_size: 131072\n").openOptions(true)
	require.NoError(t, err)
	require.Equal(t, &lsm.Options{MemtableSize: 128 << 10, DisableWAL: true}, opts, "logged: the commit log is lsm's WAL; the configured options stay")
	require.Equal(t, int64(64<<20), engineSyncEvery(opts))
	opts, err = cfg("lsm", "").openOptions(false)
	require.NoError(t, err)
	require.Equal(t, &lsm.Options{}, opts, "durability none: lsm keeps its WAL")
	require.Zero(t, engineSyncEvery(opts))

	opts, err = cfg("bitcask", "").openOptions(true)
	require.NoError(t, err)
	require.Equal(t, &bitcask.Options{}, opts)
	require.Zero(t, engineSyncEvery(opts))
	opts, err = cfg("memory", "").openOptions(true)
	require.NoError(t, err)
	require.Equal(t, &memory.Options{}, opts)

	require.True(t, cfg("memory", "").volatileEngine())
	require.False(t, cfg("lsm", "").volatileEngine())
	require.False(t, cfg("bitcask", "").volatileEngine())
	require.False(t, cfg("nosuch", "").volatileEngine())

	c := cfg("memory", "")
	c.Durability, c.DataDir = "none", ""
	require.NoError(t, c.Validate(), "a volatile engine needs no data_dir without the commit log")
	c.Engine = "bitcask"
	require.ErrorContains(t, c.Validate(), "data_dir is empty")
	c.Engine = "nosuch"
	require.ErrorContains(t, c.Validate(), `engine "nosuch" is not one of bitcask, lsm, memory`)
}
