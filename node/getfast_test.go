package node

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// resp encodes a request as a client library sends it: a RESP array of
// bulk strings.
func resp(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// pipelineKeys finds the keys of the GETs and MGETs at the head of a
// pipeline, in any case, and builds each engine key for the client's
// database and the generation given; it stops at any other request, an
// incomplete or malformed one, an MGET of more than maxPrefetchKeys keys
// (not walked), and at maxPrefetchKeys keys.
func TestPipelineKeys(t *testing.T) {
	many := strings.Repeat(resp("GET", "k"), maxPrefetchKeys+5)
	mget := []string{"MGET"}
	var manyKeys []string
	for i := range maxPrefetchKeys + 5 {
		mget = append(mget, fmt.Sprint("m", i))
		manyKeys = append(manyKeys, fmt.Sprint("m", i))
	}
	for _, c := range []struct {
		name string
		in   string
		want []string
	}{
		{"gets", resp("GET", "k1") + resp("get", "k2") + resp("gEt", "k3"), []string{"k1", "k2", "k3"}},
		{"mget", resp("MGET", "a", "b", "c") + resp("GET", "d") + resp("mget", "e"), []string{"a", "b", "c", "d", "e"}},
		{"stops at another command", resp("GET", "k1") + resp("SET", "k2", "v") + resp("GET", "k3"), []string{"k1"}},
		{"stops at SELECT", resp("GET", "k1") + resp("SELECT", "1") + resp("GET", "k3"), []string{"k1"}},
		{"inline", "GET k1\r\nGET k2\r\n", nil},
		{"incomplete", resp("GET", "k1") + "*2\r\n$3\r\nGET\r\n$2\r\nk", []string{"k1"}},
		{"incomplete header", resp("GET", "k1") + "*2\r\n$3\r\nGET\r\n$2", []string{"k1"}},
		{"GET arity", resp("GET", "k1", "k2") + resp("GET", "k3"), nil},
		{"GET alone", resp("GET") + resp("GET", "k3"), nil},
		{"MGET alone", resp("MGET") + resp("GET", "k3"), nil},
		{"GETSET", resp("GETSET", "k1", "v"), nil},
		{"GETX", "*2\r\n$4\r\nGETX\r\n$2\r\nk1\r\n", nil},
		{"bad terminator", "*2\r\n$3\r\nGET\r\n$2\r\nk1XX" + resp("GET", "k2"), nil},
		{"bad length", "*2\r\n$3\r\nGET\r\n$x\r\nk1\r\n", nil},
		{"empty key", resp("GET", "") + resp("GET", "k\x00\r\n"), []string{"", "k\x00\r\n"}},
		{"binary", resp("GET", "\xff\r\n*2") + resp("GET", "b"), []string{"\xff\r\n*2", "b"}},
		{"bound", many, strings.Split(strings.Repeat("k ", maxPrefetchKeys-1)+"k", " ")},
		{"mget at the bound", resp(mget[:maxPrefetchKeys+1]...), manyKeys[:maxPrefetchKeys]},
		{"mget over the bound", resp(mget[:maxPrefetchKeys+2]...) + resp("GET", "k"), nil},
		{"huge mget, incomplete", "*1048577\r\n$4\r\nMGET\r\n" + strings.Repeat(resp("k")[4:], 100), nil},
		{"empty", "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, db := range []int{0, 3} {
				cl := &client{}
				cl.ks.db = db
				got := pipelineKeys(cl, []byte(c.in), 7)
				var want [][]byte
				for _, k := range c.want {
					want = append(want, appendDataKey(nil, db, 7, []byte(k)))
				}
				require.Equal(t, len(want), len(got), "keys of %q", c.in)
				for i := range want {
					require.Equal(t, string(want[i]), string(got[i]), "key %d of %q", i, c.in)
				}
			}
		})
	}
}

// A pipeline of GETs and MGETs, with writes, SELECT, MULTI and a big value
// among them, answers exactly what the commands answer one by one, on every
// engine (each of the three prefetches its keys).
func TestPrefetchedPipelineReplies(t *testing.T) {
	big := strings.Repeat("v", 100<<10)
	for _, engine := range []string{"memory", "bitcask", "lsm"} {
		t.Run(engine, func(t *testing.T) {
			n := startNode(t, func(c *Config) { c.Engine = engine })
			var setup strings.Builder
			for i := range 40 {
				setup.WriteString(resp("SET", fmt.Sprintf("key:%012d", i), fmt.Sprint("value-", i)))
			}
			setup.WriteString(resp("SET", "big", big))
			setup.WriteString(resp("SELECT", "1") + resp("SET", "key:000000000001", "db1"))
			exchange(t, n, setup.String(), strings.Repeat("+OK\r\n", 41)+"+OK\r\n+OK\r\n")
			bulk := func(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }
			var req, want strings.Builder
			add := func(r, w string) { req.WriteString(r); want.WriteString(w) }
			for _, i := range []int{3, 1, 39, 40, 0, 3, 17, 99} {
				k := fmt.Sprintf("key:%012d", i)
				if i < 40 {
					add(resp("GET", k), bulk(fmt.Sprint("value-", i)))
				} else {
					add(resp("get", k), "$-1\r\n")
				}
			}
			add(resp("MGET", "key:000000000005", "nope", "big"), "*3\r\n"+bulk("value-5")+"$-1\r\n"+bulk(big))
			add(resp("GET", "big"), bulk(big))
			add(resp("SET", "key:000000000002", "new"), "+OK\r\n")
			add(resp("GET", "key:000000000002"), bulk("new"))
			add(resp("SELECT", "1"), "+OK\r\n")
			add(resp("GET", "key:000000000001"), bulk("db1"))
			add(resp("GET", "key:000000000003"), "$-1\r\n")
			add(resp("SELECT", "0"), "+OK\r\n")
			add(resp("MULTI"), "+OK\r\n")
			add(resp("GET", "key:000000000004"), "+QUEUED\r\n")
			add(resp("GET", "key:000000000006"), "+QUEUED\r\n")
			add(resp("EXEC"), "*2\r\n"+bulk("value-4")+bulk("value-6"))
			add(resp("GET", "key:000000000007")+resp("GET", "key:000000000008"), bulk("value-7")+bulk("value-8"))
			conn := send(t, n, req.String())
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second))) // a short reply fails, not hangs
			got := make([]byte, want.Len())
			_, err := io.ReadFull(conn, got)
			require.Equal(t, want.String(), string(got), "%v", err)
		})
	}
}

// Prefetching a pipeline's GETs allocates nothing once the client's
// buffers have grown, on the engines that prefetch.
func TestPrefetchAllocatesNothing(t *testing.T) {
	for _, engine := range []string{"memory", "bitcask"} {
		t.Run(engine, func(t *testing.T) {
			n := startNode(t, func(c *Config) { c.Engine, c.Durability = engine, "none" })
			var req strings.Builder
			for i := range 16 {
				k := fmt.Sprintf("key:%012d", i)
				require.NoError(t, dial(t, n, nil).Set(t.Context(), k, "xyz", 0).Err())
				req.WriteString(resp("GET", k))
			}
			n.stopBackground()
			c := writerClient(n)
			buf := []byte(req.String())
			require.Len(t, pipelineKeys(c, buf, 0), 16)
			n.prefetchGets(c, buf) // warm: buffers grow once
			allocs := testing.AllocsPerRun(100, func() { n.prefetchGets(c, buf) })
			require.Zero(t, allocs, "prefetching 16 GETs allocates %v", allocs)
		})
	}
}

// FuzzPipelineKeys: the keys the prefetch hint finds in any input are
// never more than maxPrefetchKeys, and each is, in order, an argument of a
// GET or MGET the request parser reads from the same bytes (unless the
// parser refuses what the hint accepted: then the hint was only wasted).
func FuzzPipelineKeys(f *testing.F) {
	f.Add([]byte(resp("GET", "k1") + resp("MGET", "a", "b") + "*2\r\n$3\r\nGET\r\n$2\r\nk"))
	f.Add([]byte("*3\r\n$4\r\nmget\r\n$0\r\n\r\n$999999999\r\n"))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$01\r\nk\r\n*2\r\n$3\r\nget\r\n$1\r\nk\r\n"))
	f.Add([]byte("*1048577\r\n$4\r\nMGET\r\n$1\r\nk\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		keys := pipelineKeys(&client{}, in, 5)
		if len(keys) > maxPrefetchKeys {
			t.Fatalf("%d keys", len(keys))
		}
		var p reqParser
		off, ki := 0, 0
		for ki < len(keys) {
			args, size, _, err := p.parse(in[off:], nil, requestLimits)
			if err != nil || size == 0 {
				return
			}
			for _, a := range args[1:] {
				if ki == len(keys) {
					break
				}
				if want := appendDataKey(nil, 0, 5, a); !bytes.Equal(want, keys[ki]) {
					t.Fatalf("key %d: hint %q, parser %q", ki, keys[ki], want)
				}
				ki++
			}
			off += size
		}
	})
}

// The hint gate shuts while fewer than one in five of a client's recent
// GETs hit and opens again when more do: prefetchGets then hints a
// pipeline of GETs or does not, and the pipeline's replies are the same
// either way. A third hitting (the command) stays hinted.
func TestPrefetchGate(t *testing.T) {
	var g hintGate
	require.True(t, g.open(), "a new client is hinted")
	g.note(2, 12)
	require.True(t, g.open(), "fewer than hintMinGets GETs seen")
	g.note(0, 16) // 2 hits of 30
	require.False(t, g.open(), "one in 15 hit: shut")
	for range 4 {
		g.note(16, 0)
	}
	require.True(t, g.open(), "the last GETs hit: open")
	for range 64 {
		g.note(1, 15)
	}
	require.False(t, g.open(), "one in 16 hit, after many GETs")
	for range 16 {
		g.note(5, 11)
	}
	for range 64 {
		g.note(5, 11)
		require.True(t, g.open(), "a third hit: %d of %d", g.hits, g.gets)
	}
	require.LessOrEqual(t, g.gets, uint32(hintWindow))
	g.note(1<<40, 1<<20) // a huge pipeline, almost all hits
	require.True(t, g.open())
	require.LessOrEqual(t, g.gets, uint32(hintWindow))
	g.note(0, 1<<40) // counts as hintWindow GETs, not as all the GETs ever seen
	require.True(t, g.open(), "%d hits of %d", g.hits, g.gets)
	g.note(0, 1<<40)
	g.note(0, 1<<40)
	require.False(t, g.open(), "%d hits of %d", g.hits, g.gets)
	g.note(-1, 5) // nonsense: ignored
	require.LessOrEqual(t, g.gets, uint32(hintWindow))

	for _, engine := range []string{"memory", "bitcask", "lsm"} {
		t.Run(engine, func(t *testing.T) {
			n := startNode(t, func(c *Config) { c.Engine, c.Durability = engine, "none" })
			c := writerClient(n)
			for i := range 32 {
				n.run(c, lookup([]byte("SET")), [][]byte{[]byte("SET"), benchKey(i), fmt.Appendf(nil, "v%02d", i)})
			}
			n.submitRun(c)
			c.conn.out = c.conn.out[:0]
			// run serves 16 GETs from key first (keys below 32 hit) and
			// reports whether they were hinted.
			run := func(first int) bool {
				t.Helper()
				buf, want := gatePipeline(first)
				hinted := servePipeline(n, c, buf, pipelineGated)
				require.Equal(t, want, string(c.conn.out), "GETs from key %d", first)
				c.conn.out = c.conn.out[:0]
				return hinted
			}
			// Each decision is on the GETs before the pipeline.
			require.True(t, run(0), "a new client")
			require.True(t, run(100), "16 hits of 16")
			require.True(t, run(200), "16 hits of 32")
			require.True(t, run(300), "16 hits of 48")
			require.True(t, run(400), "16 hits of 64")
			require.True(t, run(500), "16 hits of 80: one in five")
			require.False(t, run(600), "16 hits of 96")
			require.False(t, run(24), "16 hits of 112")
			require.False(t, run(16), "24 hits of 128")
			require.True(t, run(700), "40 hits of 144")
			for range 10 {
				require.True(t, run(0), "a third hit") // then two pipelines of misses
				require.True(t, run(1000), "a third hit")
				require.True(t, run(2000), "a third hit")
			}
			for range 20 {
				run(1000) // misses only
			}
			require.False(t, run(0), "after misses")
			for range 20 {
				run(16) // hits only
			}
			require.True(t, run(300), "after hits")
		})
	}
}

// gatePipeline is 16 GETs from benchKey(first) and their replies, where
// the first 32 keys hold "v00".."v31" and no other is set.
func gatePipeline(first int) (buf []byte, want string) {
	var w strings.Builder
	for i := first; i < first+16; i++ {
		buf = append(buf, resp("GET", string(benchKey(i)))...)
		if i < 32 {
			fmt.Fprintf(&w, "$3\r\nv%02d\r\n", i)
		} else {
			w.WriteString("$-1\r\n")
		}
	}
	return buf, w.String()
}

// The event loop notes each pipeline's GETs in the client's gate: over a
// connection, pipelines of GETs that miss reach the engine's Prefetch no
// more once the gate has shut, and do again once GETs hit, with the
// replies the same either way.
func TestPrefetchGateServe(t *testing.T) {
	n := newNode(t, func(c *Config) { c.Durability = "none" })
	n.stopBackground() // it reads n.backend: stop it around the swap
	spy := &prefetchSpy{backend: n.backend}
	n.backend = spy
	n.startBackground()
	serve(t, n)
	var set strings.Builder
	for i := range 32 {
		set.WriteString(resp("SET", string(benchKey(i)), fmt.Sprintf("v%02d", i)))
	}
	conn := send(t, n, set.String())
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	got := make([]byte, 32*len("+OK\r\n"))
	_, err := io.ReadFull(conn, got)
	require.NoError(t, err)
	// pipelines sends each of firsts' 16 GETs in one write, reads its
	// replies, and returns how many Prefetch calls they made.
	pipelines := func(firsts ...int) int64 {
		t.Helper()
		before := spy.prefetches.Load()
		for _, first := range firsts {
			buf, want := gatePipeline(first)
			_, err := conn.Write(buf)
			require.NoError(t, err)
			got := make([]byte, len(want))
			_, err = io.ReadFull(conn, got)
			require.NoError(t, err)
			require.Equal(t, want, string(got), "GETs from key %d", first)
		}
		return spy.prefetches.Load() - before
	}
	require.NotZero(t, pipelines(0, 16, 0, 16), "hits")
	for range 16 {
		pipelines(100, 200, 300)
	}
	require.Zero(t, pipelines(100, 200, 300, 400, 500), "after misses")
	pipelines(0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16)
	require.NotZero(t, pipelines(0, 16, 0, 16), "after hits again")
}

// prefetchSpy is a backend whose engine counts its Prefetch calls.
type prefetchSpy struct {
	backend
	prefetches atomic.Int64
}

func (s *prefetchSpy) Engine() logkv.Engine { return spyEngine{s.backend.Engine(), s} }

// spyEngine is an engine (memory: a Prefetcher) that counts Prefetch.
type spyEngine struct {
	logkv.Engine
	s *prefetchSpy
}

func (e spyEngine) Prefetch(keys [][]byte) {
	e.s.prefetches.Add(1)
	logkv.Prefetch(e.Engine, keys)
}
