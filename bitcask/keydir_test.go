package bitcask

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// treeModel is what a tree should hold: key -> off.
type treeModel map[string]uint32

func (m treeModel) keys() []string { return slices.Sorted(maps.Keys(m)) }

// checkTree walks t forward and backward and probes it, against m.
func checkTree(t *testing.T, tr *tree, m treeModel, rng *rand.Rand) {
	t.Helper()
	keys := m.keys()
	require.Equal(t, len(keys), tr.length)
	it := treeIter{t: tr}
	var got []string
	for ok := it.first(); ok; ok = it.next() {
		e := it.cur()
		require.Equal(t, m[e.key], e.off, "value of %q", e.key)
		got = append(got, e.key)
	}
	require.Equal(t, keys, append([]string(nil), got...))
	got = got[:0]
	for ok := it.last(); ok; ok = it.prev() {
		got = append(got, it.cur().key)
	}
	slices.Reverse(got)
	require.Equal(t, keys, append([]string(nil), got...))
	for range 20 {
		probe := fmt.Sprintf("k%04d", rng.IntN(1200))
		i, _ := slices.BinarySearch(keys, probe)
		if it.seekGE(probe) {
			require.Less(t, i, len(keys))
			require.Equal(t, keys[i], it.cur().key, "seekGE(%q)", probe)
			// Change direction mid-walk.
			if it.prev() {
				require.Equal(t, keys[i-1], it.cur().key)
				require.True(t, it.next())
				require.Equal(t, keys[i], it.cur().key)
			} else {
				require.Equal(t, 0, i)
			}
		} else {
			require.Equal(t, len(keys), i, "seekGE(%q)", probe)
		}
		if it.seekLT(probe) {
			require.Equal(t, keys[i-1], it.cur().key, "seekLT(%q)", probe)
		} else {
			require.Equal(t, 0, i, "seekLT(%q)", probe)
		}
		_, found := m[probe]
		e, ok := tr.get(probe)
		require.Equal(t, found, ok)
		if ok {
			require.Equal(t, m[probe], e.off)
		}
	}
}

// TestTreeModel drives the copy-on-write B-tree with random sets and
// deletes against a map, taking clones along the way and checking that
// each clone keeps the state it was taken at while the original moves on.
func TestTreeModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			tr, m := newTree(), treeModel{}
			type frozen struct {
				tr *tree
				m  treeModel
			}
			var clones []frozen
			steps := 20000
			if testing.Short() || raceEnabled {
				steps = 6000
			}
			for step := range steps {
				k := fmt.Sprintf("k%04d", rng.IntN(1200))
				if rng.IntN(3) == 0 {
					prev, had := tr.delete(k)
					_, want := m[k]
					require.Equal(t, want, had, "delete %q", k)
					if had {
						require.Equal(t, m[k], prev.off)
					}
					delete(m, k)
				} else {
					off := uint32(step)
					prev, had := tr.set(entry{key: k, off: off})
					old, want := m[k]
					require.Equal(t, want, had, "set %q", k)
					if had {
						require.Equal(t, old, prev.off)
					}
					m[k] = off
				}
				if step%997 == 0 {
					clones = append(clones, frozen{tr.clone(), maps.Clone(m)})
				}
				if step%1999 == 0 {
					checkTree(t, tr, m, rng)
					for _, c := range clones {
						checkTree(t, c.tr, c.m, rng)
					}
				}
			}
			checkTree(t, tr, m, rng)
			for _, c := range clones {
				checkTree(t, c.tr, c.m, rng)
			}
			// Delete everything: the tree shrinks back to nothing.
			for _, k := range m.keys() {
				_, ok := tr.delete(k)
				require.True(t, ok)
			}
			require.Nil(t, tr.root)
			require.Zero(t, tr.keyBytes)
		})
	}
}

func TestBulkTree(t *testing.T) {
	sizes := []int{0, 1, 62, 63, 64, 127, 128, 4095, 4096, 4097, 100000}
	if raceEnabled {
		sizes = sizes[:len(sizes)-1]
	}
	for _, n := range sizes {
		es := make([]entry, n)
		m := treeModel{}
		for i := range es {
			es[i] = entry{key: fmt.Sprintf("k%08d", i), off: uint32(i)}
			m[es[i].key] = uint32(i)
		}
		tr := bulkTree(es)
		checkTree(t, tr, m, rand.New(rand.NewPCG(uint64(n), 1)))
		// Every non-root node holds at least minItems: the tree is valid
		// for deletes.
		var walk func(nd *node, root bool)
		walk = func(nd *node, root bool) {
			if !root {
				require.GreaterOrEqual(t, nd.n, minItems, "n=%d", n)
			}
			if !nd.leaf() {
				for i := 0; i <= nd.n; i++ {
					walk(nd.children[i], false)
				}
			}
		}
		if tr.root != nil {
			walk(tr.root, true)
		}
		for i := 0; i < n; i += 3 {
			_, ok := tr.delete(es[i].key)
			require.True(t, ok)
			delete(m, es[i].key)
		}
		checkTree(t, tr, m, rand.New(rand.NewPCG(uint64(n), 2)))
	}
}
