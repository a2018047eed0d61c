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
