package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestKeyCommands(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.setClock(clock0)
		require.NoError(t, c.MSet(ctx, "user:1", "a", "user:2", "b", "other", "c").Err())
		require.NoError(t, c.Set(ctx, "user:3", "gone", time.Second).Err())
		n.setClock(clock0 + 1000)
		require.Equal(t, walkOrder("user:1", "user:2"), toAny(c.Keys(ctx, "user:*").Val()))
		require.Len(t, c.Keys(ctx, "*").Val(), 3)

		// RENAME keeps the TTL; RENAMENX refuses an existing target.
		require.NoError(t, c.Expire(ctx, "user:1", time.Minute).Err())
		require.NoError(t, c.Rename(ctx, "user:1", "renamed").Err())
		require.Equal(t, time.Minute, c.TTL(ctx, "renamed").Val())
		require.Equal(t, int64(0), c.Exists(ctx, "user:1").Val())
		require.EqualError(t, c.Rename(ctx, "nope", "x").Err(), "ERR no such key")
		require.False(t, c.RenameNX(ctx, "renamed", "other").Val())
		require.True(t, c.RenameNX(ctx, "renamed", "fresh").Val())

		// COPY, across databases too; MOVE.
		require.Equal(t, int64(1), c.Copy(ctx, "fresh", "copy", 0, false).Val())
		require.Equal(t, "a", c.Get(ctx, "copy").Val())
		require.Equal(t, time.Minute, c.TTL(ctx, "copy").Val())
		require.Equal(t, int64(0), c.Copy(ctx, "fresh", "copy", 0, false).Val())
		require.Equal(t, int64(1), c.Copy(ctx, "other", "copy", 0, true).Val())
		require.Equal(t, "c", c.Get(ctx, "copy").Val())
		require.Equal(t, int64(1), c.Copy(ctx, "other", "other", 2, false).Val())
		require.EqualError(t, c.Do(ctx, "copy", "other", "other").Err(), "ERR source and destination objects are the same")
		require.Equal(t, true, c.Move(ctx, "copy", 3).Val())
		require.Equal(t, int64(0), c.Exists(ctx, "copy").Val())
		conn := c.Conn()
		defer conn.Close()
		require.NoError(t, conn.Select(ctx, 3).Err())
		require.Equal(t, "c", conn.Get(ctx, "copy").Val())
		require.NoError(t, conn.Select(ctx, 2).Err())
		require.Equal(t, "c", conn.Get(ctx, "other").Val())

		// TOUCH, TYPE, OBJECT.
		require.Equal(t, int64(2), c.Touch(ctx, "other", "other", "nope").Val())
		require.NoError(t, c.Set(ctx, "int", "12345", 0).Err())
		require.Equal(t, "int", c.ObjectEncoding(ctx, "int").Val())
		require.Equal(t, "embstr", c.ObjectEncoding(ctx, "other").Val())
		require.NoError(t, c.Set(ctx, "long", fmt.Sprintf("%050d", 1), 0).Err())
		require.Equal(t, "raw", c.ObjectEncoding(ctx, "long").Val())
		require.Equal(t, int64(1), c.ObjectRefCount(ctx, "int").Val())
		require.ErrorIs(t, c.ObjectEncoding(ctx, "nope").Err(), redis.Nil)
		require.EqualError(t, c.Do(ctx, "object", "foo", "int").Err(), "ERR unknown subcommand 'foo'. Try OBJECT HELP.")

		// RANDOMKEY finds a live key, or none.
		k := c.RandomKey(ctx).Val()
		require.Equal(t, int64(1), c.Exists(ctx, k).Val())

		// DUMP and RESTORE round-trip, with checks.
		payload := c.Dump(ctx, "other").Val()
		require.NoError(t, c.Restore(ctx, "restored", time.Minute, payload).Err())
		require.Equal(t, "c", c.Get(ctx, "restored").Val())
		require.Equal(t, time.Minute, c.TTL(ctx, "restored").Val())
		require.EqualError(t, c.Restore(ctx, "restored", 0, payload).Err(), "BUSYKEY Target key name already exists.")
		require.NoError(t, c.RestoreReplace(ctx, "restored", 0, payload).Err())
		require.Equal(t, int64(-1), c.Do(ctx, "ttl", "restored").Val())
		bad := []byte(payload)
		bad[5] ^= 1
		require.EqualError(t, c.Restore(ctx, "r2", 0, string(bad)).Err(), "ERR DUMP payload version or checksum are wrong")
		require.EqualError(t, c.Restore(ctx, "r2", 0, "x").Err(), "ERR DUMP payload version or checksum are wrong")
		require.EqualError(t, c.Do(ctx, "restore", "r2", "-1", payload).Err(), "ERR Invalid TTL value, must be >= 0")
		require.NoError(t, c.Do(ctx, "restore", "r2", clock0+5000, payload, "absttl", "idletime", "10").Err())
		require.Equal(t, int64(4000), c.Do(ctx, "pttl", "r2").Val())
		require.NoError(t, c.Do(ctx, "restore", "r3", clock0, payload, "absttl").Err())
		require.Equal(t, int64(0), c.Exists(ctx, "r3").Val(), "restored already expired")
	})
}

// TestExecIsOneBatch: a transaction reaches the engine as one batch, so a
// crash leaves all of it or none (the engines' own crash tests cover a
// batch's atomicity).
func TestExecIsOneBatch(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		before := n.eng().Metrics().Writes
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i := range 10 {
				p.Set(ctx, fmt.Sprint("k", i), i, time.Hour)
			}
			p.Del(ctx, "k0")
			p.Rename(ctx, "k1", "r1")
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, uint64(1), n.eng().Metrics().Writes-before, "one engine batch")
		require.Equal(t, int64(9), c.DBSize(ctx).Val())
	})
}

// TestManyKeysLeaveTheLoop: a DEL (or EXISTS, MGET, MSET, TOUCH) of many
// keys runs off the event loop, and still answers right.
func TestManyKeysLeaveTheLoop(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, nil)
	ctx := context.Background()
	keys := make([]string, manyArgs+1)
	pairs := make([]any, 0, 2*len(keys))
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
		pairs = append(pairs, keys[i], "v")
	}
	exists := [][]byte{[]byte("exists")}
	for _, k := range keys {
		exists = append(exists, []byte(k))
	}
	require.True(t, n.mayWait(&client{}, lookup(exists[0]), exists))
	require.False(t, n.mayWait(&client{}, lookup(exists[0]), exists[:3]))
	require.NoError(t, c.MSet(ctx, pairs...).Err())
	require.Equal(t, int64(len(keys)), c.Exists(ctx, keys...).Val())
	require.Equal(t, int64(len(keys)), c.Del(ctx, keys...).Val())
	require.Equal(t, int64(0), c.DBSize(ctx).Val())
}
