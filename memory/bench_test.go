package memory

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"testing"

	"github.com/logkv/logkv"
	"github.com/tidwall/btree"
)

// The benchmarks use peerbench's shape: 16-byte zero-padded decimal keys and
// 100-byte values. The BTreeMap ones run the same operations on peerbench's
// reference (a tidwall/btree Map behind a RWMutex), so the two can be
// compared as ratios from one run:
//
//	go test -run ^$ -bench . -benchmem ./memory

const benchValueSize = 100

func benchKey(i int, buf []byte) []byte { return fmt.Appendf(buf[:0], "%016d", i) }

var benchValue = func() []byte {
	v := make([]byte, benchValueSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range v {
		v[i] = byte(r.IntN(256))
	}
	return v
}()

// benchFillN is how many keys a fill benchmark writes before starting over
// with an empty engine.
const benchFillN = 1_000_000

func benchOrder(random bool) []int {
	if random {
		return rand.New(rand.NewPCG(3, 4)).Perm(benchFillN)
	}
	order := make([]int, benchFillN)
	for i := range order {
		order[i] = i
	}
	return order
}

func BenchmarkSet(b *testing.B) {
	for _, random := range []bool{false, true} {
		b.Run(map[bool]string{false: "seq", true: "random"}[random], func(b *testing.B) {
			order := benchOrder(random)
			db, _ := Open("", nil)
			var kbuf [32]byte
			b.SetBytes(16 + benchValueSize)
			b.ReportAllocs()
			clock := startCPU(b)
			for i := 0; i < b.N; i++ {
				if i%benchFillN == 0 && i > 0 {
					b.StopTimer()
					db, _ = Open("", nil)
					b.StartTimer()
				}
				if err := db.Set(benchKey(order[i%benchFillN], kbuf[:]), benchValue, nil); err != nil {
					b.Fatal(err)
				}
			}
			clock.stop(b)
		})
	}
}

// BenchmarkBTreeMapSet is BenchmarkSet on peerbench's reference.
func BenchmarkBTreeMapSet(b *testing.B) {
	for _, random := range []bool{false, true} {
		b.Run(map[bool]string{false: "seq", true: "random"}[random], func(b *testing.B) {
			order := benchOrder(random)
			m := &refMap{}
			var kbuf [32]byte
			b.SetBytes(16 + benchValueSize)
			b.ReportAllocs()
			clock := startCPU(b)
			for i := 0; i < b.N; i++ {
				if i%benchFillN == 0 && i > 0 {
					b.StopTimer()
					m = &refMap{}
					b.StartTimer()
				}
				m.Put(benchKey(order[i%benchFillN], kbuf[:]), benchValue)
			}
			clock.stop(b)
		})
	}
}

// filledDB returns an engine holding keys 0..n-1, inserted in random order.
func filledDB(b *testing.B, n int) *DB {
	b.Helper()
	db, _ := Open("", nil)
	var kbuf [32]byte
	for _, i := range rand.New(rand.NewPCG(5, 6)).Perm(n) {
		if err := db.Set(benchKey(i, kbuf[:]), benchValue, nil); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC() // so that no collection of the fill's garbage runs during the benchmark
	return db
}

func BenchmarkGet(b *testing.B) {
	const n = 1_000_000
	db := filledDB(b, n)
	rng := rand.New(rand.NewPCG(7, 8))
	var kbuf [32]byte
	b.ReportAllocs()
	clock := startCPU(b)
	for i := 0; i < b.N; i++ {
		v, err := db.Get(benchKey(rng.IntN(n), kbuf[:]))
		if err != nil || len(v) != benchValueSize {
			b.Fatal(err)
		}
	}
	clock.stop(b)
}

func BenchmarkBTreeMapGet(b *testing.B) {
	const n = 1_000_000
	m := &refMap{}
	var kbuf [32]byte
	for _, i := range rand.New(rand.NewPCG(5, 6)).Perm(n) {
		m.Put(benchKey(i, kbuf[:]), benchValue)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	b.ReportAllocs()
	clock := startCPU(b)
	for i := 0; i < b.N; i++ {
		v, ok := m.Get(benchKey(rng.IntN(n), kbuf[:]))
		if !ok || len(v) != benchValueSize {
			b.Fatal("missing")
		}
	}
	clock.stop(b)
}

// BenchmarkIterate reports the cost per key of a full scan through the
// logkv.Iterator interface, as peerbench's readseq does it.
func BenchmarkIterate(b *testing.B) {
	const n = 1_000_000
	db := filledDB(b, n)
	b.ReportAllocs()
	clock := startCPU(b)
	seen := 0
	for seen < b.N {
		var it logkv.Iterator
		it, _ = db.NewIter(nil)
		for ok := it.First(); ok && seen < b.N; ok = it.Next() {
			_, _ = it.Key(), it.Value()
			seen++
		}
		if err := it.Close(); err != nil {
			b.Fatal(err)
		}
	}
	clock.stop(b)
}

// BenchmarkSnapshot shows that taking and closing a snapshot, or an iterator
// (which is one), costs the same at 10k keys as at 1M. The collector is off
// while it runs: each one allocates (112 and 256 bytes), and the amortized
// cost of collecting an allocation grows with the live heap, for any Go
// allocation; that is not the engine's cost.
func BenchmarkSnapshot(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for _, n := range []int{10_000, 1_000_000} {
		db := filledDB(b, n)
		b.Run(fmt.Sprintf("snapshot/keys=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			clock := startCPU(b)
			for i := 0; i < b.N; i++ {
				s, err := db.NewSnapshot()
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
			clock.stop(b)
		})
		b.Run(fmt.Sprintf("iter/keys=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			clock := startCPU(b)
			for i := 0; i < b.N; i++ {
				it, err := db.NewIter(nil)
				if err != nil {
					b.Fatal(err)
				}
				it.Close()
			}
			clock.stop(b)
		})
		db.Close()
	}
}

// BenchmarkSetWithSnapshot measures writes while a snapshot is open and
// renewed every 1000 writes: the copy-on-write price.
func BenchmarkSetWithSnapshot(b *testing.B) {
	const n = 1_000_000
	db := filledDB(b, n)
	rng := rand.New(rand.NewPCG(9, 10))
	var kbuf [32]byte
	s, _ := db.NewSnapshot()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%1000 == 0 {
			s.Close()
			s, _ = db.NewSnapshot()
		}
		if err := db.Set(benchKey(rng.IntN(n), kbuf[:]), benchValue, nil); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
}

// BenchmarkMemoryPerKey reports the bytes per key of an engine holding 1M
// keys of 16 bytes with 100-byte values: Metrics.MemBytes, the bytes its
// arena mapped, and the Go heap's growth measured with runtime.MemStats
// after a GC (near zero: the data is in the arena).
func BenchmarkMemoryPerKey(b *testing.B) {
	for _, random := range []bool{false, true} {
		b.Run(map[bool]string{false: "seq", true: "random"}[random], func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				order := benchOrder(random)
				before := heapInUse()
				db, _ := Open("", nil)
				var kbuf [32]byte
				for _, j := range order {
					if err := db.Set(benchKey(j, kbuf[:]), benchValue, nil); err != nil {
						b.Fatal(err)
					}
				}
				after := heapInUse()
				m := db.Metrics()
				b.ReportMetric(float64(after-before)/benchFillN, "heap-B/key")
				b.ReportMetric(float64(m.MemBytes)/benchFillN, "metrics-B/key")
				runtime.KeepAlive(order)
				db.Close()
			}
		})
	}
}

// cpuClock measures the process's CPU time (user and system, all threads,
// the garbage collector's included) over a benchmark and reports it per
// operation. On a machine shared with other work it is steadier than the
// wall-clock ns/op.
type cpuClock struct{ start int64 }

func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func startCPU(b *testing.B) *cpuClock {
	b.ResetTimer()
	return &cpuClock{start: processCPU()}
}

func (c *cpuClock) stop(b *testing.B) {
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// refMap is peerbench's btree reference engine.
type refMap struct {
	mu sync.RWMutex
	m  btree.Map[string, []byte]
}

func (r *refMap) Put(k, v []byte) {
	r.mu.Lock()
	r.m.Set(string(k), append([]byte(nil), v...))
	r.mu.Unlock()
}

func (r *refMap) Get(k []byte) ([]byte, bool) {
	r.mu.RLock()
	v, ok := r.m.Get(string(k))
	r.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return append([]byte(nil), v...), true
}

// BenchmarkBulkLoad is a slot move's target with this engine: 1 MiB
// batches of 1000-byte values (distinct keys, ascending) into a new
// engine, 64 MiB an op. It reports the CPU per MB loaded (cpu-ms/MB, the
// process's user and system time: fresh memory is paid in page faults,
// which wall-clock ns/op on a shared machine hides) and the resident
// memory the load added per MB of records (rss-MB/MB, from
// /proc/self/statm, Linux only: what huge pages must keep honest).
func BenchmarkBulkLoad(b *testing.B) {
	const (
		vsize = 1000
		total = 64 << 20
	)
	value := make([]byte, vsize)
	for i := range value {
		value[i] = byte(i*7 + i/13)
	}
	var kbuf [32]byte
	var cpu, rss int64
	for i := 0; i < b.N; i++ {
		db, err := Open("", nil)
		if err != nil {
			b.Fatal(err)
		}
		rss0 := residentBytes()
		c0 := processCPU()
		var batch logkv.Batch
		for k := 0; k < total/vsize; k++ {
			// Distinct values, as db_bench's: the key number in the first
			// bytes (Set copies the value).
			binary.LittleEndian.PutUint64(value, uint64(k))
			batch.Set(benchKey(k, kbuf[:]), value)
			if batch.Size() >= 1<<20 {
				if err := db.Apply(&batch, nil); err != nil {
					b.Fatal(err)
				}
				batch.Reset()
			}
		}
		if err := db.Apply(&batch, nil); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU() - c0
		rss += residentBytes() - rss0
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
	mb := float64(b.N) * total / (1 << 20)
	b.ReportMetric(float64(cpu)/1e6/mb, "cpu-ms/MB")
	b.ReportMetric(float64(rss)/(1<<20)/mb, "rss-MB/MB")
}

// residentBytes is the process's resident memory (the second field of
// /proc/self/statm, in pages), or 0 where there is no such file.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0
	}
	return resident * int64(os.Getpagesize())
}
