package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// runSlotCmd runs one of slotkeys.go's CLUSTER subcommands on n as client c
// would (args from CLUSTER on), and returns the RESP reply.
func runSlotCmd(n *Node, db int, run func(*Node, *client, [][]byte), args ...string) string {
	c := writerClient(n)
	c.ks.db = db
	a := [][]byte{[]byte("CLUSTER")}
	for _, s := range args {
		a = append(a, []byte(s))
	}
	run(n, c, a)
	return string(c.conn.out)
}

// COUNTKEYSINSLOT and GETKEYSINSLOT read one slot's range: its live keys,
// in key order, of the client's database only; replies and errors as
// redis-server 7.0.15 (--cluster-enabled yes) gives them.
func TestKeysInSlot(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.setClock(clock0)
		// keySlot("user") = 5474; {user}... hash "user".
		for _, k := range []string{"{user}b", "user", "{user}a", "other", "{user2}x"} {
			require.NoError(t, c.Set(ctx, k, "v", 0).Err())
		}
		require.NoError(t, c.Set(ctx, "{user}gone", "v", time.Second).Err())
		c1 := dial(t, n, func(o *redis.Options) { withAuth(o); o.DB = 1 })
		require.NoError(t, c1.Set(ctx, "{user}c", "v", 0).Err())
		n.setClock(clock0 + 2000)

		count := func(db int, args ...string) string {
			return runSlotCmd(n, db, cmdClusterCountKeysInSlot, append([]string{"COUNTKEYSINSLOT"}, args...)...)
		}
		get := func(db int, args ...string) string {
			return runSlotCmd(n, db, cmdClusterGetKeysInSlot, append([]string{"GETKEYSINSLOT"}, args...)...)
		}
		require.Equal(t, ":3\r\n", count(0, "5474"), "user, {user}a, {user}b; {user}gone is past its deadline")
		require.Equal(t, ":1\r\n", count(1, "5474"), "database 1's own")
		require.Equal(t, ":0\r\n", count(0, "0"))
		require.Equal(t, "*3\r\n$4\r\nuser\r\n$7\r\n{user}a\r\n$7\r\n{user}b\r\n", get(0, "5474", "10"))
		require.Equal(t, "*2\r\n$4\r\nuser\r\n$7\r\n{user}a\r\n", get(0, "5474", "2"))
		require.Equal(t, "*0\r\n", get(0, "5474", "0"))
		require.Equal(t, "*0\r\n", get(0, "16383", "5"))

		require.Equal(t, "-ERR Invalid slot\r\n", count(0, "16384"))
		require.Equal(t, "-ERR Invalid slot\r\n", count(0, "-1"))
		require.Equal(t, "-ERR value is not an integer or out of range\r\n", count(0, "abc"))
		require.Equal(t, "-ERR value is not an integer or out of range\r\n", count(0, "99999999999999999999"))
		require.Equal(t, "-ERR Invalid slot or number of keys\r\n", get(0, "5474", "-1"))
		require.Equal(t, "-ERR Invalid slot or number of keys\r\n", get(0, "16384", "1"))
		require.Equal(t, "-ERR Invalid slot or number of keys\r\n", get(0, "-1", "1"))
		require.Equal(t, "-ERR value is not an integer or out of range\r\n", get(0, "x", "1"))
		require.Equal(t, "-ERR value is not an integer or out of range\r\n", get(0, "1", "x"))
	})
}

// A slot's range snapshot sees the slot's rows as they were when it was
// taken: writes, deletes and a FLUSHALL after it do not show through.
func TestSnapshotSlot(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.setClock(clock0)
		require.NoError(t, c.Set(ctx, "{s}a", "1", 0).Err())
		require.NoError(t, c.Set(ctx, "{s}b", "2", time.Hour).Err())
		require.NoError(t, c.Set(ctx, "{t}a", "other slot", 0).Err())
		slot := keySlot([]byte("s"))
		rows, err := n.SnapshotSlot(0, slot)
		require.NoError(t, err)
		defer rows.Close()
		require.NotZero(t, rows.Seq())

		require.NoError(t, c.Set(ctx, "{s}c", "3", 0).Err())
		require.NoError(t, c.Del(ctx, "{s}a").Err())
		require.NoError(t, c.FlushAll(ctx).Err())

		var got []string
		for rows.Next() {
			_, key, ok := decodeDataKeyT(rows.EngineKey())
			require.True(t, ok)
			require.Equal(t, string(rows.Key()), key)
			got = append(got, fmt.Sprintf("%s=%s@%d", rows.Key(), rows.Value(), rows.ExpireAt()))
		}
		require.NoError(t, rows.Err())
		require.Equal(t, []string{"{s}a=1@0", fmt.Sprintf("{s}b=2@%d", clock0+3600_000)}, got)
		require.NoError(t, rows.Close())
		require.NoError(t, rows.Close(), "twice is safe")

		_, err = n.SnapshotSlot(0, numSlots)
		require.Error(t, err)
		_, err = n.SnapshotSlot(maxDBs, 0)
		require.Error(t, err)
	})
}

// decodeDataKeyT is decodeDataKey's key as a string.
func decodeDataKeyT(k []byte) (int, string, bool) {
	db, _, key, ok := decodeDataKey(k)
	return db, string(key), ok
}
