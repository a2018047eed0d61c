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

// keyGen returns a random key; the model tests draw from a limited set so
// that sets hit existing keys and deletes find them.
type keyGen func(rng *rand.Rand) string

// shortKeys are 5-byte keys, as in "k0042".
func shortKeys(rng *rand.Rand) string { return fmt.Sprintf("k%04d", rng.IntN(1200)) }

// edgeKeys are keys that stress the inline 16-byte prefix: they contain 0x00
// bytes (which look like the prefix's zero padding), share whole 16-byte
// prefixes, and are shorter than, exactly, and longer than 16 bytes.
func edgeKeys(rng *rand.Rand) string {
	bases := []string{
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
		"0000000000000000",
		"00000000000000\x00\x00",
		"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
	}
	alphabet := "\x00\x01\xff"
	b := []byte(bases[rng.IntN(len(bases))])
	if rng.IntN(2) == 0 {
		b = b[:rng.IntN(17)] // at most 16 bytes
	}
	for range rng.IntN(4) {
		b = append(b, alphabet[rng.IntN(len(alphabet))])
	}
	return string(b)
}

// checkTree walks t forward and backward and probes it, against m.
func checkTree(t *testing.T, tr *tree, m treeModel, rng *rand.Rand, gen keyGen) {
	t.Helper()
	keys := m.keys()
	if tr.t != nil {
		require.NoError(t, tr.t.Check())
	}
	require.Equal(t, len(keys), tr.length)
	var keyBytes int
	for _, k := range keys {
		keyBytes += len(k)
	}
	require.Equal(t, int64(keyBytes), tr.keyBytes)
	it := treeIter{t: tr}
	var got []string
	for ok := it.first(); ok; ok = it.next() {
		k := string(it.appendKey(nil))
		require.Equal(t, m[k], it.loc().off, "value of %q", k)
		require.Equal(t, uint32(len(k)), it.loc().klen)
		got = append(got, k)
	}
	require.Equal(t, keys, append([]string(nil), got...))
	got = got[:0]
	for ok := it.last(); ok; ok = it.prev() {
		got = append(got, string(it.appendKey(nil)))
	}
	slices.Reverse(got)
	require.Equal(t, keys, append([]string(nil), got...))
	for range 40 {
		probe := gen(rng)
		i, _ := slices.BinarySearch(keys, probe)
		if it.seekGE(probe) {
			require.Less(t, i, len(keys))
			require.Equal(t, keys[i], string(it.appendKey(nil)), "seekGE(%q)", probe)
			// Change direction mid-walk.
			if it.prev() {
				require.Equal(t, keys[i-1], string(it.appendKey(nil)))
				require.True(t, it.next())
				require.Equal(t, keys[i], string(it.appendKey(nil)))
			} else {
				require.Equal(t, 0, i)
			}
		} else {
			require.Equal(t, len(keys), i, "seekGE(%q)", probe)
		}
		if it.seekLT(probe) {
			require.Equal(t, keys[i-1], string(it.appendKey(nil)), "seekLT(%q)", probe)
		} else {
			require.Equal(t, 0, i, "seekLT(%q)", probe)
		}
		_, found := m[probe]
		e, ok := tr.get(probe)
		require.Equal(t, found, ok, "get(%q)", probe)
		if ok {
			require.Equal(t, m[probe], e.off)
		}
	}
}

// TestTreeModel drives the copy-on-write B-tree with random sets and
// deletes against a map, taking clones along the way and checking that
// each clone keeps the state it was taken at while the original moves on.
func TestTreeModel(t *testing.T) {
	for _, tc := range []struct {
		name string
		gen  keyGen
		seed uint64
	}{
		{"short/1", shortKeys, 1}, {"short/2", shortKeys, 2}, {"short/3", shortKeys, 3},
		{"edge/1", edgeKeys, 1}, {"edge/2", edgeKeys, 2}, {"edge/3", edgeKeys, 3},
	} {
		seed, gen := tc.seed, tc.gen
		t.Run(tc.name, func(t *testing.T) {
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
				k := gen(rng)
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
					// Set from a transient buffer: the tree keeps its own copy.
					buf := []byte(k)
					prev, had := tr.set(entry{key: unsafeString(buf), off: off})
					clear(buf)
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
					checkTree(t, tr, m, rng, gen)
					for _, c := range clones {
						checkTree(t, c.tr, c.m, rng, gen)
					}
				}
			}
			checkTree(t, tr, m, rng, gen)
			for _, c := range clones {
				checkTree(t, c.tr, c.m, rng, gen)
			}
			// Delete everything: the tree shrinks back to nothing.
			for _, k := range m.keys() {
				_, ok := tr.delete(k)
				require.True(t, ok)
			}
			require.NoError(t, tr.t.Check())
			require.Zero(t, tr.length)
			require.Zero(t, tr.keyBytes)
			require.Zero(t, tr.tailBytes)
		})
	}
}

func TestBulkTree(t *testing.T) {
	sizes := []int{0, 1, 62, 63, 64, 127, 128, 4095, 4096, 4097, 100000}
	if raceEnabled {
		sizes = sizes[:len(sizes)-1]
	}
	// Keys of 15, 16, 17 and 20 bytes, in order; the last three share their
	// first 16 bytes, with zero bytes where a 15-byte key has its padding.
	suffixes := []string{"", "\x00", "\x00\x00", "\x00\x01xyz"}
	bulkKey := func(i int) string { return fmt.Sprintf("%015d", i/4) + suffixes[i%4] }
	for _, n := range sizes {
		gen := func(rng *rand.Rand) string {
			return fmt.Sprintf("%015d", rng.IntN(n/4+2)) + []string{"", "\x00", "\x00\x00", "\x00\x01xyz", "\x01"}[rng.IntN(5)]
		}
		es := make([]entry, n)
		m := treeModel{}
		var buf []byte // the keys live in a buffer cleared after the build
		for i := range es {
			buf = append(buf, bulkKey(i)...)
		}
		pos := 0
		for i := range es {
			k := bulkKey(i)
			es[i] = entry{key: unsafeString(buf[pos : pos+len(k)]), off: uint32(i)}
			pos += len(k)
			m[k] = uint32(i)
		}
		tr := bulkTree(es)
		clear(buf)
		for i := range es {
			es[i].key = bulkKey(i)
		}
		checkTree(t, tr, m, rand.New(rand.NewPCG(uint64(n), 1)), gen)
		// Every non-root node holds at least minItems: the tree is valid
		// for deletes.
		require.NoError(t, tr.t.Check(), "n=%d", n)
		for i := 0; i < n; i += 3 {
			_, ok := tr.delete(es[i].key)
			require.True(t, ok)
			delete(m, es[i].key)
		}
		checkTree(t, tr, m, rand.New(rand.NewPCG(uint64(n), 2)), gen)
	}
}

// FuzzTree applies sets, deletes and clones with arbitrary keys (up to 40
// bytes of anything) to a tree and checks it against a sorted model: the
// inline prefixes, tails and lengths must give exactly bytewise order.
// Input: repeated [op, n, n key bytes]; op%4 is set, set, delete, clone.
func FuzzTree(f *testing.F) {
	f.Add([]byte("\x00\x03abc\x00\x04abc\x00\x02\x03ab"))
	f.Add([]byte("\x00\x10" + "0000000000000000" + "\x00\x11" + "0000000000000000\x00" + "\x00\x0f000000000000000" + "\x02\x10" + "0000000000000000"))
	f.Add([]byte("\x00\x00\x00\x01\x00\x00\x02\x00\x00\x03\x00\x00\x00\x00\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, m := newTree(), treeModel{}
		var clones []*tree
		var models []treeModel
		for step := 0; len(in) >= 2; step++ {
			op, n := in[0]%4, min(int(in[1])%41, len(in)-2)
			k := string(in[2 : 2+n])
			in = in[2+n:]
			switch op {
			case 0, 1:
				_, had := tr.set(entry{key: k, off: uint32(step)})
				_, want := m[k]
				require.Equal(t, want, had, "set %q", k)
				m[k] = uint32(step)
			case 2:
				_, had := tr.delete(k)
				_, want := m[k]
				require.Equal(t, want, had, "delete %q", k)
				delete(m, k)
			case 3:
				clones, models = append(clones, tr.clone()), append(models, maps.Clone(m))
			}
		}
		check := func(tr *tree, m treeModel) {
			keys := m.keys()
			it := treeIter{t: tr}
			var got []string
			for ok := it.first(); ok; ok = it.next() {
				got = append(got, string(it.appendKey(nil)))
			}
			require.Equal(t, keys, append([]string(nil), got...))
			for _, k := range keys {
				e, ok := tr.get(k)
				require.True(t, ok, "get %q", k)
				require.Equal(t, m[k], e.off)
				require.True(t, it.seekGE(k))
				require.Equal(t, k, string(it.appendKey(nil)))
			}
		}
		check(tr, m)
		for i := range clones {
			check(clones[i], models[i])
		}
	})
}
