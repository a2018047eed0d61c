package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
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
			keys, _, err := c.Scan(ctx, 0, "k00*", 100).Result()
			require.NoError(t, err)
			require.Equal(t, []string{"k001", "k002", "k003", "k004", "k005", "k006", "k007", "k008", "k009"}, keys)
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
