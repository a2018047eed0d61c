package node

import (
	"bufio"
	"context"
	"net"
	"regexp"
	"testing"
	"time"

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
