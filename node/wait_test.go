package node

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Finding 2 of issue 16: WAIT n 0 left a goroutine polling every 2 ms
// behind each client that left. A WAIT that no follower can satisfy must
// end when its client goes, leaving nothing running.
func TestWaitEndsWithItsClient(t *testing.T) {
	n := startNode(t, nil)
	base := runtime.NumGoroutine()
	const clients = 50
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.Dial("tcp", n.Addr())
		require.NoError(t, err)
		conns[i] = c
		fmt.Fprint(c, "WAIT 1 0\r\n")
	}
	// The WAITs are in: each holds at least its goroutine.
	waitFor(t, func() bool { return runtime.NumGoroutine() >= base+clients }, "the WAITs to start")
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= base+5 }, "the WAITs to end with their clients")

	// A WAIT with a timeout still answers (no follower holds anything).
	c, err := net.Dial("tcp", n.Addr())
	require.NoError(t, err)
	defer c.Close()
	fmt.Fprint(c, "WAIT 1 50\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, ":0\r\n", line)
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (goroutines: %d)", what, runtime.NumGoroutine())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
