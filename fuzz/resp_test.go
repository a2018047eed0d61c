package fuzz

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/redcon"
)

// FuzzRESP feeds arbitrary bytes through the RESP reader the node serves
// with (redcon's), as a client could send them: it must not panic, must
// terminate, and must never return more argument bytes than it was given.
func FuzzRESP(f *testing.F) {
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n"))
	f.Add([]byte("PING\r\nSET a b\r\n"))
	f.Add([]byte("*1\r\n$-1\r\n"))
	f.Add([]byte("*2147483647\r\n$2147483647\r\n"))
	f.Add([]byte("*-5\r\n"))
	f.Add([]byte("*1\r\n$5\r\nab\r\n"))
	f.Add([]byte("set \"a b\" 'c'\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := redcon.NewReader(bytes.NewReader(data))
		total := 0
		// Every successful ReadCommand consumes at least one byte, so more
		// than len(data)+1 rounds means the reader is looping.
		for range len(data) + 2 {
			cmd, err := rd.ReadCommand()
			if err != nil {
				return
			}
			require.NotEmpty(t, cmd.Raw)
			for _, a := range cmd.Args {
				total += len(a)
			}
			require.LessOrEqual(t, total, len(data), "arguments longer than the input")
		}
		t.Fatalf("ReadCommand returned more than %d commands from %d bytes", len(data)+1, len(data))
	})

}
