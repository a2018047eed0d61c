package node

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The tests here drive the write path's stages through run, without a
// connection, so that a pipeline is exactly the commands given: over TCP,
// where a read ends decides where the loop ends a pipeline, and a test
// cannot choose it.

// testClient is a client that run can serve without a connection.
func testClient(n *Node) *client {
	c := &client{authed: true, access: accessAdmin}
	c.conn = &replyConn{n: n, c: c}
	c.conn.reset(0)
	return c
}

// pipeline runs cmds on c as the loop runs the requests of one read, ends
// the pipeline as endPipeline does (submit the run, sync what it wrote), and
// returns the replies.
func pipeline(n *Node, c *client, cmds ...[]string) string {
	for _, cmd := range cmds {
		args := make([][]byte, len(cmd))
		for i, a := range cmd {
			args[i] = []byte(a)
		}
		n.run(c, n.lookup(args[0]), args)
	}
	n.submitRun(c)
	n.syncDirty(c)
	out := string(c.conn.out)
	c.conn.out = c.conn.out[:0]
	return out
}

// An MSET too large to join a run (it runs on a tx of its own) after a
// queued SET of one of its keys, in one pipeline: the SET is submitted
// before the MSET runs, so the MSET's value wins and the replies keep their
// order. Before, the run was submitted when the MSET wrote its OK, under
// the MSET's key locks, which the run's submit took again: the event loop
// (or the client's goroutine) waited for itself forever.
func TestQueuedSetThenLargeMSet(t *testing.T) {
	n := startNode(t, nil)
	c := testClient(n)
	big := strings.Repeat("b", 600<<10) // two of them pass maxRunBytes
	done := make(chan string, 1)
	go func() {
		done <- pipeline(n, c, []string{"SET", "k", "small"}, []string{"MSET", "m1", big, "m2", big, "k", "after"}, []string{"GET", "k"})
	}()
	select {
	case got := <-done:
		require.Equal(t, "+OK\r\n+OK\r\n$5\r\nafter\r\n", got)
	case <-time.After(time.Minute):
		t.Fatal("the pipeline did not finish in a minute: the run's submit waits for the MSET's key locks")
	}
}

// countSubmits makes n's backend a failingBackend, which counts Submits.
func countSubmits(n *Node) *failingBackend {
	fb := &failingBackend{backend: n.backend}
	n.stopBackground() // it reads n.backend
	n.backend = fb
	n.startBackground()
	return fb
}

// A blind write refused while a run is open (a bad argument) owes its error
// in the run: the replies keep their order, the run stays one batch (one
// Submit), and INFO errorstats counts the errors once each.
func TestRefusalInARun(t *testing.T) {
	n := newNode(t, func(c *Config) { c.Limits.MaxValueSize = 100 })
	fb := countSubmits(n)
	c := testClient(n)
	got := pipeline(n, c,
		[]string{"SET", "a", "1"},
		[]string{"SET", "", "x"},
		[]string{"SET", "b", "2", "EX", "0"},
		[]string{"MSET", "c", "3", "d", strings.Repeat("v", 101)},
		[]string{"SET", "c", "3"},
		[]string{"GET", "a"},
	)
	require.Equal(t, "+OK\r\n"+
		"-ERR empty keys are not allowed\r\n"+
		"-ERR invalid expire time in 'set' command\r\n"+
		"-ERR value too large: 101 bytes, the limit is 100 (limits.max_value_size)\r\n"+
		"+OK\r\n"+
		"$1\r\n1\r\n", got)
	require.Equal(t, int64(1), fb.calls.Load(), "the refusals split the run")
	info := pipeline(n, c, []string{"INFO", "errorstats"})
	require.Contains(t, info, "errorstat_ERR:count=3\r\n")
	require.Equal(t, "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n", pipeline(n, c, []string{"MGET", "a", "b", "c"}))
}

// A run the backend refuses answers each of its writes with the error, in
// its place, around the refusals it owes, with one Submit.
func TestRefusalInAFailedRun(t *testing.T) {
	n := newNode(t, nil)
	fb := countSubmits(n)
	c := testClient(n)
	fb.fail.Store(true)
	got := pipeline(n, c, []string{"SET", "a", "1"}, []string{"SET", "", "x"}, []string{"MSET", "b", "2", "c", "3"})
	fail := "-ERR " + errInjected.Error() + "\r\n"
	require.Equal(t, fail+"-ERR empty keys are not allowed\r\n"+fail, got)
	require.Equal(t, int64(1), fb.calls.Load())
	fb.fail.Store(false)
	require.Equal(t, ":0\r\n", pipeline(n, c, []string{"DBSIZE"}))
}

// Random pipelines of writes that queue, writes refused while a run is
// open, writes that run on a tx and reads give the same replies, byte for
// byte, as the same commands sent one at a time: nothing overtakes a run,
// and a read after a pipeline's writes sees them. The two clients work in
// databases of their own.
func TestPipelineAnswersAsOneByOne(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Limits.MaxValueSize = 100 })
	piped, single := testClient(n), testClient(n)
	require.Equal(t, "+OK\r\n", pipeline(n, single, []string{"SELECT", "1"}))
	rng := rand.New(rand.NewPCG(19, 1))
	keys := []string{"a", "b", "c"}
	key := func() string { return keys[rng.IntN(len(keys))] }
	val := func() string { return fmt.Sprint(rng.IntN(100)) }
	gen := []func() []string{
		func() []string { return []string{"SET", key(), val()} },
		func() []string { return []string{"SET", key(), val(), "EX", "100"} },
		func() []string { return []string{"SET", key(), val(), "PX", "100000"} },
		func() []string { return []string{"MSET", key(), val(), key(), val()} },
		func() []string { return []string{"SET", "", val()} },                           // refused
		func() []string { return []string{"SET", key(), val(), "EX", "0"} },             // refused
		func() []string { return []string{"SET", key(), strings.Repeat("v", 101)} },     // refused
		func() []string { return []string{"MSET", key(), val(), key()} },                // refused, not queueable
		func() []string { return []string{"SET", key(), val(), "NX"} },                  // a tx
		func() []string { return []string{"SET", key(), val(), "GET"} },                 // a tx
		func() []string { return []string{"INCR", key()} },                              // a tx, may fail
		func() []string { return []string{"DEL", key()} },                               // a tx
		func() []string { return []string{"GET", key()} },                               // a read
		func() []string { return []string{"MGET", key(), key()} },                       // a read
		func() []string { return []string{"EXISTS", key()} },                            // a read
		func() []string { return []string{"PING"} },                                     // neither
		func() []string { return []string{"NOSUCH", key()} },                            // unknown
		func() []string { return []string{"SET", key(), val(), "EX", "100", "extra"} },  // syntax
		func() []string { return []string{"MSET", key(), val(), "", val()} },            // refused
		func() []string { return []string{"SET", key(), val(), "PX", "-5"} },            // refused
		func() []string { return []string{"SET", key(), val(), "EX", "notanumber"} },    // refused
		func() []string { return []string{"SET", key(), val(), "EXAT", "99999999999"} }, // a tx
	}
	for round := range 200 {
		cmds := make([][]string, 1+rng.IntN(20))
		for i := range cmds {
			cmds[i] = gen[rng.IntN(len(gen))]()
		}
		var want strings.Builder
		for _, cmd := range cmds {
			want.WriteString(pipeline(n, single, cmd))
		}
		require.Equal(t, want.String(), pipeline(n, piped, cmds...), "round %d: %q", round, cmds)
	}
}
