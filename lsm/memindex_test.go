package lsm

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/stretchr/testify/require"
)

// memApply sets (or, with del, deletes) key at seq in m, as the commit path
// does.
func memApply(t testing.TB, m *memTable, key, value string, seq uint64, del bool) {
	var b logkv.Batch
	if del {
		b.Delete([]byte(key))
	} else {
		b.Set([]byte(key), []byte(value))
	}
	require.True(t, m.roomFor(b.Size(), b.Len()))
	_, err := m.apply(&b, seq)
	require.NoError(t, err)
}

// TestMemIndexAgainstSearch compares the memtable's get (index first) with
// the skiplist's search at every seq, over overwrites, deletes and the
// index's growth from its smallest table: the index must answer exactly
// what the search answers, at the latest seq and at every older one. It
// runs with the index kept by the writer from the first write, and with
// the index built by the Gets (the memtable written alone first, then
// read while the writer goes on, reads interleaved with writes).
func TestMemIndexAgainstSearch(t *testing.T) {
	for _, c := range []struct {
		name    string
		on      bool
		readsAt uint64 // the ops after which reads start, between writes
	}{{"on from the start", true, 0}, {"built by reads", false, 20000}} {
		t.Run(c.name, func(t *testing.T) {
			m := newMemTable(4<<20, 0)
			m.indexOn.Store(c.on)
			rng := rand.New(rand.NewPCG(1, 2))
			const keys, ops = 5000, 30000
			check := func(k []byte, upto uint64) {
				for _, seq := range []uint64{upto, upto - 1, upto / 2, rng.Uint64N(upto) + 1, 1, 0} {
					v, kind, ok := m.get(k, seq)
					wv, wkind, wok := m.sl.Get(k, seq)
					require.Equal(t, wok, ok, "key %s at seq %d", k, seq)
					require.Equal(t, wkind, kind, "key %s at seq %d", k, seq)
					require.Equal(t, string(wv), string(v), "key %s at seq %d", k, seq)
				}
			}
			for seq := uint64(1); seq <= ops; seq++ {
				k := fmt.Sprintf("k%05d", rng.IntN(keys))
				memApply(t, m, k, fmt.Sprint(seq), seq, rng.IntN(8) == 0)
				if c.readsAt != 0 && seq >= c.readsAt {
					check([]byte(fmt.Sprintf("k%05d", rng.IntN(keys+100))), seq)
				}
			}
			if !c.on {
				require.True(t, m.indexOn.Load(), "a read turns the writer's index on")
			}
			for i := range keys + 100 { // and 100 keys never written
				check([]byte(fmt.Sprintf("k%05d", i)), ops)
			}
			require.Equal(t, uint32(m.sl.Size()), m.indexed.Load(), "the index covers every entry")
			require.Greater(t, len(m.index.tab.Load().slots), memIndexMinSlots, "the test must make the index grow")
		})
	}
}

// TestMemIndexLazy: a memtable written without reads has no index (its
// writes pay nothing for it); the first Gets index it catchUpNodes entries
// at a time, answering by the search meanwhile, until the index covers
// every entry and finds keys by itself.
func TestMemIndexLazy(t *testing.T) {
	m := newMemTable(4<<20, 0)
	const n = 3*catchUpNodes + 100
	for i := range n {
		memApply(t, m, fmt.Sprintf("k%06d", i), fmt.Sprint(i), uint64(i+1), false)
	}
	require.False(t, m.indexOn.Load())
	require.Zero(t, m.index.keys, "no read, no index")
	for i := 0; i < 4; i++ {
		v, _, ok := m.get([]byte(fmt.Sprintf("k%06d", n-1)), n)
		require.True(t, ok)
		require.Equal(t, fmt.Sprint(n-1), string(v))
		require.Equal(t, min((i+1)*catchUpNodes, n), m.index.keys, "one chunk per read")
	}
	require.Equal(t, uint32(m.sl.Size()), m.indexed.Load())
	require.True(t, m.indexOn.Load())
	// The writer keeps it now: a new key is in the index as soon as it is
	// applied, without a read catching up.
	memApply(t, m, "new", "v", n+1, false)
	require.Equal(t, uint32(m.sl.Size()), m.indexed.Load())
	require.NotZero(t, m.index.find([]byte("new"), m.sl))
}

// TestMemIndexFindsNewest checks the index itself, not the fallback: it
// names the newest node of a key, and nothing for a key never written.
func TestMemIndexFindsNewest(t *testing.T) {
	m := newMemTable(1<<20, 0)
	m.indexOn.Store(true)
	memApply(t, m, "a", "1", 1, false)
	memApply(t, m, "b", "2", 2, false)
	memApply(t, m, "a", "3", 3, false)
	memApply(t, m, "b", "", 4, true)
	nd := m.index.find([]byte("a"), m.sl)
	require.NotZero(t, nd)
	require.Equal(t, uint64(3), base.Seq(m.sl.NodeKey(nd)))
	require.Equal(t, "3", string(m.sl.NodeValue(nd)))
	nd = m.index.find([]byte("b"), m.sl)
	require.NotZero(t, nd)
	require.Equal(t, base.KindDelete, base.KindOf(m.sl.NodeKey(nd)))
	require.Zero(t, m.index.find([]byte("c"), m.sl))
	require.Zero(t, m.index.find(nil, m.sl))
	require.Equal(t, 2, m.index.keys)

	// An older read of a rewritten key takes the search: a at seq 2 is "1".
	v, kind, ok := m.get([]byte("a"), 2)
	require.True(t, ok)
	require.Equal(t, base.KindSet, kind)
	require.Equal(t, "1", string(v))
	_, _, ok = m.get([]byte("a"), 0)
	require.False(t, ok)
}

// TestMemIndexFull fills a small memtable with the smallest entries there
// are: the index must refuse (roomFor) before its table is more than three
// quarters full, never loop in a full table, and hold every key it took.
func TestMemIndexFull(t *testing.T) {
	m := newMemTable(64<<10, 0)
	m.indexOn.Store(true)
	var seq uint64
	for {
		var b logkv.Batch
		k := binary.BigEndian.AppendUint32(nil, uint32(seq))
		b.Set(k, nil)
		if !m.roomFor(b.Size(), b.Len()) {
			break
		}
		seq++
		_, err := m.apply(&b, seq)
		require.NoError(t, err)
	}
	slots := len(m.index.tab.Load().slots)
	require.LessOrEqual(t, m.index.keys, slots/4*3)
	require.Equal(t, int(seq), m.index.keys)
	for i := range seq {
		k := binary.BigEndian.AppendUint32(nil, uint32(i))
		_, _, ok := m.get(k, seq)
		require.True(t, ok, "key %d", i)
	}
	// The index, not the arena, was full; apply itself refuses past the
	// index's room rather than overfill it.
	require.Less(t, m.sl.Size()+64, m.sl.Capacity())
	var b logkv.Batch
	b.Set([]byte("one more"), nil)
	_, err := m.apply(&b, seq+1)
	require.Error(t, err)
}

// TestMemIndexConcurrent runs the writer (inserts, overwrites and the
// index's growth) against readers: a reader that learns a seq (published
// after the write, as the DB publishes it) must find every key written at
// or before it, with the value of its newest version at that seq.
func TestMemIndexConcurrent(t *testing.T) {
	m := newMemTable(8<<20, 0)
	const n = 40000
	var published atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := uint64(1); seq <= n; seq++ {
			// Keys 0..n/2, each written twice: the value names the seq.
			k := fmt.Sprintf("%08d", (seq-1)%(n/2))
			var b logkv.Batch
			b.Set([]byte(k), binary.BigEndian.AppendUint64(nil, seq))
			if _, err := m.apply(&b, seq); err != nil {
				t.Error(err)
				return
			}
			published.Store(seq)
		}
	}()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				upto := published.Load()
				for seq := max(upto, 200) - 200 + 1; seq <= upto; seq++ {
					k := fmt.Sprintf("%08d", (seq-1)%(n/2))
					v, _, ok := m.get([]byte(k), upto)
					if !ok {
						t.Errorf("key %s written at seq %d not found at seq %d", k, seq, upto)
						return
					}
					want := seq // the newest write of k at or before upto
					if seq+n/2 <= upto {
						want = seq + n/2
					}
					if got := binary.BigEndian.Uint64(v); got != want {
						t.Errorf("key %s at seq %d: value of seq %d, want %d", k, upto, got, want)
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

// BenchmarkMemtableGet is a point lookup in a full default-size memtable of
// redis-benchmark-like entries (16-byte keys, 3-byte values), present and
// absent keys, through the index (as Get) and through the search (as
// before the index).
func BenchmarkMemtableGet(b *testing.B) {
	m := newMemTable(8<<20, 0)
	var seq uint64
	var k []byte
	for {
		k = benchKey(k, seq*0x5851f42d4c957f2d)
		var bt logkv.Batch
		bt.Set(k, []byte("xxx"))
		if !m.roomFor(bt.Size(), bt.Len()) {
			break
		}
		seq++
		if _, err := m.apply(&bt, seq); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		search bool
		absent bool
	}{{"index/present", false, false}, {"index/absent", false, true}, {"search/present", true, false}, {"search/absent", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			for b.Loop() {
				i := rng.Uint64N(seq)
				if c.absent {
					i += seq
				}
				k = benchKey(k, i*0x5851f42d4c957f2d)
				var ok bool
				if c.search {
					_, _, ok = m.sl.Get(k, seq)
				} else {
					_, _, ok = m.get(k, seq)
				}
				if ok == c.absent {
					b.Fatalf("key %d: found %v", i, ok)
				}
			}
		})
	}
}

// TestMemIndexReserve: a successor's index sized from its predecessor's
// keys takes them without growing, never past its largest table, and an
// index that holds keys is not resized under its readers.
func TestMemIndexReserve(t *testing.T) {
	m := newMemTable(8<<20, 0)
	m.indexOn.Store(true)
	m.index.reserve(50000)
	tab := m.index.tab.Load()
	require.GreaterOrEqual(t, len(tab.slots), 50000*4/3)
	for i := range 50000 {
		memApply(t, m, fmt.Sprintf("%08d", i), "v", uint64(i+1), false)
	}
	require.Same(t, tab, m.index.tab.Load(), "a reserved index must not grow")
	m.index.reserve(1 << 30)
	require.Same(t, tab, m.index.tab.Load(), "an index with keys is not resized")

	small := newMemTable(64<<10, 0)
	small.index.reserve(1 << 30)
	require.Equal(t, small.index.maxSlots, len(small.index.tab.Load().slots))
}
