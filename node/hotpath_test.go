package node

import (
	"strings"
	"testing"
	"time"

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
			c := writerClient(n)
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

// A pipeline's commands reach the metrics when it ends, before its replies
// are sent: a client that has its replies sees them counted, each in the
// histogram and in calls and errors.
func TestPipelineMetrics(t *testing.T) {
	n := startNode(t, nil)
	// On the loop: reads only.
	exchange(t, n, strings.Repeat("GET k\r\n", 16), strings.Repeat("$-1\r\n", 16))
	got := gatherCommandMetrics(t, n)
	require.Equal(t, 16.0, got["logkv_commands_total get"])
	require.Equal(t, 16.0, got["histogram get"])
	// Writes, one failing, and what follows them.
	setExpiry := strings.Repeat("SET k v\r\n", 3) + "SET k v EX 0\r\n"
	want := strings.Repeat("+OK\r\n", 3) + "-ERR invalid expire time in 'set' command\r\n"
	exchange(t, n, "GET k\r\n"+setExpiry+"GET k\r\n", "$-1\r\n"+want+"$1\r\nv\r\n")
	got = gatherCommandMetrics(t, n)
	require.Equal(t, 18.0, got["logkv_commands_total get"])
	require.Equal(t, 18.0, got["histogram get"])
	require.Equal(t, 0.0, got["logkv_command_errors_total get"])
	require.Equal(t, 4.0, got["logkv_commands_total set"])
	require.Equal(t, 4.0, got["histogram set"])
	require.Equal(t, 1.0, got["logkv_command_errors_total set"])
}

// gatherCommandMetrics returns the per-command metrics by "name cmd", and
// each histogram's count by "histogram cmd".
func gatherCommandMetrics(t *testing.T, n *Node) map[string]float64 {
	families, err := n.metrics.reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			cmd := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "cmd" {
					cmd = l.GetValue()
				}
			}
			switch f.GetName() {
			case "logkv_commands_total", "logkv_command_errors_total":
				got[f.GetName()+" "+cmd] = m.GetCounter().GetValue()
			case "logkv_command_duration_seconds":
				h := m.GetHistogram()
				got["histogram "+cmd] = float64(h.GetSampleCount())
				b := h.GetBucket()
				require.Len(t, b, len(latencyBounds))
				require.LessOrEqual(t, b[len(b)-1].GetCumulativeCount(), h.GetSampleCount())
				if h.GetSampleCount() > 0 {
					require.Positive(t, h.GetSampleSum(), cmd)
				}
			}
		}
	}
	return got
}

func TestLatencyBucket(t *testing.T) {
	require.Equal(t, 0, latencyBucket(0))
	require.Equal(t, 0, latencyBucket(5*time.Microsecond))
	require.Equal(t, 1, latencyBucket(5*time.Microsecond+1))
	require.Equal(t, 1, latencyBucket(20*time.Microsecond))
	require.Equal(t, 9, latencyBucket(latencyBounds[9]))
	require.Equal(t, 10, latencyBucket(latencyBounds[9]+1))
	require.Equal(t, 10, latencyBucket(time.Hour))
}

// MGET allocates per key only the engine's copy of each value: no engine
// key, no entry. What it allocates once per command (the tx, the snapshot)
// is bounded by a constant.
func TestMGetAllocationsPerKey(t *testing.T) {
	n := startNode(t, nil)
	// AllocsPerRun counts every goroutine's allocations: the background
	// worker's rounds made it 1.01 a key once in go test -race -count=5.
	n.stopBackground()
	rdb := dial(t, n, nil)
	require.NoError(t, rdb.Set(t.Context(), "a", "xyz", 0).Err())
	c := writerClient(n)
	mget := lookup([]byte("MGET"))
	engineKey := appendDataKey(nil, 0, 0, []byte("a"))
	engineAllocs := testing.AllocsPerRun(100, func() { n.eng().Get(engineKey) })
	allocs := func(keys int) float64 {
		args := [][]byte{[]byte("MGET")}
		for range keys {
			args = append(args, []byte("a"))
		}
		n.run(c, mget, args) // warm
		return testing.AllocsPerRun(50, func() {
			c.conn.out = c.conn.out[:0]
			n.run(c, mget, args)
		})
	}
	one, hundred := allocs(1), allocs(101)
	perKey := (hundred - one) / 100
	require.LessOrEqual(t, perKey, engineAllocs, "MGET allocates %v a key beyond the engine's %v", perKey-engineAllocs, engineAllocs)
}
