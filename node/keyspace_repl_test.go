package node

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// ttls returns every key's PTTL as c's node sees it.
func ttls(t *testing.T, c *redis.Client) map[string]int64 {
	ctx := context.Background()
	out := map[string]int64{}
	for k := range scanAll(t, c) {
		out[k] = c.Do(ctx, "pttl", k).Val().(int64)
	}
	return out
}

// TestReplicatedKeyspace: followers and a promoted follower agree with the
// leader on which keys exist and on their TTLs; a follower hides what is past
// its deadline but deletes nothing on its own; the leader's expiry and
// flushes reach it as ordinary writes.
func TestReplicatedKeyspace(t *testing.T) {
	tlsDir := filepath.Join(t.TempDir(), "tls")
	var out bytes.Buffer
	require.Equal(t, 0, Main([]string{"certs", "-dir", tlsDir}, &out, &out), out.String())
	ctx := context.Background()

	leader := replNode(t, tlsDir, "lsm", "", withPassword) // FLUSHDB is an admin command
	laddr := leader.rep(t).Addr()
	f1 := replNode(t, tlsDir, "bitcask", laddr, withPassword)
	f2 := replNode(t, tlsDir, "memory", laddr, withPassword)
	nodes := []*Node{leader, f1, f2}
	for _, n := range nodes {
		n.setClock(clock0)
	}
	lc := dial(t, leader, withAuth)
	c1, c2 := dial(t, f1, withAuth), dial(t, f2, withAuth)

	for i := range 20 {
		require.NoError(t, lc.Set(ctx, fmt.Sprintf("t%02d", i), "v", time.Duration(i+1)*time.Second).Err())
		require.NoError(t, lc.Set(ctx, fmt.Sprintf("p%02d", i), "v", 0).Err())
	}
	_, err := lc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "tx1", "1", 0)
		p.Expire(ctx, "tx1", time.Hour)
		p.Set(ctx, "tx2", "2", 0)
		return nil
	})
	require.NoError(t, err)
	caughtUp(t, leader, f1)
	caughtUp(t, leader, f2)
	want := ttls(t, lc)
	require.Len(t, want, 42)
	require.Equal(t, want, ttls(t, c1))
	require.Equal(t, want, ttls(t, c2))

	// A follower runs a transaction that only reads, as a Redis replica
	// does; a write queued there is refused and aborts it.
	fc := dialRaw(t, f2)
	require.Equal(t, "+OK\r\n", fc.do("auth", testPassword))
	require.Equal(t, "+OK\r\n", fc.do("multi"))
	require.Equal(t, "+QUEUED\r\n", fc.do("get", "tx2"))
	require.Equal(t, "+QUEUED\r\n", fc.do("dbsize"))
	require.Equal(t, "*2\r\n$1\r\n2\r\n:42\r\n", fc.do("exec"))
	require.Equal(t, "+OK\r\n", fc.do("multi"))
	require.Equal(t, "-"+errReadOnly+"\r\n", fc.do("set", "x", "1"))
	require.Equal(t, "-EXECABORT Transaction discarded because of previous errors.\r\n", fc.do("exec"))

	// The followers' clocks move first: they hide the keys past their
	// deadline, and delete nothing.
	before := countData(t, f1)
	f1.setClock(clock0 + 10_000)
	f2.setClock(clock0 + 10_000)
	require.Len(t, scanAll(t, c1), 32)
	require.Equal(t, int64(32), c2.DBSize(ctx).Val())
	require.ErrorIs(t, c1.Get(ctx, "t00").Err(), redis.Nil)
	require.Equal(t, before, countData(t, f1), "a follower never deletes on its own")

	// The leader's expirer deletes; the deletes reach the followers.
	leader.setClock(clock0 + 10_000)
	_, err = leader.expireDue()
	require.NoError(t, err)
	caughtUp(t, leader, f1)
	caughtUp(t, leader, f2)
	require.Equal(t, before-10, countData(t, f1))
	require.Equal(t, before-10, countData(t, f2))
	want = ttls(t, lc)
	require.Len(t, want, 32)
	require.Equal(t, want, ttls(t, c1))
	require.Equal(t, want, ttls(t, c2))

	// A flush of db 1 and writes there replicate as such.
	l1, f1c := lc.Conn(), c1.Conn()
	defer l1.Close()
	defer f1c.Close()
	require.NoError(t, l1.Select(ctx, 1).Err())
	require.NoError(t, f1c.Select(ctx, 1).Err())
	require.NoError(t, l1.Set(ctx, "db1", "x", time.Minute).Err())
	caughtUp(t, leader, f1)
	require.Equal(t, int64(60_000), f1c.Do(ctx, "pttl", "db1").Val())
	require.Equal(t, "x", f1c.Get(ctx, "db1").Val()) // the follower's generation of db 1 is cached (followerGen)
	// The old generation's key stays (no sweep): only the generation hides it.
	leader.stopBackground()
	require.NoError(t, l1.FlushDB(ctx).Err())
	caughtUp(t, leader, f1)
	require.Equal(t, redis.Nil, f1c.Get(ctx, "db1").Err(), "the flush's batch moved the applied seq")
	leader.startBackground()
	require.Equal(t, int64(0), f1c.DBSize(ctx).Val())
	require.Equal(t, int64(32), c1.DBSize(ctx).Val(), "db 0 untouched")

	// Promote f1: it agrees on TTLs, and now expires keys itself.
	require.NoError(t, c1.Do(ctx, "replicaof", "no", "one").Err())
	require.Equal(t, want, ttls(t, c1))
	f1.setClock(clock0 + 15_000)
	_, err = f1.expireDue()
	require.NoError(t, err)
	require.Len(t, scanAll(t, c1), 27)
	require.Equal(t, before-15, countData(t, f1))
}
