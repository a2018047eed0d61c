package bitcask

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		seq        uint64
		flags      byte
		key, value []byte
	}{
		{1, 0, []byte("k"), []byte("v")},
		{1 << 60, flagMore, []byte("key"), nil},
		{7, flagTombstone, bytes.Repeat([]byte("x"), logkv.MaxKeySize), nil},
		{9, flagTombstone | flagMore, []byte("a"), nil},
	} {
		b := appendRecord(nil, tc.seq, tc.flags, tc.key, tc.value)
		require.Len(t, b, recordSize(len(tc.key), len(tc.value)))
		r, why := decodeRecord(b)
		require.Empty(t, why)
		require.Equal(t, tc.seq, r.seq)
		require.Equal(t, tc.flags, r.flags)
		require.Equal(t, tc.key, r.key)
		require.Equal(t, len(tc.value), len(r.value))
		// A flipped bit anywhere is caught (every byte of the header, then a
		// sample of the rest: the 64 KiB key makes every byte too slow).
		for i := 0; i < len(b); i += 1 + i/recordHeaderSize*97 {
			c := bytes.Clone(b)
			c[i] ^= 0x10
			_, why := decodeRecord(c)
			require.NotEmpty(t, why, "flip in byte %d", i)
		}
		_, why = decodeRecord(b[:len(b)-1])
		require.NotEmpty(t, why)
	}
}

func TestFileHeader(t *testing.T) {
	b := appendFileHeader(nil, originMerge, 42)
	require.Len(t, b, fileHeaderSize)
	origin, floor, why := decodeFileHeader(b)
	require.Empty(t, why)
	require.Equal(t, byte(originMerge), origin)
	require.Equal(t, uint64(42), floor)
	b[9] ^= 1
	_, _, why = decodeFileHeader(b)
	require.NotEmpty(t, why)
}

// FuzzDecodeRecord: the decoder never panics, never reads past its input,
// and what it accepts re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, 1, 0, []byte("key"), []byte("value")))
	f.Add(appendRecord(nil, 2, flagTombstone, []byte("k"), nil))
	f.Add(appendRecord(nil, 3, flagMore, []byte("k"), []byte{}))
	f.Add([]byte{})
	f.Add(make([]byte, recordHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, why := decodeRecord(b)
		if why != "" {
			return
		}
		n := r.size()
		require.LessOrEqual(t, n, len(b))
		require.Equal(t, b[:n], appendRecord(nil, r.seq, r.flags, r.key, r.value))
		scanRecords(append(appendFileHeader(nil, originAppend, 0), b...), false, false)
		scanRecords(append(appendFileHeader(nil, originAppend, 0), b...), true, true)
	})
}
