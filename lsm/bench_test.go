package lsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

var benchMemtableSize int64

func benchKey(buf []byte, i uint64) []byte {
	buf = buf[:0]
	buf = binary.BigEndian.AppendUint64(buf, i)
	return binary.BigEndian.AppendUint64(buf, i*0x9e3779b97f4a7c15)
}

func BenchmarkSetSeq(b *testing.B) { benchSet(b, func(i uint64) uint64 { return i }) }

func BenchmarkSet(b *testing.B) {
	benchSet(b, func(i uint64) uint64 { return i * 0x5851f42d4c957f2d })
}

func benchSet(b *testing.B, keyOf func(uint64) uint64) {
	db, err := Open(b.TempDir(), &Options{MemtableSize: benchMemtableSize})
	require.NoError(b, err)
	defer db.Close()
	v := make([]byte, 100)
	var k []byte
	b.SetBytes(116)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k = benchKey(k, keyOf(uint64(i)))
		if err := db.Set(k, v, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapSys)/(1<<20), "heap-sys-MiB")
	for _, m := range db.Metrics().Detail {
		switch m.Name {
		case "lsm_write_stalls_total", "lsm_write_stall_seconds_total", "lsm_write_slowdowns_total", "lsm_write_amplification", "lsm_compactions_total", "lsm_flushes_total":
			b.ReportMetric(m.Value, m.Name)
		}
	}
}

// BenchmarkSetNoWAL is the commit path a node drives (its commit log is the
// WAL, so lsm runs with DisableWAL): random keys, default memtables, flushed
// in the background. Besides wall time it reports the process's CPU time per
// Set (flushes included), which a loaded machine inflates far less than wall
// time: compare builds by cpu-ns/op, alternating runs.
func BenchmarkSetNoWAL(b *testing.B) {
	db, err := Open(b.TempDir(), &Options{DisableWAL: true})
	require.NoError(b, err)
	defer db.Close()
	v := make([]byte, 100)
	var k []byte
	b.SetBytes(116)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k = benchKey(k, uint64(i)*0x5851f42d4c957f2d)
		if err := db.Set(k, v, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkNodeSetGet is compare-redis's lsm workload as kvnode hands it
// to the engine (redis-benchmark -t set,get -n 400000 -r 1000000 -P 16):
// DisableWAL, one Set and one Get first (kvnode's startup sweep reads its
// keyspace generation from a memtable holding a write), then b.N batches of 16 SETs of random keys of 1M (kvnode's
// engine key is a 1-byte keyspace prefix and the client's
// "key:%012d"; its value a 1-byte header and the 3-byte payload), and, in
// sets+gets, as many Gets of random keys. It reports the process's CPU
// time per operation. Its use is cachegrind, whose counts do not depend on
// the machine's load: sets+gets less sets is the Gets' share (both run
// b.N=1 first, which costs about one DB's Open and Close):
//
//	go test -c -o lsm.test ./lsm
//	GODEBUG=cpu.rdtscp=off valgrind --tool=cachegrind --cache-sim=yes --LL=1048576,16,64 \
//	  ./lsm.test -test.run XXX -test.bench 'NodeSetGet/sets$' -test.benchtime 25000x
//
// (valgrind 3.19 lacks RDTSCP; the last level is set to this machine's
// 1 MiB L2 a core.)
func BenchmarkNodeSetGet(b *testing.B) {
	for _, gets := range []bool{false, true} {
		name := "sets"
		if gets {
			name = "sets+gets"
		}
		b.Run(name, func(b *testing.B) {
			db, err := Open(b.TempDir(), &Options{DisableWAL: true})
			require.NoError(b, err)
			defer db.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			key := func(k []byte) []byte { return fmt.Appendf(append(k[:0], 0), "key:%012d", rng.IntN(1000000)) }
			value := []byte{0, 'x', 'x', 'x'}
			var bt logkv.Batch
			var k []byte
			// As kvnode at its start: a write, then the sweep's Get.
			require.NoError(b, db.Set([]byte{0, 'g'}, value, nil))
			_, err = db.Get([]byte{0, 'g'})
			require.NoError(b, err)
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				bt.Reset()
				for range 16 {
					k = key(k)
					bt.Set(k, value)
				}
				if err := db.Apply(&bt, nil); err != nil {
					b.Fatal(err)
				}
			}
			ops := 16 * b.N
			if gets {
				for range ops {
					k = key(k)
					if _, err := db.Get(k); err != nil && !errors.Is(err, logkv.ErrNotFound) {
						b.Fatal(err)
					}
				}
				ops *= 2
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(ops), "cpu-ns/op")
		})
	}
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

func BenchmarkGet(b *testing.B) {
	db, err := Open(b.TempDir(), nil)
	require.NoError(b, err)
	defer db.Close()
	v := make([]byte, 100)
	var k []byte
	const n = 100000
	for i := 0; i < n; i++ {
		k = benchKey(k, uint64(i))
		require.NoError(b, db.Set(k, v, nil))
	}
	require.NoError(b, db.flushAll())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k = benchKey(k, uint64(i%n))
		if _, err := db.Get(k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSyncWriters measures synced Sets with 1 and 8 writers: group
// commit makes the 8-writer rate a multiple of the 1-writer one.
func BenchmarkSyncWriters(b *testing.B) {
	for _, writers := range []int{1, 8} {
		b.Run(map[int]string{1: "1", 8: "8"}[writers], func(b *testing.B) {
			db, err := Open(b.TempDir(), nil)
			require.NoError(b, err)
			defer db.Close()
			v := make([]byte, 100)
			var wg sync.WaitGroup
			per := b.N/writers + 1
			b.ResetTimer()
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					var k []byte
					for i := 0; i < per; i++ {
						k = benchKey(k, uint64(w<<32|i))
						if err := db.Set(k, v, &logkv.WriteOptions{Sync: true}); err != nil {
							b.Error(err)
							return
						}
					}
				}(w)
			}
			wg.Wait()
			b.StopTimer()
			for _, m := range db.Metrics().Detail {
				if m.Name == "lsm_wal_syncs_total" && m.Value > 0 {
					b.ReportMetric(float64(writers*per)/m.Value, "writes/fsync")
				}
			}
		})
	}
}

func fillRandom(b *testing.B, n int) *DB {
	db, err := Open(b.TempDir(), nil)
	require.NoError(b, err)
	v := make([]byte, 100)
	var k []byte
	for i := 0; i < n; i++ {
		k = benchKey(k, uint64(i)*7919%uint64(n))
		require.NoError(b, db.Set(k, v, nil))
	}
	return db
}

// waitIdle waits until no flush or compaction is pending.
func (d *DB) waitIdle() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for !d.closing && d.bgErr == nil && (len(d.imm) > 0 || d.flushing || d.compacting || d.pickCompactionLocked() != nil) {
		d.cond.Wait()
	}
}

func BenchmarkScan(b *testing.B) {
	const n = 300000
	db := fillRandom(b, n)
	defer db.Close()
	db.waitIdle()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		it, err := db.NewIter(nil)
		require.NoError(b, err)
		c := 0
		for ok := it.First(); ok; ok = it.Next() {
			c++
		}
		require.NoError(b, it.Close())
		require.Equal(b, n, c)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
}

// BenchmarkReadRandom reads random keys right after a random fill, as
// peerbench's readrandom does (compactions may still be running).
func BenchmarkReadRandom(b *testing.B) {
	const n = 1000000
	db := fillRandom(b, n)
	defer db.Close()
	var shape []string
	db.mu.Lock()
	for lvl, files := range db.current.Levels {
		shape = append(shape, fmt.Sprintf("L%d:%d", lvl, len(files)))
	}
	db.mu.Unlock()
	b.Logf("levels %v", shape)
	b.ResetTimer()
	var k []byte
	for i := 0; i < b.N; i++ {
		k = benchKey(k, uint64(i)*7919%n)
		if _, err := db.Get(k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanAfterFill scans right after a random fill of 1M keys, as
// peerbench's readseq runs after fillrandom and readrandom.
func BenchmarkScanAfterFill(b *testing.B) {
	const n = 1000000
	db := fillRandom(b, n)
	defer db.Close()
	db.waitIdle()
	var shape []string
	db.mu.Lock()
	for lvl, files := range db.current.Levels {
		shape = append(shape, fmt.Sprintf("L%d:%d", lvl, len(files)))
	}
	db.mu.Unlock()
	b.Logf("levels %v", shape)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		it, err := db.NewIter(nil)
		require.NoError(b, err)
		c := 0
		for ok := it.First(); ok; ok = it.Next() {
			c++
		}
		require.NoError(b, it.Close())
		require.Equal(b, n, c)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
}
