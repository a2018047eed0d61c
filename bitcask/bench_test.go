package bitcask

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/enginetest"
)

// benchN is the key count of the whole-database benchmarks: 1M, as in
// peerbench, unless $BITCASK_BENCH_N says otherwise.
func benchN() int {
	if s := os.Getenv("BITCASK_BENCH_N"); s != "" {
		var n int
		fmt.Sscan(s, &n)
		return n
	}
	return 1_000_000
}

func benchKey(i int, buf []byte) []byte { return fmt.Appendf(buf[:0], "%016d", i) }

// fillRandom writes n 16-byte keys with 100-byte values in random order.
func fillRandom(b *testing.B, db *DB, n int) {
	value := make([]byte, 100)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range value {
		value[i] = byte(r.IntN(256))
	}
	var kbuf [32]byte
	for _, i := range rand.New(rand.NewPCG(3, 4)).Perm(n) {
		if err := db.Set(benchKey(i, kbuf[:]), value, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadSeq(b *testing.B) {
	n := benchN()
	db, err := Open(b.TempDir(), &Options{DisableAutoMerge: true, DisableMmap: os.Getenv("BITCASK_NOMMAP") != ""})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	fillRandom(b, db, n)
	b.ResetTimer()
	for range b.N {
		it, _ := db.NewIter(nil)
		c := 0
		for ok := it.First(); ok; ok = it.Next() {
			_ = it.Value()
			c++
		}
		if err := it.Close(); err != nil || c != n {
			b.Fatal(c, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}

func BenchmarkReadRandom(b *testing.B) {
	n := benchN()
	db, err := Open(b.TempDir(), &Options{DisableAutoMerge: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	fillRandom(b, db, n)
	r := rand.New(rand.NewPCG(5, 6))
	var kbuf [32]byte
	b.ResetTimer()
	for range b.N {
		if _, err := db.Get(benchKey(r.IntN(n), kbuf[:])); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures Open of n keys, with the hint files Close leaves
// and without them (every file scanned).
func BenchmarkOpen(b *testing.B) {
	n := benchN()
	dir := b.TempDir()
	db, err := Open(dir, &Options{DisableAutoMerge: true})
	if err != nil {
		b.Fatal(err)
	}
	fillRandom(b, db, n)
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	for _, hints := range []bool{true, false} {
		b.Run(fmt.Sprintf("hints=%v", hints), func(b *testing.B) {
			if !hints {
				names, _ := os.ReadDir(dir)
				for _, e := range names {
					if strings.HasSuffix(e.Name(), hintSuffix) {
						os.Remove(filepath.Join(dir, e.Name()))
					}
				}
			}
			for range b.N {
				start := time.Now()
				// No background hint repair: each round opens the same files.
				db, err := Open(dir, &Options{DisableAutoMerge: true})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/open")
				if db.tree.length != n {
					b.Fatal(db.tree.length)
				}
				db.closed.Store(true) // abandon without Close: keep the files as they are
				close(db.quit)
				db.wg.Wait()
				db.closeFiles()
				db.lock.Close()
			}
		})
	}
}

// BenchmarkMerge measures merge throughput: n keys, then half of them
// overwritten, then one merge of every closed file (MB/s of input read).
func BenchmarkMerge(b *testing.B) {
	n := benchN()
	for range b.N {
		b.StopTimer()
		db, err := Open(b.TempDir(), &Options{DisableAutoMerge: true, MaxFileSize: 32 << 20})
		if err != nil {
			b.Fatal(err)
		}
		fillRandom(b, db, n)
		value := make([]byte, 100)
		var kbuf [32]byte
		for i := 0; i < n; i += 2 {
			if err := db.Set(benchKey(i, kbuf[:]), value, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if _, err := db.Merge(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		st := db.MergeStats()
		b.ReportMetric(float64(st.BytesIn)/1e6/st.Duration.Seconds(), "MB/s-in")
		b.ReportMetric(float64(st.BytesOut)/1e6/st.Duration.Seconds(), "MB/s-out")
		db.Close()
	}
}

var _ = logkv.ErrNotFound

func BenchmarkFillRandom(b *testing.B) {
	n := benchN()
	for range b.N {
		db, err := Open(b.TempDir(), &Options{DisableAutoMerge: true})
		if err != nil {
			b.Fatal(err)
		}
		fillRandom(b, db, n)
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkTreeSet measures the keydir alone: n 16-byte keys set in random
// order into an empty tree (the keydir's share of fillrandom).
func BenchmarkTreeSet(b *testing.B) {
	n := benchN()
	keys := make([]string, n)
	for i, p := range rand.New(rand.NewPCG(3, 4)).Perm(n) {
		keys[i] = fmt.Sprintf("%016d", p)
	}
	b.ResetTimer()
	for range b.N {
		t := newTree()
		for i, k := range keys {
			t.set(entry{key: k, off: uint32(i)})
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/float64(b.N), "ns/key")
}

// BenchmarkSetSync measures synced writes from 16 concurrent writers on the
// operating system's filesystem: what group commit shares. Each op is one
// Set with WriteOptions.Sync; fsyncs/op is how many writers an fsync served.
func BenchmarkSetSync(b *testing.B) {
	db, err := Open(b.TempDir(), &Options{DisableAutoMerge: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	value := make([]byte, 100)
	var next atomic.Int64
	b.SetParallelism(8) // 16 writers on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var kbuf [32]byte
		for pb.Next() {
			if err := db.Set(benchKey(int(next.Add(1)), kbuf[:]), value, &logkv.WriteOptions{Sync: true}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(db.stats.syncs.Load())/float64(b.N), "fsyncs/op")
}

// nodeKey is a key shaped as kvnode stores redis-benchmark's: a one-byte
// database code, a two-byte hash slot and the 16-byte Redis key, 19 bytes.
func nodeKey(i int, buf []byte) []byte {
	buf = append(buf[:0], 0, byte(i>>8&0x3f), byte(i))
	return fmt.Appendf(buf, "key:%012d", i)
}

// nodeFill fills db as kvnode under redis-benchmark -r 1000000 -P 16 does:
// every one of n keys set once, then 2n random overwrites, all of small
// values in batches of 16.
func nodeFill(b *testing.B, db *DB, n int) {
	nodeLoad(b, db, n)
	nodeSets(b, db, n, 2*n)
}

// nodeLoad sets each of n keys once, in order, in batches of 16.
func nodeLoad(b *testing.B, db *DB, n int) {
	var batch logkv.Batch
	var kbuf [32]byte
	for i := range n {
		batch.Set(nodeKey(i, kbuf[:]), []byte("xxxx"))
		if batch.Len() == 16 || i == n-1 {
			if err := db.Apply(&batch, nil); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
}

// benchDB opens a DB in a temporary directory for a benchmark, without
// background merges, and closes it when the benchmark ends.
func benchDB(b *testing.B) *DB {
	db, err := Open(b.TempDir(), &Options{DisableAutoMerge: true, DisableMmap: os.Getenv("BITCASK_NOMMAP") != ""})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkNodeGet measures Gets of a keydir kvnode filled (nodeFill, 1M
// keys unless $BITCASK_BENCH_N says otherwise): hits by Get and by
// AppendGet into one buffer, and misses, of random keys. The misses' keys sort
// among the present ones, so that their descents are as spread out.
func BenchmarkNodeGet(b *testing.B) {
	n := benchN()
	db := benchDB(b)
	nodeFill(b, db, n)
	for _, mode := range []string{"hit", "append", "miss"} {
		b.Run(mode, func(b *testing.B) {
			cpu := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op") }()
			r := rand.New(rand.NewPCG(5, 6))
			var kbuf [32]byte
			var dst []byte
			for range b.N {
				i := r.IntN(n)
				if mode == "miss" {
					i += n // absent, and as spread over the keydir as the keys present
				}
				k := nodeKey(i, kbuf[:])
				var err error
				switch mode {
				case "hit":
					_, err = db.Get(k)
				case "append":
					dst, err = db.AppendGet(dst[:0], k)
				case "miss":
					if _, err = db.Get(k); err == logkv.ErrNotFound {
						err = nil
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGetDuringDeletes measures how long Gets wait for the keydir's
// lock while another goroutine deletes keys in batches of 32, as kvnode's
// expirer does during mass expiry: n keys (1M unless $BITCASK_BENCH_N),
// b.N random Gets of present and deleted keys against deletes of the keys in
// random order, which go on until the Gets are done. blocked-ns/get is the
// Gets' lock waits from the block profile (every event recorded),
// deletes/get how much deleting went on meanwhile; on a loaded machine the
// deleter's share of the CPU moves between runs, so blocked-ns/delete, the
// wait per key deleted, is the figure to compare, with the CPU time each
// side's thread took per operation (cpu-ns/get, cpu-ns/delete).
func BenchmarkGetDuringDeletes(b *testing.B) {
	n := benchN()
	db := benchDB(b)
	nodeLoad(b, db, n)
	var kbuf [32]byte
	var err error
	order := rand.New(rand.NewPCG(9, 10)).Perm(n)
	runtime.SetBlockProfileRate(1)
	defer runtime.SetBlockProfileRate(0)
	before := blockedGets(b)
	var stop atomic.Bool
	var deleted atomic.Int64
	done := make(chan struct{})
	b.ResetTimer()
	var deleterCPU int64
	go func() {
		defer close(done)
		runtime.LockOSThread() // for threadCPU
		defer runtime.UnlockOSThread()
		cpu := threadCPU()
		defer func() { deleterCPU = threadCPU() - cpu }()
		var batch logkv.Batch
		var kbuf [32]byte
		for i := 0; !stop.Load(); i++ {
			batch.Delete(nodeKey(order[i%n], kbuf[:]))
			if batch.Len() == 32 {
				if err := db.Apply(&batch, nil); err != nil {
					b.Error(err)
					return
				}
				deleted.Add(32)
				batch.Reset()
			}
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	getterCPU := threadCPU()
	r := rand.New(rand.NewPCG(5, 6))
	var dst []byte
	for range b.N {
		dst, err = db.AppendGet(dst[:0], nodeKey(r.IntN(n), kbuf[:]))
		if err != nil && err != logkv.ErrNotFound {
			b.Fatal(err)
		}
	}
	getterCPU = threadCPU() - getterCPU
	stop.Store(true)
	<-done
	b.StopTimer()
	b.ReportMetric(float64(getterCPU)/float64(b.N), "cpu-ns/get")
	b.ReportMetric(float64(deleterCPU)/float64(max(deleted.Load(), 1)), "cpu-ns/delete")
	blocked := blockedGets(b) - before
	b.ReportMetric(blocked/float64(b.N), "blocked-ns/get")
	b.ReportMetric(blocked/float64(max(deleted.Load(), 1)), "blocked-ns/delete")
	b.ReportMetric(float64(deleted.Load())/float64(b.N), "deletes/get")
}

// threadCPU is the calling thread's CPU time so far (user and system), in
// nanoseconds; the caller is locked to its thread.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// blockedGets sums the nanoseconds the block profile holds for waits under
// DB.AppendGet.
func blockedGets(b *testing.B) float64 {
	var buf bytes.Buffer
	if err := pprof.Lookup("block").WriteTo(&buf, 1); err != nil {
		b.Fatal(err)
	}
	var perSec, total float64
	var cycles float64
	for line := range strings.Lines(buf.String()) {
		switch {
		case strings.HasPrefix(line, "cycles/second="):
			fmt.Sscan(strings.TrimPrefix(line, "cycles/second="), &perSec)
		case len(line) > 0 && line[0] >= '0' && line[0] <= '9':
			fmt.Sscan(line, &cycles)
		case strings.Contains(line, "bitcask.(*DB).AppendGet+"):
			total += cycles
			cycles = 0
		}
	}
	if perSec == 0 {
		b.Fatal("no cycles/second in the block profile")
	}
	return total / perSec * 1e9
}

// BenchmarkNodeSet measures Sets as kvnode makes them under redis-benchmark
// -P 16: b.N random overwrites of small values, in batches of 16, of a keydir
// of n keys (1M unless $BITCASK_BENCH_N says otherwise). An op is one Set.
func BenchmarkNodeSet(b *testing.B) {
	n := benchN()
	db := benchDB(b)
	nodeLoad(b, db, n)
	b.ResetTimer()
	cpu := cpuTime()
	nodeSets(b, db, n, b.N)
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's CPU time so far (user and system, every thread:
// the collector's and background goroutines' work included), in
// nanoseconds. On a loaded machine it is steadier than wall time per op.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// nodeSets sets count random keys of n, in batches of 16.
func nodeSets(b *testing.B, db *DB, n, count int) {
	var batch logkv.Batch
	var kbuf [32]byte
	r := rand.New(rand.NewPCG(11, 12))
	for i := range count {
		batch.Set(nodeKey(r.IntN(n), kbuf[:]), []byte("yyyy"))
		if batch.Len() == 16 || i == count-1 {
			if err := db.Apply(&batch, nil); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
}

// BenchmarkPrefetch measures what Prefetch saves a pipeline of Gets: b.N
// random hits in groups of 16, each group read by 16 AppendGets one after
// another (gets), or by a Prefetch of its 16 keys then the 16 AppendGets
// (prefetch), as kvnode answers a pipeline of 16 GETs. Two keydirs of n keys
// (1M unless $BITCASK_BENCH_N says otherwise): kvnode's (node: 19-byte keys,
// 4-byte values, nodeFill) and db_bench's (dbbench: 16-byte keys, 100-byte
// values, fillRandom). The modes alternate, $BITCASK_PREFETCH_ROUNDS times
// (default 1), on one fill; an op is one Get, cpu-ns/op the benchmark
// thread's CPU time a Get. The keys are drawn before the timer starts.
func BenchmarkPrefetch(b *testing.B) {
	n := benchN()
	rounds := 1
	if s := os.Getenv("BITCASK_PREFETCH_ROUNDS"); s != "" {
		fmt.Sscan(s, &rounds)
	}
	for _, shape := range []string{"node", "dbbench"} {
		b.Run(shape, func(b *testing.B) {
			db := benchDB(b)
			key := nodeKey
			if shape == "node" {
				nodeFill(b, db, n)
			} else {
				fillRandom(b, db, n)
				key = benchKey
			}
			for range rounds {
				for _, mode := range []string{"gets", "prefetch"} {
					b.Run(mode, func(b *testing.B) { enginetest.PrefetchGets(b, db, n, key, mode == "prefetch", threadCPU) })
				}
			}
		})
	}
}
