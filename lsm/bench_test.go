package lsm

import (
	"encoding/binary"
	"sync"
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
	for _, m := range db.Metrics().Detail {
		switch m.Name {
		case "lsm_write_stalls_total", "lsm_write_stall_seconds_total", "lsm_write_slowdowns_total", "lsm_write_amplification", "lsm_compactions_total", "lsm_flushes_total":
			b.ReportMetric(m.Value, m.Name)
		}
	}
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
