package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// startNode starts a node on free ports and stops it when the test ends.
func startNode(t *testing.T, edit func(*Config)) *Node {
	t.Helper()
	n := newNode(t, edit)
	serve(t, n)
	return n
}

// newNode makes a memory node on free ports that does not serve yet, so a
// test can set hooks and backends first.
func newNode(t *testing.T, edit func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir, cfg.Listen, cfg.Admin, cfg.Replication.Listen = "memory", t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "off"
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return n
}

// serve runs n's Serve and shuts it down when the test ends.
func serve(t *testing.T, n *Node) {
	served := make(chan error, 1)
	go func() { served <- n.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, n.Shutdown(ctx))
		require.NoError(t, <-served)
	})
}

// writerClient is a client of n with write access and a reply buffer but
// no connection: tests and benchmarks drive n.run and n.submitRun with it
// directly, as an event loop would.
func writerClient(n *Node) *client {
	c := &client{authed: true, access: accessWrite}
	c.conn = &replyConn{n: n, c: c}
	c.conn.reset(0)
	return c
}

// engineMetric is the value of n's engine metric name (logkv.Metrics'
// Detail); the test fails if the engine does not report it.
func engineMetric(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	for _, m := range n.eng().Metrics().Detail {
		if m.Name == name {
			return m.Value
		}
	}
	t.Fatalf("the %s engine reports no %s", n.cfg.Engine, name)
	return 0
}

func dial(t *testing.T, n *Node, edit func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: n.Addr(), MaxRetries: -1}
	if edit != nil {
		edit(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStringCommands(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, nil) // go-redis speaks RESP3 (HELLO 3)
	ctx := context.Background()

	require.Equal(t, "PONG", c.Ping(ctx).Val())
	require.Equal(t, "hi", c.Echo(ctx, "hi").Val())
	require.ErrorIs(t, c.Get(ctx, "k").Err(), redis.Nil)
	require.NoError(t, c.Set(ctx, "k", "v1", 0).Err())
	require.Equal(t, "v1", c.Get(ctx, "k").Val())

	// SET NX / XX / GET.
	ok, err := c.SetNX(ctx, "k", "v2", 0).Result()
	require.NoError(t, err)
	require.False(t, ok)
	ok, err = c.SetXX(ctx, "k", "v2", 0).Result()
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = c.SetXX(ctx, "absent", "x", 0).Result()
	require.NoError(t, err)
	require.False(t, ok)
	require.ErrorIs(t, c.Get(ctx, "absent").Err(), redis.Nil, "SET XX on an absent key writes nothing")
	old, err := c.SetArgs(ctx, "k", "v3", redis.SetArgs{Get: true}).Result()
	require.NoError(t, err)
	require.Equal(t, "v2", old)
	require.Equal(t, "v3", c.Get(ctx, "k").Val())
	_, err = c.SetArgs(ctx, "k2", "x", redis.SetArgs{Get: true}).Result()
	require.ErrorIs(t, err, redis.Nil, "SET GET of an absent key returns nil and sets")
	require.Equal(t, "x", c.Get(ctx, "k2").Val())
	require.ErrorContains(t, c.Do(ctx, "set", "k", "v", "nx", "xx").Err(), "syntax error")
	require.NoError(t, c.Set(ctx, "k", "v3", time.Hour).Err())
	require.Equal(t, time.Hour, c.TTL(ctx, "k").Val())
	require.True(t, c.SetNX(ctx, "fresh", "1", 0).Val())

	// DEL counts what existed; EXISTS counts repeats as Redis does.
	require.Equal(t, int64(2), c.Exists(ctx, "k", "k2", "nope").Val())
	require.Equal(t, int64(3), c.Exists(ctx, "k", "k", "k2").Val())
	require.Equal(t, int64(2), c.Del(ctx, "k", "k2", "nope", "k").Val())
	require.Zero(t, c.Exists(ctx, "k", "k2").Val())

	// MSET is one batch; MGET reads one snapshot.
	require.NoError(t, c.MSet(ctx, "a", "1", "b", "2", "c", "3").Err())
	require.Equal(t, []any{"1", nil, "3"}, c.MGet(ctx, "a", "zz", "c").Val())
	require.ErrorContains(t, c.Do(ctx, "mset", "a", "1", "b").Err(), "wrong number of arguments for 'mset'")

	// INCR family.
	require.Equal(t, int64(1), c.Incr(ctx, "n").Val())
	require.Equal(t, int64(11), c.IncrBy(ctx, "n", 10).Val())
	require.Equal(t, int64(10), c.Decr(ctx, "n").Val())
	require.Equal(t, int64(-5), c.DecrBy(ctx, "n", 15).Val())
	require.NoError(t, c.Set(ctx, "s", "abc", 0).Err())
	require.ErrorContains(t, c.Incr(ctx, "s").Err(), "ERR value is not an integer or out of range")
	require.NoError(t, c.Set(ctx, "big", "9223372036854775807", 0).Err())
	require.ErrorContains(t, c.Incr(ctx, "big").Err(), "ERR increment or decrement would overflow")
	require.Equal(t, "9223372036854775807", c.Get(ctx, "big").Val(), "a failed INCR changes nothing")

	require.Equal(t, "string", c.Type(ctx, "s").Val())
	require.Equal(t, "none", c.Type(ctx, "nope").Val())
	require.Equal(t, time.Duration(-1), c.TTL(ctx, "s").Val())
	require.Equal(t, time.Duration(-2), c.TTL(ctx, "nope").Val())
}

func TestErrorsKeepConnectionOpen(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, func(o *redis.Options) { o.PoolSize = 1 })
	ctx := context.Background()
	err := c.Do(ctx, "nosuchcmd", "a", "b").Err()
	require.EqualError(t, err, "ERR unknown command 'nosuchcmd', with args beginning with: 'a' 'b' ")
	require.EqualError(t, c.Do(ctx, "get").Err(), "ERR wrong number of arguments for 'get' command")
	require.EqualError(t, c.Do(ctx, "GET", "a", "b").Err(), "ERR wrong number of arguments for 'get' command")
	require.EqualError(t, c.Do(ctx, "select", "16").Err(), "ERR DB index is out of range")
	require.NoError(t, c.Do(ctx, "select", "0").Err())
	require.EqualError(t, c.Do(ctx, "hello", "4").Err(), "NOPROTO unsupported protocol version")
	require.Equal(t, "PONG", c.Ping(ctx).Val(), "the connection survives errors")
	require.EqualValues(t, 1, c.PoolStats().TotalConns, "and it was the same connection")
}

func TestPipelining(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, nil)
	ctx := context.Background()
	const N = 2000
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range N {
			p.Set(ctx, fmt.Sprintf("key:%05d", i), i, 0)
		}
		p.Do(ctx, "bogus")
		for i := range N {
			p.Get(ctx, fmt.Sprintf("key:%05d", i))
		}
		return nil
	})
	require.Error(t, err, "the bogus command's error is reported")
	require.Len(t, cmds, 2*N+1)
	for i := range N {
		require.Equal(t, fmt.Sprint(i), cmds[N+1+i].(*redis.StringCmd).Val())
	}
	require.Equal(t, int64(N), c.DBSize(ctx).Val())
}

func TestScan(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, nil)
	ctx := context.Background()
	var want []string
	for i := range 250 {
		k := fmt.Sprintf("user:%03d", i)
		want = append(want, k)
		require.NoError(t, c.Set(ctx, k, "x", 0).Err())
		require.NoError(t, c.Set(ctx, fmt.Sprintf("other:%03d", i), "x", 0).Err())
	}
	var got []string
	var cursor uint64
	calls := 0
	for {
		keys, next, err := c.Scan(ctx, cursor, "user:*", 37).Result()
		require.NoError(t, err)
		require.LessOrEqual(t, len(keys), 37)
		got = append(got, keys...)
		calls++
		if cursor = next; cursor == 0 {
			break
		}
	}
	require.Equal(t, walkOrder(want...), toAny(got), "SCAN MATCH returns every matching key once, in order (slot, then key)")
	require.Equal(t, 14, calls, "COUNT counts the keys examined: 500 (the prefix fixes no slot)")

	got = nil
	iter := c.Scan(ctx, 0, "*:1[0-1]?", 0).Iterator()
	for iter.Next(ctx) {
		got = append(got, iter.Val())
	}
	require.NoError(t, iter.Err())
	require.Len(t, got, 40)
	require.Equal(t, walkOrder(got...), toAny(got))

	require.NoError(t, c.Scan(ctx, 987654321, "", 10).Err(), "an unknown cursor resumes at its hint (scan_test.go)")
	require.ErrorContains(t, c.Do(ctx, "scan", "0", "count", "0").Err(), "syntax error")
}

func TestServerCommands(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, nil)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "a", "1", 0).Err())
	info := c.Info(ctx).Val()
	for _, want := range []string{"# Server", "redis_version:", "logkv_engine:memory", "# Replication", "role:master", "# Keyspace", "db0:keys=1", "# Stats", "# Persistence"} {
		require.Contains(t, info, want)
	}
	require.NotContains(t, c.Info(ctx, "replication").Val(), "# Server")
	role := c.Do(ctx, "role").Val().([]any)
	require.Equal(t, "master", role[0])
	require.Equal(t, int64(0), c.Do(ctx, "wait", "0", "0").Val())
	require.ErrorContains(t, c.Do(ctx, "replicaof", "no", "one").Err(), "NOPERM administrative commands are disabled while the node has no password", "default-deny")
	admin := dial(t, startNode(t, withPassword), withAuth)
	require.ErrorContains(t, admin.Do(ctx, "replicaof", "127.0.0.1", "7380").Err(), "without replication")
	require.Equal(t, "OK", admin.Do(ctx, "replicaof", "no", "one").Val())
	cfg := c.ConfigGet(ctx, "*").Val()
	require.Equal(t, "", cfg["save"])
	require.Equal(t, "16", cfg["databases"])
	require.Equal(t, "always", cfg["appendfsync"], "the node's appendfsync, as Redis reports its own")
	require.ErrorContains(t, admin.ConfigSet(ctx, "save", "").Err(), "not supported")
	require.Positive(t, c.Do(ctx, "command", "count").Val())
	require.NoError(t, c.Do(ctx, "command").Err())
	require.NoError(t, c.Do(ctx, "client", "setname", "me").Err())
	require.Equal(t, "me", c.Do(ctx, "client", "getname").Val())
}

func TestAuth(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Password = "s3cret" })
	ctx := context.Background()
	anon := dial(t, n, nil)
	require.EqualError(t, anon.Get(ctx, "k").Err(), errNoAuth)
	require.Equal(t, "PONG", anon.Ping(ctx).Val(), "PING is allowed before AUTH")

	wrong := dial(t, n, func(o *redis.Options) { o.Password = "nope" })
	require.ErrorContains(t, wrong.Ping(ctx).Err(), "WRONGPASS")

	good := dial(t, n, func(o *redis.Options) { o.Password = "s3cret" })
	require.NoError(t, good.Set(ctx, "k", "v", 0).Err())
	require.Equal(t, "v", good.Get(ctx, "k").Val())

	// Without a password configured, AUTH says so.
	open := dial(t, startNode(t, nil), nil)
	require.ErrorContains(t, open.Do(ctx, "auth", "x").Err(), "without any password configured")
}

func TestLimits(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.Limits.MaxKeySize = 10
		c.Limits.MaxValueSize = 100
		c.Limits.MaxRequestSize = 1000
		c.Limits.MaxConnections = 2
	})
	ctx := context.Background()
	c := dial(t, n, func(o *redis.Options) { o.PoolSize = 1 })
	require.ErrorContains(t, c.Set(ctx, strings.Repeat("k", 11), "v", 0).Err(), "ERR key too large: 11 bytes, the limit is 10 (limits.max_key_size)")
	require.ErrorContains(t, c.Set(ctx, "k", strings.Repeat("v", 101), 0).Err(), "ERR value too large: 101 bytes")
	require.ErrorContains(t, c.MSet(ctx, "a", "1", "k", strings.Repeat("v", 101)).Err(), "value too large")
	require.ErrorIs(t, c.Get(ctx, "a").Err(), redis.Nil, "a refused MSET writes nothing")
	require.NoError(t, c.Set(ctx, "k", strings.Repeat("v", 100), 0).Err(), "the connection is still usable")

	// A request over max_request_size ends the connection with an error.
	raw, err := net.Dial("tcp", n.Addr())
	require.NoError(t, err)
	defer raw.Close()
	fmt.Fprintf(raw, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n%s", strings.Repeat("x", 2000))
	line, err := bufio.NewReader(raw).ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "request too large")

	// Connections beyond the limit are refused with Redis' error.
	var conns []net.Conn
	var refused string
	for i := 0; i < 4 && refused == ""; i++ {
		cn, err := net.Dial("tcp", n.Addr())
		require.NoError(t, err)
		conns = append(conns, cn)
		fmt.Fprint(cn, "PING\r\n")
		line, _ := bufio.NewReader(cn).ReadString('\n')
		if strings.HasPrefix(line, "-") {
			refused = line
		}
	}
	for _, cn := range conns {
		cn.Close()
	}
	require.Contains(t, refused, "max number of clients reached")
}

func TestQuit(t *testing.T) {
	n := startNode(t, nil)
	out := sendAll(t, n, "QUIT\r\nPING\r\n")
	require.Equal(t, "+OK\r\n", out, "QUIT answers OK and closes; nothing after it runs")
}

// A write pipelined before QUIT is synced before QUIT's close flushes its
// acknowledgement.
func TestQuitSyncsPipelinedWrites(t *testing.T) {
	n := newNode(t, nil)
	synced := make(chan struct{}, 1)
	// New started the background worker, which reads n.backend: stop it
	// around the swap (go test -race saw the race).
	n.stopBackground()
	n.backend = &syncSpy{backend: n.backend, synced: synced}
	n.startBackground()
	served := make(chan error, 1)
	go func() { served <- n.Serve() }()
	defer func() {
		require.NoError(t, n.Shutdown(context.Background()))
		require.NoError(t, <-served)
	}()
	out := sendAll(t, n, "SET k v\r\nQUIT\r\n")
	require.Equal(t, "+OK\r\n+OK\r\n", out)
	select {
	case <-synced:
	default:
		t.Fatal("the SET was acknowledged without a sync")
	}
}

type syncSpy struct {
	backend
	synced chan struct{}
}

func (s *syncSpy) Sync() error {
	select {
	case s.synced <- struct{}{}:
	default:
	}
	return s.backend.Sync()
}

func TestAdminEndpoints(t *testing.T) {
	n := startNode(t, func(c *Config) { c.AdminPprof = true })
	c := dial(t, n, nil)
	require.NoError(t, c.Set(context.Background(), "a", "1", 0).Err())
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + n.AdminAddr() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	require.Equal(t, 200, code)
	for _, want := range []string{`logkv_commands_total{cmd="set"} 1`, "logkv_command_duration_seconds_bucket", `logkv_engine_keys{engine="memory"} 2` /* the key and the keyspace's format key */, "logkv_connections 1", "go_goroutines"} {
		require.Contains(t, body, want)
	}
	code, _ = get("/healthz")
	require.Equal(t, 200, code)
	code, _ = get("/readyz")
	require.Equal(t, 200, code)
	code, _ = get("/debug/pprof/")
	require.Equal(t, 200, code)
}

// Shutdown lets a connection's in-flight pipeline finish and get its replies.
func TestShutdownFinishesPipeline(t *testing.T) {
	n := newNode(t, nil)
	inSet := make(chan struct{})
	n.testHookCommand = func(args [][]byte) {
		if strings.EqualFold(string(args[0]), "set") {
			close(inSet)
		}
	}
	served := make(chan error, 1)
	go func() { served <- n.Serve() }()

	raw, err := net.Dial("tcp", n.Addr())
	require.NoError(t, err)
	defer raw.Close()
	r := bufio.NewReader(raw)
	fmt.Fprint(raw, "PING\r\n")
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", line)

	// Hold the connection busy inside a command: a pipeline whose first
	// command blocks on a stripe lock the test holds.
	unlock := n.locks.lock([]byte("held"))
	fmt.Fprint(raw, "SET held 1\r\nGET held\r\n")
	<-inSet // the pipeline is being run
	shut := make(chan error, 1)
	go func() { shut <- n.Shutdown(context.Background()) }()
	// Shutdown cannot finish while the pipeline runs.
	select {
	case err := <-shut:
		t.Fatalf("shutdown returned while a command was in flight: %v", err)
	default:
	}
	unlock()
	require.NoError(t, <-shut)
	require.NoError(t, <-served)
	rest, _ := io.ReadAll(r)
	require.Equal(t, "+OK\r\n$1\r\n1\r\n", string(rest), "the in-flight pipeline got its replies before the connection closed")
}
