package memory

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/enginetest"
	"github.com/stretchr/testify/require"
)

// TestPrefetchConcurrent runs enginetest.PrefetchStress with snapshots
// opened and closed all along, so that writes copy nodes and retire records
// (freed once the snapshots close) while Prefetch reads them. Run it with
// -race.
func TestPrefetchConcurrent(t *testing.T) {
	db, err := Open("", nil)
	require.NoError(t, err)
	run := time.Second
	if testing.Short() {
		run = 300 * time.Millisecond
	}
	enginetest.PrefetchStress(t, db, run, func() (bool, error) {
		s, err := db.NewSnapshot()
		if err != nil {
			return false, err
		}
		return true, s.Close()
	})
}

// BenchmarkPrefetch measures what Prefetch saves a pipeline of Gets, as
// bitcask's does: b.N random hits of 1M keys in groups of 16, each group read
// by 16 AppendGets one after another (gets), or by a Prefetch of its 16
// keys then the 16 AppendGets (prefetch). Two fills, in random order:
// kvnode's (node: 19-byte keys, 4-byte values) and db_bench's (dbbench:
// 16-byte keys, 100-byte values). The modes alternate three times on one
// fill; an op is one Get, cpu-ns/op the benchmark thread's CPU time a Get.
func BenchmarkPrefetch(b *testing.B) {
	const n = 1_000_000
	nodeKey := func(i int, buf []byte) []byte {
		buf = append(buf[:0], 0, byte(i>>8&0x3f), byte(i))
		return fmt.Appendf(buf, "key:%012d", i)
	}
	for _, shape := range []string{"node", "dbbench"} {
		b.Run(shape, func(b *testing.B) {
			db, err := Open("", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			key, value := nodeKey, []byte("xxxx")
			if shape != "node" {
				key, value = benchKey, make([]byte, 100)
			}
			var batch logkv.Batch
			var kbuf [32]byte
			for _, i := range rand.New(rand.NewPCG(3, 4)).Perm(n) {
				batch.Set(key(i, kbuf[:]), value)
				if batch.Len() == 16 {
					if err := db.Apply(&batch, nil); err != nil {
						b.Fatal(err)
					}
					batch.Reset()
				}
			}
			for range 3 {
				for _, mode := range []string{"gets", "prefetch"} {
					b.Run(mode, func(b *testing.B) { enginetest.PrefetchGets(b, db, n, key, mode == "prefetch", threadCPU) })
				}
			}
		})
	}
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
