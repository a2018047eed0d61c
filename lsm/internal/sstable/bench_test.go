package sstable

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
)

// benchEntries returns n entries like the peerbench workloads: 16-byte
// user keys, 100-byte values that compress to about half (db_bench's
// default compression ratio).
func benchEntries(n int) []kv {
	rng := rand.New(rand.NewPCG(1, 1))
	out := make([]kv, n)
	for i := range out {
		uk := fmt.Appendf(nil, "%016d", i)
		v := make([]byte, 100)
		for j := range 50 {
			v[j] = byte(' ' + rng.IntN(95))
		}
		copy(v[50:], v[:50])
		out[i] = kv{base.AppendInternalKey(nil, uk, uint64(i+1), base.KindSet), v}
	}
	return out
}

// discardFile is a vfs.File that counts and drops writes.
type discardFile struct {
	vfs.File
	n int64
}

func (d *discardFile) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }
func (d *discardFile) Sync() error                 { return nil }
func (d *discardFile) Close() error                { return nil }

func BenchmarkWriter(b *testing.B) {
	entries := benchEntries(100000)
	raw := int64(0)
	for _, e := range entries {
		raw += int64(len(e.key) + len(e.value))
	}
	for _, c := range allCompressions {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(raw)
			b.ReportAllocs()
			var size int64
			for b.Loop() {
				f := &discardFile{}
				w := NewWriter(f, WriterOptions{Compression: c, BloomBitsPerKey: 10})
				for _, e := range entries {
					if err := w.Add(e.key, e.value); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := w.Close(); err != nil {
					b.Fatal(err)
				}
				size = f.n
			}
			b.ReportMetric(float64(size)/float64(raw), "ratio")
		})
	}
}

// benchTable writes the entries as a table in memory and opens it.
func benchTable(b *testing.B, entries []kv, c Compression, cache *Cache) *Reader {
	fs := vfs.NewMem()
	writeTable(b, fs, "t", entries, WriterOptions{Compression: c, BloomBitsPerKey: 10})
	return openTable(b, fs, "t", ReaderOptions{Cache: cache, FileNum: 1})
}

func BenchmarkGet(b *testing.B) {
	entries := benchEntries(100000)
	for _, c := range allCompressions {
		for _, hot := range []bool{true, false} {
			name := "cold"
			var cache *Cache
			if hot {
				name, cache = "hot", NewCache(64<<20)
			}
			b.Run(c.String()+"/"+name, func(b *testing.B) {
				r := benchTable(b, entries, c, cache)
				rng := rand.New(rand.NewPCG(2, 2))
				b.ReportAllocs()
				for b.Loop() {
					e := entries[rng.IntN(len(entries))]
					_, _, ok, err := r.Get(base.UserKey(e.key), base.MaxSeq)
					if err != nil || !ok {
						b.Fatal(err, ok)
					}
				}
			})
		}
	}
	b.Run("absent", func(b *testing.B) {
		r := benchTable(b, entries, S2, NewCache(64<<20))
		b.ReportAllocs()
		k := []byte("0000000000001234x")
		for b.Loop() {
			k[3]++
			if _, _, ok, _ := r.Get(k, base.MaxSeq); ok {
				b.Fatal("found")
			}
		}
	})
}

func BenchmarkIterNext(b *testing.B) {
	entries := benchEntries(100000)
	for _, c := range allCompressions {
		b.Run(c.String(), func(b *testing.B) {
			r := benchTable(b, entries, c, NewCache(64<<20))
			it := r.NewIter(nil, nil)
			defer it.Close()
			it.First()
			b.SetBytes(int64(len(entries[0].key) + len(entries[0].value)))
			b.ReportAllocs()
			for b.Loop() {
				if !it.Next() {
					it.First()
				}
			}
		})
	}
	b.Run("prev", func(b *testing.B) {
		r := benchTable(b, entries, S2, NewCache(64<<20))
		it := r.NewIter(nil, nil)
		defer it.Close()
		it.Last()
		b.ReportAllocs()
		for b.Loop() {
			if !it.Prev() {
				it.Last()
			}
		}
	})
}

func BenchmarkSeekGE(b *testing.B) {
	entries := benchEntries(100000)
	for _, c := range allCompressions {
		b.Run(c.String(), func(b *testing.B) {
			r := benchTable(b, entries, c, NewCache(64<<20))
			it := r.NewIter(nil, nil)
			defer it.Close()
			rng := rand.New(rand.NewPCG(3, 3))
			b.ReportAllocs()
			for b.Loop() {
				if !it.SeekGE(entries[rng.IntN(len(entries))].key) {
					b.Fatal("not found")
				}
			}
		})
	}
}

// BenchmarkScan compares a full scan through the block cache (cold: a
// cache too small to keep anything) with a compaction iterator, on an OS
// file (page-cached): 4 KiB reads against 256 KiB reads, per block
// allocations against reused buffers.
func BenchmarkScan(b *testing.B) {
	entries := benchEntries(200000)
	dir := b.TempDir()
	writeTable(b, vfs.Default, dir+"/t", entries, WriterOptions{Compression: S2, BloomBitsPerKey: 10})
	r := openTable(b, vfs.Default, dir+"/t", ReaderOptions{Cache: NewCache(1 << 10), FileNum: 1})
	size := int64(r.Meta().Size)
	for _, name := range []string{"iter", "compaction"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				it := r.NewIter(nil, nil)
				if name == "compaction" {
					it = r.NewCompactionIter()
				}
				n := 0
				for ok := it.First(); ok; ok = it.Next() {
					n++
				}
				if err := it.Close(); err != nil || n != len(entries) {
					b.Fatal(err, n)
				}
			}
		})
	}
}
