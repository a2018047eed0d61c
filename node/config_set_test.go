package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// CONFIG SET of the runtime settings answers what redis-server 7.0.15
// answers, for the values both accept and the ones both refuse.
func TestConfigSetReplies(t *testing.T) {
	n := adminNode(t, nil)
	rc := dialRawAdmin(t, n)
	failed := func(param, why string) string {
		return fmt.Sprintf("-ERR CONFIG SET failed (possibly related to argument '%s') - %s\r\n", param, why)
	}
	for _, c := range []struct{ args, want string }{
		{"timeout -1", failed("timeout", "argument must be between 0 and 2147483647 inclusive")},
		{"timeout abc", failed("timeout", "argument couldn't be parsed into an integer")},
		{"timeout 007", failed("timeout", "argument couldn't be parsed into an integer")},
		{"timeout +5", failed("timeout", "argument couldn't be parsed into an integer")},
		{"TIMEOUT 10", "+OK\r\n"},
		{"maxclients 0", failed("maxclients", "argument must be between 1 and 4294967295 inclusive")},
		{"maxclients abc", failed("maxclients", "argument couldn't be parsed into an integer")},
		{"maxclients 100", "+OK\r\n"},
		{"client-query-buffer-limit abc", failed("client-query-buffer-limit", "argument must be a memory value")},
		{"client-query-buffer-limit -1", failed("client-query-buffer-limit", "argument must be a memory value")},
		{"client-query-buffer-limit 1.5mb", failed("client-query-buffer-limit", "argument must be a memory value")},
		{"client-query-buffer-limit 1k", failed("client-query-buffer-limit", "argument must be between 34668544 and 1073741824 inclusive")},
		{"client-query-buffer-limit 100mb", "+OK\r\n"},
		{"client-output-buffer-limit foo", failed("client-output-buffer-limit", "Wrong number of arguments in buffer limit configuration.")},
		{"client-output-buffer-limit normal@1@2", failed("client-output-buffer-limit", "Wrong number of arguments in buffer limit configuration.")},
		{"client-output-buffer-limit bogus@1@2@3", failed("client-output-buffer-limit", "Invalid client class specified in buffer limit configuration.")},
		{"client-output-buffer-limit normal@10@20@x", failed("client-output-buffer-limit", "Error in hard, soft or soft_seconds setting in buffer limit configuration.")},
		{"client-output-buffer-limit normal@-1@2@3", failed("client-output-buffer-limit", "Error in hard, soft or soft_seconds setting in buffer limit configuration.")},
		{"client-output-buffer-limit normal@1mb@2mb@3", failed("client-output-buffer-limit", "soft limit 2097152 is over hard limit 1048576 for class normal: the pipeline pauses at the soft limit, so it must come first")},
		{"client-output-buffer-limit normal@2mb@1mb@3@slave@1k@1K@5", "+OK\r\n"},
		{"appendfsync bogus", failed("appendfsync", "argument(s) must be one of the following: everysec, always, no")},
		{"appendfsync ALWAYS", "+OK\r\n"},
		{"appendfsync no", failed("appendfsync", "appendfsync no is not offered: the commit log is always fsynced, at the latest within a second; use everysec")},
		{"appendfsync everysec", "+OK\r\n"},
		{"dir /tmp", failed("dir", "not supported at runtime: set data_dir in the node's config file and restart it")},
		{"timeout 1 maxclients 0", failed("maxclients", "argument must be between 1 and 4294967295 inclusive")},
		// Names are checked before values, as Redis does (its
		// introspection.tcl "CONFIG SET duplicate configs").
		{"maxmemory 1 maxmemory 2", failed("maxmemory", "duplicate parameter")},
		{"dir /tmp bogus 1", "-ERR Unknown option or number of arguments for CONFIG SET - 'bogus'\r\n"},
	} {
		args := append([]string{"config", "set"}, strings.Fields(c.args)...)
		for i := range args {
			args[i] = strings.ReplaceAll(args[i], "@", " ")
		}
		require.Equal(t, c.want, rc.do(args...), c.args)
	}
	get := func(p string) string {
		r := rc.do("config", "get", p)
		lines := strings.Split(r, "\r\n")
		require.GreaterOrEqual(t, len(lines), 4, r)
		return lines[4]
	}
	require.Equal(t, "10", get("timeout"), "the refused pair changed nothing")
	require.Equal(t, "everysec", get("appendfsync"))
	require.Contains(t, rc.do("info", "persistence"), "appendfsync:everysec\r\n")
	require.False(t, n.backend.SyncWaits(), "pipelines no longer wait for an fsync")
	require.Equal(t, "100", get("maxclients"))
	require.Equal(t, "104857600", get("client-query-buffer-limit"))
	require.Equal(t, "normal 2097152 1048576 3 slave 1000 1000 5 pubsub 33554432 8388608 60", get("client-output-buffer-limit"))
	require.Equal(t, "*0\r\n", rc.do("config", "get", "requirepass"), "never shown")
	require.NotContains(t, rc.do("config", "get", "*"), "requirepass")

	s := n.settings()
	require.Equal(t, 10*time.Second, s.timeout)
	require.Equal(t, 100, s.maxClients)
	require.Equal(t, 2<<20, s.hard)
	require.Equal(t, 1<<20, s.pauseAt)
	require.Equal(t, 3*time.Second, s.softFor)
}

// CONFIG SET requirepass takes effect for the next AUTH and connection;
// connected clients keep the access they had, as in Redis. An empty one
// opens the node again.
func TestConfigSetRequirepass(t *testing.T) {
	n := adminNode(t, nil)
	admin := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", admin.do("config", "set", "requirepass", "new"))
	require.Equal(t, "+PONG\r\n", admin.do("ping"), "an authenticated client stays so")
	fresh := dialRaw(t, n)
	require.Equal(t, "-"+errNoAuth+"\r\n", fresh.do("get", "k"))
	require.Equal(t, "-"+errWrongPass+"\r\n", fresh.do("auth", adminPassword), "the old password is gone")
	fresh2 := dialRaw(t, n)
	require.Equal(t, "+OK\r\n", fresh2.do("auth", "new"))
	require.Equal(t, "+OK\r\n", fresh2.do("config", "set", "slowlog-max-len", "3"), "the new password is an admin's")

	require.Equal(t, "+OK\r\n", admin.do("config", "set", "requirepass", ""))
	open := dialRaw(t, n)
	require.Equal(t, "$-1\r\n", open.do("get", "k"), "no password: clients start authenticated")
	require.Equal(t, "-"+errAdminOpen+"\r\n", open.do("config", "set", "timeout", "1"), "and without admin rights")
}

// maxclients and timeout changed at runtime govern the next connection and
// the idle reaper.
func TestConfigSetLimitsTakeEffect(t *testing.T) {
	n := adminNode(t, nil)
	admin := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", admin.do("config", "set", "maxclients", "1"))
	over := dialRaw(t, n)
	require.Equal(t, "-"+errTooManyConns+"\r\n", over.reply(), "one client is connected: the next is refused")
	require.Equal(t, "+OK\r\n", admin.do("config", "set", "maxclients", "10"))
	require.Equal(t, "+PONG\r\n", dialRaw(t, n).do("ping"))

	// The reaper was asleep (timeout 0 at start); the change wakes it.
	idle := send(t, n, "AUTH "+adminPassword+"\r\n")
	require.Equal(t, "+OK\r\n", admin.do("config", "set", "timeout", "1"))
	requireReapedIdle(t, n, idle, "+OK\r\n")
}

// client-output-buffer-limit changed at runtime closes a client that
// passes the new hard limit.
func TestConfigSetOutputLimitTakesEffect(t *testing.T) {
	n := adminNode(t, nil)
	admin := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", admin.do("set", "big", strings.Repeat("v", 1<<20)))
	require.Equal(t, "+OK\r\n", admin.do("config", "set", "client-output-buffer-limit", "normal 4mb 0 0"))
	mget := "*11\r\n$4\r\nMGET\r\n" + strings.Repeat("$3\r\nbig\r\n", 10)
	conn := send(t, n, "AUTH "+adminPassword+"\r\n"+mget)
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	out, err := io.ReadAll(conn)
	require.NoError(t, err, "the node closed the client")
	require.Empty(t, out, "its pending output is freed: no partial reply")
	require.Equal(t, float64(1), closedFor(n, closedOutputHard))
}

// Settings change while every event loop serves clients: the race detector
// checks that the loops read them safely (one atomic pointer, no lock).
func TestConfigSetWhileServing(t *testing.T) {
	n := adminNode(t, func(c *Config) { c.EventLoops = 2 })
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			c := dialAdmin(t, n)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := c.Get(ctx, "k").Err(); err != nil && err.Error() != "redis: nil" {
					t.Error(err)
					return
				}
			}
		})
	}
	admin := dialRawAdmin(t, n)
	for i := range 200 {
		require.Equal(t, "+OK\r\n", admin.do("config", "set",
			"client-output-buffer-limit", fmt.Sprintf("normal %d %d 60", 64<<20+i, 32<<20+i),
			"client-query-buffer-limit", fmt.Sprint(64<<20+i), "timeout", fmt.Sprint(3600+i), "maxclients", fmt.Sprint(1000+i),
			"requirepass", adminPassword))
	}
	close(stop)
	wg.Wait()
}

// CONFIG REWRITE writes what CONFIG SET changed into the file the node
// started from, keeping its other keys and comments, atomically and 0600;
// the node started from the new file runs with the new values.
func TestConfigRewrite(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kvnode.yaml")
	orig := "# my node\nengine: memory   # fast\ntimeout: 0 # never\nlimits:\n  max_connections: 50\n" +
		"client_output_buffer_limit: {normal: {hard: 134217728, soft: 33554432, soft_seconds: 60}}\n"
	require.NoError(t, os.WriteFile(file, []byte(orig), 0o644))
	cfg, err := LoadConfig(file)
	require.NoError(t, err)
	n := adminNode(t, func(c *Config) {
		c.file = cfg.file
		c.Limits.MaxConnections = cfg.Limits.MaxConnections
	})
	rc := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", rc.do("config", "rewrite"), "nothing changed: the file is written as it is")
	require.Equal(t, "+OK\r\n", rc.do("config", "set", "timeout", "7", "maxclients", "60", "slowlog-max-len", "9",
		"client-output-buffer-limit", "pubsub 1mb 1mb 1", "latency-monitor-threshold", "5", "requirepass", "rewritten",
		"appendfsync", "everysec"))
	require.Equal(t, "+OK\r\n", rc.do("config", "rewrite"))

	data, err := os.ReadFile(file)
	require.NoError(t, err)
	for _, keep := range []string{"# my node", "# fast", "# never", "engine: memory"} {
		require.Contains(t, string(data), keep, "the rest of the file stays")
	}
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left")

	got, err := LoadConfig(file)
	require.NoError(t, err, string(data))
	require.Equal(t, 7, got.Timeout)
	require.Equal(t, 60, got.Limits.MaxConnections)
	require.Equal(t, int64(9), got.SlowlogMaxLen)
	require.Equal(t, int64(5), got.LatencyMonitorThreshold)
	require.Equal(t, OutputBufferLimit{Hard: 1 << 20, Soft: 1 << 20, SoftSeconds: 1}, got.ClientOutputBufferLimit.Pubsub)
	require.Equal(t, DefaultOutputBufferLimits.Normal, got.ClientOutputBufferLimit.Normal)
	require.Equal(t, "rewritten", got.Password)
	require.Equal(t, "everysec", got.AppendFsync)
	require.Equal(t, DefaultConfig().Limits.ClientQueryBufferLimit, got.Limits.ClientQueryBufferLimit, "what CONFIG SET did not change is not written")

	require.Equal(t, "+OK\r\n", rc.do("config", "set", "requirepass", ""))
	require.Equal(t, "+OK\r\n", rc.do("config", "rewrite"))
	got, err = LoadConfig(file)
	require.NoError(t, err)
	require.Empty(t, got.Password, "an empty requirepass removes the password")
}

// With password_file, CONFIG REWRITE writes requirepass into that file.
func TestConfigRewritePasswordFile(t *testing.T) {
	dir := t.TempDir()
	file, pwFile := filepath.Join(dir, "kvnode.yaml"), filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte(adminPassword+"\n"), 0o600))
	require.NoError(t, os.WriteFile(file, []byte("password_file: "+pwFile+"\n"), 0o600))
	cfg, err := LoadConfig(file)
	require.NoError(t, err)
	n := startNode(t, func(c *Config) { c.file, c.PasswordFile = cfg.file, cfg.PasswordFile })
	rc := dialRawAdmin(t, n)
	require.Equal(t, "+OK\r\n", rc.do("config", "set", "requirepass", "next"))
	require.Equal(t, "+OK\r\n", rc.do("config", "rewrite"))
	pw, err := os.ReadFile(pwFile)
	require.NoError(t, err)
	require.Equal(t, "next\n", string(pw))
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NotContains(t, string(data), "next", "the password stays out of the config file")
}

// Without a config file, CONFIG REWRITE answers Redis' error; it and
// RESETSTAT need an admin.
func TestConfigRewriteWithoutFile(t *testing.T) {
	n := adminNode(t, nil)
	require.Equal(t, "-"+errNoConfigFile+"\r\n", dialRawAdmin(t, n).do("config", "rewrite"))
	open := startNode(t, nil)
	rc := dialRaw(t, open)
	require.Equal(t, "-"+errAdminOpen+"\r\n", rc.do("config", "rewrite"))
	require.Equal(t, "-"+errAdminOpen+"\r\n", rc.do("config", "resetstat"))
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1": 1, "1b": 1, "1k": 1000, "1KB": 1024, "2m": 2e6, "2mb": 2 << 20, "1g": 1e9, "1Gb": 1 << 30} {
		got, ok := parseMemory(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "-1", "1.5mb", "k", "1tb", " 1", "99999999999999999999", "9999999999999gb"} {
		_, ok := parseMemory(in)
		require.False(t, ok, in)
	}
}

// CONFIG SET appendfsync switches the commit log's policy both ways while
// clients write: under always a pipeline waits for its fsync (SyncWaits),
// under everysec it does not; writes keep working across each switch.
// replicate's TestSetSyncIntervalAtRuntime shows that a write acknowledged
// after a switch to always survives a power cut.
func TestConfigSetAppendFsyncSwitches(t *testing.T) {
	n := adminNode(t, nil)
	c := dialAdmin(t, n)
	ctx := context.Background()
	require.True(t, n.backend.SyncWaits())
	for i, mode := range []string{"everysec", "always", "everysec", "always"} {
		require.NoError(t, c.ConfigSet(ctx, "appendfsync", mode).Err())
		require.Equal(t, map[string]string{"appendfsync": mode}, c.ConfigGet(ctx, "appendfsync").Val())
		require.Equal(t, mode == "always", n.backend.SyncWaits(), mode)
		for j := range 50 {
			require.NoError(t, c.Set(ctx, fmt.Sprintf("k%d-%d", i, j), "v", 0).Err())
		}
	}
	require.Equal(t, int64(200), c.DBSize(ctx).Val())
}
