package node

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
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
			n.flushWrites(c)
			c.conn.out = c.conn.out[:0]
		}
	}
	n.flushWrites(c)
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
			n.flushWrites(c)
			c.conn.out = c.conn.out[:0]
		}
	}
	n.flushWrites(c)
}

// BenchmarkKeyspaceMemPerKey reports the memory engine's bytes per key
// after benchKeys SETs of 16-byte keys and 3-byte values.
// It loads once, whatever b.N.
func BenchmarkKeyspaceMemPerKey(b *testing.B) {
	n, _ := benchNode(b)
	b.ReportMetric(float64(n.eng().Metrics().MemBytes)/benchKeys, "B/key")
}
