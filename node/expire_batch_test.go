package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestExpireBatchMixed checks that the expirer's batches, whose keys it
// reads a prefetched group at a time (expirePrefetch), delete exactly the
// keys due and every due index entry, when a batch mixes entries of a
// flushed generation (no key to read), stale entries (the key rewritten
// with a later deadline or without one, or deleted) and keys due, across
// several batches and groups. A key read against another entry's deadline,
// or an entry paired with another's key, deletes a live key or misses a
// due one here.
func TestExpireBatchMixed(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.stopBackground()
		n.setClock(clock0)
		// Entries of a generation FLUSHDB then ends: at the head of the
		// first batch, with no key left to read.
		for i := range 10 {
			require.NoError(t, c.Set(ctx, fmt.Sprintf("gone%02d", i), "v", time.Duration(1000+i)*time.Millisecond).Err())
		}
		require.NoError(t, c.FlushDB(ctx).Err())
		const keys = 80
		key := func(i int) string { return fmt.Sprintf("k%02d", i) }
		for i := range keys {
			require.NoError(t, c.Set(ctx, key(i), "v", time.Duration(1000+10*i)*time.Millisecond).Err())
		}
		for i := range 5 {
			require.NoError(t, c.Set(ctx, fmt.Sprintf("late%d", i), "v", 100*time.Second).Err())
		}
		due := 0
		for i := range keys {
			switch i % 5 {
			case 0:
				due++
			case 1: // a later deadline: the entry is stale, the key lives
				require.NoError(t, c.Set(ctx, key(i), "v2", 100*time.Second).Err())
			case 2: // no deadline: the entry is stale, the key lives
				require.NoError(t, c.Set(ctx, key(i), "v3", 0).Err())
			case 3: // deleted: the entry has no key
				require.Equal(t, int64(1), c.Del(ctx, key(i)).Val())
			case 4: // a later deadline through EXPIRE (a tx: it removes the entry)
				require.True(t, c.PExpire(ctx, key(i), 100*time.Second).Val())
			}
		}
		n.setClock(clock0 + 5_000)
		deleted, err := n.expireDue()
		require.NoError(t, err)
		require.Equal(t, due, deleted)
		for i := range keys {
			k := key(i)
			switch i % 5 {
			case 0, 3:
				require.Equal(t, int64(0), c.Exists(ctx, k).Val(), k)
			case 1:
				require.Equal(t, "v2", c.Get(ctx, k).Val(), k)
			case 2:
				require.Equal(t, "v3", c.Get(ctx, k).Val(), k)
				require.Equal(t, time.Duration(-1), c.TTL(ctx, k).Val(), k)
			case 4:
				require.Equal(t, "v", c.Get(ctx, k).Val(), k)
			}
		}
		// The entries left are the late keys' and those of the keys given
		// a later deadline; every due one, stale or not, is gone.
		require.Equal(t, 5+2*keys/5, countExpiry(t, n))
		require.Equal(t, int64(5+3*keys/5), c.DBSize(ctx).Val())
	})
}

// TestExpireBatchDBs checks a batch that mixes databases at different
// generations (db 1 flushed once, db 0 never): every due key of each goes,
// its value as well as its index entry. dataKeys reads each entry's
// database's generation; one read for the whole batch would take db 1's
// due keys for a flushed generation's, drop their entries and leave their
// values, hidden but never removed (found in review).
func TestExpireBatchDBs(t *testing.T) {
	for _, e := range engines {
		t.Run(e, func(t *testing.T) {
			n := startNode(t, func(c *Config) { c.Engine = e; withPassword(c) })
			n.stopBackground()
			n.setClock(clock0)
			rc := dialRaw(t, n)
			require.Equal(t, "+OK\r\n", rc.do("auth", testPassword))
			require.Equal(t, "+OK\r\n", rc.do("select", "1"))
			require.Equal(t, "+OK\r\n", rc.do("flushdb")) // db 1 at gen 1, db 0 at gen 0
			for db := range 2 {
				require.Equal(t, "+OK\r\n", rc.do("select", fmt.Sprint(db)))
				for i := range 10 {
					require.Equal(t, "+OK\r\n", rc.do("set", fmt.Sprintf("k%d", i), "v", "px", "1000"))
				}
			}
			n.setClock(clock0 + 5000)
			deleted, err := n.expireDue()
			require.NoError(t, err)
			require.Equal(t, 20, deleted)
			require.Equal(t, 0, countRange(t, n, []byte{0x00}, []byte{dataEnd}), "data keys left")
			require.Equal(t, 0, countExpiry(t, n))
		})
	}
}
