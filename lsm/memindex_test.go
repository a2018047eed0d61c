package lsm

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
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

// indexAll indexes every entry of m, as Gets would over time.
func indexAll(m *memTable) {
	m.indexMu.Lock()
	defer m.indexMu.Unlock()
	m.catchUpLocked(math.MaxInt)
}

// TestMemIndexAgainstSearch compares the memtable's get (index first) with
// the skiplist's search at every seq, over overwrites, deletes and the
// index's growth from its smallest table: the index must answer exactly
// what the search answers, at the latest seq and at every older one,
// whether the Gets kept it up between writes, fell behind the writes (a
// read every 100 writes), or came after a write-only phase.
func TestMemIndexAgainstSearch(t *testing.T) {
	for _, c := range []struct {
		name    string
		readsAt uint64 // the ops after which reads start, between writes
		every   uint64 // a read after every every-th write
	}{{"reads from the start", 1, 1}, {"reads behind the writes", 1, 100}, {"reads after writes", 20000, 1}} {
		t.Run(c.name, func(t *testing.T) {
			m := newMemTable(4<<20, 0)
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
				if seq >= c.readsAt && seq%c.every == 0 {
					check([]byte(fmt.Sprintf("k%05d", rng.IntN(keys+100))), seq)
				}
			}
			for i := range keys + 100 { // and 100 keys never written
				check([]byte(fmt.Sprintf("k%05d", i)), ops)
			}
			require.Equal(t, uint32(m.sl.Size()), m.indexed.Load(), "the index covers every entry")
			require.Greater(t, len(m.index.tab.Load().slots), memIndexMinSlots, "the test must make the index grow")
		})
	}
}

// TestMemIndexLazy: the writer never indexes (a memtable written without
// reads has no index); after a write-only phase the first Get searches,
// and the Gets after it, finding the memtable idle, index it catchUpNodes
// entries at a time, answering by the search meanwhile, until the index
// covers every entry and finds keys by itself. A write after that is
// indexed by the next Get.
func TestMemIndexLazy(t *testing.T) {
	m := newMemTable(4<<20, 0)
	const n = 3*catchUpNodes + 100
	for i := range n {
		memApply(t, m, fmt.Sprintf("k%06d", i), fmt.Sprint(i), uint64(i+1), false)
	}
	require.Zero(t, m.index.keys, "no read, no index")
	require.Equal(t, m.sl.FirstNode(), m.indexed.Load())
	get := func(k string, seq uint64) string {
		t.Helper()
		v, _, ok := m.get([]byte(k), seq)
		require.True(t, ok, "key %s", k)
		return string(v)
	}
	require.Equal(t, fmt.Sprint(n-1), get(fmt.Sprintf("k%06d", n-1), n))
	require.Zero(t, m.index.keys, "the first Get after writes searches")
	for i := 0; i < 4; i++ {
		require.Equal(t, fmt.Sprint(n-1), get(fmt.Sprintf("k%06d", n-1), n))
		require.Equal(t, min((i+1)*catchUpNodes, n), m.index.keys, "one chunk per read of an idle memtable")
	}
	require.Equal(t, uint32(m.sl.Size()), m.indexed.Load())
	memApply(t, m, "new", "v", n+1, false)
	require.Less(t, m.indexed.Load(), uint32(m.sl.Size()), "the writer does not index")
	require.Equal(t, "v", get("new", n+1))
	require.Equal(t, uint32(m.sl.Size()), m.indexed.Load(), "the next Get does")
	require.NotZero(t, m.index.find([]byte("new"), m.sl))
}

// TestMemIndexRentOrBuy: while the writes outrun the Gets (more than
// catchUpCredit writes a Get), no Get indexes anything; once the Gets
// have paid for the backlog in searches, or the writes slow down, a Get
// indexes it, and after that the Gets keep the index up with the writes.
func TestMemIndexRentOrBuy(t *testing.T) {
	m := newMemTable(8<<20, 0)
	var seq uint64
	write := func(k int) {
		seq++
		memApply(t, m, fmt.Sprintf("k%06d", k), fmt.Sprint(seq), seq, false)
	}
	read := func() {
		t.Helper()
		k := fmt.Sprintf("k%06d", seq-1)
		v, _, ok := m.get([]byte(k), seq)
		require.True(t, ok)
		require.Equal(t, fmt.Sprint(seq), string(v))
	}
	// 100 writes a Get: each Get searches and indexes nothing.
	for g := 0; g < 20; g++ {
		for range 100 {
			write(int(seq))
		}
		read()
		require.Zero(t, m.index.keys, "after %d writes, %d Gets", seq, g+1)
	}
	// 8 writes a Get: the searches' credit (catchUpCredit a Get, 640 from
	// the 20 Gets above) gains 24 a Get on the backlog (2000 entries, 8
	// more a Get), which the g-th Get indexes once it costs no more than
	// the credit and its own search: 2000+8g <= 640+32(g-1)+32, g = 57.
	var bought int
	for g := 1; g <= 200 && bought == 0; g++ {
		for range 8 {
			write(int(seq))
		}
		read()
		if m.indexed.Load() == uint32(m.sl.Size()) {
			bought = g
		}
	}
	require.NotZero(t, bought, "the Gets never indexed the backlog")
	require.Equal(t, 57, bought)
	// From then on each Get indexes the writes before it.
	for range 100 {
		for range 8 {
			write(int(seq))
		}
		read()
		require.Equal(t, uint32(m.sl.Size()), m.indexed.Load())
	}
	require.Equal(t, int(m.sl.Len()), m.index.keys)
}

// TestMemIndexHintAcrossRotation: a memtable the Gets indexed hands its
// key count to its successor, whose first catch-up sizes the index for
// it at once instead of growing through every size.
func TestMemIndexHintAcrossRotation(t *testing.T) {
	opts := smallOptions(vfs.NewMem())
	opts.MemtableSize, opts.DisableWAL = 1<<20, true
	db, err := Open("db", opts)
	require.NoError(t, err)
	defer db.Close()
	const keys = 5000
	for i := range keys {
		k := []byte(fmt.Sprintf("k%06d", i))
		require.NoError(t, db.Set(k, []byte("v"), nil))
		if i%8 == 7 {
			_, err := db.Get(k)
			require.NoError(t, err)
		}
	}
	db.mu.Lock()
	old := db.mem
	db.mu.Unlock()
	require.NoError(t, db.Sync()) // with DisableWAL: rotates and flushes
	require.Equal(t, keys, int(old.indexKeys.Load()), "the Gets kept the index up")
	db.mu.Lock()
	next := db.mem
	db.mu.Unlock()
	require.NotSame(t, old, next)
	require.Equal(t, keys, next.keysHint)
	require.NoError(t, db.Set([]byte("a"), []byte("v"), nil))
	_, err = db.Get([]byte("a"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(next.index.tab.Load().slots), keys*4/3, "sized for the predecessor's keys")
}

// TestMemIndexFindsNewest checks the index itself, not the fallback: it
// names the newest node of a key, and nothing for a key never written.
func TestMemIndexFindsNewest(t *testing.T) {
	m := newMemTable(1<<20, 0)
	memApply(t, m, "a", "1", 1, false)
	memApply(t, m, "b", "2", 2, false)
	memApply(t, m, "a", "3", 3, false)
	memApply(t, m, "b", "", 4, true)
	indexAll(m)
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
	indexAll(m)
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

// fullMemtable returns a default-size memtable filled with
// redis-benchmark-like entries (16-byte keys, 3-byte values), unindexed,
// and the entries' count: key i is benchKey(i*0x5851f42d4c957f2d).
func fullMemtable(b *testing.B) (*memTable, uint64) {
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
	return m, seq
}

// BenchmarkMemtableCatchUp is the cost of indexing one entry of a full
// memtable (ns/op is per entry), to set against a search's
// (BenchmarkMemtableGet's search/present): their ratio is catchUpCredit.
func BenchmarkMemtableCatchUp(b *testing.B) {
	m, _ := fullMemtable(b)
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		fresh := newMemTable(8<<20, 0)
		fresh.sl, fresh.seen = m.sl, m.sl.FirstNode()
		b.StartTimer()
		fresh.indexMu.Lock()
		done += fresh.catchUpLocked(b.N - done)
		fresh.indexMu.Unlock()
	}
}

// BenchmarkMemtableGet is a point lookup in a full default-size memtable of
// redis-benchmark-like entries (16-byte keys, 3-byte values), present and
// absent keys, through the index (as Get) and through the search (as
// before the index).
func BenchmarkMemtableGet(b *testing.B) {
	m, seq := fullMemtable(b)
	indexAll(m)
	var k []byte
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

// TestMemIndexReserve: a memtable's index, sized at its first catch-up
// from its predecessor's keys (keysHint), takes them without growing,
// never past its largest table, and an index that holds keys is not
// resized under its readers.
func TestMemIndexReserve(t *testing.T) {
	m := newMemTable(8<<20, 0)
	m.keysHint = 50000
	var tab *memIndexTable
	for i := range 50000 {
		memApply(t, m, fmt.Sprintf("%08d", i), "v", uint64(i+1), false)
		if i%8 == 0 {
			_, _, ok := m.get([]byte(fmt.Sprintf("%08d", i)), uint64(i+1))
			require.True(t, ok)
		}
		if i == 0 {
			tab = m.index.tab.Load()
			require.GreaterOrEqual(t, len(tab.slots), 50000*4/3, "sized at the first catch-up")
		}
	}
	indexAll(m)
	require.Equal(t, 50000, m.index.keys)
	require.Same(t, tab, m.index.tab.Load(), "a reserved index must not grow")
	m.index.reserve(1 << 30)
	require.Same(t, tab, m.index.tab.Load(), "an index with keys is not resized")

	small := newMemTable(64<<10, 0)
	small.index.reserve(1 << 30)
	require.Equal(t, small.index.maxSlots, len(small.index.tab.Load().slots))
}
