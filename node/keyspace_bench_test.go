package node

import (
	"context"
	"fmt"
	"log/slog"
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
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir, cfg.Listen, cfg.Admin = "memory", b.TempDir(), "127.0.0.1:0", "off"
	cfg.Durability, cfg.Replication.Listen = "none", "off"
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Shutdown(context.Background()) })
	c := &client{authed: true, access: accessWrite}
	c.conn = &replyConn{n: n, c: c}
	c.conn.reset(0)
	set := lookup([]byte("SET"))
	for i := range benchKeys {
		n.run(c, set, [][]byte{[]byte("SET"), benchKey(i), []byte("xyz")})
		if i%16 == 15 {
			n.submitRun(c)
			c.conn.out = c.conn.out[:0]
		}
	}
	n.submitRun(c)
	c.conn.out = c.conn.out[:0]
	return n, c
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
// cycle time. The replicated backend with appendfsync everysec, as
// cmd/kvbench/expiry-latency runs kvnode, on each engine.
//
//	go test -run X -bench ExpireCatchUp -benchtime 1x ./node/
func BenchmarkExpireCatchUp(b *testing.B) {
	for _, engine := range []string{"memory", "bitcask", "lsm"} {
		b.Run(engine, func(b *testing.B) {
			for range b.N {
				benchExpireCatchUp(b, engine)
			}
		})
	}
}

func benchExpireCatchUp(b *testing.B, engine string) {
	b.StopTimer()
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir, cfg.Listen, cfg.Admin = engine, b.TempDir(), "127.0.0.1:0", "off"
	cfg.AppendFsync, cfg.Replication.Listen = "everysec", "off"
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	n.stopBackground()
	n.setClock(clock0)
	c := &client{authed: true, access: accessWrite}
	c.conn = &replyConn{n: n, c: c}
	c.conn.reset(0)
	set := lookup([]byte("SET"))
	for i := range benchKeys {
		px := fmt.Appendf(nil, "%d", 1000+i*7919%59000)
		n.run(c, set, [][]byte{[]byte("SET"), benchKey(i), []byte("xyz"), []byte("PX"), px})
		if i%16 == 15 {
			n.submitRun(c)
			c.conn.out = c.conn.out[:0]
		}
	}
	n.submitRun(c)
	if err := n.backend.Sync(); err != nil {
		b.Fatal(err)
	}
	n.setClock(clock0 + 61_000)
	var e expirer
	b.StartTimer()
	start := time.Now()
	deleted, cycles := 0, 0
	for capped := true; capped; cycles++ {
		var d int
		d, capped, err = n.expireCycle(&e, expireCycleMax/5)
		if err != nil {
			b.Fatal(err)
		}
		deleted += d
	}
	took := time.Since(start)
	b.StopTimer()
	if deleted != benchKeys {
		b.Fatalf("removed %d keys of %d", deleted, benchKeys)
	}
	b.ReportMetric(float64(deleted)/took.Seconds(), "keys/s")
	b.ReportMetric(float64(cycles), "cycles")
}
