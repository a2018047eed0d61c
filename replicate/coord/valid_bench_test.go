package coord

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkValidFor is the lease check every read on a sync-mode leader
// makes after it ran (node/readindex.go), and Valid, the check of every
// write a member acknowledges: each one atomic load and a clock read (Valid
// took a mutex until the fence served it too).
func BenchmarkValidFor(b *testing.B) {
	m, err := New(Config{Client: &clientv3.Client{}, Cluster: "c", ID: "a"})
	if err != nil {
		b.Fatal(err)
	}
	m.mu.Lock()
	m.setFenceLocked(func(f *fenceState) { f.leading, f.deadline = 7, time.Now().Add(time.Hour) })
	m.mu.Unlock()
	b.Run("ValidFor", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !m.ValidFor(7) {
					b.Fatal("not valid")
				}
			}
		})
	})
	b.Run("Valid", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !m.Valid() {
					b.Fatal("not valid")
				}
			}
		})
	})
}
