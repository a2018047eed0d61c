package node

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// DBSIZE, SCAN and KEYS inside EXEC see the transaction's own earlier
// writes: creations, deletions, expiries and a flush, as in Redis.
func TestMultiWalksSeeOwnWrites(t *testing.T) {
	n := startNode(t, withPassword)
	ctx := context.Background()
	c := dial(t, n, withAuth)
	for _, k := range []string{"a", "b", "c"} {
		require.NoError(t, c.Set(ctx, k, "1", 0).Err())
	}
	conn := c.Conn()
	defer conn.Close()
	exec := func(cmds ...[]any) []any {
		t.Helper()
		require.Equal(t, "OK", conn.Do(ctx, "multi").Val())
		for _, cmd := range cmds {
			require.Equal(t, "QUEUED", conn.Do(ctx, cmd...).Val(), cmd)
		}
		v, err := conn.Do(ctx, "exec").Slice()
		require.NoError(t, err)
		return v
	}
	got := exec([]any{"set", "d", "1"}, []any{"set", "f", "1"}, []any{"del", "a"}, []any{"set", "b", "2"}, []any{"dbsize"},
		[]any{"keys", "*"}, []any{"scan", "0", "count", "100"}, []any{"set", "e", "1", "ex", "100"}, []any{"pexpire", "c", "-1"}, []any{"dbsize"}, []any{"keys", "?"})
	require.Equal(t, int64(4), got[4], "b, c, d, f")
	require.Equal(t, walkOrder("b", "c", "d", "f"), got[5])
	require.Equal(t, []any{"0", walkOrder("b", "c", "d", "f")}, got[6])
	require.Equal(t, int64(4), got[9], "e has a deadline; c is past its own")
	require.Equal(t, walkOrder("b", "d", "e", "f"), got[10])
	require.Equal(t, int64(4), c.DBSize(ctx).Val(), "and so it is after EXEC")

	got = exec([]any{"flushdb"}, []any{"dbsize"}, []any{"set", "z", "1"}, []any{"set", "y", "1"}, []any{"keys", "*"}, []any{"scan", "0"}, []any{"dbsize"})
	require.Equal(t, int64(0), got[1], "the flush within the transaction")
	require.Equal(t, walkOrder("y", "z"), got[4])
	require.Equal(t, []any{"0", walkOrder("y", "z")}, got[5])
	require.Equal(t, int64(2), got[6])
	require.ElementsMatch(t, []string{"y", "z"}, c.Keys(ctx, "*").Val())
}

// A readonly user runs a transaction that only reads; a write queued in it
// is refused (NOPERM) and aborts it.
func TestMultiReadonlyUser(t *testing.T) {
	n := startNode(t, func(c *Config) {
		withPassword(c)
		c.Users = []User{{Name: "reader", Password: "r", Access: "readonly"}}
	})
	ctx := context.Background()
	require.NoError(t, dial(t, n, withAuth).Set(ctx, "k", "v", 0).Err())
	conn := dial(t, n, authAs("reader", "r")).Conn()
	defer conn.Close()
	require.Equal(t, "OK", conn.Do(ctx, "multi").Val())
	require.Equal(t, "QUEUED", conn.Do(ctx, "get", "k").Val())
	require.Equal(t, []any{"v"}, conn.Do(ctx, "exec").Val())
	require.Equal(t, "OK", conn.Do(ctx, "multi").Val())
	require.ErrorContains(t, conn.Do(ctx, "set", "k", "x").Err(), "NOPERM this user has no permissions to run the 'set' command")
	require.EqualError(t, conn.Do(ctx, "exec").Err(), "EXECABORT Transaction discarded because of previous errors.")
}

// MONITOR shows MULTI, then each command EXEC ran, then EXEC; the slow log
// has the commands and not EXEC; INFO commandstats counts them: as Redis.
func TestMultiMonitorAndSlowlog(t *testing.T) {
	n := adminNode(t, nil)
	mon, err := net.Dial("tcp", n.Addr())
	require.NoError(t, err)
	defer mon.Close()
	_, err = mon.Write([]byte("AUTH " + adminPassword + "\r\nMONITOR\r\n"))
	require.NoError(t, err)
	r := bufio.NewReader(mon)
	for range 2 {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "+OK\r\n", line)
	}
	rc := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", rc.do("config", "set", "slowlog-log-slower-than", "0"))
	require.Equal(t, "+OK\r\n", rc.do("slowlog", "reset"))
	require.Equal(t, "+OK\r\n", rc.do("multi"))
	require.Equal(t, "+QUEUED\r\n", rc.do("set", "a", "1"))
	require.Equal(t, "+QUEUED\r\n", rc.do("incr", "a"))
	require.Equal(t, "*2\r\n+OK\r\n:2\r\n", rc.do("exec"))

	var shown []string
	mon.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(shown) < 7 {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		_, cmd, _ := strings.Cut(strings.TrimSpace(line), "] ")
		shown = append(shown, cmd)
	}
	require.Equal(t, []string{`"auth" "(redacted)"`, `"config" "(redacted)" "(redacted)" "(redacted)"`, `"slowlog" "reset"`, `"multi"`, `"set" "a" "1"`, `"incr" "a"`, `"exec"`}, shown)

	log := rc.do("slowlog", "get", "-1")
	for _, want := range []string{"$4\r\nincr\r\n", "$3\r\nset\r\n", "$5\r\nmulti\r\n"} {
		require.Contains(t, log, want)
	}
	require.NotContains(t, log, "$4\r\nexec\r\n", "EXEC itself is not logged")
	info := dialAdmin(t, n).Info(context.Background(), "commandstats").Val()
	require.Contains(t, info, "cmdstat_incr:calls=1,")
	require.Contains(t, info, "cmdstat_exec:calls=1,")
}
