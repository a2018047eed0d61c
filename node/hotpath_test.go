package node

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A GET of a present key and of an absent one allocates nothing on the
// node's side: at most what the engine's Get allocates itself (its copy of
// the value, which engine.go's contract gives the caller).
func TestGetAllocatesOnlyTheEnginesCopy(t *testing.T) {
	for _, engine := range []string{"memory", "bitcask", "lsm"} {
		t.Run(engine, func(t *testing.T) {
			n := startNode(t, func(c *Config) { c.Engine = engine })
			rdb := dial(t, n, nil)
			require.NoError(t, rdb.Set(t.Context(), "key:000000000001", "xyz", 0).Err())
			c := &client{authed: true, access: accessWrite}
			c.conn = &replyConn{n: n, c: c}
			c.conn.reset(0)
			get := lookup([]byte("GET"))
			for _, key := range []string{"key:000000000001", "key:000000000002"} {
				args := [][]byte{[]byte("GET"), []byte(key)}
				n.run(c, get, args) // warm: buffers grow once
				engineKey := appendDataKey(nil, 0, 0, []byte(key))
				engineAllocs := testing.AllocsPerRun(100, func() { n.eng().Get(engineKey) })
				allocs := testing.AllocsPerRun(100, func() {
					c.conn.out = c.conn.out[:0]
					n.run(c, get, args)
				})
				require.LessOrEqual(t, allocs, engineAllocs, "GET %s: the node allocates %v a GET beyond the engine's %v", key, allocs-engineAllocs, engineAllocs)
			}
			require.Equal(t, "$-1\r\n", string(c.conn.out))
		})
	}
}
