package lsm

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
)

// TestMemtableBatchReaders applies batches to a memtable (memTable.apply,
// runs of skiplist.AddBatch) while three readers call get and one of them
// also iterates; run it with -race. Every batch holds the 64 keys in
// random order at its seq, about one in eight preceded by an operation on
// the same key that the later one overrides (a Set of "wrong" or a
// Delete, which apply skips); key k at seq s is deleted when (s+k)%7 == 0
// and set to s otherwise. A get at the published seq or at a random older
// one must return exactly that, whether the index answers, catches up
// (walking the arena up to Size) or the skiplist is searched; an
// iteration is sorted and sees every entry counted before it began.
func TestMemtableBatchReaders(t *testing.T) {
	const keys = 64
	seqs := uint64(2500)
	if testing.Short() {
		seqs = 500
	}
	key := func(k int) []byte { return fmt.Appendf(nil, "key%03d", k) }
	m := newMemTable(64<<20, 0)
	var published atomic.Uint64 // every batch up to this seq is in
	var reads atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	// check says what is wrong with get's answer for key k at seq, or "".
	check := func(k int, seq uint64) string {
		v, kind, ok := m.get(key(k), seq)
		if (seq+uint64(k))%7 == 0 {
			if !ok || kind != base.KindDelete {
				return fmt.Sprintf("key %d at %d: want a delete, got %q %v %v", k, seq, v, kind, ok)
			}
		} else if !ok || kind != base.KindSet || string(v) != fmt.Sprint(seq) {
			return fmt.Sprintf("key %d at %d: want %d, got %q %v %v", k, seq, seq, v, kind, ok)
		}
		return ""
	}
	read := func(r int, rng *rand.Rand) string {
		upto := published.Load()
		if upto == 0 {
			return ""
		}
		seq := upto
		if rng.IntN(2) == 0 {
			seq = 1 + rng.Uint64N(upto)
		}
		k := rng.IntN(keys)
		if msg := check(k, seq); msg != "" {
			return fmt.Sprintf("%s (published %d)", msg, upto)
		}
		reads.Add(1)
		if r == 0 && rng.IntN(500) == 0 {
			before := m.sl.Len()
			it := m.newIter()
			var prev []byte
			n := int64(0)
			for ok := it.First(); ok; ok = it.Next() {
				if prev != nil && base.Compare(prev, it.Key()) >= 0 {
					return fmt.Sprintf("iteration out of order: %s then %s", base.Format(prev), base.Format(it.Key()))
				}
				prev = append(prev[:0], it.Key()...)
				n++
			}
			if n < before {
				return fmt.Sprintf("iteration saw %d entries, %d were counted before", n, before)
			}
		}
		return ""
	}
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for {
				select {
				case <-done:
					return
				default:
				}
				if msg := read(r, rng); msg != "" {
					t.Error(msg)
					return
				}
				runtime.Gosched() // the writer shares two cores with three readers
			}
		}()
	}
	func() {
		// Stop the readers however the writer ends (t.Fatal included).
		defer func() {
			close(done)
			wg.Wait()
		}()
		rng := rand.New(rand.NewPCG(1, 1))
		var b logkv.Batch
		for seq := uint64(1); seq <= seqs; seq++ {
			b.Reset()
			for _, k := range rng.Perm(keys) {
				if rng.IntN(8) == 0 { // overridden by the next operation
					if rng.IntN(2) == 0 {
						b.Delete(key(k))
					} else {
						b.Set(key(k), []byte("wrong"))
					}
				}
				if (seq+uint64(k))%7 == 0 {
					b.Delete(key(k))
				} else {
					b.Set(key(k), fmt.Append(nil, seq))
				}
			}
			if !m.roomFor(b.Size(), b.Len()) {
				t.Fatal("memtable full")
			}
			if _, err := m.apply(&b, seq); err != nil {
				t.Fatal(err)
			}
			published.Store(seq)
		}
	}()
	if t.Failed() {
		return
	}
	t.Logf("%d reads", reads.Load())
	if reads.Load() == 0 {
		t.Fatal("no reader read while the batches went in")
	}
	if got := m.sl.Len(); got != int64(keys*seqs) {
		t.Fatalf("%d entries, want %d (the overridden operations skipped)", got, keys*seqs)
	}
	for k := range keys {
		if msg := check(k, seqs); msg != "" {
			t.Fatal(msg)
		}
	}
}
