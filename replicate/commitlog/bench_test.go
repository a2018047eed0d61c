package commitlog

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
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
