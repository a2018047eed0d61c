package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out waiting for %s", what)
		time.Sleep(5 * time.Millisecond)
	}
}

// closedFor is how many clients n closed for reason.
func closedFor(n *Node, reason string) float64 {
	return n.metrics.counterValue(n.metrics.closed.WithLabelValues(reason))
}

// pipelineGets returns count pipelined GETs of key.
func pipelineGets(key string, count int) string {
	return strings.Repeat(fmt.Sprintf("*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key), count)
}

// heapInUse is the process's live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// A client that pipelines GETs of a big value and does not read them makes
// the node hold at most its soft limit and a reply, not every reply (300
// GETs of 1 MiB held 300 MiB before): its pipeline stops until gnet has sent
// its output, and goes on, in order, when the client reads.
func TestUnreadRepliesPauseThePipeline(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.ClientOutputBufferLimit.Normal = OutputBufferLimit{Hard: 64 << 20, Soft: 4 << 20, SoftSeconds: 60}
	})
	ctx := context.Background()
	value := strings.Repeat("v", 1<<20)
	require.NoError(t, dial(t, n, nil).Set(ctx, "big", value, 0).Err())
	base := heapInUse()

	const gets = 100
	conn := send(t, n, pipelineGets("big", gets)+"PING\r\n")
	served := func() float64 { return n.metrics.counterValue(n.metrics.cmds[commandTable["get"].id].calls) }
	eventually(t, "the pipeline to stall", func() bool {
		before := served()
		time.Sleep(50 * time.Millisecond)
		return served() == before && served() > 0
	})
	require.Less(t, served(), float64(gets), "the pipeline stopped while its replies were unread")
	require.Less(t, heapInUse(), base+48<<20, "the node holds its soft limit and a reply, not every reply")

	r := bufio.NewReaderSize(conn, 1<<16)
	for i := range gets {
		line, err := r.ReadString('\n')
		require.NoError(t, err, "reply %d", i)
		require.Equal(t, fmt.Sprintf("$%d\r\n", len(value)), line, "reply %d", i)
		_, err = r.Discard(len(value) + 2)
		require.NoError(t, err)
	}
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", line, "the rest of the pipeline ran once the client read")
	require.Zero(t, closedFor(n, closedOutputHard))
}

// One command whose reply passes the hard limit closes its client at once,
// with the output dropped; other clients go on.
func TestOutputHardLimitClosesTheClient(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.ClientOutputBufferLimit.Normal = OutputBufferLimit{Hard: 4 << 20}
	})
	ctx := context.Background()
	c := dial(t, n, nil)
	require.NoError(t, c.Set(ctx, "big", strings.Repeat("v", 1<<20), 0).Err())
	mget := "*11\r\n$4\r\nMGET\r\n" + strings.Repeat("$3\r\nbig\r\n", 10)
	out, err := io.ReadAll(send(t, n, mget))
	require.NoError(t, err, "the node closed the connection")
	require.Empty(t, out, "no partial reply")
	require.Equal(t, float64(1), closedFor(n, closedOutputHard))
	require.Equal(t, "PONG", c.Ping(ctx).Val())
}

// One MGET that names a large key many times is cut at the hard limit as
// its reply grows: the node reads a few values, not every one (it read all
// 500 MiB here before writing any).
func TestMGetStopsAtTheHardLimit(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.ClientOutputBufferLimit.Normal = OutputBufferLimit{Hard: 4 << 20}
	})
	ctx := context.Background()
	c := dial(t, n, nil)
	require.NoError(t, c.Set(ctx, "big", strings.Repeat("v", 1<<20), 0).Err())
	const names = 500
	mget := fmt.Sprintf("*%d\r\n$4\r\nMGET\r\n", names+1) + strings.Repeat("$3\r\nbig\r\n", names)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := io.ReadAll(send(t, n, mget))
	require.NoError(t, err, "the node closed the connection")
	require.Empty(t, out, "no partial reply")
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "bytes allocated while serving the MGET")
	require.Equal(t, float64(1), closedFor(n, closedOutputHard))
	require.Equal(t, "PONG", c.Ping(ctx).Val())
}

// A client over its soft limit for soft_seconds is closed.
func TestOutputSoftLimitCloses(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.ClientOutputBufferLimit.Normal = OutputBufferLimit{Hard: 256 << 20, Soft: 1 << 20, SoftSeconds: 1}
	})
	ctx := context.Background()
	require.NoError(t, dial(t, n, nil).Set(ctx, "big", strings.Repeat("v", 1<<20), 0).Err())
	conn := send(t, n, pipelineGets("big", 100))
	eventually(t, "the soft limit to close the client", func() bool { return closedFor(n, closedOutputSoft) == 1 })
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	require.NoError(t, err, "the connection ends")
}

// Unfinished requests are bounded node-wide: past query_buffer_budget the
// client adding to it is closed, and the budget is never exceeded.
func TestQueryBufferBudget(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.Limits.MaxKeySize, c.Limits.MaxValueSize, c.Limits.MaxRequestSize = 1<<10, 512<<10, 1<<20
		c.Limits.QueryBufferBudget = 2 << 20
	})
	partial := fmt.Sprintf("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s", 1000<<10, strings.Repeat("x", 900<<10))
	var conns []net.Conn
	for range 3 {
		conns = append(conns, send(t, n, partial))
	}
	eventually(t, "the third client to be closed", func() bool { return closedFor(n, closedBudget) == 1 })
	require.LessOrEqual(t, n.sec.input.Load(), int64(2<<20))
	require.Equal(t, "PONG", dial(t, n, nil).Ping(context.Background()).Val())
	for _, c := range conns {
		c.Close()
	}
	eventually(t, "the closed clients' input to be forgotten", func() bool { return n.sec.input.Load() == 0 })
}

// A request of more than one client may buffer is refused before AUTH
// (Redis' unauthenticated limits), and the per-client limit closes a client
// whose buffered input passes it.
func TestUnauthenticatedRequestLimits(t *testing.T) {
	n := startNode(t, withPassword)
	out, err := io.ReadAll(send(t, n, "*11\r\n"))
	require.NoError(t, err)
	require.Equal(t, "-ERR Protocol error: unauthenticated multibulk length\r\n", string(out))
	out, err = io.ReadAll(send(t, n, "*1\r\n$16385\r\n"))
	require.NoError(t, err)
	require.Equal(t, "-ERR Protocol error: unauthenticated bulk length\r\n", string(out))
}

// An idle client is closed after timeout seconds; a busy one is not.
func TestIdleTimeout(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Timeout = 1 })
	requireReapedIdle(t, n, send(t, n, "PING\r\n"), "+PONG\r\n")
}

// requireReapedIdle checks that the node closes idle, an idle client that
// got want, for its timeout.
func requireReapedIdle(t *testing.T, n *Node, idle net.Conn, want string) {
	t.Helper()
	idle.SetReadDeadline(time.Now().Add(20 * time.Second))
	out, err := io.ReadAll(idle)
	require.NoError(t, err, "the node closed the idle client")
	require.Equal(t, want, string(out))
	require.GreaterOrEqual(t, closedFor(n, closedTimeout), float64(1))
}

// A panic in a command is that command's error: the client gets ERR
// internal error and its connection goes on; the node lives, and counts it.
func TestCommandPanicIsRecovered(t *testing.T) {
	n := newNode(t, nil)
	n.testHookCommand = func(args [][]byte) {
		if len(args) == 2 && string(args[1]) == "boom" {
			panic("a handler bug")
		}
	}
	serve(t, n)
	c := dial(t, n, nil)
	ctx := context.Background()
	require.EqualError(t, c.Echo(ctx, "boom").Err(), "ERR internal error")
	require.Equal(t, "fine", c.Echo(ctx, "fine").Val(), "the connection goes on")
	require.Equal(t, float64(1), n.metrics.counterValue(n.metrics.panics))
}
