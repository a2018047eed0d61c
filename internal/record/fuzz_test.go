package record

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzScan: on any input Scan never panics, and the frames it keeps and
// the stretches it skips cover the input exactly, in order, without
// overlap: salvage accounts for every byte.
func FuzzScan(f *testing.F) {
	f.Add(build("alpha", "bravo", "charlie"), uint64(0))
	d := build("alpha", "bravo", "charlie")
	d[12] ^= 1
	f.Add(d, uint64(0))
	f.Add(AppendSalted(AppendSalted(nil, []byte("x"), 7), []byte("yy"), 7), uint64(7))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, salt uint64) {
		next := int64(0)
		err := ScanSalted(data, 1<<10, salt, nil,
			func(off int64, p []byte) error {
				require.Equal(t, next, off)
				next = off + int64(Size(len(p)))
				return nil
			},
			func(s Skipped) error {
				require.Equal(t, next, s.Off)
				require.Positive(t, s.Len)
				next = s.Off + s.Len
				return nil
			})
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), next)
	})
}

// FuzzFinder: at every offset of any input, salted or not, a Finder's
// verdict is the plain check's (the prefix-checksum arithmetic never
// accepts a frame whose checksum does not match, nor misses one that does).
func FuzzFinder(f *testing.F) {
	long := make([]byte, 3*directMax)
	f.Add(AppendSalted(AppendSalted(nil, long, 7), []byte("yy"), 7), uint64(7), uint32(1<<10))
	f.Add(append([]byte{0, 0, 1, 0, 0, 0, 1, 0}, build("alpha", string(long))...), uint64(0), uint32(1<<10))
	f.Fuzz(func(t *testing.T, data []byte, salt uint64, limit uint32) {
		fd := NewFinder(data, int(limit), salt)
		for off := range data {
			_, why := fd.Frame(off)
			require.Equal(t, directFrame(data, off, int(limit), salt), why == "", "offset %d", off)
		}
	})
}
