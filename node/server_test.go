package node

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// send sends req to n on a new connection, closed when the test ends.
func send(t *testing.T, n *Node, req string) net.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", n.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	_, err = io.WriteString(raw, req)
	require.NoError(t, err)
	return raw
}

// exchange sends req on a new connection and reads len(want) bytes back.
func exchange(t *testing.T, n *Node, req, want string) {
	t.Helper()
	got := make([]byte, len(want))
	_, err := io.ReadFull(send(t, n, req), got)
	require.NoError(t, err, "got %q so far", got)
	require.Equal(t, want, string(got))
}

// sendAll sends req on a new connection and returns all the node sends back
// before it closes the connection.
func sendAll(t *testing.T, n *Node, req string) string {
	t.Helper()
	out, err := io.ReadAll(send(t, n, req))
	require.NoError(t, err)
	return string(out)
}

// A pipeline's replies come back in order, with its writes synced by the
// loop's group sync (on the loop with appendfsync everysec, on a goroutine
// with always), and with a slow command (WAIT) in the middle running off
// the loop with the rest of the pipeline.
func TestPipelineOnAndOffTheLoop(t *testing.T) {
	for _, mode := range []string{"always", "everysec"} {
		t.Run(mode, func(t *testing.T) {
			n := startNode(t, func(c *Config) { c.AppendFsync = mode })
			require.Equal(t, mode == "always", n.backend.SyncWaits())
			pipelineInOrder(t, n)
		})
	}
}

// pipelineInOrder sends a pipeline that reads, writes blindly, reads its
// writes, reads and writes (INCR), fails, waits and writes again, and checks
// every reply in order. It writes the keys po-a, po-b and po-n.
func pipelineInOrder(t *testing.T, n *Node) {
	t.Helper()
	exchange(t, n,
		"GET po-a\r\nSET po-a 1\r\nGET po-a\r\nINCR po-n\r\nNOPE\r\nWAIT 0 0\r\nSET po-b 2\r\nMGET po-a po-b\r\nPING\r\n",
		"$-1\r\n+OK\r\n$1\r\n1\r\n:1\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n:0\r\n+OK\r\n*2\r\n$1\r\n1\r\n$1\r\n2\r\n+PONG\r\n")
	// The next pipeline on a fresh connection sees every write.
	exchange(t, n, "MGET po-a po-b po-n\r\n", "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n1\r\n")
}

// failSync fails every Sync while fail is set.
type failSync struct {
	backend
	fail atomic.Bool
}

func (f *failSync) Sync() error {
	if f.fail.Load() {
		return errors.New("injected sync failure")
	}
	return f.backend.Sync()
}

// When the sync after a pipeline's writes fails, the connection closes
// without a reply: none may acknowledge a write that is not durable. Reads
// alone still answer.
func TestFailedSyncSendsNoReplies(t *testing.T) {
	for _, mode := range []string{"always", "everysec"} {
		t.Run(mode, func(t *testing.T) {
			n := newNode(t, func(c *Config) { c.AppendFsync = mode })
			fs := &failSync{backend: n.backend}
			fs.fail.Store(true)
			// New started the background worker, which reads n.backend:
			// stop it around the swap.
			n.stopBackground()
			n.backend = fs
			n.startBackground()
			serve(t, n)
			t.Cleanup(func() { fs.fail.Store(false) }) // Shutdown's own sync succeeds

			exchange(t, n, "PING\r\nGET k\r\n", "+PONG\r\n$-1\r\n")
			out := sendAll(t, n, "PING\r\nSET k v\r\nGET k\r\n")
			require.Empty(t, out, "no reply of a pipeline whose sync failed")
		})
	}
}

// A slow command runs off the event loop: while one client waits in WAIT,
// another client on the same (only) loop is served.
func TestSlowCommandLeavesTheLoopFree(t *testing.T) {
	n := newNode(t, func(c *Config) { c.EventLoops = 1 })
	inWait, release := make(chan struct{}), make(chan struct{})
	n.testHookCommand = func(args [][]byte) {
		if strings.EqualFold(string(args[0]), "wait") {
			close(inWait)
			<-release
		}
	}
	serve(t, n)

	slow, err := net.Dial("tcp", n.Addr())
	require.NoError(t, err)
	defer slow.Close()
	fmt.Fprint(slow, "WAIT 0 0\r\nPING\r\n")
	<-inWait

	pong := make(chan string, 1)
	go func() {
		fast, err := net.Dial("tcp", n.Addr())
		if err != nil {
			pong <- err.Error()
			return
		}
		defer fast.Close()
		fmt.Fprint(fast, "PING\r\n")
		line, _ := bufio.NewReader(fast).ReadString('\n')
		pong <- line
	}()
	select {
	case line := <-pong:
		require.Equal(t, "+PONG\r\n", line)
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("a client waiting in WAIT held up the event loop")
	}
	close(release)
	got := make([]byte, len(":0\r\n+PONG\r\n"))
	_, err = io.ReadFull(slow, got)
	require.NoError(t, err)
	require.Equal(t, ":0\r\n+PONG\r\n", string(got))
}

// event_loops: a count is taken as given, 0 means half the cores, and more
// than maxEventLoops is refused.
func TestEventLoopsSetting(t *testing.T) {
	n := startNode(t, func(c *Config) { c.EventLoops = 3 })
	require.Equal(t, 3, n.eventLoops())
	require.Equal(t, max(1, runtime.GOMAXPROCS(0)/2), startNode(t, nil).eventLoops(), "0: half the cores")
	cfg := DefaultConfig()
	cfg.EventLoops = maxEventLoops + 1
	require.ErrorContains(t, cfg.Validate(), "event_loops 257 must be 0 (half the cores) to 256")
}

// waitsBackend answers SyncWaits, SubmitWaits and Visible as told.
type waitsBackend struct {
	backend
	syncWaits, applyWaits, visible bool
}

func (w waitsBackend) SyncWaits() bool   { return w.syncWaits }
func (w waitsBackend) SubmitWaits() bool { return w.applyWaits }
func (w waitsBackend) Visible() bool     { return w.visible }

// What runs off the loop, by what the backend may wait for.
func TestMayWait(t *testing.T) {
	n := &Node{}
	args := func(s string) [][]byte {
		var a [][]byte
		for _, f := range strings.Fields(s) {
			a = append(a, []byte(f))
		}
		return a
	}
	mayWait := func(b waitsBackend, dirty bool, req string) bool {
		n.backend = b
		a := args(req)
		return n.mayWait(&client{dirty: dirty}, lookup(a[0]), a)
	}
	everysec := waitsBackend{}
	standaloneAlways := waitsBackend{syncWaits: true, visible: true}
	replicatedAlways := waitsBackend{syncWaits: true}
	syncRepl := waitsBackend{syncWaits: true, applyWaits: true, visible: true}
	for _, b := range []waitsBackend{everysec, standaloneAlways, replicatedAlways, syncRepl} {
		require.True(t, mayWait(b, false, "WAIT 1 0"))
		require.True(t, mayWait(b, false, "REPLICAOF no one"))
		require.False(t, mayWait(b, true, "NOPE"), "unknown commands fail at once")
		require.False(t, mayWait(b, false, "GET k"))
	}
	require.False(t, mayWait(everysec, true, "INCR k"))
	require.False(t, mayWait(everysec, true, "GET k"))
	require.False(t, mayWait(standaloneAlways, true, "INCR k"), "nothing to wait for before a read")
	require.False(t, mayWait(standaloneAlways, true, "GET k"))
	require.False(t, mayWait(replicatedAlways, true, "SET k v"), "blind writes queue")
	require.False(t, mayWait(replicatedAlways, false, "MSET a 1 b 2"))
	require.True(t, mayWait(replicatedAlways, false, "SET k v NX"), "reads first: its barrier waits for the fsync")
	require.True(t, mayWait(replicatedAlways, false, "INCR k"))
	require.True(t, mayWait(replicatedAlways, true, "GET k"), "reading this pipeline's writes waits for them")
	require.False(t, mayWait(replicatedAlways, false, "GET k"))
	queued := &client{}
	queued.pend.owed = append(queued.pend.owed, owedReply{})
	n.backend = replicatedAlways
	require.True(t, n.mayWait(queued, lookup([]byte("GET")), args("GET k")),
		"a read after blind writes still queued in the run (SET k v; GET k in one read) syncs them: off the loop")
	require.False(t, n.mayWait(queued, lookup([]byte("SET")), args("SET k v")), "another blind write joins the run")
	require.True(t, mayWait(syncRepl, false, "SET k v"), "Submit waits for the quorum")
}
