package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// What the keyspace's encoding costs per key, in process (no network, no
// fsync: the memory engine with durability none): GET and SET through the
// command path, and the engine's memory per key. docs/keyspace.md has the
// figures before and after the slot was added to every key (format 2).
//
//	go test -run X -bench Keyspace -benchtime 200000x -count 3 ./node/
//
// (MemPerKey loads once whatever -benchtime says.)

// benchKeys is how many distinct keys the benchmarks load and address.
const benchKeys = 100_000

func benchNode(b *testing.B) (*Node, *client) {
	b.Helper()
	n := newBenchNode(b, "memory", func(cfg *Config) { cfg.Durability = "none" })
	b.Cleanup(func() { n.Shutdown(context.Background()) })
	c := writerClient(n)
	runPiped(n, c, benchKeys, func(i int) [][]byte {
		return [][]byte{[]byte("SET"), benchKey(i), []byte("xyz")}
	})
	return n, c
}

// newBenchNode starts a node on engine in a temporary directory, with no
// admin or replication listener, and the rest of its configuration as set
// leaves it. The caller shuts it down.
func newBenchNode(b *testing.B, engine string, set func(*Config)) *Node {
	b.Helper()
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir, cfg.Listen, cfg.Admin = engine, b.TempDir(), "127.0.0.1:0", "off"
	cfg.Replication.Listen = "off"
	set(&cfg)
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// benchKey is redis-benchmark's key shape: key:%012d, 16 bytes.
func benchKey(i int) []byte { return fmt.Appendf(nil, "key:%012d", i) }

func BenchmarkKeyspaceGet(b *testing.B) {
	n, c := benchNode(b)
	get := lookup([]byte("GET"))
	args := [][]byte{[]byte("GET"), nil}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		args[1] = benchKey(i * 7919 % benchKeys)
		n.run(c, get, args)
		c.conn.out = c.conn.out[:0]
	}
}

func BenchmarkKeyspaceSet(b *testing.B) {
	n, c := benchNode(b)
	set := lookup([]byte("SET"))
	args := [][]byte{[]byte("SET"), nil, []byte("abc")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		args[1] = benchKey(i * 7919 % benchKeys)
		n.run(c, set, args)
		if i%16 == 15 { // a pipeline of 16, as redis-benchmark -P 16
			n.submitRun(c)
			c.conn.out = c.conn.out[:0]
		}
	}
	n.submitRun(c)
}

// BenchmarkKeyspaceMemPerKey reports the memory engine's bytes per key
// after benchKeys SETs of 16-byte keys and 3-byte values.
// It loads once, whatever b.N.
func BenchmarkKeyspaceMemPerKey(b *testing.B) {
	n, _ := benchNode(b)
	b.ReportMetric(float64(n.eng().Metrics().MemBytes)/benchKeys, "B/key")
}

// BenchmarkExpireCatchUp: how fast the active expirer removes keys that are
// all due, in cycles of 5 ms budget as runExpirer runs them (the node's own
// goroutine stopped): 100k keys with PX deadlines spread over a minute, the
// clock then moved past them all. Reports keys removed per second of
// cycle time, and the process's CPU time (user and system, getrusage) per
// key removed: the expirer's own and what its writes cost elsewhere (the
// commit log's writer and fsyncs, the engine's flushes and compactions,
// the collector), which wall time on a loaded machine does not show. The
// replicated backend with appendfsync everysec, as
// cmd/kvbench/expiry-latency runs kvnode, on each engine.
//
// The del sub-benchmarks are the reference: the same keys removed by DEL
// through the command path, in pipelines of 16 (what a client's DELs cost
// the node, the commit log and the engine included), CPU per key.
//
//	go test -run X -bench ExpireCatchUp -benchtime 1x -benchmem ./node/
//
// EXPIRE_CPUPROFILE=prefix writes a CPU profile of each run's expiry part
// alone (not the load) to prefix.engine.N: what the expirer's cycles cost
// the whole process, its commit log's and engine's goroutines included.
func BenchmarkExpireCatchUp(b *testing.B) {
	for _, engine := range []string{"memory", "bitcask", "lsm"} {
		b.Run(engine, func(b *testing.B) {
			for range b.N {
				benchExpireCatchUp(b, engine, false)
			}
		})
		b.Run(engine+"/del", func(b *testing.B) {
			for range b.N {
				benchExpireCatchUp(b, engine, true)
			}
		})
	}
}

// benchExpireCatchUp loads benchKeys keys with deadlines and removes them
// all: by the expirer's cycles, or by DELs.
func benchExpireCatchUp(b *testing.B, engine string, del bool) {
	b.StopTimer()
	n := newBenchNode(b, engine, func(cfg *Config) { cfg.AppendFsync = "everysec" })
	defer n.Shutdown(context.Background())
	n.stopBackground()
	n.setClock(clock0)
	c := writerClient(n)
	runPiped(n, c, benchKeys, func(i int) [][]byte {
		px := fmt.Appendf(nil, "%d", 1000+i*7919%59000)
		return [][]byte{[]byte("SET"), benchKey(i), []byte("xyz"), []byte("PX"), px}
	})
	if err := n.backend.Sync(); err != nil {
		b.Fatal(err)
	}
	if del {
		b.StartTimer()
		cpu0 := cpuTime()
		args := [][]byte{[]byte("DEL"), nil}
		runPiped(n, c, benchKeys, func(i int) [][]byte {
			args[1] = benchKey(i)
			return args
		})
		if err := n.backend.Sync(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu0)/benchKeys, "cpu-ns/key")
		return
	}
	n.setClock(clock0 + 61_000)
	var e expirer
	if f := os.Getenv("EXPIRE_CPUPROFILE"); f != "" {
		stop := profileTo(b, fmt.Sprintf("%s.%s.%d", f, engine, profiles.Add(1)))
		defer stop()
	}
	b.StartTimer()
	start, cpu0 := time.Now(), cpuTime()
	deleted, cycles := 0, 0
	for capped := true; capped; cycles++ {
		d, c, err := n.expireCycle(&e, expireCycleMax/5)
		capped = c
		if err != nil {
			b.Fatal(err)
		}
		deleted += d
	}
	// The deletes reach the commit log's file as the node's would, with
	// the background sync of appendfsync everysec.
	if err := n.backend.Sync(); err != nil {
		b.Fatal(err)
	}
	took, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	if deleted != benchKeys {
		b.Fatalf("removed %d keys of %d", deleted, benchKeys)
	}
	b.ReportMetric(float64(deleted)/took.Seconds(), "keys/s")
	b.ReportMetric(float64(cycles), "cycles")
	b.ReportMetric(float64(cpu)/float64(deleted), "cpu-ns/key")
}

// profiles numbers the CPU profiles of EXPIRE_CPUPROFILE.
var profiles atomic.Int64

// profileTo starts a CPU profile of the process into file, for the
// expiry part of benchExpireCatchUp alone (EXPIRE_CPUPROFILE=prefix: one
// file a run, prefix.engine.N), and returns what stops it.
func profileTo(b *testing.B, file string) func() {
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// runPiped runs the command args(i) gives for i in [0, count) on c, in
// pipelines of 16 as redis-benchmark -P 16 sends them, dropping the
// replies.
func runPiped(n *Node, c *client, count int, args func(i int) [][]byte) {
	for i := range count {
		a := args(i)
		n.run(c, lookup(a[0]), a)
		if i%16 == 15 {
			n.submitRun(c)
			c.conn.out = c.conn.out[:0]
		}
	}
	n.submitRun(c)
	c.conn.out = c.conn.out[:0]
}

// cpuTime is the user and system CPU time the process has used, in
// nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
