package lsm

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMemFilterNoFalseNegatives(t *testing.T) {
	for _, arena := range []int64{0, 64 << 10, 1 << 20} {
		t.Run(fmt.Sprint(arena), func(t *testing.T) {
			f := newMemFilter(arena)
			n := max(int(arena/40), 1000) // the most entries such an arena holds
			var k []byte
			for i := range n {
				k = fmt.Appendf(k[:0], "%016d", i)
				f.add(k)
			}
			for i := range n {
				k = fmt.Appendf(k[:0], "%016d", i)
				require.True(t, f.mayContain(k), "added key %s reported absent", k)
			}
		})
	}
}

func TestMemFilterFalsePositives(t *testing.T) {
	// An arena full of 40-byte entries (the smallest there are) is the
	// filter's worst load: it must still spare most absent keys a search.
	const arena = 1 << 20
	f := newMemFilter(arena)
	n := arena / 40
	var k []byte
	for i := range n {
		k = fmt.Appendf(k[:0], "%016d", i)
		f.add(k)
	}
	fp := 0
	const probes = 100000
	for i := range probes {
		k = fmt.Appendf(k[:0], "%016d", n+i)
		if f.mayContain(k) {
			fp++
		}
	}
	rate := float64(fp) / probes
	t.Logf("false positives: %.2f%%", 100*rate)
	require.Less(t, rate, 0.03)

	// An empty filter answers no for everything.
	empty := newMemFilter(arena)
	require.False(t, empty.mayContain([]byte("anything")))
	require.False(t, empty.mayContain(nil))
}

// TestMemFilterConcurrent runs the writer's adds against readers: a reader
// that learns (through a published counter, as readers learn a seq) that
// key i was added must find it.
func TestMemFilterConcurrent(t *testing.T) {
	f := newMemFilter(64 << 10)
	const n = 20000
	var published sync.Mutex
	done := 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var k [8]byte
		for i := range n {
			binary.BigEndian.PutUint64(k[:], uint64(i))
			f.add(k[:])
			published.Lock()
			done = i + 1
			published.Unlock()
		}
	}()
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var k [8]byte
			for {
				published.Lock()
				upto := done
				published.Unlock()
				for i := max(upto-100, 0); i < upto; i++ {
					binary.BigEndian.PutUint64(k[:], uint64(i))
					if !f.mayContain(k[:]) {
						t.Errorf("key %d published but not in the filter", i)
						return
					}
				}
				if upto == n {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkMemFilterAdd is the filter's cost on the commit path: one add per
// key written, into the filter of a default 8 MiB memtable.
func BenchmarkMemFilterAdd(b *testing.B) {
	f := newMemFilter(8 << 20)
	var k []byte
	for i := 0; i < b.N; i++ {
		k = benchKey(k, uint64(i)*0x5851f42d4c957f2d)
		f.add(k)
		if i&(1<<17-1) == 0 {
			clear(f.words) // a memtable's worth of keys, then a fresh filter
		}
	}
}
