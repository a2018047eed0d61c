package node

import (
	"bufio"
	"context"
	"io"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// helloMode finds HELLO 3's mode in a raw reply.
var helloMode = regexp.MustCompile(`\$4\r\nmode\r\n\$\d+\r\n([a-z]+)\r\n`)

// TestRedisModeCluster: HELLO's mode and INFO server's redis_mode say
// "cluster" on a cluster member and "standalone" on a plain node, as a
// redis-server with and without cluster-enabled says (asked here, not
// assumed).
func TestRedisModeCluster(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	ask := func(d *diffConn) (mode, info string) {
		t.Helper()
		m := helloMode.FindStringSubmatch(d.do(t, []string{"hello", "3"}))
		require.NotNil(t, m, "HELLO 3 has a mode")
		info = d.do(t, []string{"info", "server"})
		return m[1], regexp.MustCompile(`redis_mode:[a-z]+\r\n`).FindString(info)
	}
	rcn := redisClusterNode(t)
	wantMode, wantInfo := ask(&diffConn{rcn, bufio.NewReader(rcn)})
	require.Equal(t, "cluster", wantMode, "redis-server with cluster-enabled yes")
	require.Equal(t, "redis_mode:cluster\r\n", wantInfo)
	redis, kv, _ := diffPair(t)
	plainMode, plainInfo := ask(redis)
	require.Equal(t, "standalone", plainMode, "redis-server without cluster support")
	mode, info := ask(kv)
	require.Equal(t, plainMode, mode, "a plain node")
	require.Equal(t, plainInfo, info)

	tc := newTestCluster(t, time.Second)
	tc.add("a")
	m := tc.leader(20 * time.Second)
	nc, err := net.Dial("tcp", m.n.Addr())
	require.NoError(t, err)
	defer nc.Close()
	mode, info = ask(&diffConn{nc, bufio.NewReader(nc)})
	require.Equal(t, wantMode, mode, "a cluster member")
	require.Equal(t, wantInfo, info)
	require.Contains(t, m.client(t).Info(ctx, "cluster").Val(), "cluster_enabled:1\r\n", "the same test as cluster_enabled's")
}

// TestKeyspaceHits: INFO stats' keyspace_hits and keyspace_misses count
// GETs that found their key and that did not, the fast path's and those
// inside EXEC, a pipeline's once it has ended, and CONFIG RESETSTAT zeroes
// them.
func TestKeyspaceHits(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, withPassword)
	rdb := dial(t, n, withAuth)
	field := func(name string) int {
		t.Helper()
		m := regexp.MustCompile(name + `:(\d+)\r\n`).FindStringSubmatch(rdb.Info(ctx, "stats").Val())
		require.NotNil(t, m, "INFO stats has %s", name)
		v, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		return v
	}
	require.Equal(t, 0, field("keyspace_hits"))
	require.NoError(t, rdb.Set(ctx, "a", "1", 0).Err())
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "a")
		p.Get(ctx, "a")
		p.Get(ctx, "absent")
		return nil
	})
	require.ErrorIs(t, err, redis.Nil)
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "a")
		p.Get(ctx, "absent")
		return nil
	})
	require.ErrorIs(t, err, redis.Nil)
	require.Equal(t, 3, field("keyspace_hits"))
	require.Equal(t, 2, field("keyspace_misses"))
	require.NoError(t, rdb.ConfigResetStat(ctx).Err())
	require.Equal(t, 0, field("keyspace_hits"))
	require.Equal(t, 0, field("keyspace_misses"))
}

// TestCommandstatsWithinPipeline: INFO commandstats counts the commands
// before it in its own pipeline (they are gathered per pipeline, cmdTally),
// and CONFIG RESETSTAT resets them too, as Redis, which counts each command
// as it ends.
func TestCommandstatsWithinPipeline(t *testing.T) {
	ctx := context.Background()
	n := startNode(t, withPassword)
	rdb := dial(t, n, withAuth)
	var info *redis.StringCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "a")
		p.Set(ctx, "a", "1", 0)
		p.Get(ctx, "a")
		info = p.Info(ctx, "commandstats")
		return nil
	})
	require.ErrorIs(t, err, redis.Nil)
	require.Regexp(t, `cmdstat_get:calls=2,`, info.Val())
	require.Regexp(t, `cmdstat_set:calls=1,`, info.Val())
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "a")
		p.ConfigResetStat(ctx)
		p.Set(ctx, "a", "2", 0)
		info = p.Info(ctx, "commandstats")
		return nil
	})
	require.NoError(t, err)
	require.NotContains(t, info.Val(), "cmdstat_get:")
	require.Regexp(t, `cmdstat_set:calls=1,`, info.Val())
}

// TestStatsWithinOneWrite: INFO stats counts the commands before it in the
// same write from the client, as redis-server does (it counts each command
// as it ends): SET, GET a (a hit), GET b (a miss) and INFO in one write
// answer keyspace_hits:1, keyspace_misses:1, total_commands_processed:4
// (AUTH, SET and the GETs).
// Then RESETSTAT in one write after a GET leaves none of them counted.
func TestStatsWithinOneWrite(t *testing.T) {
	rc := dialRawAdmin(t, adminNode(t, nil))
	require.NoError(t, rc.nc.SetDeadline(time.Now().Add(10*time.Second)))
	_, err := io.WriteString(rc.nc, "SET a 1\r\nGET a\r\nGET b\r\nINFO stats\r\n")
	require.NoError(t, err)
	require.Equal(t, "+OK\r\n", rc.reply())
	require.Equal(t, "$1\r\n1\r\n", rc.reply())
	require.Equal(t, "$-1\r\n", rc.reply())
	info := rc.reply()
	require.Contains(t, info, "\r\nkeyspace_hits:1\r\n")
	require.Contains(t, info, "\r\nkeyspace_misses:1\r\n")
	require.Contains(t, info, "\r\ntotal_commands_processed:4\r\n")
	_, err = io.WriteString(rc.nc, "GET a\r\nGET b\r\nCONFIG RESETSTAT\r\n")
	require.NoError(t, err)
	require.Equal(t, "$1\r\n1\r\n", rc.reply())
	require.Equal(t, "$-1\r\n", rc.reply())
	require.Equal(t, "+OK\r\n", rc.reply())
	info = rc.do("INFO", "stats")
	require.Contains(t, info, "\r\nkeyspace_hits:0\r\n")
	require.Contains(t, info, "\r\nkeyspace_misses:0\r\n")
}
