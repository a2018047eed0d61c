package node

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Issue 15, left over: under CLIENT PAUSE WRITE a write with the wrong
// number of arguments waited out the whole pause before its error, because
// the pause was waited for before any check (beforeCommand). Redis checks
// the pause after the command's name, arity, authentication, permissions
// and READONLY (processCommand), so a refused request is answered at once;
// commands after a held one in the same pipeline wait with it, and the
// replies before it go out at once (they waited with it, before sendAhead).
//
// Each case runs against redis-server 7.0.15 and kvnode alike: pause WRITE
// for a minute, send the pipeline, read the replies that must come during the
// pause, see the client counted in blocked_clients if anything is held
// (polled with a deadline), unpause, read the rest; both must reply the
// same bytes. Before the fix kvnode's refusals did not arrive within the
// read deadline.
func TestPauseAnswersRefusalsAtOnce(t *testing.T) {
	type step struct {
		pipe [][]string // a pipeline, sent whole
		now  int        // its replies that come during the pause
	}
	cases := []struct {
		name   string
		noAuth bool   // the client does not AUTH first
		steps  []step // only the last may have commands held
	}{
		{"wrong arity", false, []step{{[][]string{{"set", "pa"}}, 1}}},
		{"unknown command", false, []step{{[][]string{{"nosuchcmd", "pa"}}, 1}}},
		{"not authenticated", true, []step{{[][]string{{"set", "pa", "v"}}, 1}}},
		{"read then wrong arity", false, []step{{[][]string{{"get", "pa"}, {"set", "pa"}}, 2}}},
		{"held write, then wrong arity", false, []step{{[][]string{{"set", "pb", "v"}, {"set", "pb"}}, 0}}},
		{"read at once, write held", false, []step{{[][]string{{"get", "pa"}, {"set", "pb", "v"}, {"get", "pb"}}, 1}}},
		{"multi: wrong arity at once, write held", false, []step{
			{[][]string{{"multi"}, {"set", "pc"}, {"set", "pc", "v"}, {"exec"}}, 2},
		}},
	}
	sock := redisServer(t)
	n := adminNode(t, nil)
	dialRedis := func() net.Conn {
		c, err := net.Dial("unix", sock)
		require.NoError(t, err)
		return c
	}
	dialKV := func() net.Conn {
		c, err := net.Dial("tcp", n.Addr())
		require.NoError(t, err)
		return c
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := func(dial func() net.Conn) []string {
				var replies []string
				pausedPipelines(t, dial, !tc.noAuth, func(send func(pipe [][]string, now int) []string) {
					for _, st := range tc.steps {
						replies = append(replies, send(st.pipe, st.now)...)
					}
				})
				return replies
			}
			want := run(dialRedis)
			got := run(dialKV)
			require.Equal(t, want, got, "kvnode's replies differ from redis-server's")
		})
	}
}

// pausedPipelines pauses the server's writes, connects (and AUTHs if
// auth), and calls steps with a send function. send sends a pipeline whole,
// reads the now replies that must arrive during the pause, and, if the
// pipeline has more, checks that the rest is held (the client shows in
// INFO's blocked_clients), unpauses, and reads them. It returns the
// pipeline's replies.
func pausedPipelines(t *testing.T, dial func() net.Conn, auth bool, steps func(send func(pipe [][]string, now int) []string)) {
	t.Helper()
	admin := &diffConn{dial(), nil}
	admin.r = bufio.NewReader(admin.nc)
	defer admin.nc.Close()
	require.Equal(t, "+OK\r\n", admin.do(t, []string{"auth", adminPassword}))
	require.Equal(t, "+OK\r\n", admin.do(t, []string{"client", "pause", "60000", "write"}))
	unpaused := false
	defer func() {
		if !unpaused {
			admin.do(t, []string{"client", "unpause"})
		}
	}()

	nc := dial()
	defer nc.Close()
	r := bufio.NewReader(nc)
	if auth {
		c := &diffConn{nc, r}
		require.Equal(t, "+OK\r\n", c.do(t, []string{"auth", adminPassword}))
	}
	steps(func(pipe [][]string, now int) []string {
		require.False(t, unpaused, "only the last step may hold commands")
		var b strings.Builder
		for _, args := range pipe {
			fmt.Fprintf(&b, "*%d\r\n", len(args))
			for _, a := range args {
				fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
			}
		}
		_, err := nc.Write([]byte(b.String()))
		require.NoError(t, err)
		var replies []string
		read := func(why string) {
			// The pause lasts a minute: a reply it holds misses this.
			require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
			s, err := readReply(r)
			require.NoError(t, err, "reply %d of %q (%s), after %q", len(replies)+1, pipe, why, replies)
			replies = append(replies, diffNormalize(s))
		}
		for range now {
			read("due during the pause")
		}
		if len(pipe) > now {
			// The rest is held: the client waits for the pause, counted as
			// blocked, as Redis counts it.
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(admin.do(t, []string{"info", "clients"}), "blocked_clients:1\r\n") {
				require.True(t, time.Now().Before(deadline), "the client's held command never showed in blocked_clients")
				time.Sleep(2 * time.Millisecond)
			}
			require.Equal(t, "+OK\r\n", admin.do(t, []string{"client", "unpause"}))
			unpaused = true
			for range len(pipe) - now {
				read("after the pause")
			}
		}
		return replies
	})
}
