package sstable

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// memFile is a read-only vfs.File over bytes.
type memFile struct {
	vfs.File
	b []byte
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(m.b)) {
		return 0, errShortRead
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, errShortRead
	}
	return n, nil
}

func (m *memFile) Close() error { return nil }

var errShortRead = fmt.Errorf("short read: %w", io.EOF)

// checkTable opens b as a table and reads all of it, checking that
// whatever comes back is either an ErrCorrupt error or exactly the entries
// (entries nil: anything). It reports whether an error was seen. The hot
// loops compare by hand: testify's per-call cost dominates this test.
func checkTable(t *testing.T, b []byte, entries []kv, verify bool) (sawErr bool) {
	t.Helper()
	r, err := open(&memFile{b: b}, int64(len(b)), ReaderOptions{Name: "t.sst"}, verify)
	if err != nil {
		require.ErrorIs(t, err, logkv.ErrCorrupt)
		return true
	}
	defer r.Close()
	same := func(i int, k, v []byte) bool {
		return i >= 0 && i < len(entries) && bytes.Equal(entries[i].key, k) && bytes.Equal(entries[i].value, v)
	}
	it := r.NewIter(nil, nil)
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		if entries != nil && !same(i, it.Key(), it.Value()) {
			t.Fatalf("forward entry %d: got %s", i, base.Format(it.Key()))
		}
		i++
	}
	if err := it.Close(); err != nil {
		require.ErrorIs(t, err, logkv.ErrCorrupt)
		sawErr = true
	} else if entries != nil && i != len(entries) {
		t.Fatalf("forward scan: %d entries, want %d", i, len(entries))
	}
	it = r.NewCompactionIter()
	i = 0
	for ok := it.First(); ok; ok = it.Next() {
		if entries != nil && !same(i, it.Key(), it.Value()) {
			t.Fatalf("compaction entry %d: got %s", i, base.Format(it.Key()))
		}
		i++
	}
	if err := it.Close(); err != nil {
		require.ErrorIs(t, err, logkv.ErrCorrupt)
		sawErr = true
	} else if entries != nil && i != len(entries) {
		t.Fatalf("compaction scan: %d entries, want %d", i, len(entries))
	}
	it = r.NewIter(nil, nil)
	i = len(entries) - 1
	for ok := it.Last(); ok; ok = it.Prev() {
		if entries != nil && !same(i, it.Key(), it.Value()) {
			t.Fatalf("backward entry %d: got %s", i, base.Format(it.Key()))
		}
		i--
	}
	if err := it.Close(); err != nil {
		require.ErrorIs(t, err, logkv.ErrCorrupt)
		sawErr = true
	} else if entries != nil && i != -1 {
		t.Fatalf("backward scan stopped at %d", i)
	}
	for j, e := range entries {
		if j%5 != 0 {
			continue
		}
		v, kind, ok, err := r.Get(base.UserKey(e.key), base.Seq(e.key))
		if err != nil {
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			sawErr = true
			continue
		}
		if !ok || kind != base.KindOf(e.key) || !bytes.Equal(e.value, v) {
			t.Fatalf("Get(%s) = %q, %v, %v", base.Format(e.key), v, kind, ok)
		}
	}
	return sawErr
}

// TestCorruption flips bits all over a small table: every flip must be
// reported as ErrCorrupt (every byte of a table is under a checksum), and
// nothing read before the error may differ from what was written.
func TestCorruption(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 13))
	entries := genEntries(rng, 40, 3)
	for _, c := range allCompressions {
		t.Run(c.String(), func(t *testing.T) {
			fs := vfs.NewMem()
			writeTable(t, fs, "t.sst", entries, WriterOptions{BlockSize: 256, RestartInterval: 4, Compression: c, BloomBitsPerKey: 10})
			f, err := fs.Open("t.sst")
			require.NoError(t, err)
			st, err := f.Stat()
			require.NoError(t, err)
			orig := make([]byte, st.Size())
			_, err = f.ReadAt(orig, 0)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			require.False(t, checkTable(t, orig, entries, true))

			b := make([]byte, len(orig))
			// Under -race (about 10x slower) a random quarter of the bytes.
			stride, start := 1, 0
			if raceEnabled {
				stride, start = 4, rng.IntN(4)
			}
			for pos := start; pos < len(orig); pos += stride {
				// Every byte, one random bit of it (every bit is too slow
				// under -race; the run's seed varies the bits).
				bitsToFlip := []int{rng.IntN(8)}
				for _, bit := range bitsToFlip {
					copy(b, orig)
					b[pos] ^= 1 << bit
					if !checkTable(t, b, entries, true) {
						t.Fatalf("flip of bit %d at %d of %d went unnoticed", bit, pos, len(b))
					}
				}
			}
			// Truncations.
			for n := 0; n < len(orig); n += 1 + n/8 {
				require.True(t, checkTable(t, orig[:n], entries, true), "truncation to %d", n)
			}
		})
	}
}

// TestReadErrors fails each ReadAt in turn: I/O errors come back wrapped
// (not as corruption), from Open, Get and iterators alike.
func TestReadErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 25))
	entries := genEntries(rng, 200, 2)
	mem := vfs.NewMem()
	writeTable(t, mem, "t.sst", entries, WriterOptions{BlockSize: 256, Compression: S2, BloomBitsPerKey: 10})
	run := func(inj vfs.Injector) (err error) {
		fs := vfs.NewErrorFS(mem, inj)
		f, err := fs.Open("t.sst")
		require.NoError(t, err)
		st, err := mem.Stat("t.sst")
		require.NoError(t, err)
		r, err := Open(f, st.Size(), ReaderOptions{Name: "t.sst", Cache: NewCache(1 << 20)})
		if err != nil {
			f.Close()
			return err
		}
		defer r.Close()
		for _, e := range entries[:20] {
			if _, _, _, err := r.Get(base.UserKey(e.key), base.MaxSeq); err != nil {
				return err
			}
		}
		it := r.NewIter(nil, nil)
		for ok := it.First(); ok; ok = it.Next() {
		}
		return it.Close()
	}
	counter := vfs.FailNth(0, vfs.OpReadAt)
	require.NoError(t, run(counter))
	n := counter.Count()
	require.Greater(t, n, int64(5))
	for i := int64(1); i <= n; i++ {
		err := run(vfs.FailNth(i, vfs.OpReadAt))
		require.ErrorIs(t, err, vfs.ErrInjected, "read %d of %d", i, n)
		require.NotErrorIs(t, err, logkv.ErrCorrupt)
	}
}
