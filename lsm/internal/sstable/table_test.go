package sstable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

type kv struct{ key, value []byte }

// genEntries returns sorted entries over about n user keys, each with 1 to
// maxVersions versions (some of them tombstones).
func genEntries(rng *rand.Rand, n, maxVersions int) []kv {
	ukeys := map[string]bool{}
	for len(ukeys) < n {
		var k string
		switch rng.IntN(3) {
		case 0:
			k = fmt.Sprintf("user%08d", rng.IntN(n*10))
		case 1:
			k = fmt.Sprintf("user%08d/%x", rng.IntN(n*10), rng.Uint64()>>rng.IntN(64))
		default:
			b := make([]byte, 1+rng.IntN(12))
			for i := range b {
				b[i] = byte(rng.IntN(4)) * 85 // includes 0x00 and 0xff
			}
			k = string(b)
		}
		ukeys[k] = true
	}
	var out []kv
	for _, k := range slices.Sorted(maps.Keys(ukeys)) { // in order: the same rng, the same entries
		nv := 1 + rng.IntN(maxVersions)
		seqs := map[uint64]bool{}
		for len(seqs) < nv {
			seqs[1+rng.Uint64N(1000)] = true
		}
		for s := range seqs {
			kind := base.KindSet
			var v []byte
			if rng.IntN(5) == 0 {
				kind = base.KindDelete
			} else {
				v = genValue(rng)
			}
			out = append(out, kv{base.AppendInternalKey(nil, []byte(k), s, kind), v})
		}
	}
	slices.SortFunc(out, func(a, b kv) int { return base.Compare(a.key, b.key) })
	return out
}

func genValue(rng *rand.Rand) []byte {
	v := make([]byte, rng.IntN(120))
	if rng.IntN(2) == 0 {
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
	} else {
		for i := range v {
			v[i] = "abcdefgh"[rng.IntN(3)]
		}
	}
	return v
}

func writeTable(t testing.TB, fs vfs.FS, name string, entries []kv, o WriterOptions) Meta {
	t.Helper()
	f, err := fs.Create(name)
	require.NoError(t, err)
	w := NewWriter(f, o)
	for _, e := range entries {
		require.NoError(t, w.Add(e.key, e.value))
	}
	m, err := w.Close()
	require.NoError(t, err)
	return m
}

func openTable(t testing.TB, fs vfs.FS, name string, o ReaderOptions) *Reader {
	t.Helper()
	f, err := fs.Open(name)
	require.NoError(t, err)
	st, err := f.Stat()
	require.NoError(t, err)
	if o.Name == "" {
		o.Name = name
	}
	r, err := Open(f, st.Size(), o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

var allCompressions = []Compression{None, Snappy, S2, Zstd}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() || raceEnabled {
		n = 800
	}
	entries := genEntries(rng, n, 4)
	for _, c := range allCompressions {
		for _, o := range []WriterOptions{
			{BlockSize: 4096, RestartInterval: 16, Compression: c, BloomBitsPerKey: 10},
			{BlockSize: 200, RestartInterval: 1, Compression: c},
			{BlockSize: 1, RestartInterval: 3, Compression: c, BloomBitsPerKey: 3},
		} {
			t.Run(fmt.Sprintf("%s/block=%d/restart=%d", c, o.BlockSize, o.RestartInterval), func(t *testing.T) {
				fs := vfs.NewMem()
				wm := writeTable(t, fs, "t.sst", entries, o)
				r := openTable(t, fs, "t.sst", ReaderOptions{Cache: NewCache(1 << 20), FileNum: 1})
				m := r.Meta()
				require.Equal(t, wm, m)
				require.Equal(t, uint64(len(entries)), m.Entries)
				require.Equal(t, entries[0].key, m.Smallest)
				require.Equal(t, entries[len(entries)-1].key, m.Largest)
				st, err := fs.Stat("t.sst")
				require.NoError(t, err)
				require.Equal(t, uint64(st.Size()), m.Size)

				it := r.NewIter(nil, nil)
				var got []kv
				for ok := it.First(); ok; ok = it.Next() {
					got = append(got, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
				}
				require.NoError(t, it.Error())
				requireEntries(t, entries, got)
				got = got[:0]
				for ok := it.Last(); ok; ok = it.Prev() {
					got = append(got, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
				}
				slices.Reverse(got)
				requireEntries(t, entries, got)
				require.NoError(t, it.Close())
				require.ErrorIs(t, it.Close(), logkv.ErrClosed)
			})
		}
	}
}

// requireEntries compares by hand: testify's per-call cost dominates
// these tests under -race.
func requireEntries(t *testing.T, want, got []kv) {
	t.Helper()
	require.Equal(t, len(want), len(got))
	for i := range want {
		if !bytes.Equal(want[i].key, got[i].key) || !bytes.Equal(want[i].value, got[i].value) {
			t.Fatalf("entry %d: got %s=%q, want %s=%q", i, base.Format(got[i].key), got[i].value, base.Format(want[i].key), want[i].value)
		}
	}
}

// randomSeekKey returns an internal key near the entries: a version of an
// existing user key at a random seq, or a random user key.
func randomSeekKey(rng *rand.Rand, entries []kv) []byte {
	var uk []byte
	if rng.IntN(4) > 0 && len(entries) > 0 {
		uk = base.UserKey(entries[rng.IntN(len(entries))].key)
	} else {
		uk = make([]byte, rng.IntN(10))
		for i := range uk {
			uk[i] = byte(rng.IntN(4)) * 85
		}
		if rng.IntN(2) == 0 {
			uk = fmt.Appendf(nil, "user%08d", rng.IntN(40000))
		}
	}
	return base.AppendInternalKey(nil, uk, rng.Uint64N(1002), base.Kind(rng.IntN(2)))
}

// checkIterModel drives it with random moves and compares every position
// with the model (entries within the iterator's bounds).
func checkIterModel(t *testing.T, rng *rand.Rand, it *Iter, model []kv, all []kv, steps int) {
	t.Helper()
	n := len(model)
	pos := -1 // -1 before the start, n past the end
	var ops []string
	var lastKey []byte // the last seek's key, for failures
	for step := 0; step < steps; step++ {
		var ok bool
		switch op := rng.IntN(10); op {
		case 0:
			ok, pos = it.First(), 0
			ops = append(ops, "First")
		case 1:
			ok, pos = it.Last(), n-1
			ops = append(ops, "Last")
		case 2:
			k := randomSeekKey(rng, all)
			ok = it.SeekGE(k)
			pos = sort.Search(n, func(i int) bool { return base.Compare(model[i].key, k) >= 0 })
			ops = append(ops, "SeekGE")
			lastKey = k
		case 3:
			k := randomSeekKey(rng, all)
			ok = it.SeekLT(k)
			pos = sort.Search(n, func(i int) bool { return base.Compare(model[i].key, k) >= 0 }) - 1
			ops = append(ops, "SeekLT")
			lastKey = k
		case 4, 5, 6:
			ok = it.Next()
			if pos < n {
				pos++
			}
			ops = append(ops, "Next")
		default:
			ok = it.Prev()
			if pos >= 0 {
				pos--
			}
			ops = append(ops, "Prev")
		}
		if pos < 0 {
			pos = -1
		}
		if pos > n {
			pos = n
		}
		if err := it.Error(); err != nil {
			t.Fatal(err)
		}
		wantOK := pos >= 0 && pos < n
		if len(ops) > 8 {
			ops = ops[len(ops)-8:]
		}
		if ok != wantOK || it.Valid() != wantOK {
			t.Fatalf("ops %v (last seek %s): got %v (Valid %v), want %v (pos %d of %d)", ops, base.Format(lastKey), ok, it.Valid(), wantOK, pos, n)
		}
		if wantOK {
			if !bytes.Equal(model[pos].key, it.Key()) || !bytes.Equal(model[pos].value, it.Value()) {
				t.Fatalf("ops %v (last seek %s): at %s, want %s", ops, base.Format(lastKey), base.Format(it.Key()), base.Format(model[pos].key))
			}
		} else if it.Key() != nil {
			t.Fatalf("ops %v: Key %q when not valid", ops, it.Key())
		}
	}
}

func TestIterRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	entries := genEntries(rng, 1500, 5)
	for _, c := range allCompressions {
		for _, o := range []WriterOptions{
			{BlockSize: 4096, RestartInterval: 16, Compression: c},
			{BlockSize: 300, RestartInterval: 4, Compression: c},
		} {
			t.Run(fmt.Sprintf("%s/block=%d", c, o.BlockSize), func(t *testing.T) {
				fs := vfs.NewMem()
				writeTable(t, fs, "t.sst", entries, o)
				r := openTable(t, fs, "t.sst", ReaderOptions{})
				it := r.NewIter(nil, nil)
				defer it.Close()
				checkIterModel(t, rng, it, entries, entries, 3000)
			})
		}
	}
}

func TestCompactionIter(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 17))
	entries := genEntries(rng, 3000, 3)
	for _, c := range allCompressions {
		t.Run(c.String(), func(t *testing.T) {
			fs := vfs.NewMem()
			m := writeTable(t, fs, "t.sst", entries, WriterOptions{BlockSize: 2048, Compression: c, BloomBitsPerKey: 10})
			cache := NewCache(64 << 20)
			r := openTable(t, fs, "t.sst", ReaderOptions{Cache: cache, FileNum: 1})
			it := r.NewCompactionIter()
			it.s.ra.size, it.s.ra.max = 16<<10, 16<<10
			require.Greater(t, m.Size, 4*it.s.ra.size, "several readahead windows")
			var got []kv
			for ok := it.First(); ok; ok = it.Next() {
				got = append(got, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
			}
			require.NoError(t, it.Error())
			requireEntries(t, entries, got)
			require.Zero(t, cache.Metrics().Count, "compaction reads bypass the cache")
			require.Zero(t, cache.Metrics().Hits+cache.Metrics().Misses)
			require.NoError(t, it.Close())
			// Backward and seeks work too.
			it = r.NewCompactionIter()
			it.s.ra.size, it.s.ra.max = 16<<10, 16<<10
			checkIterModel(t, rng, it, entries, entries, 500)
			require.NoError(t, it.Close())
		})
	}
}

func TestIterBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	entries := genEntries(rng, 1000, 3)
	fs := vfs.NewMem()
	writeTable(t, fs, "t.sst", entries, WriterOptions{BlockSize: 256, RestartInterval: 4, Compression: S2})
	r := openTable(t, fs, "t.sst", ReaderOptions{Cache: NewCache(1 << 20)})
	ukey := func() []byte {
		if rng.IntN(8) == 0 {
			return nil
		}
		return base.UserKey(randomSeekKey(rng, entries))
	}
	for round := 0; round < 60; round++ {
		lower, upper := ukey(), ukey()
		if lower != nil && upper != nil && bytes.Compare(lower, upper) > 0 {
			lower, upper = upper, lower
		}
		var model []kv
		for _, e := range entries {
			uk := base.UserKey(e.key)
			if (lower == nil || bytes.Compare(uk, lower) >= 0) && (upper == nil || bytes.Compare(uk, upper) < 0) {
				model = append(model, e)
			}
		}
		it := r.NewIter(lower, upper)
		var got []kv
		for ok := it.First(); ok; ok = it.Next() {
			got = append(got, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
		}
		requireEntries(t, model, got)
		got = got[:0]
		for ok := it.Last(); ok; ok = it.Prev() {
			got = append(got, kv{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
		}
		slices.Reverse(got)
		requireEntries(t, model, got)
		checkIterModel(t, rng, it, model, entries, 200)
		require.NoError(t, it.Close())
	}
}

// TestIterSkipsBlocksOutsideBounds checks that a bounded scan reads only
// the blocks overlapping its bounds.
func TestIterSkipsBlocksOutsideBounds(t *testing.T) {
	var entries []kv
	for i := range 10000 {
		entries = append(entries, kv{base.AppendInternalKey(nil, fmt.Appendf(nil, "k%06d", i), 1, base.KindSet), bytes.Repeat([]byte{'v'}, 50)})
	}
	fs := vfs.NewMem()
	m := writeTable(t, fs, "t.sst", entries, WriterOptions{Compression: None})
	require.Greater(t, m.DataBlocks, uint64(100))
	r := openTable(t, fs, "t.sst", ReaderOptions{})
	before := r.Metrics().BlockReads
	it := r.NewIter([]byte("k005000"), []byte("k005010"))
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	for ok := it.Last(); ok; ok = it.Prev() {
		n++
	}
	require.NoError(t, it.Close())
	require.Equal(t, 20, n)
	require.LessOrEqual(t, r.Metrics().BlockReads-before, uint64(4))
}

// newestVisible is the model of Get.
func newestVisible(entries []kv, ukey []byte, seq uint64) (kv, bool) {
	k := base.AppendInternalKey(nil, ukey, seq, base.KindSet)
	i := sort.Search(len(entries), func(i int) bool { return base.Compare(entries[i].key, k) >= 0 })
	if i < len(entries) && bytes.Equal(base.UserKey(entries[i].key), ukey) {
		return entries[i], true
	}
	return kv{}, false
}

func TestGet(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	entries := genEntries(rng, 2000, 4)
	for _, c := range allCompressions {
		t.Run(c.String(), func(t *testing.T) {
			fs := vfs.NewMem()
			writeTable(t, fs, "t.sst", entries, WriterOptions{BlockSize: 512, RestartInterval: 8, Compression: c, BloomBitsPerKey: 10})
			r := openTable(t, fs, "t.sst", ReaderOptions{Cache: NewCache(64 << 10), FileNum: 3})
			for range 5000 {
				k := randomSeekKey(rng, entries)
				uk, seq := base.UserKey(k), base.Seq(k)
				if rng.IntN(10) == 0 {
					seq = base.MaxSeq
				}
				want, wantOK := newestVisible(entries, uk, seq)
				v, kind, ok, err := r.Get(uk, seq)
				if err != nil || ok != wantOK || ok && (kind != base.KindOf(want.key) || !bytes.Equal(want.value, v)) {
					t.Fatalf("Get(%q, %d) = %q, %v, %v, %v; want %s=%q", uk, seq, v, kind, ok, err, base.Format(want.key), want.value)
				}
			}
			m := r.Metrics()
			require.Positive(t, m.FilterHits, "absent keys are answered by the filter")
			require.Positive(t, m.BlockReads)
		})
	}
	t.Run("every-version", func(t *testing.T) {
		fs := vfs.NewMem()
		writeTable(t, fs, "t.sst", entries, WriterOptions{BlockSize: 128, RestartInterval: 2, Compression: S2, BloomBitsPerKey: 10})
		r := openTable(t, fs, "t.sst", ReaderOptions{})
		for _, e := range entries {
			v, kind, ok, err := r.Get(base.UserKey(e.key), base.Seq(e.key))
			if err != nil || !ok || kind != base.KindOf(e.key) || !bytes.Equal(e.value, v) {
				t.Fatalf("Get(%s) = %q, %v, %v, %v", base.Format(e.key), v, kind, ok, err)
			}
			// Seq 0 is below every version: nothing is visible.
			if _, _, ok, err = r.Get(base.UserKey(e.key), 0); ok || err != nil {
				t.Fatalf("Get(%q, 0) = %v, %v", base.UserKey(e.key), ok, err)
			}
		}
	})
}

func TestEmptyTable(t *testing.T) {
	fs := vfs.NewMem()
	m := writeTable(t, fs, "t.sst", nil, DefaultWriterOptions)
	require.Zero(t, m.Entries)
	require.Nil(t, m.Smallest)
	r := openTable(t, fs, "t.sst", ReaderOptions{})
	it := r.NewIter(nil, nil)
	require.False(t, it.First())
	require.False(t, it.Last())
	require.False(t, it.SeekGE(base.MakeSearchKey([]byte("a"), 1)))
	require.False(t, it.SeekLT(base.MakeSearchKey([]byte("a"), 1)))
	require.NoError(t, it.Close())
	_, _, ok, err := r.Get([]byte("a"), 9)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestWriterErrors(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.Create("t.sst")
	require.NoError(t, err)
	w := NewWriter(f, DefaultWriterOptions)
	k := func(s string, seq uint64) []byte { return base.AppendInternalKey(nil, []byte(s), seq, base.KindSet) }
	require.NoError(t, w.Add(k("b", 5), []byte("x")))
	require.Error(t, w.Add(k("b", 5), []byte("x")), "duplicate")
	require.Error(t, w.Add(k("b", 6), []byte("x")), "newer version after older")
	require.Error(t, w.Add(k("a", 1), []byte("x")), "smaller user key")
	require.Error(t, w.Add([]byte("short"), nil), "not an internal key")
	require.ErrorIs(t, w.Add(k("", 9), nil), logkv.ErrEmptyKey)
	require.ErrorIs(t, w.Add(k("c", 1), make([]byte, logkv.MaxValueSize+1)), logkv.ErrValueTooLarge)
	require.NoError(t, w.Add(k("b", 4), []byte("y")))
	require.Greater(t, w.EstimatedSize(), uint64(0))
	m, err := w.Close()
	require.NoError(t, err)
	require.Equal(t, uint64(2), m.Entries)
	_, err = w.Close()
	require.ErrorIs(t, err, logkv.ErrClosed)
	require.ErrorIs(t, w.Add(k("z", 1), nil), logkv.ErrClosed)
	require.NoError(t, w.Abort())

	r := openTable(t, fs, "t.sst", ReaderOptions{})
	require.NoError(t, r.Close())
	require.ErrorIs(t, r.Close(), logkv.ErrClosed)
	_, _, _, err = r.Get([]byte("b"), 9)
	require.ErrorIs(t, err, logkv.ErrClosed)
	it := r.NewIter(nil, nil)
	require.False(t, it.First())
	require.ErrorIs(t, it.Error(), logkv.ErrClosed)
}

func TestWriterIOError(t *testing.T) {
	fs := vfs.NewErrorFS(vfs.NewMem(), vfs.FailFrom(1, vfs.OpWrite|vfs.OpSync))
	f, err := fs.Create("t.sst")
	require.NoError(t, err)
	w := NewWriter(f, WriterOptions{BlockSize: 64})
	rng := rand.New(rand.NewPCG(1, 1))
	var addErr error
	for _, e := range genEntries(rng, 5000, 1) {
		if addErr = w.Add(e.key, e.value); addErr != nil {
			break
		}
	}
	_, err = w.Close()
	require.Error(t, errors.Join(addErr, err))
}

// TestConcurrentReads runs Gets and scans on one Reader from several
// goroutines through a cache small enough to evict (run with -race).
func TestConcurrentReads(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	entries := genEntries(rng, 1000, 3)
	fs := vfs.NewMem()
	writeTable(t, fs, "t.sst", entries, WriterOptions{BlockSize: 512, RestartInterval: 8, Compression: Zstd, BloomBitsPerKey: 10})
	r := openTable(t, fs, "t.sst", ReaderOptions{Cache: NewCache(16 << 10), FileNum: 1})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for n := range 300 {
				if n%50 == 0 {
					it := r.NewIter(nil, nil)
					i := 0
					for ok := it.First(); ok; ok = it.Next() {
						if !bytes.Equal(it.Key(), entries[i].key) {
							errs <- fmt.Errorf("scan %d: %s", i, base.Format(it.Key()))
							return
						}
						i++
					}
					if err := it.Close(); err != nil || i != len(entries) {
						errs <- fmt.Errorf("scan: %v after %d", err, i)
						return
					}
				}
				e := entries[rng.IntN(len(entries))]
				v, _, ok, err := r.Get(base.UserKey(e.key), base.Seq(e.key))
				if err != nil || !ok || !bytes.Equal(v, e.value) {
					errs <- fmt.Errorf("Get(%s) = %q %v %v", base.Format(e.key), v, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// TestScanReadahead checks that a scan reads the file in large chunks
// rather than a block at a time, with or without a cache, and that the
// blocks it reads still land in the cache.
func TestScanReadahead(t *testing.T) {
	entries := benchEntries(20000)
	mem := vfs.NewMem()
	m := writeTable(t, mem, "t.sst", entries, WriterOptions{Compression: S2})
	require.Greater(t, m.DataBlocks, uint64(200))
	for _, cache := range []*Cache{nil, NewCache(64 << 20)} {
		counter := vfs.FailNth(0, vfs.OpReadAt)
		f, err := vfs.NewErrorFS(mem, counter).Open("t.sst")
		require.NoError(t, err)
		r, err := Open(f, int64(m.Size), ReaderOptions{Cache: cache, FileNum: 1})
		require.NoError(t, err)
		opened := counter.Count()
		it := r.NewIter(nil, nil)
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			if !bytes.Equal(entries[n].key, it.Key()) {
				t.Fatalf("entry %d: %s", n, base.Format(it.Key()))
			}
			n++
		}
		require.NoError(t, it.Close())
		require.Equal(t, len(entries), n)
		reads := counter.Count() - opened
		// 64 KiB, 128 KiB, then 256 KiB reads, plus the first blocks alone.
		require.Less(t, reads, int64(m.Size/(128<<10))+8, "%d reads for %d blocks", reads, m.DataBlocks)
		if cache != nil {
			require.Equal(t, int64(m.DataBlocks), cache.Metrics().Count)
		}
		require.NoError(t, r.Close())
	}
}

// TestFormatVersions writes a table in each format version this package
// reads (1: the filter spread over the whole bit array; 2: the blocked
// filter) and reads it back: the footer names the version, every key is
// found at its newest version, absent keys are missed with about 1% false
// positives, and a version past formatVersion is refused with ErrFormat.
func TestFormatVersions(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 31))
	entries := genEntries(rng, 4000, 2)
	for _, version := range []uint32{1, 2} {
		t.Run(fmt.Sprint(version), func(t *testing.T) {
			fs := vfs.NewMem()
			writeTable(t, fs, "t.sst", entries, WriterOptions{BlockSize: 512, RestartInterval: 16, Compression: S2, BloomBitsPerKey: 10, formatVersion: version})
			b, err := vfs.ReadFile(fs, "t.sst")
			require.NoError(t, err)
			require.Equal(t, version, binary.LittleEndian.Uint32(b[len(b)-footerSize+48:]), "footer version")
			r := openTable(t, fs, "t.sst", ReaderOptions{})
			require.True(t, r.hasFlt)
			require.Equal(t, version >= 2, r.filter.nblocks > 0, "blocked filter")
			for i, e := range entries {
				if i > 0 && string(base.UserKey(entries[i-1].key)) == string(base.UserKey(e.key)) {
					continue // an older version of the previous key
				}
				v, kind, ok, err := r.Get(base.UserKey(e.key), base.MaxSeq)
				require.NoError(t, err)
				require.True(t, ok, "%q", e.key)
				require.Equal(t, base.KindOf(e.key), kind)
				if kind == base.KindSet {
					require.Equal(t, string(e.value), string(v))
				}
			}
			fp := 0
			for i := range 20000 {
				ukey := fmt.Appendf(nil, "absent%d", i)
				_, _, ok, err := r.Get(ukey, base.MaxSeq)
				require.NoError(t, err)
				require.False(t, ok)
				if r.MayContain(ukey) {
					fp++
				}
			}
			require.Less(t, fp, 20000*2/100, "about 1%% false positives at 10 bits per key")
		})
	}
	t.Run("future", func(t *testing.T) {
		fs := vfs.NewMem()
		writeTable(t, fs, "t.sst", entries, WriterOptions{Compression: S2, BloomBitsPerKey: 10, formatVersion: formatVersion + 1})
		f, err := fs.Open("t.sst")
		require.NoError(t, err)
		defer f.Close()
		st, err := f.Stat()
		require.NoError(t, err)
		_, err = Open(f, st.Size(), ReaderOptions{})
		require.ErrorIs(t, err, ErrFormat)
	})
}
