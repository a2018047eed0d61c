package commitlog

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
)

// BenchmarkAppendSync measures Append+Sync from concurrent writers on the
// OS filesystem: group commit lets them share fsyncs.
func BenchmarkAppendSync(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run("writers="+string(rune('0'+writers/10))+string(rune('0'+writers%10)), func(b *testing.B) {
			l, err := Open(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			l.BeginEpoch(1)
			var batch logkv.Batch
			batch.Set([]byte("key0000000000"), make([]byte, 100))
			data := batch.Repr()
			var n atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range writers {
				wg.Go(func() {
					for n.Add(1) <= int64(b.N) {
						seq, err := l.Append(data)
						if err != nil {
							b.Error(err)
							return
						}
						if err := l.Sync(seq); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// BenchmarkOpenDamagedTail measures recovery of a last segment holding 32 MiB
// of flushed, unsynced records damaged near their start: Open scans the whole
// tail for a record proving the damage synced before cutting it.
func BenchmarkOpenDamagedTail(b *testing.B) {
	fs := vfs.NewMem()
	l, err := Open("log", &Options{FS: fs, SegmentSize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	if err := l.BeginEpoch(1); err != nil {
		b.Fatal(err)
	}
	var batch logkv.Batch
	batch.Set([]byte("key0000000000"), make([]byte, 1000))
	for l.segs[0].size < 32<<20 {
		if _, err := l.Append(batch.Repr()); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil {
		b.Fatal(err)
	}
	path := l.segs[0].path
	data := readFile(b, fs, path)
	data[segHeaderSize+100] ^= 1
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		writeFile(b, fs, path, data)
		b.StartTimer()
		l2, err := Open("log", &Options{FS: fs})
		if err != nil {
			b.Fatal(err)
		}
		if l2.LastSeq() != 0 {
			b.Fatalf("kept %d records", l2.LastSeq())
		}
		l2.Close()
	}
}

// BenchmarkFlushTo measures the leader's pipeline path, Append then flush, on
// the OS filesystem from parallel writers: FlushTo(seq) skips the write when
// another writer's covered the record, Flush writes whatever is buffered.
// It reports the write system calls per operation. par is
// b.SetParallelism's: writers per CPU (a Redis node serves many clients on
// few cores). With yield, a writer yields its CPU between Append and flush,
// as a node's client goroutine does between a pipeline's Submits and its
// Await: other writers' appends and flushes then come in between.
func BenchmarkFlushTo(b *testing.B) {
	for _, par := range []int{1, 16} {
		for _, yield := range []bool{false, true} {
			for _, name := range []string{"FlushTo", "Flush"} {
				b.Run(fmt.Sprintf("%s/par=%d/yield=%v", name, par, yield), func(b *testing.B) {
					benchFlush(b, name == "FlushTo", par, yield)
				})
			}
		}
	}
}

func benchFlush(b *testing.B, flushTo bool, par int, yield bool) {
	wc := newWriteCounter()
	l, err := Open(b.TempDir(), &Options{FS: vfs.NewErrorFS(vfs.Default, wc)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if err := l.BeginEpoch(1); err != nil {
		b.Fatal(err)
	}
	var batch logkv.Batch
	batch.Set([]byte("key0000000000"), make([]byte, 570))
	data := batch.Repr()
	b.SetBytes(int64(len(data)))
	base := wc.n.Load()
	b.SetParallelism(par)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			seq, err := l.Append(data)
			if yield {
				runtime.Gosched()
			}
			if err == nil {
				if flushTo {
					err = l.FlushTo(seq)
				} else {
					err = l.Flush()
				}
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(wc.n.Load()-base)/float64(b.N), "writes/op")
}
