package commitlog

import (
	"testing"

	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// Salvage keeps every record that checks out, in sealed and active
// segments alike, reports each damaged one as a skipped stretch, and
// changes nothing in the directory.
func TestSalvageKeepsIntactRecords(t *testing.T) {
	fs := vfs.NewMem()
	l := openMem(t, fs, 2<<10)
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 120)
	require.Greater(t, len(l.segs), 3)
	var victims []uint64
	var want []Skipped
	for _, i := range []int{1, len(l.segs) - 1} { // a sealed segment and the active one
		s := l.segs[i]
		offs := frameOffsets(t, fs, s.path)
		damage(t, fs, s.path, offs[2]+12) // inside the third record's payload
		victims = append(victims, s.first+2)
		want = append(want, Skipped{Path: s.path, Off: offs[2], Len: SegmentRecordSize(len(batch(t, s.first+2)))})
	}
	require.NoError(t, l.Close())
	before := snapshotFiles(t, fs, "log")

	got := map[uint64][]byte{}
	var skipped []Skipped
	require.NoError(t, Salvage(fs, "log", func(r Record) error {
		got[r.Seq] = append([]byte(nil), r.Batch...)
		return nil
	}, func(s Skipped) error { skipped = append(skipped, s); return nil }))
	for seq := uint64(1); seq <= 120; seq++ {
		if seq == victims[0] || seq == victims[1] {
			require.NotContains(t, got, seq)
			continue
		}
		require.Equal(t, batch(t, seq), got[seq], "seq %d", seq)
	}
	require.Len(t, skipped, 2)
	for i := range skipped {
		skipped[i].Why = ""
	}
	require.Equal(t, want, skipped, "exactly the damaged records are reported")
	require.Equal(t, before, snapshotFiles(t, fs, "log"), "salvage changes nothing")
}

// snapshotFiles returns the content of every file in dir.
func snapshotFiles(t *testing.T, fs vfs.FS, dir string) map[string]string {
	names, err := fs.List(dir)
	require.NoError(t, err)
	m := map[string]string{}
	for _, n := range names {
		b, err := vfs.ReadFile(fs, dir+"/"+n)
		require.NoError(t, err)
		m[n] = string(b)
	}
	return m
}
