package node

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/redcon"
)

func newGuard() *respGuard { return &respGuard{maxArgs: 8, maxBulk: 100} }

// Legitimate traffic, split anywhere, passes the guard.
func TestRESPGuardPassesValidStreams(t *testing.T) {
	var w redcon.Writer
	w.WriteArray(3)
	w.WriteBulkString("SET")
	w.WriteBulkString("key")
	w.WriteBulkString(strings.Repeat("v", 100))
	w.WriteArray(1)
	w.WriteBulkString("PING")
	w.WriteArray(2)
	w.WriteBulkString("GET")
	w.WriteBulkString("") // empty bulk
	stream := string(w.Buffer()) + "PING\r\nECHO hi\r\n" + "*0\r\n*-1\r\n"
	for cut := 0; cut <= len(stream); cut++ {
		for cut2 := cut; cut2 <= len(stream); cut2 += 7 {
			g := newGuard()
			require.NoError(t, g.scan([]byte(stream[:cut])))
			require.NoError(t, g.scan([]byte(stream[cut:cut2])))
			require.NoError(t, g.scan([]byte(stream[cut2:])))
			require.Equal(t, guardStart, g.state, "the guard ends in step with the stream")
		}
	}
}

func TestRESPGuardRefuses(t *testing.T) {
	cases := map[string]error{
		"*1\r\n$9223372036854775807\r\nab\r\n": errBulkLength,      // redcon panics on it
		"*9223372036854775807\r\n":             errMultiBulkLength, // redcon loops on it
		"*99999999999999999999999\r\n":         errMultiBulkLength,
		"*9\r\n":                               errMultiBulkLength, // over maxArgs
		"*1\r\n$101\r\n":                       errBulkLength,      // over maxBulk
		"*1\r\nX3\r\n":                         errBulkLength,
		"*1x\r\n":                              errMultiBulkLength,
	}
	for in, want := range cases {
		g := newGuard()
		var err error
		for i := 0; i < len(in) && err == nil; i++ { // byte by byte: the worst split
			err = g.scan([]byte{in[i]})
		}
		require.ErrorIs(t, err, want, "%q", in)
	}
}

// The inputs that crash or stall redcon are refused by a running node with
// Redis' protocol error, and the node goes on serving.
func TestHugeLengthsDoNotKillTheNode(t *testing.T) {
	n := startNode(t, nil)
	for _, in := range []string{"*1\r\n$9223372036854775807\r\nab\r\n", "*9223372036854775807\r\n", "*2\r\n$3\r\nGET\r\n$99999999999\r\n"} {
		conn, err := net.Dial("tcp", n.Addr())
		require.NoError(t, err)
		fmt.Fprint(conn, in)
		line, err := bufio.NewReader(conn).ReadString('\n')
		require.NoError(t, err, "%q", in)
		require.Contains(t, line, "ERR Protocol error: invalid", "%q", in)
		conn.Close()
	}
	require.Equal(t, "PONG", dial(t, n, nil).Ping(context.Background()).Val())
}

func FuzzRESPGuard(f *testing.F) {
	f.Add([]byte("*1\r\n$4\r\nPING\r\n"), uint8(3))
	f.Add([]byte("*1\r\n$9223372036854775807\r\nab\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		g := &respGuard{maxArgs: 1 << 20, maxBulk: 1 << 20}
		cut := int(split) % (len(data) + 1)
		if g.scan(data[:cut]) != nil {
			return
		}
		if g.scan(data[cut:]) != nil {
			return
		}
		// Whatever the guard lets through never makes redcon panic or loop
		// for long: its counts and lengths are within the limits.
		rd := redcon.NewReader(strings.NewReader(string(data)))
		for range 1000 {
			if _, err := rd.ReadCommand(); err != nil {
				break
			}
		}
	})
}
