package memory

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkTree verifies the tree's invariants: sorted keys within their
// parents' bounds, every leaf at depth height, node fill, and the counters
// the tree keeps.
func checkTree(t testing.TB, tr *tree) {
	t.Helper()
	if tr.root == nil {
		require.Zero(t, tr.height)
		require.Zero(t, tr.count)
		require.Zero(t, tr.dataBytes)
		require.Zero(t, tr.leaves)
		require.Zero(t, tr.inners)
		return
	}
	var count int
	var data, leaves, inners int64
	var walk func(n *node, depth int, lo, hi []byte, rightmost bool)
	walk = func(n *node, depth int, lo, hi []byte, rightmost bool) {
		require.LessOrEqual(t, n.n, maxItems)
		if n != tr.root {
			require.GreaterOrEqual(t, n.n, 1, "empty non-root node")
			if !rightmost {
				require.GreaterOrEqual(t, n.n, minItems, "underfull node off the rightmost path")
			}
		}
		for i := 0; i < n.n; i++ {
			k := n.items[i].key()
			if i > 0 {
				require.Negative(t, bytes.Compare(n.items[i-1].key(), k), "keys out of order")
			}
			if lo != nil {
				require.Positive(t, bytes.Compare(k, lo))
			}
			if hi != nil {
				require.Negative(t, bytes.Compare(k, hi))
			}
			data += int64(n.items[i].size())
		}
		for i := n.n; i < maxItems; i++ {
			require.Nil(t, n.items[i].p, "slot past n not cleared")
		}
		count += n.n
		if n.leaf() {
			leaves++
			require.Equal(t, tr.height, depth, "leaf at the wrong depth")
			return
		}
		inners++
		for i := 0; i <= n.n; i++ {
			clo, chi := lo, hi
			if i > 0 {
				clo = n.items[i-1].key()
			}
			if i < n.n {
				chi = n.items[i].key()
			}
			require.NotNil(t, n.children[i])
			walk(n.children[i], depth+1, clo, chi, rightmost && i == n.n)
		}
		for i := n.n + 1; i <= maxItems; i++ {
			require.Nil(t, n.children[i], "child slot past n+1 not cleared")
		}
	}
	walk(tr.root, 1, nil, nil, true)
	require.Equal(t, tr.count, count, "count")
	require.Equal(t, tr.dataBytes, data, "dataBytes")
	require.Equal(t, tr.leaves, leaves, "leaves")
	require.Equal(t, tr.inners, inners, "inners")
}

func k(i int) []byte { return fmt.Appendf(nil, "%08d", i) }

func setKV(tr *tree, key, value []byte) { tr.set(makeItem(key, value)) }

// treeKeys lists the keys from a cursor walk, forward.
func treeKeys(root *node) []string {
	var c cursor
	c.init(root)
	var out []string
	for ok := c.first(); ok; ok = c.next() {
		out = append(out, string(c.item().key()))
	}
	return out
}

func TestTreeAscendingFillsNodes(t *testing.T) {
	tr := newTree()
	const n = 20000
	for i := range n {
		setKV(&tr, k(i), []byte("v"))
	}
	checkTree(t, &tr)
	require.Equal(t, n, tr.count)
	// Appends leave every leaf but the last with maxItems-1 items.
	require.LessOrEqual(t, tr.leaves, int64(n/(maxItems-1)+2))
	require.Equal(t, 3, tr.height)
}

func TestTreeDescendingAndRandomInserts(t *testing.T) {
	for _, order := range []string{"descending", "random"} {
		t.Run(order, func(t *testing.T) {
			tr := newTree()
			const n = 20000
			perm := rand.New(rand.NewPCG(1, 1)).Perm(n)
			for i := range n {
				j := n - 1 - i
				if order == "random" {
					j = perm[i]
				}
				setKV(&tr, k(j), k(j))
			}
			checkTree(t, &tr)
			keys := treeKeys(tr.root)
			require.Len(t, keys, n)
			for i, key := range keys {
				require.Equal(t, string(k(i)), key)
			}
		})
	}
}

func TestTreeDeleteRebalances(t *testing.T) {
	for _, order := range []string{"ascending", "descending", "random"} {
		t.Run(order, func(t *testing.T) {
			tr := newTree()
			const n = 10000
			for i := range n {
				setKV(&tr, k(i), []byte("value"))
			}
			perm := rand.New(rand.NewPCG(2, 2)).Perm(n)
			for i := range n {
				j := i
				switch order {
				case "descending":
					j = n - 1 - i
				case "random":
					j = perm[i]
				}
				require.True(t, tr.delete(k(j)))
				require.False(t, tr.delete(k(j)), "second delete of %d", j)
				if i%997 == 0 {
					checkTree(t, &tr)
				}
			}
			checkTree(t, &tr)
			require.Nil(t, tr.root)
			require.NotZero(t, tr.merges)
		})
	}
}

// TestTreeRandomAgainstModel runs random sets, overwrites and deletes over a
// small key space against a map, comparing the whole tree (forward, backward
// and seeks) and checking invariants as it goes.
func TestTreeRandomAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	tr := newTree()
	model := map[string]string{}
	steps := 60000
	if testing.Short() {
		steps = 20000
	}
	for step := range steps {
		key := k(rng.IntN(3000))
		switch r := rng.IntN(10); {
		case r < 6:
			v := fmt.Sprintf("v%d", step)
			setKV(&tr, key, []byte(v))
			model[string(key)] = v
		default:
			_, want := model[string(key)]
			require.Equal(t, want, tr.delete(key))
			delete(model, string(key))
		}
		if step%5000 == 4999 {
			checkTree(t, &tr)
			compareCursor(t, rng, tr.root, model)
		}
	}
}

// compareCursor checks a cursor over root against model: full scans both
// ways, Get, and random seeks followed by steps in both directions.
func compareCursor(t *testing.T, rng *rand.Rand, root *node, model map[string]string) {
	t.Helper()
	want := slices.Sorted(maps.Keys(model))
	var c cursor
	c.init(root)
	var got []string
	for ok := c.first(); ok; ok = c.next() {
		got = append(got, string(c.item().key()))
		require.Equal(t, model[string(c.item().key())], string(c.item().value()))
	}
	require.Equal(t, want, got)
	got = got[:0]
	for ok := c.last(); ok; ok = c.prev() {
		got = append(got, string(c.item().key()))
	}
	slices.Reverse(got)
	require.Equal(t, len(want), len(got))
	require.Equal(t, want, got)

	tr := tree{root: root}
	for range 200 {
		key := string(k(rng.IntN(3100)))
		if rng.IntN(3) == 0 {
			key += "x" // between keys
		}
		it, ok := tr.get([]byte(key))
		v, inModel := model[key]
		require.Equal(t, inModel, ok)
		if ok {
			require.Equal(t, v, string(it.value()))
		}

		i, _ := slices.BinarySearch(want, key) // first >= key
		ok = c.seekGE([]byte(key))
		require.Equal(t, i < len(want), ok, "seekGE %s", key)
		walkFrom(t, rng, &c, want, i)

		ok = c.seekLT([]byte(key))
		require.Equal(t, i > 0, ok, "seekLT %s", key)
		walkFrom(t, rng, &c, want, i-1)
	}
}

// walkFrom takes random steps from position pos in want, checking each.
func walkFrom(t *testing.T, rng *rand.Rand, c *cursor, want []string, pos int) {
	t.Helper()
	if pos < 0 || pos >= len(want) {
		require.False(t, c.valid())
		return
	}
	for range 20 {
		require.Equal(t, want[pos], string(c.item().key()))
		if rng.IntN(2) == 0 {
			pos++
			if !c.next() {
				require.Equal(t, len(want), pos)
				return
			}
		} else {
			pos--
			if !c.prev() {
				require.Equal(t, -1, pos)
				return
			}
		}
	}
}

// TestTreeSnapshotsStayExact takes snapshots of the tree at random points and
// checks, after thousands of later writes, that each still shows exactly the
// state it was taken at.
func TestTreeSnapshotsStayExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	tr := newTree()
	model := map[string]string{}
	type snap struct {
		root  *node
		model map[string]string
	}
	var snaps []snap
	for step := range 30000 {
		key := k(rng.IntN(2000))
		if rng.IntN(4) == 0 {
			tr.delete(key)
			delete(model, string(key))
		} else {
			v := fmt.Sprintf("v%d", step)
			setKV(&tr, key, []byte(v))
			model[string(key)] = v
		}
		if step%3000 == 1500 {
			root, _ := tr.snapshot()
			snaps = append(snaps, snap{root, maps.Clone(model)})
		}
	}
	checkTree(t, &tr)
	require.NotZero(t, tr.copies)
	for _, s := range snaps {
		compareCursor(t, rng, s.root, s.model)
	}
	compareCursor(t, rng, tr.root, model)
}

// TestTreeCopiesOnlyShared checks that a write copies nodes only while a
// snapshot may read them: none without one, at most the path (height
// nodes, plus siblings on a rebalance) for the first write after one, and
// none for a second write to the same leaf.
func TestTreeCopiesOnlyShared(t *testing.T) {
	tr := newTree()
	for i := range 50000 {
		setKV(&tr, k(i*2), []byte("v"))
	}
	require.Zero(t, tr.copies, "copies with no snapshot")
	root, ver := tr.snapshot()
	require.Equal(t, root, tr.root)

	setKV(&tr, k(1001), []byte("x"))
	require.Equal(t, uint64(tr.height), tr.copies, "first write copies the path")
	setKV(&tr, k(1003), []byte("x"))
	require.Equal(t, uint64(tr.height), tr.copies, "second write to the same leaf copies nothing")
	require.False(t, tr.delete(k(7)), "absent key")
	require.Equal(t, uint64(tr.height), tr.copies, "deleting an absent key copies nothing")

	require.Equal(t, 50000, len(treeKeys(root)), "the snapshot's root is unchanged")

	// The snapshot released (as DB.release does), shared nodes are the
	// writer's again: changed in place from now on.
	require.Equal(t, ver, tr.shared)
	tr.shared = 0
	before := tr.copies
	for i := range 50000 {
		setKV(&tr, k(i*2+1), []byte("y"))
	}
	require.Equal(t, before, tr.copies)
	checkTree(t, &tr)
	require.Len(t, treeKeys(tr.root), 100000)
}
