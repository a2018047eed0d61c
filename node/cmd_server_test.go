package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// rawConn is a RESP connection for tests that check reply bytes.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

// adminPassword is the password of nodes whose tests run admin commands:
// a node without one refuses them (access.go).
const adminPassword = "pw"

// adminNode starts a node with adminPassword.
func adminNode(t *testing.T, edit func(*Config)) *Node {
	return startNode(t, func(c *Config) {
		c.Password = adminPassword
		if edit != nil {
			edit(c)
		}
	})
}

// dialAdmin is dial, authenticated with adminPassword.
func dialAdmin(t *testing.T, n *Node) *redis.Client {
	return dial(t, n, func(o *redis.Options) { o.Password = adminPassword })
}

// dialRawAdmin is dialRaw, authenticated with adminPassword.
func dialRawAdmin(t *testing.T, n *Node) *rawConn {
	rc := dialRaw(t, n)
	require.Equal(t, "+OK\r\n", rc.do("auth", adminPassword))
	return rc
}

func dialRaw(t *testing.T, n *Node) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", n.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// do sends one command and returns its whole reply, raw.
func (rc *rawConn) do(args ...string) string {
	rc.t.Helper()
	rc.send(args...)
	return rc.reply()
}

func (rc *rawConn) send(args ...string) {
	rc.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	require.NoError(rc.t, rc.nc.SetDeadline(time.Now().Add(10*time.Second)))
	_, err := io.WriteString(rc.nc, b.String())
	require.NoError(rc.t, err)
}

// reply reads one complete reply (RESP2 or RESP3), raw.
func (rc *rawConn) reply() string {
	rc.t.Helper()
	s, err := readReply(rc.r)
	require.NoError(rc.t, err, "read so far: %q", s)
	return s
}

// readReply reads one RESP2 or RESP3 reply from r and returns its bytes.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return line, err
	}
	if len(line) < 3 {
		return line, fmt.Errorf("short line %q", line)
	}
	n, _ := strconv.Atoi(line[1 : len(line)-2])
	switch line[0] {
	case '$', '=', '!':
		if n < 0 {
			return line, nil
		}
		buf := make([]byte, n+2)
		_, err := io.ReadFull(r, buf)
		return line + string(buf), err
	case '*', '~', '>', '%', '|':
		if n < 0 {
			return line, nil
		}
		if line[0] == '%' || line[0] == '|' {
			n *= 2
		}
		out := line
		for range n {
			s, err := readReply(r)
			out += s
			if err != nil {
				return out, err
			}
		}
		return out, nil
	}
	return line, nil
}

func TestTimeAndLastsave(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, nil)
	ctx := context.Background()
	before := time.Now()
	tm, err := c.Time(ctx).Result()
	require.NoError(t, err)
	require.WithinDuration(t, before, tm, 5*time.Second)
	require.ErrorContains(t, c.Do(ctx, "time", "x").Err(), "wrong number of arguments for 'time' command")

	started := c.LastSave(ctx).Val()
	require.InDelta(t, n.started.Unix(), started, 1, "LASTSAVE is the start before any SAVE")
}

// SAVE and BGSAVE make every write durable on every engine: a node
// restarted on the same data directory has them, and LASTSAVE moves.
func TestSaveOnEveryEngine(t *testing.T) {
	for _, engine := range []string{"lsm", "bitcask", "memory"} {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			edit := func(cfg *Config) { cfg.Engine, cfg.DataDir = engine, dir }
			n := newNode(t, edit)
			served := make(chan error, 1)
			go func() { served <- n.Serve() }()
			c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
			ctx := context.Background()
			require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
			require.Equal(t, "OK", c.Save(ctx).Val())
			require.GreaterOrEqual(t, c.LastSave(ctx).Val(), n.started.Unix())
			require.Equal(t, "Background saving started", c.BgSave(ctx).Val())
			require.ErrorContains(t, c.Do(ctx, "bgsave", "now").Err(), "syntax error")
			require.Eventually(t, func() bool { return !n.state().saving.Load() }, 10*time.Second, time.Millisecond)
			c.Close()
			ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, n.Shutdown(ctx2))
			require.NoError(t, <-served)

			if _, logged := n.backend.(*replicatedBackend); engine == "memory" && !logged {
				return // a memory engine without the commit log keeps nothing
			}
			n2 := startNode(t, edit)
			c2 := dial(t, n2, nil)
			require.Equal(t, "v", c2.Get(ctx, "k").Val())
		})
	}
}

// SHUTDOWN stops the node as Shutdown does: the client's connection
// closes without a reply, Serve returns, and what was acknowledged is
// there after a restart.
func TestShutdownCommand(t *testing.T) {
	for _, engine := range []string{"lsm", "bitcask", "memory"} {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			edit := func(cfg *Config) { cfg.Engine, cfg.DataDir, cfg.Password = engine, dir, adminPassword }
			n := newNode(t, edit)
			served := make(chan error, 1)
			go func() { served <- n.Serve() }()
			rc := dialRawAdmin(t, n)
			require.Equal(t, "+OK\r\n", rc.do("set", "k", "v"))
			require.Equal(t, "-ERR syntax error\r\n", rc.do("shutdown", "save", "nosave"))
			require.Equal(t, "-ERR No shutdown in progress.\r\n", rc.do("shutdown", "abort"))
			rc.send("shutdown", "nosave")
			rest, err := io.ReadAll(rc.r)
			require.NoError(t, err)
			require.Empty(t, rest, "SHUTDOWN answers nothing: the connection closes")
			select {
			case err := <-served:
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return after SHUTDOWN")
			}
			if _, logged := n.backend.(*replicatedBackend); engine == "memory" && !logged {
				return // a memory engine without the commit log keeps nothing
			}
			n2 := startNode(t, edit)
			require.Equal(t, "v", dialAdmin(t, n2).Get(context.Background(), "k").Val())
		})
	}
}

func TestClientCommands(t *testing.T) {
	n := adminNode(t, nil)
	ctx := context.Background()
	a := dialRawAdmin(t, n)
	b := dial(t, n, func(o *redis.Options) { o.Protocol, o.DisableIdentity, o.Password = 2, true, adminPassword })

	require.Equal(t, "$-1\r\n", a.do("client", "getname"))
	require.Equal(t, "+OK\r\n", a.do("client", "setname", "alice"))
	require.Equal(t, "$5\r\nalice\r\n", a.do("client", "getname"))
	require.Equal(t, "-ERR Client names cannot contain spaces, newlines or special characters.\r\n", a.do("client", "setname", "a b"))
	require.Equal(t, "-ERR wrong number of arguments for 'client|id' command\r\n", a.do("client", "id", "x"))
	require.Equal(t, "-ERR unknown subcommand 'nope'. Try CLIENT HELP.\r\n", a.do("client", "nope"))
	require.Equal(t, "+OK\r\n", a.do("client", "setinfo", "lib-name", "mylib"))
	require.Equal(t, "-ERR Unrecognized option 'color'\r\n", a.do("client", "setinfo", "color", "red"))
	require.Equal(t, "+OK\r\n", a.do("client", "no-evict", "on"))
	require.Equal(t, "-ERR syntax error\r\n", a.do("client", "no-touch", "maybe"))
	idA := a.do("client", "id")

	info := a.do("client", "info")
	require.Contains(t, info, "name=alice ")
	require.Contains(t, info, "lib-name=mylib ")
	require.Contains(t, info, "flags=e ")
	require.Contains(t, info, "cmd=client|info ")
	require.Contains(t, info, "id="+strings.TrimSuffix(strings.TrimPrefix(idA, ":"), "\r\n")+" ")

	list := b.ClientList(ctx).Val()
	require.Equal(t, 2, strings.Count(list, "\n"), list)
	require.Contains(t, list, "name=alice")
	require.Empty(t, b.Do(ctx, "client", "list", "type", "pubsub").Val())
	require.ErrorContains(t, b.Do(ctx, "client", "list", "type", "nope").Err(), "Unknown client type 'nope'")

	// CLIENT KILL: the old form by address, the new by filters.
	require.ErrorContains(t, b.Do(ctx, "client", "kill", "1.2.3.4:5").Err(), "No such client")
	require.ErrorContains(t, b.Do(ctx, "client", "kill", "id", "0").Err(), "client-id should be greater than 0")
	require.ErrorContains(t, b.Do(ctx, "client", "kill", "user", "bob").Err(), "No such user 'bob'")
	id, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(idA, ":"), "\r\n"), 10, 64)
	require.Equal(t, int64(1), b.Do(ctx, "client", "kill", "id", strconv.FormatInt(id, 10)).Val())
	_, err := a.r.ReadByte()
	require.ErrorIs(t, err, io.EOF, "a killed client's connection is closed")
	require.Equal(t, int64(0), b.Do(ctx, "client", "kill", "id", strconv.FormatInt(id, 10), "skipme", "no").Val())
	require.Equal(t, 1, strings.Count(b.ClientList(ctx).Val(), "\n"))
}

// CLIENT REPLY OFF drops every reply until ON; SKIP drops the next one.
func TestClientReply(t *testing.T) {
	n := startNode(t, nil)
	rc := dialRaw(t, n)
	rc.send("client", "reply", "off")
	rc.send("set", "a", "1")
	rc.send("get", "a")
	rc.send("nosuchcommand")
	rc.send("client", "reply", "on")
	require.Equal(t, "+OK\r\n", rc.reply(), "only CLIENT REPLY ON is answered")
	rc.send("client", "reply", "skip")
	rc.send("get", "a")
	require.Equal(t, "$1\r\n1\r\n", rc.do("get", "a"), "SKIP dropped one reply only")
	require.Equal(t, "-ERR syntax error\r\n", rc.do("client", "reply", "maybe"))
}

// CLIENT PAUSE WRITE holds writes (off the event loop) while reads go on,
// until CLIENT UNPAUSE.
func TestClientPause(t *testing.T) {
	n := adminNode(t, nil)
	ctx := context.Background()
	admin := dialAdmin(t, n)
	reader := dialAdmin(t, n)
	writer := dialAdmin(t, n)
	require.NoError(t, admin.Set(ctx, "k", "before", 0).Err())
	require.ErrorContains(t, admin.Do(ctx, "client", "pause", "x").Err(), "timeout is not an integer or out of range")
	require.ErrorContains(t, admin.Do(ctx, "client", "pause", "-1").Err(), "timeout is negative")
	require.ErrorContains(t, admin.Do(ctx, "client", "pause", "10", "some").Err(), "CLIENT PAUSE mode must be WRITE or ALL")
	require.Equal(t, "OK", admin.Do(ctx, "client", "pause", "60000", "write").Val())

	done := make(chan error, 1)
	go func() { done <- writer.Set(ctx, "k", "after", 0).Err() }()
	// The write waits, counted in blocked_clients as Redis counts it (its
	// pause.tcl waits for that); a read is served meanwhile and sees the
	// old value.
	require.Eventually(t, func() bool {
		return strings.Contains(reader.Info(ctx, "clients").Val(), "\r\nblocked_clients:1\r\n")
	}, 10*time.Second, 5*time.Millisecond, "the paused write is not counted as blocked")
	require.Equal(t, "before", reader.Get(ctx, "k").Val())
	select {
	case err := <-done:
		t.Fatalf("a write ran during CLIENT PAUSE WRITE (err %v)", err)
	default:
	}
	require.Equal(t, "OK", admin.Do(ctx, "client", "unpause").Val())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the paused write did not run after CLIENT UNPAUSE")
	}
	require.Equal(t, "after", reader.Get(ctx, "k").Val())
	require.Contains(t, reader.Info(ctx, "clients").Val(), "\r\nblocked_clients:0\r\n")
}

// CONFIG GET answers each parameter once whatever the patterns, so a
// million patterns cost one reply of the table's size.
func TestConfigGetBounded(t *testing.T) {
	n := startNode(t, nil)
	rc := dialRaw(t, n)
	all := rc.do("config", "get", "*")
	require.True(t, strings.HasPrefix(all, fmt.Sprintf("*%d\r\n", 2*(len(configParams)-2))), "every parameter but the hidden alias and requirepass once: %q", all[:20])

	args := []string{"config", "get"}
	for range 100000 {
		args = append(args, "*")
	}
	args = append(args, "maxclients", "MAXCLIENTS")
	got := rc.do(args...)
	require.Equal(t, all, got, "repeated patterns add nothing")

	require.Equal(t, "*2\r\n$10\r\nMAXCLIENTS\r\n$5\r\n10000\r\n", rc.do("config", "get", "MAXCLIENTS"), "an exact name is answered as asked, as Redis does")
	require.Equal(t, "*0\r\n", rc.do("config", "get", "nosuch"))
	require.Equal(t, "*4\r\n$15\r\nslowlog-max-len\r\n$3\r\n128\r\n$23\r\nslowlog-log-slower-than\r\n$5\r\n10000\r\n",
		rc.do("config", "get", "slowlog-max-len", "slowlog*"))
	require.Equal(t, "-ERR wrong number of arguments for 'config|get' command\r\n", rc.do("config", "get"))
}

func TestConfigSet(t *testing.T) {
	n := adminNode(t, nil)
	rc := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", rc.do("config", "set", "slowlog-max-len", "5", "latency-monitor-threshold", "100"))
	require.Equal(t, "*2\r\n$15\r\nslowlog-max-len\r\n$1\r\n5\r\n", rc.do("config", "get", "slowlog-max-len"))
	require.Equal(t, "-ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument couldn't be parsed into an integer\r\n",
		rc.do("config", "set", "slowlog-max-len", "x"))
	require.Equal(t, "-ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - duplicate parameter\r\n",
		rc.do("config", "set", "slowlog-max-len", "1", "slowlog-max-len", "2"))
	require.Equal(t, "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n", rc.do("config", "set", "nosuch", "1"))
	require.Equal(t, "-ERR wrong number of arguments for 'config|set' command\r\n", rc.do("config", "set", "a", "b", "c"))
	// All or nothing: a bad second value leaves the first unchanged.
	require.Contains(t, rc.do("config", "set", "slowlog-max-len", "7", "latency-monitor-threshold", "-1"), "argument must be between 0 and")
	require.Equal(t, "*2\r\n$15\r\nslowlog-max-len\r\n$1\r\n5\r\n", rc.do("config", "get", "slowlog-max-len"))
	require.Contains(t, rc.do("config", "set", "databases", "5"), "not supported at runtime: set databases in the node's config file")
	require.Equal(t, "+OK\r\n", rc.do("config", "resetstat"))
}

func TestSlowlog(t *testing.T) {
	n := adminNode(t, nil)
	rc := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", rc.do("config", "set", "slowlog-log-slower-than", "0", "slowlog-max-len", "3"))
	require.Equal(t, "+OK\r\n", rc.do("client", "setname", "me"))
	long := strings.Repeat("x", 200)
	rc.do("set", "k", long)
	rc.do("auth", "secret")
	rc.do("auth", adminPassword)
	get := rc.do("slowlog", "get", "1")
	require.True(t, strings.HasPrefix(get, "*1\r\n*6\r\n:"), get)
	require.Contains(t, get, "*3\r\n$3\r\nset\r\n$1\r\nk\r\n$147\r\n"+strings.Repeat("x", 128)+"... (72 more bytes)\r\n", "long arguments are cut as Redis cuts them")
	require.Contains(t, get, "$2\r\nme\r\n", "the client's name")
	require.NotContains(t, rc.do("slowlog", "get", "-1"), "secret", "AUTH is never logged")
	require.Equal(t, ":3\r\n", rc.do("slowlog", "len"), "slowlog-max-len bounds the log")
	require.Equal(t, "-ERR count should be greater than or equal to -1\r\n", rc.do("slowlog", "get", "-2"))
	require.Equal(t, "-ERR wrong number of arguments for 'slowlog|len' command\r\n", rc.do("slowlog", "len", "x"))
	require.Equal(t, "+OK\r\n", rc.do("slowlog", "reset"))
	require.Equal(t, ":1\r\n", rc.do("slowlog", "len"), "RESET itself is the one entry")
	require.Equal(t, "+OK\r\n", rc.do("config", "set", "slowlog-log-slower-than", "-1"))
	rc.do("slowlog", "reset")
	rc.do("get", "k")
	require.Equal(t, ":0\r\n", rc.do("slowlog", "len"), "a negative threshold logs nothing")
}

func TestLatency(t *testing.T) {
	n := startNode(t, nil)
	rc := dialRaw(t, n)
	require.Equal(t, "*0\r\n", rc.do("latency", "latest"))
	require.Contains(t, rc.do("latency", "doctor"), "disabled")
	n.state().latency.threshold.Store(1)
	n.state().latency.observe(5 * time.Millisecond)
	latest := rc.do("latency", "latest")
	require.True(t, strings.HasPrefix(latest, "*1\r\n*4\r\n$7\r\ncommand\r\n:"), latest)
	require.True(t, strings.HasSuffix(latest, ":5\r\n:5\r\n"), latest)
	require.True(t, strings.HasPrefix(rc.do("latency", "history", "command"), "*1\r\n*2\r\n:"))
	require.Equal(t, "-ERR No samples available for event 'nope'\r\n", rc.do("latency", "graph", "nope"))
	require.Equal(t, ":1\r\n", rc.do("latency", "reset"))
	require.Equal(t, "*0\r\n", rc.do("latency", "latest"))
}

func TestCommandIntrospection(t *testing.T) {
	n := startNode(t, nil)
	rc := dialRaw(t, n)
	require.Equal(t, fmt.Sprintf(":%d\r\n", len(commandList)), rc.do("command", "count"))
	// GET's entry, byte for byte as Redis 7.0 writes it.
	require.Equal(t, "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n",
		rc.do("command", "info", "get"))
	require.Equal(t, "*1\r\n*-1\r\n", rc.do("command", "info", "nosuch"))
	require.Equal(t, "*2\r\n$1\r\na\r\n$1\r\nc\r\n", rc.do("command", "getkeys", "mset", "a", "b", "c", "d"))
	require.Equal(t, "-ERR Invalid command specified\r\n", rc.do("command", "getkeys", "nosuch", "x"))
	require.Equal(t, "-ERR The command has no key arguments\r\n", rc.do("command", "getkeys", "echo", "x"))
	require.Equal(t, "-ERR Invalid number of arguments specified for command\r\n", rc.do("command", "getkeys", "get", "a", "b"))
	require.Equal(t, "*2\r\n$3\r\nget\r\n*10\r\n$7\r\nsummary\r\n$22\r\nGet the value of a key\r\n$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n$10\r\ncomplexity\r\n$4\r\nO(1)\r\n"+
		"$9\r\narguments\r\n*1\r\n*6\r\n$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n$14\r\nkey_spec_index\r\n:0\r\n",
		rc.do("command", "docs", "get"), "redis-server 7.0.15's reply, byte for byte")

	// Every served command has an entry whose shape go-redis can parse.
	c := dial(t, n, nil)
	infos, err := c.Command(context.Background()).Result()
	require.NoError(t, err)
	require.Len(t, infos, len(commandList))
	for _, cm := range commandList {
		require.Contains(t, infos, cm.name)
		require.Equal(t, int8(cm.arity), infos[cm.name].Arity, cm.name)
		_, documented := commandDocs[cm.name]
		require.True(t, documented, "COMMAND DOCS has no entry for %s", cm.name)
	}
	list := rc.do("command", "list", "filterby", "pattern", "slow*")
	require.Equal(t, "*1\r\n$7\r\nslowlog\r\n", list)
}

func TestInfoSections(t *testing.T) {
	n := startNode(t, nil)
	rc := dialRaw(t, n)
	rc.do("set", "a", "1")
	rc.do("incr", "a")
	rc.do("nosuch")
	rc.do("get")
	def := rc.do("info")
	for _, want := range []string{"# Server\r\n", "run_id:", "uptime_in_days:", "# Clients\r\n", "blocked_clients:0", "# Memory\r\n", "used_memory_human:", "# Stats\r\n", "total_error_replies:2", "# CPU\r\n", "used_cpu_user:", "# Errorstats\r\n", "errorstat_ERR:count=2"} {
		require.Contains(t, def, want)
	}
	require.NotContains(t, def, "# Commandstats", "commandstats only when asked, as Redis")
	cs := rc.do("info", "commandstats")
	require.Contains(t, cs, "cmdstat_incr:calls=1,usec=")
	require.Contains(t, cs, "cmdstat_get:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0")
	require.NotContains(t, cs, "# Server")
	require.Contains(t, rc.do("info", "everything"), "# Commandstats")
	require.Contains(t, rc.do("info", "CPU"), "# CPU")
}

// HELLO 3 switches the connection to RESP3: maps, nulls and verbatim
// strings where Redis writes them.
func TestHelloAndResp3(t *testing.T) {
	n := startNode(t, nil)
	rc := dialRaw(t, n)
	require.Equal(t, "$-1\r\n", rc.do("get", "nosuch"), "RESP2 before HELLO")
	require.Equal(t, "-NOPROTO unsupported protocol version\r\n", rc.do("hello", "4"))
	require.Equal(t, "-ERR Protocol version is not an integer or out of range\r\n", rc.do("hello", "x"))
	require.Equal(t, "-ERR Syntax error in HELLO option 'auth'\r\n", rc.do("hello", "3", "auth", "default"))
	hello := rc.do("hello", "3", "setname", "n3")
	require.True(t, strings.HasPrefix(hello, "%7\r\n$6\r\nserver\r\n$5\r\nlogkv\r\n"), hello)
	require.Contains(t, hello, "$5\r\nproto\r\n:3\r\n")
	require.True(t, strings.HasSuffix(hello, "$7\r\nmodules\r\n*0\r\n"), hello)
	require.Equal(t, "$2\r\nn3\r\n", rc.do("client", "getname"))
	require.Equal(t, "_\r\n", rc.do("get", "nosuch"))
	require.Equal(t, "*2\r\n_\r\n_\r\n", rc.do("mget", "x", "y"))
	require.Equal(t, "%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n", rc.do("config", "get", "maxclients"))
	info := rc.do("info", "server")
	require.True(t, strings.HasPrefix(info, "="), info)
	require.Contains(t, info, "\r\ntxt:# Server\r\n")
	require.Equal(t, "+OK\r\n", rc.do("select", "1"))
	require.Equal(t, "+OK\r\n", rc.do("multi"))
	require.Equal(t, "+RESET\r\n", rc.do("reset"))
	require.Equal(t, "-ERR EXEC without MULTI\r\n", rc.do("exec"), "RESET ended the MULTI")
	require.Equal(t, "+OK\r\n", rc.do("set", "indb0", "v"))
	require.Equal(t, "+OK\r\n", rc.do("select", "0"))
	require.Equal(t, "$1\r\nv\r\n", rc.do("get", "indb0"), "RESET went back to database 0")
	require.Equal(t, "$-1\r\n", rc.do("get", "nosuch"), "RESET goes back to RESP2")
	require.Equal(t, "$-1\r\n", rc.do("client", "getname"), "and forgets the name")

	// go-redis negotiates RESP3 by itself now.
	c := dial(t, n, nil)
	require.Equal(t, "PONG", c.Ping(context.Background()).Val())
	require.ErrorIs(t, c.Get(context.Background(), "nosuch").Err(), redis.Nil)
}

func TestHelloAuth(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Password = "pw" })
	rc := dialRaw(t, n)
	require.True(t, strings.HasPrefix(rc.do("hello", "3"), "-NOAUTH HELLO must be called with the client already authenticated"))
	require.True(t, strings.HasPrefix(rc.do("hello", "3", "auth", "default", "bad"), "-WRONGPASS"))
	require.True(t, strings.HasPrefix(rc.do("hello", "3", "auth", "default", "pw"), "%7\r\n"))
	require.Equal(t, "+OK\r\n", rc.do("set", "k", "v"))
	require.Equal(t, "+RESET\r\n", rc.do("reset"))
	require.True(t, strings.HasPrefix(rc.do("get", "k"), "-NOAUTH"), "RESET forgets the authentication")
}

// MONITOR streams what other clients run, with secrets redacted; RESET
// ends it.
func TestMonitor(t *testing.T) {
	n := adminNode(t, nil)
	mon := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", mon.do("monitor"))
	c := dialRawAdmin(t, n)
	c.do("set", "k", "a\"b\n")
	c.do("auth", "hunter2")
	line := mon.reply()
	require.Regexp(t, `"auth" "\(redacted\)"\r\n$`, line, "c's own AUTH, before the SET")
	line = mon.reply()
	require.Regexp(t, `^\+\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] "set" "k" "a\\"b\\n"\r\n$`, line)
	line = mon.reply()
	require.Regexp(t, `"auth" "\(redacted\)"\r\n$`, line)
	require.Equal(t, int32(1), n.state().monitors.count.Load())
	require.Equal(t, "+RESET\r\n", mon.do("reset"))
	require.Equal(t, int32(0), n.state().monitors.count.Load())
}

// A monitor that does not read is disconnected once its unsent output
// passes the bound, instead of growing the node's memory.
func TestSlowMonitorIsDropped(t *testing.T) {
	// A small hard limit: the default's 128 MiB of 1 MiB SETs took longer
	// than the deadline under -race on a loaded machine.
	n := adminNode(t, func(c *Config) { c.ClientOutputBufferLimit.Normal = OutputBufferLimit{Hard: 8 << 20} })
	mon := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", mon.do("monitor"))
	// mon reads nothing from now on.
	c := dialAdmin(t, n)
	ctx := context.Background()
	big := strings.Repeat("v", 1<<20)
	deadline := time.Now().Add(30 * time.Second)
	for n.state().monitors.count.Load() > 0 {
		require.True(t, time.Now().Before(deadline), "the monitor was never dropped")
		require.NoError(t, c.Set(ctx, "k", big, 0).Err())
	}
}

// The string family on every engine through go-redis: results, and which
// commands keep a key's TTL (APPEND, SETRANGE, SETBIT, INCRBYFLOAT) and
// which clear it (GETSET), as Redis; values survive a restart where the
// engine keeps them.
func TestStringFamilyOnEveryEngine(t *testing.T) {
	for _, engine := range []string{"lsm", "bitcask", "memory"} {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			edit := func(cfg *Config) { cfg.Engine, cfg.DataDir = engine, dir }
			n := newNode(t, edit)
			served := make(chan error, 1)
			go func() { served <- n.Serve() }()
			c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
			ctx := context.Background()
			ttlKept := func(key string) {
				t.Helper()
				ttl := c.TTL(ctx, key).Val()
				require.True(t, ttl > 900*time.Second && ttl <= 1000*time.Second, "%s: TTL %v", key, ttl)
			}
			for _, k := range []string{"a", "r", "b", "f", "g"} {
				require.NoError(t, c.Set(ctx, k, "10", 1000*time.Second).Err())
			}
			require.Equal(t, int64(6), c.Append(ctx, "a", ".5xy").Val())
			ttlKept("a")
			require.Equal(t, int64(12), c.SetRange(ctx, "r", 10, "!!").Val())
			require.Equal(t, "10\x00\x00\x00\x00\x00\x00\x00\x00!!", c.Get(ctx, "r").Val())
			ttlKept("r")
			require.Equal(t, int64(0), c.SetBit(ctx, "b", 23, 1).Val())
			require.Equal(t, "10\x01", c.Get(ctx, "b").Val())
			ttlKept("b")
			require.Equal(t, 10.5, c.IncrByFloat(ctx, "f", 0.5).Val())
			ttlKept("f")
			require.Equal(t, "10", c.Do(ctx, "getset", "g", "new").Val())
			require.Equal(t, time.Duration(-1), c.TTL(ctx, "g").Val(), "GETSET clears the TTL")
			require.Equal(t, int64(3), c.StrLen(ctx, "g").Val())
			require.Equal(t, int64(0), c.StrLen(ctx, "nosuch").Val())
			require.Equal(t, "ne", c.GetRange(ctx, "g", 0, -2).Val())
			require.Equal(t, "new", c.GetDel(ctx, "g").Val())
			require.Equal(t, int64(0), c.Exists(ctx, "g").Val())
			require.True(t, c.MSetNX(ctx, "m1", "1", "m2", "2").Val())
			require.False(t, c.MSetNX(ctx, "m2", "x", "m3", "3").Val())
			require.Equal(t, int64(0), c.Exists(ctx, "m3").Val(), "MSETNX wrote nothing")
			require.Equal(t, int64(22), c.BitCount(ctx, "a", nil).Val())
			require.Equal(t, int64(2), c.BitPos(ctx, "a", 1).Val())
			require.Equal(t, int64(2), c.LCS(ctx, &redis.LCSQuery{Key1: "a", Key2: "r", Len: true}).Val().Len)
			// Huge offsets are refused before anything is allocated.
			require.ErrorContains(t, c.SetRange(ctx, "r", 1<<40, "x").Err(), "string exceeds maximum allowed size")
			require.ErrorContains(t, c.SetBit(ctx, "b", 1<<40, 1).Err(), "bit offset is not an integer or out of range")
			c.Close()
			ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, n.Shutdown(ctx2))
			require.NoError(t, <-served)
			if _, logged := n.backend.(*replicatedBackend); engine == "memory" && !logged {
				return // a memory engine without the commit log keeps nothing
			}
			c2 := dial(t, startNode(t, edit), nil)
			require.Equal(t, "10.5xy", c2.Get(ctx, "a").Val())
			require.Equal(t, "10.5", c2.Get(ctx, "f").Val())
			ttl := c2.TTL(ctx, "f").Val()
			require.True(t, ttl > 0 && ttl <= 1000*time.Second, "the TTL survives the restart: %v", ttl)
		})
	}
}

// TestCommandDocsWhole: COMMAND DOCS of every command kvnode documents is
// redis-server 7.0.15's whole reply, byte for byte, in RESP2 and RESP3:
// summary, since, group, complexity, doc_flags, deprecated_since,
// replaced_by, history and arguments; for a container, each subcommand
// kvnode serves has redis-server's whole entry too, compared one by one
// (Redis lists them in its hash table's order, which changes with every
// start), and COMMAND DOCS container|sub answers the same.
func TestCommandDocsWhole(t *testing.T) {
	redis, kv, n := diffPair(t)
	names := slices.Sorted(maps.Keys(commandDocs))
	compared := 0
	for _, proto := range []string{"2", "3"} {
		redis.do(t, []string{"hello", proto})
		kv.do(t, []string{"hello", proto})
		for _, name := range names {
			container, sub, isSub := strings.Cut(name, "|")
			if n.lookup([]byte(container)) == nil {
				continue // documented, not served (SWAPDB)
			}
			if isSub {
				if _, served := subcommands[container][sub]; !served {
					t.Errorf("%s is documented but not in subcommands", name)
				}
				if sub == "no-touch" || sub == "setinfo" {
					continue // Redis 7.2's: 7.0.15 has no docs to compare
				}
			}
			cmd := []string{"command", "docs", name}
			want, got := redis.do(t, cmd), kv.do(t, cmd)
			if want == "*0\r\n" || want == "%0\r\n" {
				continue // not a plain redis-server's (SENTINEL: sentinel mode's)
			}
			if !strings.Contains(want, "$11\r\nsubcommands\r\n") {
				if want != got {
					t.Errorf("COMMAND DOCS %s in RESP%s:\nredis:  %q\nkvnode: %q", name, proto, want, got)
				}
				compared++
				continue
			}
			if len(subcommands[name]) == 0 {
				continue // a container kvnode documents without subcommands (CLUSTER: cmd_cluster.go)
			}
			wantTop, wantSubs := splitSubcommandDocs(t, want)
			gotTop, gotSubs := splitSubcommandDocs(t, got)
			if wantTop != gotTop {
				t.Errorf("COMMAND DOCS %s in RESP%s without subcommands:\nredis:  %q\nkvnode: %q", name, proto, wantTop, gotTop)
			}
			for sub := range subcommands[name] {
				full := name + "|" + sub
				if sub == "no-touch" || sub == "setinfo" {
					continue
				}
				if wantSubs[full] != gotSubs[full] {
					t.Errorf("COMMAND DOCS %s's %s in RESP%s:\nredis:  %q\nkvnode: %q", name, full, proto, wantSubs[full], gotSubs[full])
				}
				compared++
			}
			require.Len(t, gotSubs, len(subcommands[name]), "kvnode documents the subcommands it serves, no others")
		}
	}
	require.Greater(t, compared, 200, "the test compared what it should")
}

// splitSubcommandDocs splits COMMAND DOCS container's reply (a map of one
// name to its docs map) into the docs map without its subcommands, and
// each subcommand's raw entry by name.
func splitSubcommandDocs(t *testing.T, reply string) (top string, subs map[string]string) {
	t.Helper()
	elems := func(s string) (header string, out []string) {
		r := bufio.NewReader(strings.NewReader(s))
		header, err := r.ReadString('\n')
		require.NoError(t, err)
		k, err := strconv.Atoi(header[1 : len(header)-2])
		require.NoError(t, err)
		if header[0] == '%' {
			k *= 2
		}
		for range k {
			e, err := readReply(r)
			require.NoError(t, err)
			out = append(out, e)
		}
		return header, out
	}
	_, outer := elems(reply)
	require.Len(t, outer, 2, "one command's docs: %q", reply)
	header, fields := elems(outer[1])
	subs = map[string]string{}
	var rest []string
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == "$11\r\nsubcommands\r\n" {
			_, entries := elems(fields[i+1])
			for j := 0; j+1 < len(entries); j += 2 {
				name := strings.SplitN(entries[j], "\r\n", 3)[1]
				subs[name] = entries[j+1]
			}
			continue
		}
		rest = append(rest, fields[i], fields[i+1])
	}
	return header + strings.Join(rest, ""), subs
}

// TestNoMultiCommands: SAVE and SHUTDOWN queued in MULTI are refused as
// redis-server refuses them, byte for byte, and EXEC then aborts, applying
// nothing: the node keeps running (Redis' own multi.tcl "MULTI with
// SHUTDOWN" stopped kvnode at EXEC).
func TestNoMultiCommands(t *testing.T) {
	redis, kv, _ := diffPair(t)
	for _, args := range [][]string{
		{"multi"}, {"set", "k", "v"}, {"save"}, {"shutdown", "nosave"}, {"exec"},
		{"exists", "k"}, {"ping"},
	} {
		require.Equal(t, redis.do(t, args), kv.do(t, args), "%q", args)
	}
}

// TestClientListSubcommand: CLIENT LIST and INFO name a container's last
// command with its subcommand (cmd=client|list), as Redis 7 does (its
// introspection.tcl "CLIENT LIST with IDs"), and a plain command by name.
func TestClientListSubcommand(t *testing.T) {
	n := adminNode(t, nil)
	a, b := dialRawAdmin(t, n), dialRawAdmin(t, n)
	require.Contains(t, a.do("client", "info"), " cmd=client|info ")
	require.Contains(t, a.do("client", "list"), " cmd=client|list ")
	cmdOf := func() string {
		t.Helper()
		id := strings.TrimSuffix(strings.TrimPrefix(b.do("client", "id"), ":"), "\r\n")
		b.do("config", "get", "timeout")
		for _, line := range strings.Split(a.do("client", "list"), "\n") {
			if strings.Contains(line, "id="+id+" ") {
				_, rest, _ := strings.Cut(line, " cmd=")
				cmd, _, _ := strings.Cut(rest, " ")
				return cmd
			}
		}
		t.Fatalf("client %s not listed", id)
		return ""
	}
	require.Equal(t, "config|get", cmdOf())
	b.do("object", "encoding", "nokey")
	b.do("get", "k")
	id := strings.TrimSuffix(strings.TrimPrefix(b.do("client", "id"), ":"), "\r\n")
	require.Contains(t, a.do("client", "list", "id", id), " cmd=client|id ")
	b.do("get", "k")
	require.Contains(t, a.do("client", "list", "id", id), " cmd=get ")
	b.do("client", "nosuch")
	require.Contains(t, a.do("client", "list", "id", id), " cmd=NULL ", "an unknown subcommand, as Redis shows it")
	b.do("get")
	require.Contains(t, a.do("client", "list", "id", id), " cmd=get ", "a wrong arity")
}
