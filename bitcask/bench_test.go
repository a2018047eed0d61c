package bitcask

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
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
