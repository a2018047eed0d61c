package skiplist

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/stretchr/testify/require"
)

func ikey(k string, seq uint64, kind base.Kind) []byte {
	return base.AppendInternalKey(nil, []byte(k), seq, kind)
}

// TestModel inserts random versions and checks order, Get, seeks and both
// directions against a sorted slice.
func TestModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := New(1 << 20)
	var keys [][]byte
	for seq := uint64(1); seq <= 2000; seq++ {
		k := ikey(fmt.Sprintf("k%03d", rng.IntN(300)), seq, base.Kind(rng.IntN(2)))
		require.NoError(t, s.Add(k, []byte(fmt.Sprint(seq))))
		keys = append(keys, k)
	}
	slices.SortFunc(keys, base.Compare)
	it := s.NewIter()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		require.Equal(t, keys[i], it.Key())
		require.Equal(t, fmt.Sprint(base.Seq(keys[i])), string(it.Value()))
		i++
	}
	require.Equal(t, len(keys), i)
	i = len(keys) - 1
	for ok := it.Last(); ok; ok = it.Prev() {
		require.Equal(t, keys[i], it.Key())
		i--
	}
	require.Equal(t, -1, i)
	for n := 0; n < 500; n++ {
		target := ikey(fmt.Sprintf("k%03d", rng.IntN(310)), uint64(rng.IntN(2100)), base.KindSet)
		j, _ := slices.BinarySearchFunc(keys, target, base.Compare)
		if it.SeekGE(target) {
			require.Equal(t, keys[j], it.Key())
		} else {
			require.Equal(t, len(keys), j)
		}
		if it.SeekLT(target) {
			require.Equal(t, keys[j-1], it.Key())
		} else {
			require.Equal(t, 0, j)
		}
		// Get: newest version of the user key with seq <= target's.
		uk := base.UserKey(target)
		v, _, ok := s.Get(uk, base.Seq(target))
		if j < len(keys) && string(base.UserKey(keys[j])) == string(uk) {
			require.True(t, ok)
			require.Equal(t, fmt.Sprint(base.Seq(keys[j])), string(v))
		} else {
			require.False(t, ok)
		}
	}
}

func TestFull(t *testing.T) {
	s := New(1024)
	var err error
	for i := 0; err == nil; i++ {
		err = s.Add(ikey(fmt.Sprint(i), 1, base.KindSet), make([]byte, 50))
	}
	require.ErrorIs(t, err, ErrFull)
	require.LessOrEqual(t, s.Size(), s.Capacity())
}

// TestConcurrentReaders runs readers while one writer inserts: every reader
// sees a sorted list and every entry added before it started.
func TestConcurrentReaders(t *testing.T) {
	s := New(4 << 20)
	const n = 5000
	rng := rand.New(rand.NewPCG(3, 4))
	whileReading(t, 3, func() string { return scanSorted(s) }, func() {
		for i := 0; i < n; i++ {
			require.NoError(t, s.Add(ikey(fmt.Sprintf("%08d", rng.IntN(1e8)), uint64(i+1), base.KindSet), []byte("v")))
		}
	})
}

// scanSorted iterates s once while it may be written: the entries must be
// in order, and at least as many as s held before. It returns what is
// wrong, or "".
func scanSorted(s *Skiplist) string {
	before := s.Len()
	it := s.NewIter()
	var prev []byte
	count := int64(0)
	for ok := it.First(); ok; ok = it.Next() {
		if prev != nil && base.Compare(prev, it.Key()) >= 0 {
			return fmt.Sprintf("out of order: %s then %s", base.Format(prev), base.Format(it.Key()))
		}
		prev = append(prev[:0], it.Key()...)
		count++
	}
	if count < before {
		return fmt.Sprintf("saw %d entries, %d were added before", count, before)
	}
	return ""
}

// whileReading runs write while readers goroutines call read over and
// over, and fails t with the first thing a read reports wrong (a reader
// stops at its first). The readers stop when write returns, and also when
// it fails t (t.FailNow exits write's goroutine): none is left spinning.
func whileReading(t *testing.T, readers int, read func() string, write func()) {
	t.Helper()
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan string, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if msg := read(); msg != "" {
					errs <- msg
					return
				}
			}
		}()
	}
	func() {
		defer func() {
			close(done)
			wg.Wait()
		}()
		write()
	}()
	close(errs)
	for msg := range errs {
		t.Fatal(msg)
	}
}

// TestSequentialHint mixes runs of ascending adds (which take the finger
// path) with adds elsewhere, and checks the order and every level's links.
func TestSequentialHint(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	s := New(4 << 20)
	var keys [][]byte
	seq := uint64(0)
	for run := 0; run < 200; run++ {
		start := rng.IntN(100000)
		for i := 0; i < rng.IntN(50); i++ {
			seq++
			k := ikey(fmt.Sprintf("%08d", start+i), seq, base.KindSet)
			require.NoError(t, s.Add(k, nil))
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, base.Compare)
	it := s.NewIter()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		require.Equal(t, base.Format(keys[i]), base.Format(it.Key()))
		i++
	}
	require.Equal(t, len(keys), i)
	// Every level is sorted, so searches that use the upper levels agree.
	for level := 0; level < MaxHeight; level++ {
		var prev []byte
		for x := s.next(s.head, level); x != 0; x = s.next(x, level) {
			if prev != nil {
				require.Negative(t, base.Compare(prev, s.nodeKey(x)), "level %d", level)
			}
			prev = s.nodeKey(x)
		}
	}
	for _, k := range keys {
		require.True(t, it.SeekGE(k))
		require.Equal(t, k, it.Key())
	}
}
