package lsm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/logkv/logkv"
)

// nodeKey appends kvnode's engine key of redis-benchmark's key i (-r
// 1000000): a dbgen byte, a 2-byte slot, "key:%012d".
func nodeKey(dst []byte, i int) []byte {
	k := fmt.Appendf(nil, "key:%012d", i)
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(crc32.ChecksumIEEE(k))&0x3fff)
	return append(dst, k...)
}

// BenchmarkMemtableApply is the memtable insert of the commit path
// (memTable.apply) into a memtable already holding 1M entries of kvnode's
// shape (engine keys of "key:%012d" of a 1M keyspace, 4-byte values), in
// the batches that reach it: one SET (a lone client), 16 random SETs (a
// pipeline of 16 on the leader), 16 and 4,096 sorted SETs (a follower's
// key-ordered batches, replicate.KeyOrderApplier), 4,096 unsorted, and the expirer's
// batch, 32 keys each deleted twice (its data key and its expiry index
// key, 64 deletes). It reports the process's CPU time per operation
// (cpu-ns/op), which a loaded machine inflates far less than wall time;
// compare builds alternating runs. The batches are built before the
// timer starts; b.N operations, rounded up to whole batches.
func BenchmarkMemtableApply(b *testing.B) {
	const prefill = 1 << 20
	cases := []struct {
		name   string
		n      int
		sorted bool
		expiry bool
	}{
		{"single", 1, false, false},
		{"random16", 16, false, false},
		{"sorted16", 16, true, false},
		{"sorted4096", 4096, true, false},
		{"random4096", 4096, false, false},
		{"expiry64", 64, false, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			value := []byte{0, 'x', 'x', 'x'}
			batches := (b.N + c.n - 1) / c.n
			m := newMemTable(int64(prefill+batches*c.n)*80, 0)
			var bt logkv.Batch
			var k []byte
			seq := uint64(0)
			for i := 0; i < prefill; i += 16 {
				bt.Reset()
				for range 16 {
					bt.Set(nodeKey(k[:0], rng.IntN(1000000)), value)
				}
				seq++
				if _, err := m.apply(&bt, seq); err != nil {
					b.Fatal(err)
				}
			}
			todo := make([]*logkv.Batch, batches)
			keys := make([][]byte, 0, c.n)
			for j := range todo {
				keys = keys[:0]
				for range c.n {
					if c.expiry {
						id := rng.IntN(1000000)
						keys = append(keys, nodeKey(nil, id))
						ek := binary.BigEndian.AppendUint64([]byte{0xfe, 0}, uint64(1765000000000+rng.IntN(60000)))
						keys = append(keys, fmt.Appendf(ek, "key:%012d", id))
						if len(keys) == c.n {
							break
						}
						continue
					}
					keys = append(keys, nodeKey(nil, rng.IntN(1000000)))
				}
				if c.sorted {
					slices.SortStableFunc(keys, bytes.Compare)
				}
				bt := new(logkv.Batch)
				for _, key := range keys {
					if c.expiry {
						bt.Delete(key)
					} else {
						bt.Set(key, value)
					}
				}
				todo[j] = bt
			}
			if !m.roomFor(0, batches*c.n) {
				b.Fatal("memtable too small")
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			for _, bt := range todo {
				seq++
				if _, err := m.apply(bt, seq); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(batches*c.n), "cpu-ns/op")
		})
	}
}
