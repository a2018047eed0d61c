package bitcask

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
)

func sampleHints() []hintEntry {
	es := []hintEntry{
		{key: "apple", seq: 3, off: 24, vlen: 5},
		{key: "apple", seq: 9, off: 60, vlen: 0, tomb: true},
		{key: "apricot", seq: 4, off: 100, vlen: 300},
		{key: "b", seq: 1 << 40, off: 500, vlen: 1},
	}
	sortHints(es)
	return es
}

func TestHintRoundTrip(t *testing.T) {
	es := sampleHints()
	b := encodeHint(1000, es)
	size, got, err := decodeHint("h", b)
	require.NoError(t, err)
	require.Equal(t, int64(1000), size)
	require.Equal(t, es, got)

	// Every flipped bit is caught, as corruption.
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 4
		_, _, err := decodeHint("h", c)
		require.ErrorIs(t, err, logkv.ErrCorrupt, "flip in byte %d", i)
	}
	// A record past the data size is refused even with a good checksum.
	_, _, err = decodeHint("h", encodeHint(510, es))
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	// Out of order.
	_, _, err = decodeHint("h", encodeHint(1000, []hintEntry{es[2], es[0]}))
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	// Empty.
	_, got, err = decodeHint("h", encodeHint(fileHeaderSize, nil))
	require.NoError(t, err)
	require.Empty(t, got)
}

// FuzzDecodeHint: the decoder never panics, allocates by its input's size
// (the count is checked against the bytes present), fails only with
// ErrCorrupt, and what it accepts re-encodes to an encoding that decodes
// to the same entries (the encoder's prefixes and varints are minimal; an
// input's need not be).
func FuzzDecodeHint(f *testing.F) {
	f.Add(encodeHint(1000, sampleHints()))
	f.Add(encodeHint(20, nil))
	f.Add([]byte("bcHT"))
	f.Fuzz(func(t *testing.T, b []byte) {
		size, es, err := decodeHint("fuzz", b)
		if err != nil {
			require.True(t, errors.Is(err, logkv.ErrCorrupt), "%v", err)
			return
		}
		size2, es2, err := decodeHint("re-encoded", encodeHint(size, es))
		require.NoError(t, err)
		require.Equal(t, size, size2)
		require.Equal(t, es, es2)
	})
}

func TestManifestRoundTrip(t *testing.T) {
	b := encodeManifest([]uint32{7, 8}, []uint32{1, 2, 3})
	m, err := decodeManifest("m", b)
	require.NoError(t, err)
	require.Equal(t, []uint32{7, 8}, m.outputs)
	require.Equal(t, []uint32{1, 2, 3}, m.inputs)
	b[10] ^= 1
	_, err = decodeManifest("m", b)
	require.ErrorIs(t, err, logkv.ErrCorrupt)
}

func FuzzDecodeManifest(f *testing.F) {
	f.Add(encodeManifest([]uint32{7}, []uint32{1, 2}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeManifest("fuzz", b)
		if err != nil {
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			return
		}
		require.Equal(t, b, encodeManifest(m.outputs, m.inputs))
	})
}
