package skiplist

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/stretchr/testify/require"
)

// checkStructure checks every level of s: sorted, and holding exactly the
// level-0 nodes tall enough for it, in the same order. It returns the
// keys in order.
func checkStructure(t testing.TB, s *Skiplist) [][]byte {
	t.Helper()
	var all []uint32
	for x := s.next(s.head, 0); x != 0; x = s.next(x, 0) {
		all = append(all, x)
	}
	for l := 0; l < MaxHeight; l++ {
		var want []uint32
		for _, x := range all {
			if int(binary.LittleEndian.Uint32(s.buf[x+8:])) > l {
				want = append(want, x)
			}
		}
		var got []uint32
		for x := s.next(s.head, l); x != 0; x = s.next(x, l) {
			if n := len(got); n > 0 && base.Compare(s.nodeKey(got[n-1]), s.nodeKey(x)) >= 0 {
				t.Fatalf("level %d out of order: %s then %s", l, base.Format(s.nodeKey(got[n-1])), base.Format(s.nodeKey(x)))
			}
			got = append(got, x)
			if len(got) > len(all) {
				t.Fatalf("level %d: a cycle", l)
			}
		}
		if !slices.Equal(want, got) {
			t.Fatalf("level %d holds %d nodes, %d are that tall", l, len(got), len(want))
		}
	}
	keys := make([][]byte, len(all))
	for i, x := range all {
		keys[i] = s.nodeKey(x)
	}
	return keys
}

// batchOrders are the key orders a batch is given in.
var batchOrders = []string{"random", "sorted", "reverse", "versions", "adjacent"}

// makeBatch returns n distinct internal keys for one AddBatch in the given
// order, with sequence numbers from *seq on, drawn from a keyspace of
// space user keys.
func makeBatch(rng *rand.Rand, order string, n, space int, seq *uint64) [][]byte {
	keys := make([][]byte, 0, n)
	uk := func(i int) string { return fmt.Sprintf("k%06d", i) }
	switch order {
	case "versions": // a few user keys, each several versions in one batch
		for range n {
			*seq++
			keys = append(keys, ikey(uk(rng.IntN(3)), *seq, base.Kind(rng.IntN(2))))
		}
	case "adjacent": // consecutive user keys, shuffled
		start := rng.IntN(space)
		for i := range n {
			*seq++
			keys = append(keys, ikey(uk(start+i), *seq, base.KindSet))
		}
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	default:
		for range n {
			*seq++
			keys = append(keys, ikey(uk(rng.IntN(space)), *seq, base.KindSet))
		}
		switch order {
		case "sorted":
			slices.SortFunc(keys, base.Compare)
		case "reverse":
			slices.SortFunc(keys, func(a, b []byte) int { return base.Compare(b, a) })
		}
	}
	return keys
}

// TestAddBatchModel adds batches of every order and size (single Adds
// between them, which take the sequential hint when they can) and checks
// every level's links, the order, Get and SeekGE against a sorted slice.
func TestAddBatchModel(t *testing.T) {
	for _, order := range batchOrders {
		t.Run(order, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(len(order))))
			s := New(8 << 20)
			var model [][]byte
			seq := uint64(0)
			for round := 0; round < 300; round++ {
				n := 1 + rng.IntN(3*MaxBatch)
				keys := makeBatch(rng, order, n, 5000, &seq)
				values := make([][]byte, len(keys))
				for i, k := range keys {
					values[i] = fmt.Append(nil, base.Seq(k))
				}
				added, err := s.AddBatch(keys, values)
				require.NoError(t, err)
				require.Equal(t, len(keys), added)
				model = append(model, keys...)
				if rng.IntN(4) == 0 { // a run of single adds after the batch
					start := rng.IntN(5000)
					for i := range rng.IntN(5) {
						seq++
						k := ikey(fmt.Sprintf("k%06d", start+i), seq, base.KindSet)
						require.NoError(t, s.Add(k, fmt.Append(nil, seq)))
						model = append(model, k)
					}
				}
			}
			slices.SortFunc(model, base.Compare)
			require.Equal(t, model, checkStructure(t, s))
			require.EqualValues(t, len(model), s.Len())
			it := s.NewIter()
			for _, k := range model {
				require.True(t, it.SeekGE(k))
				require.Equal(t, k, it.Key())
				require.Equal(t, fmt.Sprint(base.Seq(k)), string(it.Value()))
				v, kind, ok := s.Get(base.UserKey(k), base.Seq(k))
				require.True(t, ok)
				require.Equal(t, base.KindOf(k), kind)
				require.Equal(t, fmt.Sprint(base.Seq(k)), string(v))
			}
			// Size covers whole nodes only: walking the arena visits them all.
			require.Equal(t, len(model), arenaNodes(s))
		})
	}
}

// TestAddBatchFull fills arenas by batches: AddBatch reports how many
// keys it added before ErrFull, those are all in the list, and the list
// stays whole. Len and Size count the keys the run that filled the arena
// inserted before ErrFull, and only them: the arena walk up to Size finds
// as many nodes. Of the arenas, some must fill in the middle of a run
// (after its first key), where that run's count and size are published
// along with ErrFull.
func TestAddBatchFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	midRun := 0
	for range 20 {
		s := New(64 << 10)
		var model [][]byte
		seq := uint64(0)
		for {
			keys := makeBatch(rng, "random", 1+rng.IntN(40), 1<<20, &seq)
			values := make([][]byte, len(keys))
			for i := range values {
				values[i] = make([]byte, 40)
			}
			added, err := s.AddBatch(keys, values)
			model = append(model, keys[:added]...)
			if err != nil {
				require.ErrorIs(t, err, ErrFull)
				require.Less(t, added, len(keys))
				if added%MaxBatch != 0 {
					midRun++
				}
				break
			}
			require.Equal(t, len(keys), added)
		}
		slices.SortFunc(model, base.Compare)
		require.Equal(t, model, checkStructure(t, s))
		require.LessOrEqual(t, s.Size(), s.Capacity())
		require.EqualValues(t, len(model), s.Len())
		require.Equal(t, len(model), arenaNodes(s))
	}
	require.Greater(t, midRun, 0)
}

// arenaNodes walks s's arena from FirstNode up to Size and returns how
// many nodes it met.
func arenaNodes(s *Skiplist) int {
	nodes := 0
	for nd := s.FirstNode(); nd < uint32(s.Size()); nd = s.NodeEnd(nd) {
		nodes++
	}
	return nodes
}

// TestAddBatchConcurrentReaders runs readers while batches are added (run it
// with -race): an iteration is sorted and sees every entry published before
// it began, and a Get at the published sequence number sees the newest
// version at or below it, never a newer one.
func TestAddBatchConcurrentReaders(t *testing.T) {
	s := New(16 << 20)
	const keys = 64
	var published atomic.Uint64 // every batch up to this seq is in
	read := func() string {
		seq := published.Load()
		if msg := scanSorted(s); msg != "" {
			return msg
		}
		// Every key is written at every seq (see below).
		k := fmt.Sprintf("key%03d", int(seq)%keys)
		if v, _, ok := s.Get([]byte(k), seq); seq > 0 && (!ok || string(v) != fmt.Sprint(seq)) {
			return fmt.Sprintf("Get(%s, %d) = %q, %v", k, seq, v, ok)
		}
		return ""
	}
	rng := rand.New(rand.NewPCG(3, 4))
	whileReading(t, 3, read, func() {
		for seq := uint64(1); seq <= 2000; seq++ {
			// Every key at this seq, in batches of random sizes and orders.
			perm := rng.Perm(keys)
			for len(perm) > 0 {
				n := min(1+rng.IntN(2*MaxBatch), len(perm))
				var ks, vs [][]byte
				for _, k := range perm[:n] {
					ks = append(ks, ikey(fmt.Sprintf("key%03d", k), seq, base.KindSet))
					vs = append(vs, fmt.Append(nil, seq))
				}
				perm = perm[n:]
				if _, err := s.AddBatch(ks, vs); err != nil {
					t.Error(err)
					return
				}
			}
			published.Store(seq)
		}
	})
	checkStructure(t, s)
}

// FuzzAddBatch reads batches from the input: each byte a key (its low 7
// bits a user key, its top bit whether the batch ends after it), every key
// at a new sequence number; some batches go through Add one by one. The
// list must match a sorted slice of everything added, at every level. The
// arena is sized from the input, so that it holds every key (12 bytes, no
// value) however long the input.
func FuzzAddBatch(f *testing.F) {
	f.Add([]byte{1, 2, 3, 0x84, 9, 8, 7, 0x86})
	f.Add([]byte{5, 5, 5, 5, 0x85, 1, 0x81})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := New(1024 + len(data)*(MaxNodeOverhead+len("u000")+base.TrailerSize))
		var model, ks, vs [][]byte
		seq := uint64(0)
		for i, c := range data {
			seq++
			k := ikey(fmt.Sprintf("u%03d", c&0x7f), seq, base.KindSet)
			ks, vs = append(ks, k), append(vs, nil)
			if c&0x80 == 0 && i < len(data)-1 {
				continue
			}
			if len(ks)%5 == 1 {
				for _, k := range ks {
					require.NoError(t, s.Add(k, nil))
				}
			} else {
				added, err := s.AddBatch(ks, vs)
				require.NoError(t, err)
				require.Equal(t, len(ks), added)
			}
			model = append(model, ks...)
			ks, vs = ks[:0:0], vs[:0:0]
		}
		slices.SortFunc(model, base.Compare)
		got := checkStructure(t, s)
		if len(model) == 0 {
			require.Empty(t, got)
			return
		}
		require.Equal(t, model, got)
	})
}

// TestAddBatchThenHint: a single Add, a batch of keys just below it, then a
// single Add just above it, which the sequential hint would place from
// predecessors that the batch's taller nodes made stale.
func TestAddBatchThenHint(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	s := New(8 << 20)
	var model [][]byte
	seq := uint64(0)
	add := func(k string) {
		seq++
		ik := ikey(k, seq, base.KindSet)
		require.NoError(t, s.Add(ik, nil))
		model = append(model, ik)
	}
	for r := range 500 {
		add(fmt.Sprintf("r%05d/50", r))
		var ks, vs [][]byte
		for _, j := range rng.Perm(49)[:MaxBatch] {
			seq++
			ks, vs = append(ks, ikey(fmt.Sprintf("r%05d/%02d", r, j), seq, base.KindSet)), append(vs, nil)
		}
		_, err := s.AddBatch(ks, vs)
		require.NoError(t, err)
		model = append(model, ks...)
		add(fmt.Sprintf("r%05d/51", r))
	}
	slices.SortFunc(model, base.Compare)
	require.Equal(t, model, checkStructure(t, s))
}

// TestAddBatchShortKey: a key shorter than its trailer fails the whole
// batch before anything is inserted.
func TestAddBatchShortKey(t *testing.T) {
	s := New(1 << 20)
	ks := [][]byte{ikey("a", 1, base.KindSet), ikey("b", 2, base.KindSet), []byte("short")}
	for len(ks) < 2*MaxBatch {
		ks = append([][]byte{ikey(fmt.Sprintf("c%02d", len(ks)), uint64(len(ks)+3), base.KindSet)}, ks...)
	}
	added, err := s.AddBatch(ks, make([][]byte, len(ks)))
	require.Error(t, err)
	require.Zero(t, added)
	require.True(t, s.Empty())
	require.Empty(t, checkStructure(t, s))
}

// TestAddBatchLinkOrder checks, after every store of a link in linkBatch
// (the linkStored hook), what a concurrent reader could see there: level 0
// sorted and holding at least Len() nodes (every entry counted before the
// batch), every level sorted, and every node reachable at a level
// reachable at the level below. Linking a node top-down, or pointing its
// predecessor at it before setting its own next, fails it.
func TestAddBatchLinkOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	s := New(8 << 20)
	stores := 0
	check := func() {
		stores++
		var below map[uint32]bool
		for l := 0; l < MaxHeight; l++ {
			at := map[uint32]bool{}
			var prev uint32
			for x := s.next(s.head, l); x != 0; x = s.next(x, l) {
				if prev != 0 && base.Compare(s.nodeKey(prev), s.nodeKey(x)) >= 0 {
					t.Fatalf("store %d: level %d out of order: %s then %s", stores, l, base.Format(s.nodeKey(prev)), base.Format(s.nodeKey(x)))
				}
				if l > 0 && !below[x] {
					t.Fatalf("store %d: %s reachable at level %d, not at %d", stores, base.Format(s.nodeKey(x)), l, l-1)
				}
				if at[x] {
					t.Fatalf("store %d: level %d: a cycle", stores, l)
				}
				at[x], prev = true, x
			}
			if l == 0 && int64(len(at)) < s.Len() {
				t.Fatalf("store %d: level 0 holds %d nodes, Len() is %d", stores, len(at), s.Len())
			}
			below = at
		}
	}
	linkStored = check
	t.Cleanup(func() { linkStored = func() {} })
	var model [][]byte
	seq := uint64(0)
	for round := 0; round < 60; round++ {
		order := batchOrders[rng.IntN(len(batchOrders))]
		keys := makeBatch(rng, order, 1+rng.IntN(2*MaxBatch), 1000, &seq)
		added, err := s.AddBatch(keys, make([][]byte, len(keys)))
		require.NoError(t, err)
		require.Equal(t, len(keys), added)
		model = append(model, keys...)
	}
	slices.SortFunc(model, base.Compare)
	require.Equal(t, model, checkStructure(t, s))
	require.Greater(t, stores, 2*len(model)) // some nodes are taller than one level
}
