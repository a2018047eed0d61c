package groupsync

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSyncTo measures appends with SyncTo from concurrent writers
// against a sync that takes 50 µs (a fast SSD's fsync), reporting the
// writes each round covers. With one writer every write is its own round;
// with more, writes that arrive during a round share the next.
func BenchmarkSyncTo(b *testing.B) {
	for _, writers := range []int{1, 4, 16, 64} {
		b.Run("writers="+itoa(writers), func(b *testing.B) {
			var mu sync.Mutex
			var appended uint64
			var durable atomic.Uint64
			g := New(durable.Load,
				func(uint64) (uint64, error) {
					mu.Lock()
					defer mu.Unlock()
					return appended, nil
				},
				func(r uint64) error {
					time.Sleep(50 * time.Microsecond)
					durable.Store(r)
					return nil
				})
			var n atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range writers {
				wg.Go(func() {
					for n.Add(1) <= int64(b.N) {
						mu.Lock()
						appended++
						pos := appended
						mu.Unlock()
						if err := g.SyncTo(pos); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			rounds, _ := g.Stats()
			b.ReportMetric(float64(b.N)/float64(max(rounds, 1)), "writes/round")
		})
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
