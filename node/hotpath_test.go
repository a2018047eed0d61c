package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// A GET of a present key and of an absent one allocates nothing, on every
// engine (each is a logkv.ValueAppender: getFast reads the value into the
// client's buffer), on a standalone node (durability none) and on a node
// behind its commit log, leader and follower. An engine without AppendGet
// would be allowed its Get's copy. A follower reads the database's
// generation from the engine only after a batch is applied (followerGen):
// none is here, so its GET allocates nothing either.
func TestGetAllocatesNothing(t *testing.T) {
	tlsDir := filepath.Join(t.TempDir(), "tls")
	var out bytes.Buffer
	require.Equal(t, 0, Main([]string{"certs", "-dir", tlsDir}, &out, &out), out.String())
	for _, engine := range []string{"memory", "bitcask", "lsm"} {
		t.Run(engine, func(t *testing.T) {
			standalone := startNode(t, func(c *Config) { c.Engine, c.Durability = engine, "none" })
			leader := replNode(t, tlsDir, engine, "")
			follower := replNode(t, tlsDir, engine, leader.rep(t).Addr())
			for _, n := range []*Node{standalone, leader} {
				require.NoError(t, dial(t, n, nil).Set(t.Context(), "key:000000000001", "xyz", 0).Err())
			}
			caughtUp(t, leader, follower)
			for name, n := range map[string]*Node{"standalone": standalone, "leader": leader, "follower": follower} {
				n.stopBackground()
				c := writerClient(n)
				get := lookup([]byte("GET"))
				engineKey := appendDataKey(nil, 0, 0, []byte("key:000000000001"))
				want := 0.0
				if _, ok := n.eng().(logkv.ValueAppender); !ok {
					want = testing.AllocsPerRun(100, func() { _, _ = n.eng().Get(engineKey) })
				}
				for _, key := range []string{"key:000000000001", "key:000000000002"} {
					args := [][]byte{[]byte("GET"), []byte(key)}
					n.run(c, get, args) // warm: buffers grow once
					allocs := testing.AllocsPerRun(100, func() {
						c.conn.out = c.conn.out[:0]
						n.run(c, get, args)
					})
					require.LessOrEqual(t, allocs, want, "%s: GET %s allocates %v a GET", name, key, allocs)
				}
				require.Equal(t, "$-1\r\n", string(c.conn.out), name)
			}
		})
	}
}

// The value getFast reads into the client's buffer is copied into the
// reply before the next GET reuses the buffer: a pipeline of GETs of
// values of different lengths, a big one among them, answers each with its
// own value, and the client keeps no buffer over maxKeptValueBuf.
func TestGetValueBufferReused(t *testing.T) {
	n := startNode(t, nil)
	c := writerClient(n)
	big := strings.Repeat("b", maxKeptValueBuf+1)
	vals := []string{"long-value-0123456789", "s", big, "", "mid-value"}
	for i, v := range vals {
		n.run(c, lookup([]byte("SET")), [][]byte{[]byte("SET"), fmt.Appendf(nil, "k%d", i), []byte(v)})
	}
	n.submitRun(c)
	c.conn.out = c.conn.out[:0]
	var want strings.Builder
	for _, i := range []int{0, 1, 0, 2, 3, 4, 0, 9, 1} {
		n.run(c, lookup([]byte("GET")), [][]byte{[]byte("GET"), fmt.Appendf(nil, "k%d", i)})
		if i == 2 {
			require.Nil(t, c.vbuf, "a value over maxKeptValueBuf leaves no buffer behind")
		} else {
			require.LessOrEqual(t, cap(c.vbuf), maxKeptValueBuf)
		}
		if i >= len(vals) {
			want.WriteString("$-1\r\n")
			continue
		}
		fmt.Fprintf(&want, "$%d\r\n%s\r\n", len(vals[i]), vals[i])
	}
	require.Equal(t, want.String(), string(c.conn.out))
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

// BenchmarkPipelinedGetSet runs redis-benchmark's shape on a memory node
// without a socket: pipelines of 16 GETs (or SETs) of 16-byte keys over
// 1,000 keys, each ended as the loop ends one (its writes submitted, its
// metrics published, its replies dropped). For instruction counts of the
// node layer per command (cachegrind, -benchtime Nx at two N).
func BenchmarkPipelinedGetSet(b *testing.B) {
	for _, cmd := range []string{"SET", "GET"} {
		b.Run(cmd, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Engine, cfg.DataDir, cfg.Listen, cfg.Admin = "memory", b.TempDir(), "127.0.0.1:0", "off"
			cfg.Durability, cfg.Replication.Listen = "none", "off"
			n, err := New(cfg, slog.New(slog.DiscardHandler))
			require.NoError(b, err)
			b.Cleanup(func() { _ = n.Shutdown(context.Background()) })
			c := writerClient(n)
			keys := make([][]byte, 1000)
			for i := range keys {
				keys[i] = fmt.Appendf(nil, "key:%012d", i)
				n.run(c, lookup([]byte("SET")), [][]byte{[]byte("SET"), keys[i], []byte("xxx")})
			}
			n.submitRun(c)
			cm := lookup([]byte(cmd))
			args := [][]byte{[]byte(cmd), nil, []byte("xxx")}
			if cmd == "GET" {
				args = args[:2]
			}
			b.ResetTimer()
			for i := range b.N {
				args[1] = keys[i*7919%len(keys)]
				n.run(c, cm, args)
				if i%16 == 15 {
					n.submitRun(c)
					n.publishTally(c)
					c.clock = 0
					c.conn.out = c.conn.out[:0]
				}
			}
		})
	}
}
