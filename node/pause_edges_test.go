package node

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The CLIENT PAUSE check decides once per command whether the command is
// refused at once or held (pauseVerdict), and run keeps that decision.
// Before, run looked at the role again: a write that the check found on a
// follower was kept on the event loop to be refused there, and if a
// promotion came between the check (mayWait) and run, run found a leader
// and applied the write during the pause. The command hook, which runs
// between the two, promotes the follower; the write must get READONLY at
// once, as it was refused when checked, and must not be applied. Inside
// MULTI the same write must not be QUEUED (queueInMulti's check). Before
// the fix, the SET answered +OK and the key was set during the pause, and
// the MULTI's SET answered +QUEUED.
func TestPauseKeepsRefusalAcrossPromotion(t *testing.T) {
	for _, tc := range []struct {
		name string
		pipe [][]string // sent one at a time; the hook promotes at the last
		want []string   // their replies, each due at once
	}{
		{"set", [][]string{{"set", "k", "v"}}, []string{"-" + errReadOnly + "\r\n"}},
		{"set in multi", [][]string{{"multi"}, {"set", "k", "v"}}, []string{"+OK\r\n", "-" + errReadOnly + "\r\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tlsDir := filepath.Join(t.TempDir(), "tls")
			var out bytes.Buffer
			require.Equal(t, 0, Main([]string{"certs", "-dir", tlsDir}, &out, &out), out.String())
			leader := replNode(t, tlsDir, "memory", "", withPassword)

			// The follower is built by hand (replNode serves at once) so
			// that its hook is set before it serves.
			name := fmt.Sprintf("n%d", replNodes.Add(1))
			require.Equal(t, 0, Main([]string{"certs", "-dir", tlsDir, "-node", name}, &out, &out), out.String())
			f := newNode(t, func(c *Config) {
				c.TLS.Dir = filepath.Join(tlsDir, name)
				c.Replication.ReplicaOf = leader.rep(t).Addr()
				withPassword(c)
			})
			var arm atomic.Bool
			promoted := make(chan error, 1)
			f.testHookCommand = func(args [][]byte) {
				// Between mayWait, which checked the pause with the node
				// following, and run.
				if strings.EqualFold(string(args[0]), "set") && arm.CompareAndSwap(true, false) {
					promoted <- f.backend.ReplicaOf("", "", false)
				}
			}
			serve(t, f)
			require.True(t, f.backend.IsFollower())

			admin := dialRaw(t, f)
			require.Equal(t, "+OK\r\n", admin.do("auth", testPassword))
			require.Equal(t, "+OK\r\n", admin.do("client", "pause", "60000", "write"))
			defer admin.do("client", "unpause")

			rc := dialRaw(t, f)
			require.Equal(t, "+OK\r\n", rc.do("auth", testPassword))
			for i, args := range tc.pipe {
				if i == len(tc.pipe)-1 {
					arm.Store(true)
				}
				// rc.do reads with a 10 s deadline; the pause lasts a minute.
				require.Equal(t, tc.want[i], rc.do(args...), "reply to %v", args)
			}
			require.NoError(t, <-promoted)
			require.False(t, f.backend.IsFollower(), "the hook promoted the node")
			require.Equal(t, "$-1\r\n", admin.do("get", "k"), "the refused write was not applied")
		})
	}
}

// Under CLIENT PAUSE a command for another shard's slot gets its MOVED at
// once, as Redis redirects before it checks a pause (processCommand):
// before, the write waited out the pause and then got its MOVED. A write
// of the node's own slot is still held.
func TestPauseRedirectsAtOnce(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, time.Second)
	shardOf := map[string]string{"a": "a", "b": "b"}
	for name, s := range shardOf {
		tc.add(name, func(c *Config) { c.Cluster.Shard = s; withPassword(c) }) // CLIENT PAUSE is an admin's
	}
	tc.shardLeaders(shardOf, 0, 30*time.Second)
	var out, errOut strings.Builder
	require.Equal(t, 0, Main([]string{"cluster", "init", "-shards", "a,b", "-etcd", tc.etcd.Endpoint, "-cluster", tc.name}, &out, &errOut), errOut.String())
	m, err := readSlotMap(ctx, tc.nodes["a"].cb().cli, tc.name)
	require.NoError(t, err)
	leaders := tc.shardLeaders(shardOf, m.Version, 30*time.Second)
	a, b := leaders["a"], leaders["b"]
	tab := m.table()
	var own, other string
	for i := 0; own == "" || other == ""; i++ {
		k := fmt.Sprintf("k%d", i)
		if tab.shardOf(keySlot([]byte(k))) == "a" {
			own = k
		} else {
			other = k
		}
	}
	admin := dialRaw(t, a.n)
	require.Equal(t, "+OK\r\n", admin.do("auth", testPassword))
	// a confirms its table within a tick of runMoves.
	require.Eventually(t, func() bool { return admin.do("set", own, "1") == "+OK\r\n" }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "+OK\r\n", admin.do("client", "pause", "60000", "write"))
	unpaused := false
	defer func() {
		if !unpaused {
			admin.do("client", "unpause")
		}
	}()
	rc := dialRaw(t, a.n)
	require.Equal(t, "+OK\r\n", rc.do("auth", testPassword))
	// rc.do reads with a 10 s deadline; the pause lasts a minute.
	moved := fmt.Sprintf("-MOVED %d %s\r\n", keySlot([]byte(other)), b.n.Addr())
	require.Equal(t, moved, rc.do("set", other, "x"), "a write for b's slot")
	require.Equal(t, moved, rc.do("get", other), "a read for b's slot")

	// The node's own slot: held until the pause ends.
	rc.send("set", own, "2")
	require.Eventually(t, func() bool {
		return strings.Contains(admin.do("info", "clients"), "blocked_clients:1\r\n")
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "+OK\r\n", admin.do("client", "unpause"))
	unpaused = true
	require.Equal(t, "+OK\r\n", rc.reply())
}
