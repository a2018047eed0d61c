//go:build unix

package sstable

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// countingFile is an OS file that counts its ReadAt calls.
type countingFile struct {
	*os.File
	reads int
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	f.reads++
	return f.File.ReadAt(p, off)
}

// TestMappedReads checks that a table in an OS file is read through its
// mapping: once open, Gets make no ReadAt call and return what was
// written; a scan (which reads ahead through ReadAt) sees every entry.
func TestMappedReads(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	entries := genEntries(rng, 2000, 3)
	name := filepath.Join(t.TempDir(), "t.sst")
	writeTable(t, vfs.Default, name, entries, WriterOptions{BlockSize: 512, Compression: S2, BloomBitsPerKey: 10})
	osf, err := os.Open(name)
	require.NoError(t, err)
	st, err := osf.Stat()
	require.NoError(t, err)
	f := &countingFile{File: osf}
	r, err := Open(f, st.Size(), ReaderOptions{Name: name})
	require.NoError(t, err)
	defer r.Close()
	require.NotNil(t, r.mapped)
	opened := f.reads
	for _, e := range entries {
		v, kind, ok, err := r.Get(base.UserKey(e.key), base.Seq(e.key))
		if err != nil || !ok || kind != base.KindOf(e.key) || !bytes.Equal(e.value, v) {
			t.Fatalf("Get(%s) = %q, %v, %v, %v", base.Format(e.key), v, kind, ok, err)
		}
	}
	require.Equal(t, opened, f.reads, "ReadAt calls after Open")
	require.Positive(t, r.Metrics().BlockReads)
	it := r.NewIter(nil, nil)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	require.NoError(t, it.Close())
	require.Equal(t, len(entries), n)
	require.Greater(t, f.reads, opened, "a scan reads ahead through ReadAt, not the mapping")
}

// TestMappedCorruption checks the mapped path's checks: a byte flipped in a
// data block on disk (a shared mapping sees it) is a checksum error, and a
// file shorter than the size the caller gives is not mapped (a mapping past
// the end of a file faults on access) but refused as corrupt.
func TestMappedCorruption(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	entries := genEntries(rng, 500, 1)
	name := filepath.Join(t.TempDir(), "t.sst")
	writeTable(t, vfs.Default, name, entries, WriterOptions{BlockSize: 512, Compression: S2})
	st, err := os.Stat(name)
	require.NoError(t, err)
	size := st.Size()

	f, err := vfs.Default.Open(name)
	require.NoError(t, err)
	r, err := Open(f, size, ReaderOptions{Name: name})
	require.NoError(t, err)
	require.NotNil(t, r.mapped)
	w, err := os.OpenFile(name, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = w.WriteAt([]byte{r.mapped[10] ^ 0xff}, 10)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, _, _, err = r.Get(base.UserKey(entries[0].key), base.MaxSeq)
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	require.NoError(t, r.Close())

	require.Greater(t, size, int64(3*os.Getpagesize()))
	require.NoError(t, os.Truncate(name, size/2)) // pages past the end, not only a tail
	f, err = vfs.Default.Open(name)
	require.NoError(t, err)
	defer f.Close()
	_, err = Open(f, size, ReaderOptions{Name: name})
	require.ErrorIs(t, err, logkv.ErrCorrupt)
}

// mappedTable writes a table of n entries to an OS file and returns its
// entries, name and size.
func mappedTable(t *testing.T, n int) ([]kv, string, int64) {
	rng := rand.New(rand.NewPCG(11, 12))
	entries := genEntries(rng, n, 1)
	name := filepath.Join(t.TempDir(), "t.sst")
	writeTable(t, vfs.Default, name, entries, WriterOptions{BlockSize: 512, Compression: S2})
	st, err := os.Stat(name)
	require.NoError(t, err)
	return entries, name, st.Size()
}

// requireTruncatedAt checks that err is the ReadAt path's report of a short
// read: ErrCorrupt naming the file and an offset past the truncation.
func requireTruncatedAt(t *testing.T, err error, name string) {
	t.Helper()
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	m := regexp.MustCompile(`in (.*) at offset (\d+): truncated`).FindStringSubmatch(err.Error())
	require.NotNil(t, m, "%v", err)
	require.Equal(t, name, m[1])
	off, _ := strconv.ParseInt(m[2], 10, 64)
	require.GreaterOrEqual(t, off, int64(4096), "%v", err)
}

// TestMappedTruncatedGet: a table file truncated under an open Reader
// (pages of the mapping past the new end raise SIGBUS, as a disk's failed
// read does) must make a Get return ErrCorrupt naming the file and offset,
// not kill the process; the Reader then stops using its mapping. Without
// decodeMapped's guard this test crashes the test binary ("fatal error:
// fault").
func TestMappedTruncatedGet(t *testing.T) {
	entries, name, size := mappedTable(t, 5000)
	f, err := os.Open(name)
	require.NoError(t, err)
	cf := &countingFile{File: f}
	r, err := Open(cf, size, ReaderOptions{Name: name})
	require.NoError(t, err)
	defer r.Close()
	require.NotNil(t, r.mapped)
	require.NoError(t, os.Truncate(name, 4096))
	opened := cf.reads
	key := base.UserKey(entries[len(entries)/2].key)
	_, _, _, err = r.Get(key, base.MaxSeq)
	requireTruncatedAt(t, err, name)
	require.True(t, r.faulted.Load())
	require.Equal(t, opened+1, cf.reads, "the faulted block is read again with ReadAt")
	_, _, _, err = r.Get(key, base.MaxSeq) // no second fault: straight to ReadAt
	requireTruncatedAt(t, err, name)
	require.Equal(t, opened+2, cf.reads)
}

// footerFile serves a table's footer from memory and the rest from the OS
// file, so that Open gets past the footer of a file truncated under its
// mapping and reads the index block from the mapping.
type footerFile struct {
	*os.File
	footer []byte
	off    int64
}

func (f *footerFile) ReadAt(p []byte, off int64) (int, error) {
	if off == f.off && len(p) == len(f.footer) {
		return copy(p, f.footer), nil
	}
	return f.File.ReadAt(p, off)
}

// TestMappedTruncatedOpen: the meta blocks Open reads from the mapping
// (index, filter, properties) faulting must make Open return ErrCorrupt
// naming the file and offset. The file is truncated between the mapping
// and the reads (as it could be by another process, or as a bad sector
// would fail them); without decodeMapped's guard the test binary crashes.
func TestMappedTruncatedOpen(t *testing.T) {
	_, name, size := mappedTable(t, 5000)
	f, err := os.Open(name)
	require.NoError(t, err)
	defer f.Close()
	ff := &footerFile{File: f, footer: make([]byte, footerSize), off: size - footerSize}
	_, err = f.ReadAt(ff.footer, ff.off)
	require.NoError(t, err)
	m := mapTable(ff, size)
	require.NotNil(t, m)
	defer unmapTable(m) //nolint:errcheck
	require.NoError(t, os.Truncate(name, 4096))
	_, err = load(ff, m, size, ReaderOptions{Name: name}, true)
	requireTruncatedAt(t, err, name)
}

// TestDisableMmap: ReaderOptions.DisableMmap leaves an OS file unmapped,
// every block read with ReadAt.
func TestDisableMmap(t *testing.T) {
	entries, name, size := mappedTable(t, 500)
	f, err := os.Open(name)
	require.NoError(t, err)
	cf := &countingFile{File: f}
	r, err := Open(cf, size, ReaderOptions{Name: name, DisableMmap: true})
	require.NoError(t, err)
	defer r.Close()
	require.Nil(t, r.mapped)
	opened := cf.reads
	e := entries[len(entries)/2]
	v, kind, found, err := r.Get(base.UserKey(e.key), base.Seq(e.key))
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, base.KindOf(e.key), kind)
	require.Equal(t, string(e.value), string(v)) // a deletion's nil is Get's empty value
	require.Equal(t, opened+1, cf.reads)
}

// BenchmarkMappedGuard prices decodeMapped's fault guard: one small data
// block decoded from the mapping with the guard (guarded) and without it
// (bare), the same block each time (in the CPU caches: the guard's cost is
// the difference).
func BenchmarkMappedGuard(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	name := filepath.Join(b.TempDir(), "t.sst")
	writeTable(b, vfs.Default, name, genEntries(rng, 500, 1), WriterOptions{BlockSize: 512, Compression: S2})
	f, err := os.Open(name)
	require.NoError(b, err)
	st, err := f.Stat()
	require.NoError(b, err)
	r, err := Open(f, st.Size(), ReaderOptions{Name: name})
	require.NoError(b, err)
	defer r.Close()
	require.NotNil(b, r.mapped)
	var bi blockIter
	require.NoError(b, bi.init(r.index, true, name, r.indexOff))
	require.True(b, bi.First())
	h, ok := decodeHandle(bi.val)
	require.True(b, ok)
	raw := r.mapped[h.offset : h.offset+h.length+blockTrailerSize]
	b.Run("bare", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.decodeBlock(h, raw, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("guarded", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := r.decodeMapped(h, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
