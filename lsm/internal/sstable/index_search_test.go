package sstable

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"unsafe"

	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// checkIndexSearch requires the summary's seek for ikey to land where the
// block's own SeekGE does.
func checkIndexSearch(t *testing.T, block []byte, s *indexSearch, ikey []byte) {
	t.Helper()
	var want, got blockIter
	require.NoError(t, want.init(block, true, "want", 0))
	require.NoError(t, got.init(block, true, "got", 0))
	wantOK := want.SeekGE(ikey)
	gotOK := s.seekGE(&got, base.UserKey(ikey), ikey)
	if wantOK != gotOK || wantOK && want.offset != got.offset || (want.err == nil) != (got.err == nil) {
		t.Fatalf("seek %s: summary at %v/%d (%v), SeekGE at %v/%d (%v)",
			base.Format(ikey), gotOK, got.offset, got.err, wantOK, want.offset, want.err)
	}
}

// TestIndexSearch compares the index summary's seeks with the index
// block's own, over tables whose separators share long prefixes, differ
// within or past their first 8 bytes, or tie on every byte the summary
// holds (many versions of one key across blocks).
func TestIndexSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tables := map[string][]kv{
		"random": genEntries(rng, 3000, 4),
	}
	var entries []kv
	for i := range 3000 {
		k := fmt.Appendf(nil, "%016d", i*7)
		entries = append(entries, kv{base.AppendInternalKey(nil, k, 5, base.KindSet), genValue(rng)})
	}
	tables["dbbench"] = entries
	entries = nil
	for i := range 500 {
		// Keys that share 20 bytes and differ after the summary's 8.
		k := fmt.Appendf(nil, "tenant/0042/object/%012d", i)
		for seq := uint64(9); seq > 6; seq-- {
			entries = append(entries, kv{base.AppendInternalKey(nil, k, seq, base.KindSet), genValue(rng)})
		}
	}
	tables["long-prefix"] = entries
	entries = nil
	for seq := uint64(2000); seq > 0; seq-- {
		entries = append(entries, kv{base.AppendInternalKey(nil, []byte("hot"), seq, base.KindSet), genValue(rng)})
	}
	entries = append(entries, kv{base.AppendInternalKey(nil, []byte("hot\x00"), 1, base.KindSet), nil})
	tables["one-key"] = entries
	entries = nil
	for i := range 2000 {
		k := []byte{byte(i >> 8), byte(i)}[:1+i%2] // short keys: padding ties
		entries = append(entries, kv{base.AppendInternalKey(nil, k, uint64(i+1), base.KindSet), nil})
	}
	tables["short"] = sortedUnique(entries)

	for name, entries := range tables {
		t.Run(name, func(t *testing.T) {
			fs := vfs.NewMem()
			writeTable(t, fs, "t.sst", entries, WriterOptions{BlockSize: 256, Compression: None})
			r := openTable(t, fs, "t.sst", ReaderOptions{})
			require.NotNil(t, r.isearch, "the writer's index blocks get a summary")
			require.Greater(t, len(r.isearch.keys), 10)
			if name == "dbbench" || name == "long-prefix" {
				// The last separator, a short successor, must not cut the
				// prefix the keys share.
				require.GreaterOrEqual(t, len(r.isearch.prefix), 10)
			}
			seeks := func(yield func([]byte) bool) {
				for _, e := range entries {
					if !yield(e.key) || !yield(base.MakeSearchKey(base.UserKey(e.key), base.MaxSeq)) {
						return
					}
				}
				for range 3000 {
					if !yield(randomSeekKey(rng, entries)) {
						return
					}
				}
			}
			for k := range seeks {
				checkIndexSearch(t, r.index, r.isearch, k)
			}
		})
	}
}

// sortedUnique sorts entries by internal key and drops repeated user keys'
// duplicates of the same internal key.
func sortedUnique(entries []kv) []kv {
	m := map[string]kv{}
	for _, e := range entries {
		m[string(e.key)] = e
	}
	out := make([]kv, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b kv) int { return base.Compare(a.key, b.key) })
	return out
}

// TestIndexSearchLowerBound checks the tree's descent against a bisection
// of the flat array, over sizes around every node and level boundary, with
// ties, and that every array is 64-byte aligned.
func TestIndexSearchLowerBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n <= 600; n++ {
		s := &indexSearch{keys: alignedUint64s(n)}
		v := uint64(0)
		for range n {
			v += uint64(rng.IntN(3)) * 2 // even values, some repeated
			s.keys = append(s.keys, v)
		}
		s.buildLevels()
		for _, lvl := range append(slices.Clone(s.levels), s.keys) {
			if cap(lvl) > 0 {
				require.Zero(t, uintptr(unsafe.Pointer(unsafe.SliceData(lvl)))%64, "n=%d: a level not aligned", n)
			}
		}
		if len(s.levels) > 0 {
			require.LessOrEqual(t, len(s.levels[0]), searchFanout, "n=%d: top level", n)
		}
		for q := uint64(0); q <= v+2; q++ {
			want := sort.Search(n, func(i int) bool { return s.keys[i] >= q })
			require.Equal(t, want, s.lowerBound(q), "n=%d, t=%d", n, q)
		}
	}
}
