package ordtree

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// model is the reference: a plain map, sorted when compared.
type model map[string]uint64

// view is a snapshot under test with the model's copy taken with it.
type view struct {
	v     View[uint64]
	ver   uint64
	model model
}

// randKey draws keys around the 16-byte prefix boundary, with shared
// prefixes, so that ties on the inline prefix and tail comparisons happen.
func randKey(rng *rand.Rand) string {
	bases := []string{"", "a", "key0000000000000", "key00000000000000", "\x00\x00", "zzzzzzzzzzzzzzzzzz"}
	b := []byte(bases[rng.IntN(len(bases))])
	for range rng.IntN(20) {
		b = append(b, "\x00ab\xff"[rng.IntN(4)])
	}
	if len(b) == 0 {
		b = append(b, 'k')
	}
	return string(b)
}

// compare checks the tree (or a view) against m: Get of every key and of
// absent ones, and full scans in both directions, and seeks.
func compare(t *testing.T, rng *rand.Rand, v View[uint64], m model) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(m))
	var it Iter[uint64]
	it.Reset(v)
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		require.Less(t, i, len(keys), "more keys than the model")
		require.Equal(t, keys[i], string(it.AppendKey(nil)))
		require.Equal(t, len(keys[i]), it.KeyLen())
		require.Equal(t, m[keys[i]], *it.Value())
		i++
	}
	require.Equal(t, len(keys), i)
	i = len(keys) - 1
	for ok := it.Last(); ok; ok = it.Prev() {
		require.Equal(t, keys[i], string(it.AppendKey(nil)))
		i--
	}
	require.Equal(t, -1, i)
	for range 30 {
		k := randKey(rng)
		got, ok := v.Get(k)
		want, wok := m[k]
		require.Equal(t, wok, ok, "Get(%q)", k)
		require.Equal(t, want, got)
		j, _ := slices.BinarySearch(keys, k)
		if it.SeekGE(k) {
			require.Less(t, j, len(keys))
			require.Equal(t, keys[j], string(it.AppendKey(nil)), "SeekGE(%q)", k)
		} else {
			require.Equal(t, len(keys), j, "SeekGE(%q)", k)
		}
		if it.SeekLT(k) {
			require.Positive(t, j)
			require.Equal(t, keys[j-1], string(it.AppendKey(nil)), "SeekLT(%q)", k)
		} else {
			require.Zero(t, j, "SeekLT(%q)", k)
		}
	}
}

// run applies random operations to a tree and to a model, taking and
// releasing views on the way, and checks after each step that the tree and
// every open view match their models.
//
// With inArena, the tree lives in an Arena and takes its keys by SetOwned,
// each key copied into the arena and freed (at once, or retired while a view
// is open) when it is overwritten or deleted, as the memory engine does with
// its records; freed blocks are poisoned, so a view that reads a block freed
// too early fails its comparison, and at the end, with every view closed,
// the arena must hold exactly the tree's nodes and keys.
func run(t *testing.T, rng *rand.Rand, steps, keySpace int, inArena bool) {
	defer func(p bool) { poisonFreed = p }(poisonFreed)
	poisonFreed = true
	tr := New[uint64]()
	var a *Arena
	if inArena {
		a = NewArena()
		defer a.Destroy()
		tr = NewIn[uint64](a)
	}
	m := model{}
	var views []view
	keys := map[string]unsafe.Pointer{} // in the arena: each key's copy
	dropKey := func(k string) {
		p, ok := keys[k]
		if !ok {
			return
		}
		delete(keys, k)
		if len(views) == 0 {
			a.Free(p, len(k))
		} else {
			a.Retire(p, len(k), tr.Version())
		}
	}
	set := func(k string, v uint64) (uint64, bool) {
		if a == nil {
			buf := []byte(k) // the tree must copy what it keeps
			defer clear(buf)
			return tr.Set(string(buf), v)
		}
		p := a.Alloc(len(k))
		copy(unsafe.Slice((*byte)(p), len(k)), k)
		prev, ok := tr.SetOwned(unsafe.String((*byte)(p), len(k)), v)
		dropKey(k)
		keys[k] = p
		return prev, ok
	}
	released := func() {
		oldest, newest := uint64(math.MaxUint64), uint64(0)
		for _, v := range views {
			oldest, newest = min(oldest, v.ver), max(newest, v.ver)
		}
		tr.SetShared(newest)
		if a != nil {
			a.Reclaim(oldest)
		}
	}
	pool := make([]string, keySpace)
	for i := range pool {
		pool[i] = randKey(rng)
	}
	for step := range steps {
		k := pool[rng.IntN(len(pool))]
		switch r := rng.IntN(100); {
		case r < 50:
			v := rng.Uint64()
			prev, ok := set(k, v)
			want, wok := m[k]
			require.Equal(t, wok, ok)
			require.Equal(t, want, prev)
			m[k] = v
		case r < 80:
			prev, ok := tr.Delete(k)
			want, wok := m[k]
			require.Equal(t, wok, ok)
			require.Equal(t, want, prev)
			delete(m, k)
			if a != nil {
				dropKey(k)
			}
		case r < 85:
			ok := tr.Update(k, func(v *uint64) bool { *v++; return true })
			_, wok := m[k]
			require.Equal(t, wok, ok)
			if wok {
				m[k]++
			}
		case r < 90 && len(views) < 4:
			v, ver := tr.Snapshot()
			views = append(views, view{v, ver, maps.Clone(m)})
		case r < 95 && len(views) > 0:
			j := rng.IntN(len(views))
			views = slices.Delete(views, j, j+1)
			released()
		case a != nil:
			if rng.IntN(8) == 0 {
				tr.Clear()
				for k := range keys {
					dropKey(k)
				}
				clear(m)
			}
		default:
			if len(m) > 0 && rng.IntN(4) == 0 {
				// Drop or rebuild everything now and then, so both the
				// empty and the bulk-built tree are exercised.
				keys := slices.Sorted(maps.Keys(m))
				old := tr
				tr = Build(len(keys), func(i int) (string, uint64) { return keys[i], m[keys[i]] })
				tr.cow, tr.shared = old.cow, old.shared
			}
		}
		if step%10 == 0 || step == steps-1 {
			require.NoError(t, tr.Check(), "step %d", step)
		}
		if step%100 == 0 || step == steps-1 {
			v, _ := tr.Snapshot()
			compare(t, rng, v, m)
			released() // the check's own view is gone
			for _, v := range views {
				compare(t, rng, v.v, v.model)
			}
		}
	}
	if a == nil {
		return
	}
	views = nil
	released()
	require.Zero(t, a.Stats().Retired)
	s := tr.Stats()
	want := s.Leaves*int64(roundSize(nodeSize[uint64](true))) + s.Inners*int64(roundSize(nodeSize[uint64](false))) +
		tr.TailedNodes()*int64(tailsSize)
	for k := range keys {
		want += int64(roundSize(max(len(k), 8)))
	}
	require.Equal(t, want, a.Stats().InUse, "arena bytes in use against the tree's nodes and keys")
}

func TestTreeAgainstModel(t *testing.T) {
	for _, inArena := range []bool{false, true} {
		for _, keySpace := range []int{10, 300, 3000} {
			t.Run(fmt.Sprintf("arena=%v/%d", inArena, keySpace), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(keySpace), 1))
				run(t, rng, 3000, keySpace, inArena)
			})
		}
	}
}

// TestTreeOrderMatchesBytes checks the prefix order against bytes.Compare
// on keys built to tie on their inline 16 bytes.
func TestTreeOrderMatchesBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for range 20000 {
		a, b := randKey(rng), randKey(rng)
		ka, kb := makeSKey(a), makeSKey(b)
		n := &Node[uint64]{n: 1}
		n.setItem(nil, 0, item[uint64]{p: ka.prefix, klen: ka.klen, tail: tailOf(a)})
		require.Equal(t, bytes.Compare([]byte(a), []byte(b)), n.cmp(0, &kb), "%q vs %q", a, b)
	}
}

func tailOf(k string) *byte {
	if len(k) <= PrefixLen {
		return nil
	}
	return &[]byte(k[PrefixLen:])[0]
}

// TestTreeWritesInPlaceWithoutViews checks that a write copies nodes only
// while an open view shares them, and each such node only once.
func TestTreeWritesInPlaceWithoutViews(t *testing.T) {
	tr := New[uint64]()
	key := func(i int) string { return fmt.Sprintf("%020d", i) }
	for i := range 20000 {
		tr.Set(key(i), 1)
	}
	require.Zero(t, tr.Stats().Copies)
	v, ver := tr.Snapshot()
	for i := range 20000 {
		tr.Set(key(i), 2)
	}
	s := tr.Stats()
	require.Positive(t, s.Copies)
	require.LessOrEqual(t, int64(s.Copies), s.Leaves+s.Inners)
	got, _ := v.Get(key(5))
	require.Equal(t, uint64(1), got, "the view changed under a write")
	require.Equal(t, ver, tr.Shared())
	tr.SetShared(0)
	for i := range 20000 {
		tr.Set(key(i), 3)
	}
	require.Equal(t, s.Copies, tr.Stats().Copies, "copies with no view open")
	require.NoError(t, tr.Check())
}

// TestAscendingFillsNodes checks that keys set in ascending order leave
// nodes full, and that the tree stays valid when deletes then empty it.
func TestAscendingFillsNodes(t *testing.T) {
	tr := New[uint64]()
	const n = 20000
	key := func(i int) string { return fmt.Sprintf("%018d", i) }
	for i := range n {
		tr.Set(key(i), uint64(i))
	}
	require.NoError(t, tr.Check())
	require.LessOrEqual(t, tr.Stats().Leaves, int64(n/(MaxItems-2)+1), "leaves after ascending inserts")
	rng := rand.New(rand.NewPCG(3, 3))
	for _, i := range rng.Perm(n) {
		_, ok := tr.Delete(key(i))
		require.True(t, ok)
		if i%500 == 0 {
			require.NoError(t, tr.Check())
		}
	}
	require.NoError(t, tr.Check())
	require.Zero(t, tr.Len())
}

// TestBuildPacksNodes checks that a bulk-built tree is valid and nearly full.
func TestBuildPacksNodes(t *testing.T) {
	for _, n := range []int{0, 1, 31, 63, 64, 127, 4096, 30000} {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("%024d", i)
		}
		tr := Build(n, func(i int) (string, uint64) { return keys[i], uint64(i) })
		require.NoError(t, tr.Check(), "n=%d", n)
		require.Equal(t, n, tr.Len())
		if n > 0 {
			s := tr.Stats()
			require.LessOrEqual(t, s.Leaves, int64(n/MaxItems+1), "n=%d", n)
			got, ok := tr.Get(keys[n-1])
			require.True(t, ok)
			require.Equal(t, uint64(n-1), got)
		}
	}
}

// FuzzTree drives the model test from fuzzed bytes: each 3 bytes are an
// operation, a key and a value.
func FuzzTree(f *testing.F) {
	f.Add([]byte("\x00a\x01\x01a\x02\x02a\x00"))
	f.Add(bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8}, 200))
	f.Fuzz(func(t *testing.T, ops []byte) {
		tr := New[uint64]()
		m := model{}
		var views []view
		keyOf := func(b byte) string {
			return fmt.Sprintf("%0*d", 10+int(b%12), b) // lengths 10..21 around the prefix
		}
		for len(ops) >= 3 {
			op, k, v := ops[0], keyOf(ops[1]), uint64(ops[2])
			ops = ops[3:]
			switch op % 5 {
			case 0, 1:
				tr.Set(k, v)
				m[k] = v
			case 2:
				tr.Delete(k)
				delete(m, k)
			case 3:
				sv, ver := tr.Snapshot()
				views = append(views, view{sv, ver, maps.Clone(m)})
			case 4:
				if len(views) > 0 {
					views = views[1:]
					var newest uint64
					for _, v := range views {
						newest = max(newest, v.ver)
					}
					tr.SetShared(newest)
				}
			}
			if err := tr.Check(); err != nil {
				t.Fatal(err)
			}
		}
		rng := rand.New(rand.NewPCG(1, 1))
		v, _ := tr.Snapshot()
		compare(t, rng, v, m)
		for _, v := range views {
			compare(t, rng, v.v, v.model)
		}
	})
}
