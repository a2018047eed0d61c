//go:build unix

package sstable

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
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
