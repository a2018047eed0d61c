package commitlog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// readGolden returns testdata/dir/name.
func readGolden(t testing.TB, dir, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadGolden copies testdata/dir into a MemFS as log/, durably, so that a
// test leaves the checked-in files as they are.
func loadGolden(t *testing.T, dir string) *vfs.MemFS {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAllSynced("log"))
	ents, err := os.ReadDir(filepath.Join("testdata", dir))
	require.NoError(t, err)
	for _, e := range ents {
		writeFile(t, fs, "log/"+e.Name(), readGolden(t, dir, e.Name()))
	}
	require.NoError(t, fs.SyncDir("log"))
	return fs
}

// testdata/format2 and testdata/format3 hold logs of 40 records (batch(1)
// .. batch(40), epoch 7, 1 KiB segments) written by the format's first
// version. Both open and read back; a format 2 log goes on taking records,
// in format 3 segments from its next roll on, and reopens.
func TestGoldenFormats(t *testing.T) {
	for _, dir := range []string{"format2", "format3"} {
		t.Run(dir, func(t *testing.T) {
			fs := loadGolden(t, dir)
			l := openMem(t, fs, 1<<10)
			require.Equal(t, uint64(40), l.LastSeq())
			require.Equal(t, uint64(7), l.Epoch())
			readRange(t, l, 1, 40)
			appendN(t, l, 60)
			require.NoError(t, l.Close())
			l = openMem(t, fs, 1<<10)
			defer l.Close()
			readRange(t, l, 1, 100)
			names, err := fs.List("log")
			require.NoError(t, err)
			last := readFile(t, fs, "log/"+names[len(names)-2]) // EPOCHS sorts last
			_, size, err := checkSegmentHeader("last", last[record.HeaderSize:segHeaderSize])
			require.NoError(t, err)
			require.Equal(t, int64(segHeaderSize), size, "new segments are format 3")
		})
	}
}

// A format 3 segment's records are salted: the same bytes with another
// salt in the header are corruption, not records; a frame forged inside a
// batch's value (unsalted, or with a guessed salt) never vouches for damage
// nor passes for a record.
func TestSaltedSegment(t *testing.T) {
	fs := loadGolden(t, "format3")
	const seg = "log/0000000000000001.log"
	data := readFile(t, fs, seg)
	require.Equal(t, byte(segmentVersion), data[record.HeaderSize+len(segmentMagic)])
	other := append(appendSegmentHeader(nil, 12345), data[segHeaderSize:]...)
	writeFile(t, fs, seg, other)
	_, err := Open("log", &Options{FS: fs})
	require.ErrorIs(t, err, logkv.ErrCorrupt, "the records do not check out under another salt")

	// A batch whose value holds an unsalted frame that says record 3's
	// bytes were synced: damage to record 3 is still a torn tail.
	off3 := int64(segHeaderSize) + SegmentRecordSize(len(batch(t, 1))) + SegmentRecordSize(len(batch(t, 2)))
	forged := record.Append(nil, appendSegmentRecord(nil, uint64(off3+1), Record{Seq: 99, Epoch: 1, Batch: batch(t, 99)}))
	fs = vfs.NewMem()
	l := openMem(t, fs, 1<<20)
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 2)
	var b logkv.Batch
	b.Set([]byte("k"), append([]byte(strings.Repeat("x", 16)), forged...))
	_, err = l.Append(append([]byte(nil), b.Repr()...))
	require.NoError(t, err)
	require.NoError(t, l.Sync(3))
	require.NoError(t, l.Close())
	data = readFile(t, fs, seg)
	offs := frameOffsets(t, fs, seg)
	require.Equal(t, off3, offs[2])
	data[offs[2]+10] ^= 1 // damage record 3, whose value holds the forgery
	writeFile(t, fs, seg, data)
	l = openMem(t, fs, 1<<20)
	defer l.Close()
	require.Equal(t, uint64(2), l.LastSeq(), "a torn tail, cut: the forged frame vouched for nothing")
}

// The attack format 3 closes, on a format 2 segment: the same forged frame,
// unsalted like the records around it, vouches for the damage before it,
// and Open reports corruption where a torn tail was all there was.
func TestForgedFrameFoolsFormat2(t *testing.T) {
	data := record.Append(nil, append([]byte(segmentMagic), segmentVersion2))
	for seq := uint64(1); seq <= 2; seq++ {
		data = record.Append(data, appendSegmentRecord(nil, segHeaderSizeV2, Record{Seq: seq, Epoch: 1, Batch: batch(t, seq)}))
	}
	off3 := int64(len(data))
	forged := record.Append(nil, appendSegmentRecord(nil, uint64(off3+1), Record{Seq: 99, Epoch: 1, Batch: batch(t, 99)}))
	var b logkv.Batch
	b.Set([]byte("k"), append([]byte(strings.Repeat("x", 16)), forged...))
	data = record.Append(data, appendSegmentRecord(nil, segHeaderSizeV2, Record{Seq: 3, Epoch: 1, Batch: b.Repr()}))
	data[off3+10] ^= 1
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAll("log", 0o755))
	writeFile(t, fs, "log/0000000000000001.log", data)
	_, err := Open("log", &Options{FS: fs})
	require.ErrorIs(t, err, logkv.ErrCorrupt)
}
