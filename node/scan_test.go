package node

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestScanCursorOutlivesTheNode: a cursor keeps working after many newer
// scans and after a restart (a node that never issued it), with no key
// missed and the scan ending.
func TestScanCursorOutlivesTheNode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir, cfg.Listen, cfg.Admin, cfg.Replication.Listen = "bitcask", dir, "127.0.0.1:0", "off", "off"
	start := func() (*Node, *redis.Client) {
		n, err := New(cfg, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		served := make(chan error, 1)
		go func() { served <- n.Serve() }()
		c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		stop := func() {
			c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, n.Shutdown(ctx))
			require.NoError(t, <-served)
		}
		t.Cleanup(func() {
			select {
			case <-n.closed:
			default:
				stop()
			}
		})
		return n, c
	}
	n, c := start()
	want := map[string]bool{}
	var pairs []any
	for i := range 3000 {
		k := fmt.Sprintf("key:%012d", i) // a long shared prefix
		want[k] = true
		pairs = append(pairs, k, "v")
	}
	require.NoError(t, c.MSet(ctx, pairs...).Err())

	seen := map[string]bool{}
	keys, cursor, err := c.Scan(ctx, 0, "", 100).Result()
	require.NoError(t, err)
	for _, k := range keys {
		seen[k] = true
	}
	// Many newer scans evict the cursor from the node's memory.
	for range 5000 {
		require.NoError(t, c.Scan(ctx, 0, "", 1).Err())
	}
	keys, cursor, err = c.Scan(ctx, cursor, "", 100).Result()
	require.NoError(t, err)
	for _, k := range keys {
		seen[k] = true
	}
	// A restart: the new node never issued the cursor.
	require.NoError(t, n.Shutdown(ctx))
	_, c = start()
	for calls := 0; cursor != 0; calls++ {
		require.Less(t, calls, 1000, "the scan must end")
		keys, cursor, err = c.Scan(ctx, cursor, "", 100).Result()
		require.NoError(t, err)
		for _, k := range keys {
			seen[k] = true
		}
	}
	for k := range want {
		require.True(t, seen[k], "missed %s", k)
	}
}

// A MATCH pattern whose literal prefix holds a {hash tag} walks only that
// slot's range: every key it can match is there (keyspace format 2).
func TestScanHashTagWalksOneSlot(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, nil)
	ctx := context.Background()
	for i := range 300 {
		require.NoError(t, c.Set(ctx, fmt.Sprintf("other:%03d", i), "x", 0).Err())
	}
	for _, k := range []string{"{user1}:b", "{user1}:a", "{user1}x", "{user2}:a"} {
		require.NoError(t, c.Set(ctx, k, "x", 0).Err())
	}
	keys, cursor, err := c.Scan(ctx, 0, "{user1}:*", 2).Result()
	require.NoError(t, err)
	require.Equal(t, []string{"{user1}:a", "{user1}:b"}, keys, "in key order within the slot")
	require.Zero(t, cursor, "2 examined: the slot's range holds only the 3 keys of {user1}, and the walk starts at the prefix")
	require.Equal(t, []string{"{user1}:a", "{user1}:b"}, c.Keys(ctx, "{user1}:*").Val())
	// Without a complete tag in the literal prefix, the whole database.
	keys, _, err = c.Scan(ctx, 0, "{user1*", 1000).Result()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"{user1}:a", "{user1}:b", "{user1}x"}, keys)
}
