package node

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// testPassword is the default user's password of nodes started withPassword.
const testPassword = "s3cret-admin"

// withPassword gives a node testPassword; withAuth makes a client use it.
func withPassword(c *Config)    { c.Password = testPassword }
func withAuth(o *redis.Options) { o.Password = testPassword }
func authAs(user, pass string) func(*redis.Options) {
	return func(o *redis.Options) { o.Username, o.Password = user, pass }
}

// remoteConn is a connection that claims to come from a non-loopback
// address, as a remote client's would.
type remoteConn struct{ net.Conn }

func (remoteConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 4567} }

// Protected mode: with no password, a client from beyond loopback gets
// Redis' DENIED error and is disconnected; a loopback client is served.
func TestProtectedModeRefusesRemoteClients(t *testing.T) {
	n := startNode(t, nil)
	server, client := net.Pipe()
	go n.admit(remoteConn{server})
	line, err := bufio.NewReader(client).ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "-DENIED kvnode is running in protected mode"), line)
	require.Contains(t, line, "-requirepass-file")
	require.Equal(t, "PONG", dial(t, n, nil).Ping(context.Background()).Val(), "loopback clients are served")
}

// Administrative commands are default-deny: without a password nobody may
// run them; with one, only an authenticated admin.
func TestAdminCommandsNeedAnAdmin(t *testing.T) {
	ctx := context.Background()
	open := dial(t, startNode(t, nil), nil)
	require.NoError(t, open.Set(ctx, "k", "v", 0).Err(), "data commands work without a password")
	for _, cmd := range [][]any{{"replicaof", "no", "one"}, {"slaveof", "127.0.0.1", "1"}} {
		err := open.Do(ctx, cmd...).Err()
		require.ErrorContains(t, err, "NOPERM administrative commands are disabled while the node has no password")
		require.ErrorContains(t, err, "AUTH")
	}

	n := startNode(t, func(c *Config) {
		withPassword(c)
		c.Users = []User{{Name: "reader", Password: "r", Access: "readonly"}, {Name: "writer", Password: "w", Access: "readwrite"}}
	})
	anon := dial(t, n, nil)
	require.EqualError(t, anon.Do(ctx, "replicaof", "no", "one").Err(), errNoAuth)
	admin := dial(t, n, withAuth)
	require.NoError(t, admin.Set(ctx, "k", "v", 0).Err())
	require.Equal(t, "OK", admin.Do(ctx, "replicaof", "no", "one").Val())

	reader := dial(t, n, authAs("reader", "r"))
	require.Equal(t, "v", reader.Get(ctx, "k").Val())
	require.ErrorContains(t, reader.Set(ctx, "k", "x", 0).Err(), "NOPERM this user has no permissions to run the 'set' command")
	require.ErrorContains(t, reader.Do(ctx, "replicaof", "no", "one").Err(), "NOPERM this user has no permissions to run the 'replicaof' command")
	writer := dial(t, n, authAs("writer", "w"))
	require.NoError(t, writer.Set(ctx, "k", "w", 0).Err())
	require.ErrorContains(t, writer.Do(ctx, "replicaof", "no", "one").Err(), "NOPERM")
	require.ErrorContains(t, dial(t, n, authAs("reader", "w")).Ping(ctx).Err(), "WRONGPASS")
}

// AUTH and HELLO AUTH check the user name, not only the password.
func TestAuthChecksTheUser(t *testing.T) {
	n := startNode(t, withPassword)
	ctx := context.Background()
	out := sendAll(t, n, "HELLO 2 AUTH anyuser "+testPassword+"\r\nQUIT\r\n")
	require.True(t, strings.HasPrefix(out, "-WRONGPASS"), out)
	c := dial(t, n, nil)
	require.ErrorContains(t, c.Do(ctx, "auth", "anyuser", testPassword).Err(), "WRONGPASS")
}

// Renamed and disabled commands, as Redis' rename-command.
func TestRenameCommands(t *testing.T) {
	n := startNode(t, func(c *Config) {
		withPassword(c)
		c.RenameCommands = map[string]string{"replicaof": "", "slaveof": "SLAVEOF-8f3a"}
	})
	ctx := context.Background()
	c := dial(t, n, withAuth)
	require.ErrorContains(t, c.Do(ctx, "replicaof", "no", "one").Err(), "unknown command")
	require.ErrorContains(t, c.Do(ctx, "slaveof", "no", "one").Err(), "unknown command")
	require.Equal(t, "OK", c.Do(ctx, "slaveof-8F3A", "no", "one").Val())
	// COMMAND knows commands by their configured names too.
	require.Equal(t, []any{nil}, c.Do(ctx, "command", "info", "replicaof").Val())
	require.ErrorContains(t, c.Do(ctx, "command", "getkeys", "slaveof", "no", "one").Err(), "Invalid command")

	_, err := ParseConfig([]byte("rename_commands: {nosuch: x}\n"))
	require.ErrorContains(t, err, `"nosuch" is not a command`)
	_, err = ParseConfig([]byte("rename_commands: {get: set}\n"))
	require.ErrorContains(t, err, "another command's name")
}

// enable_protected_configs and enable_debug_command: no refuses even an
// admin, local allows loopback admins only, yes every admin.
func TestEnableSettings(t *testing.T) {
	n := startNode(t, withPassword)
	admin := func(local bool) *client {
		c := &client{access: accessAdmin, local: local, authed: true}
		c.conn = &replyConn{n: n, c: c, check: 1 << 60}
		return c
	}
	for _, tc := range []struct {
		setting     string
		local, want bool
		err         string
	}{
		{enableNo, true, false, "ERR DEBUG is disabled: set enable_debug_command to yes (or local)"},
		{enableLocal, true, true, ""},
		{enableLocal, false, false, "ERR DEBUG is only allowed from loopback clients"},
		{enableYes, false, true, ""},
	} {
		n.cfg.EnableDebugCommand, n.cfg.EnableProtectedConfigs = tc.setting, tc.setting
		c := admin(tc.local)
		require.Equal(t, tc.want, n.checkDebug(c), tc)
		require.Contains(t, string(c.conn.out), tc.err)
		c = admin(tc.local)
		require.Equal(t, tc.want, n.checkProtectedConfig(c, "dir"), tc)
	}
	reader := &client{access: accessRead, authed: true}
	reader.conn = &replyConn{n: n, c: reader, check: 1 << 60}
	n.cfg.EnableDebugCommand = enableYes
	require.False(t, n.checkDebug(reader), "only admins")
}

// The password comes from -requirepass, else -requirepass-file, else
// $KVNODE_PASSWORD, else the config; a password file's first line is the
// password.
func TestPasswordSources(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(file, []byte("from-file\nignored\n"), 0o600))
	t.Setenv(passwordEnv, "from-env")
	for _, tc := range []struct {
		f          runFlags
		pass, file string
	}{
		{runFlags{requirePass: "from-flag", requirePassFile: file}, "from-flag", ""},
		{runFlags{requirePassFile: file}, "", file},
		{runFlags{}, "from-env", ""},
	} {
		cfg, err := tc.f.apply()
		require.NoError(t, err)
		require.Equal(t, tc.pass, cfg.Password)
		require.Equal(t, tc.file, cfg.PasswordFile)
	}
	n := startNode(t, func(c *Config) { c.PasswordFile = file })
	ctx := context.Background()
	require.ErrorContains(t, dial(t, n, nil).Get(ctx, "k").Err(), "NOAUTH")
	require.NoError(t, dial(t, n, authAs("default", "from-file")).Set(ctx, "k", "v", 0).Err())
}

// The admin HTTP server: /healthz and /readyz are open; with a password,
// /metrics and pprof need it (basic auth or a bearer token); pprof is off
// unless admin_pprof; every timeout is set.
func TestAdminHTTPAuth(t *testing.T) {
	get := func(n *Node, path string, edit func(*http.Request)) int {
		req, err := http.NewRequest("GET", "http://"+n.AdminAddr()+path, nil)
		require.NoError(t, err)
		if edit != nil {
			edit(req)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	basic := func(r *http.Request) { r.SetBasicAuth("default", testPassword) }
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testPassword) }
	wrong := func(r *http.Request) { r.SetBasicAuth("default", "nope") }

	open := startNode(t, nil)
	require.Equal(t, http.StatusOK, get(open, "/metrics", nil))
	require.Equal(t, http.StatusNotFound, get(open, "/debug/pprof/cmdline", nil), "pprof is opt-in")

	n := startNode(t, func(c *Config) { withPassword(c); c.AdminPprof = true })
	require.Positive(t, n.admin.ReadTimeout)
	require.Positive(t, n.admin.WriteTimeout)
	require.Positive(t, n.admin.IdleTimeout)
	require.Equal(t, http.StatusOK, get(n, "/healthz", nil))
	require.Equal(t, http.StatusOK, get(n, "/readyz", nil))
	for _, path := range []string{"/metrics", "/debug/pprof/cmdline"} {
		require.Equal(t, http.StatusUnauthorized, get(n, path, nil), path)
		require.Equal(t, http.StatusOK, get(n, path, basic), path)
		require.Equal(t, http.StatusOK, get(n, path, bearer), path)
	}
	require.Equal(t, http.StatusUnauthorized, get(n, "/metrics", wrong))
}
