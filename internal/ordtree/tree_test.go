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

// pv is the payload under test: a value, and a pointer to the key's copy
// in the arena for a tree that finds its keys' tails through the payload.
type pv struct {
	key *byte
	v   uint64
}

// view is a snapshot under test with the model's copy taken with it.
type view struct {
	v     View[pv]
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
func compare(t *testing.T, rng *rand.Rand, v View[pv], m model) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(m))
	var it Iter[pv]
	it.Reset(v)
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		require.Less(t, i, len(keys), "more keys than the model")
		require.Equal(t, keys[i], string(it.AppendKey(nil)))
		require.Equal(t, len(keys[i]), it.KeyLen())
		require.Equal(t, m[keys[i]], it.Value().v)
		i++
	}
	require.Equal(t, len(keys), i)
	i = len(keys) - 1
	for ok := it.Last(); ok; ok = it.Prev() {
		require.Equal(t, keys[i], string(it.AppendKey(nil)))
		i--
	}
	require.Equal(t, -1, i)
	// GetBatch answers each key as Get does, in batches of every size up
	// to MaxBatch+1 (the key past MaxBatch is ignored), of present and
	// random keys.
	var batch []string
	for range rng.IntN(MaxBatch + 2) {
		if len(keys) > 0 && rng.IntN(2) == 0 {
			batch = append(batch, keys[rng.IntN(len(keys))])
		} else {
			batch = append(batch, randKey(rng))
		}
	}
	vals := make([]pv, MaxBatch+1)
	found := make([]bool, MaxBatch+1)
	for i := range found {
		vals[i], found[i] = pv{v: 99}, true // GetBatch must overwrite found
	}
	v.GetBatch(batch, vals, found)
	for i, k := range batch {
		if i == MaxBatch {
			require.True(t, found[i], "GetBatch looked past MaxBatch keys")
			break
		}
		want, wok := v.Get(k)
		require.Equal(t, wok, found[i], "GetBatch found(%q)", k)
		if wok {
			require.Equal(t, want, vals[i], "GetBatch(%q)", k)
		}
	}
	for range 30 {
		k := randKey(rng)
		got, ok := v.Get(k)
		want, wok := m[k]
		require.Equal(t, wok, ok, "Get(%q)", k)
		require.Equal(t, want, got.v)
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

// harness is a tree under test beside its model and open views. With an
// arena, the tree takes its keys by SetOwned, each key copied into the
// arena and freed (at once, or retired while a view is open) when it is
// overwritten or deleted, as the memory engine does with its records; freed
// blocks are poisoned, so a view that reads a block freed too early fails
// its comparison, and finish checks that the arena holds exactly the tree's
// nodes and keys once every view is closed.
type harness struct {
	t     *testing.T
	tr    *Tree[pv]
	a     *Arena
	m     model
	views []view
	keys  map[string]unsafe.Pointer // with an arena: each key's copy in it
}

func newHarness(t *testing.T, inArena, keyInVal bool) *harness {
	h := &harness{t: t, tr: New[pv](), m: model{}, keys: map[string]unsafe.Pointer{}}
	old := poisonFreed
	poisonFreed = true
	t.Cleanup(func() { poisonFreed = old })
	if inArena {
		h.a = NewArena()
		t.Cleanup(h.a.Destroy)
		h.tr = NewIn[pv](h.a, keyInVal)
	}
	return h
}

// dropKey frees (or retires) k's copy in the arena.
func (h *harness) dropKey(k string) {
	p, ok := h.keys[k]
	if !ok {
		return
	}
	delete(h.keys, k)
	if len(h.views) == 0 {
		h.a.Free(p, len(k))
	} else {
		h.a.Retire(p, len(k), h.tr.Version())
	}
}

func (h *harness) set(k string, v uint64) {
	var prev pv
	var ok bool
	if h.a == nil {
		buf := []byte(k) // the tree must copy what it keeps
		prev, ok = h.tr.Set(string(buf), pv{v: v})
		clear(buf)
	} else {
		p := h.a.Alloc(len(k))
		copy(unsafe.Slice((*byte)(p), len(k)), k)
		prev, ok = h.tr.SetOwned(unsafe.String((*byte)(p), len(k)), pv{(*byte)(p), v})
		h.dropKey(k)
		h.keys[k] = p
	}
	want, wok := h.m[k]
	require.Equal(h.t, wok, ok, "Set(%q) replaced", k)
	require.Equal(h.t, want, prev.v)
	h.m[k] = v
}

func (h *harness) del(k string) {
	prev, ok := h.tr.Delete(k)
	want, wok := h.m[k]
	require.Equal(h.t, wok, ok, "Delete(%q)", k)
	require.Equal(h.t, want, prev.v)
	delete(h.m, k)
	if h.a != nil {
		h.dropKey(k)
	}
}

func (h *harness) snapshot() {
	v, ver := h.tr.Snapshot()
	h.views = append(h.views, view{v, ver, maps.Clone(h.m)})
}

// release closes view j, as an owner does: the tree may write in place
// again past the newest open view, and the arena frees what no open view
// can read.
func (h *harness) release(j int) {
	h.views = slices.Delete(h.views, j, j+1)
	h.released()
}

func (h *harness) released() {
	oldest, newest := uint64(math.MaxUint64), uint64(0)
	for _, v := range h.views {
		oldest, newest = min(oldest, v.ver), max(newest, v.ver)
	}
	h.tr.SetShared(newest)
	if h.a != nil {
		h.a.Reclaim(oldest)
	}
}

// clear empties the tree.
func (h *harness) clear() {
	h.tr.Clear()
	for k := range h.keys {
		h.dropKey(k)
	}
	clear(h.m)
}

// compareAll checks the tree and every open view against their models.
func (h *harness) compareAll(rng *rand.Rand) {
	v, _ := h.tr.Snapshot()
	compare(h.t, rng, v, h.m)
	h.released() // the check's own view is gone
	for _, v := range h.views {
		compare(h.t, rng, v.v, v.model)
	}
}

// finish closes every view and checks the arena's accounting.
func (h *harness) finish() {
	h.views = nil
	h.released()
	if h.a == nil {
		return
	}
	require.Zero(h.t, h.a.Stats().Retired)
	s := h.tr.Stats()
	want := s.Leaves*int64(roundSize(nodeSize[pv](true))) + s.Inners*int64(roundSize(nodeSize[pv](false))) +
		h.tr.SideBytes()
	for k := range h.keys {
		want += int64(roundSize(max(len(k), 8)))
	}
	require.Equal(h.t, want, h.a.Stats().InUse, "arena bytes in use against the tree's nodes and keys")
}

// run applies random operations to a tree and to a model, taking and
// releasing views on the way, and checks after each step that the tree and
// every open view match their models.
func run(t *testing.T, rng *rand.Rand, steps, keySpace int, inArena, keyInVal bool) {
	h := newHarness(t, inArena, keyInVal)
	pool := make([]string, keySpace)
	for i := range pool {
		pool[i] = randKey(rng)
	}
	for step := range steps {
		k := pool[rng.IntN(len(pool))]
		switch r := rng.IntN(100); {
		case r < 50:
			h.set(k, rng.Uint64())
		case r < 80:
			h.del(k)
		case r < 85:
			ok := h.tr.Update(k, func(v *pv) bool { v.v++; return true })
			_, wok := h.m[k]
			require.Equal(t, wok, ok)
			if wok {
				h.m[k]++
			}
		case r < 90 && len(h.views) < 4:
			h.snapshot()
		case r < 95 && len(h.views) > 0:
			h.release(rng.IntN(len(h.views)))
		case h.a != nil:
			if rng.IntN(8) == 0 {
				h.clear()
			}
		default:
			if len(h.m) > 0 && rng.IntN(4) == 0 {
				// Rebuild everything now and then, so that the bulk-built
				// tree is exercised too.
				keys := slices.Sorted(maps.Keys(h.m))
				old := h.tr
				h.tr = Build(len(keys), func(i int) (string, pv) { return keys[i], pv{v: h.m[keys[i]]} })
				h.tr.cow, h.tr.shared = old.cow, old.shared
			}
		}
		if step%10 == 0 || step == steps-1 {
			require.NoError(t, h.tr.Check(), "step %d", step)
		}
		if step%100 == 0 || step == steps-1 {
			h.compareAll(rng)
		}
	}
	h.finish()
}

func TestTreeAgainstModel(t *testing.T) {
	for _, mode := range []struct{ arena, keyInVal bool }{{false, false}, {true, false}, {true, true}} {
		for _, keySpace := range []int{10, 300, 3000} {
			t.Run(fmt.Sprintf("arena=%v/keyInVal=%v/%d", mode.arena, mode.keyInVal, keySpace), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(keySpace), 1))
				run(t, rng, 3000, keySpace, mode.arena, mode.keyInVal)
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
		n.setItem(nil, 0, item[uint64]{p: ka.prefix, ent: ka.entry(), w: tailWord(ka.tail), tail: tailOf(a)})
		require.Equal(t, bytes.Compare([]byte(a), []byte(b)), n.cmp(0, &kb), "%q vs %q", a, b)
	}
}

func tailOf(k string) *byte {
	if len(k) <= PrefixLen+1 {
		return nil
	}
	return &[]byte(k[PrefixLen:])[0]
}

// TestWideKeysAllocateNoTails checks that a key of up to 25 bytes (kvnode's
// 19-byte key for a 16-byte Redis key: dbgen code, slot, key) is kept whole
// in its node: inserting keys of 18 to 25 bytes allocates nodes and their
// side arrays, a few a thousand keys, not a tail a key, and counts no tail
// bytes; a 26-byte key's tail is still allocated, and counted. Keys share
// their first 17 bytes, so their order is decided by the tail word.
func TestWideKeysAllocateNoTails(t *testing.T) {
	for _, klen := range []int{18, 19, 25} {
		const n = 10000
		keys := make([]string, n)
		for i, p := range rand.New(rand.NewPCG(5, uint64(klen))).Perm(n) {
			keys[i] = fmt.Sprintf("%017d%0*d", 0, klen-17, p)
		}
		var tr *Tree[uint64]
		allocs := testing.AllocsPerRun(1, func() {
			tr = New[uint64]()
			for i, k := range keys {
				tr.Set(k, uint64(i))
			}
		})
		s := tr.Stats()
		require.Less(t, allocs, float64(n/20), "allocations inserting %d keys of %d bytes", n, klen)
		require.Zero(t, s.TailBytes, "tail bytes of %d-byte keys", klen)
		require.Equal(t, int64(TailsSize)*tr.TailedNodes(), tr.SideBytes())
		require.NoError(t, tr.Check())
		for i, k := range keys {
			v, ok := tr.Get(k)
			require.True(t, ok)
			require.Equal(t, uint64(i), v)
		}
	}
	tr := New[uint64]()
	tr.Set(fmt.Sprintf("%026d", 1), 1)
	require.Equal(t, int64(10), tr.Stats().TailBytes)
	require.Equal(t, int64(TailsSize+longSize), tr.SideBytes())
	require.NoError(t, tr.Check())
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

// TestRandomInsertsFillLeaves checks that random inserts leave leaves over
// 80% full on average (spill), where splitting alone leaves about 70%.
func TestRandomInsertsFillLeaves(t *testing.T) {
	tr := New[uint64]()
	const n = 50000
	rng := rand.New(rand.NewPCG(4, 4))
	for _, i := range rng.Perm(n) {
		tr.Set(fmt.Sprintf("%017d", i*7919%1000003), uint64(i))
	}
	require.NoError(t, tr.Check())
	fill := float64(n-int(tr.Stats().Inners)*MaxItems) / float64(tr.Stats().Leaves*MaxItems)
	require.Greater(t, fill, 0.8, "leaf fill after random inserts")
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

// FuzzTree drives the model test from fuzzed bytes: the first byte picks
// the tree (on the heap, in an arena, in an arena with keys found through
// the payload), then each 3 bytes are an operation, a key and a value.
func FuzzTree(f *testing.F) {
	f.Add([]byte("\x00\x00a\x01\x01a\x02\x02a\x00"))
	f.Add(append([]byte{1}, bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8}, 200)...))
	f.Add(append([]byte{2}, bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 200}, 100)...))
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) == 0 {
			return
		}
		mode := ops[0] % 3
		h := newHarness(t, mode > 0, mode == 2)
		ops = ops[1:]
		keyOf := func(b byte) string {
			return fmt.Sprintf("%0*d", 10+int(b%20), b) // lengths 10..29: around the prefix and the tail word
		}
		for len(ops) >= 3 {
			op, k, v := ops[0], keyOf(ops[1]), uint64(ops[2])
			ops = ops[3:]
			switch op % 6 {
			case 0, 1:
				h.set(k, v)
			case 2:
				h.del(k)
			case 3:
				h.snapshot()
			case 4:
				if len(h.views) > 0 {
					h.release(int(v) % len(h.views))
				}
			case 5:
				if v == 0 && h.a != nil {
					h.clear()
				}
			}
			if err := h.tr.Check(); err != nil {
				t.Fatal(err)
			}
		}
		h.compareAll(rand.New(rand.NewPCG(1, 1)))
		h.finish()
	})
}
