package sstable

import (
	"bytes"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/stretchr/testify/require"
)

func TestSeparator(t *testing.T) {
	ik := func(s string, seq uint64) []byte { return base.AppendInternalKey(nil, []byte(s), seq, base.KindSet) }
	for _, c := range []struct{ a, b, want []byte }{
		{ik("abcdef", 5), ik("abzzz", 9), ik("abd", base.MaxSeq)},
		{ik("abc", 5), ik("abc", 4), ik("abc", 5)},               // same user key
		{ik("ab", 5), ik("abc", 4), ik("ab", 5)},                 // prefix
		{ik("abcdef", 5), ik("abd", 4), ik("abce", base.MaxSeq)}, // adjacent byte: bump after it
		{ik("ab\xff\xff", 5), ik("ac", 4), ik("ab\xff\xff", 5)},
	} {
		got := separator(nil, c.a, c.b)
		require.Equal(t, base.Format(c.want), base.Format(got), "separator(%s, %s)", base.Format(c.a), base.Format(c.b))
	}
	require.Equal(t, base.Format(ik("b", base.MaxSeq)), base.Format(successor(nil, ik("abc", 3))))
	require.Equal(t, base.Format(ik("\xff\xff", 3)), base.Format(successor(nil, ik("\xff\xff", 3))))

	rng := rand.New(rand.NewPCG(1, 5))
	randKey := func() []byte {
		b := make([]byte, 1+rng.IntN(6))
		for i := range b {
			b[i] = []byte{0, 1, 'a', 'b', 0xfe, 0xff}[rng.IntN(6)]
		}
		return base.AppendInternalKey(nil, b, rng.Uint64N(10), base.Kind(rng.IntN(2)))
	}
	for range 100000 {
		a, b := randKey(), randKey()
		switch c := base.Compare(a, b); {
		case c == 0:
			continue
		case c > 0:
			a, b = b, a
		}
		s := separator(nil, a, b)
		if !base.Valid(s) || base.Compare(a, s) > 0 || base.Compare(s, b) >= 0 || len(s) > len(a) {
			t.Fatalf("separator(%s, %s) = %s", base.Format(a), base.Format(b), base.Format(s))
		}
		s = successor(nil, a)
		if base.Compare(a, s) > 0 || len(s) > len(a) {
			t.Fatalf("successor(%s) = %s", base.Format(a), base.Format(s))
		}
	}
}

func TestParseCompression(t *testing.T) {
	for _, c := range allCompressions {
		got, err := ParseCompression(c.String())
		require.NoError(t, err)
		require.Equal(t, c, got)
		txt, err := c.MarshalText()
		require.NoError(t, err)
		var back Compression
		require.NoError(t, back.UnmarshalText(txt))
		require.Equal(t, c, back)
	}
	got, err := ParseCompression("ZSTD")
	require.NoError(t, err)
	require.Equal(t, Zstd, got)
	_, err = ParseCompression("lz4")
	require.Error(t, err)
	_, err = Compression(9).MarshalText()
	require.Error(t, err)
}

func TestCompressSkipsIncompressible(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := []byte{}
	for len(text) < 4096 {
		text = append(text, "the quick brown fox "...)
	}
	for _, c := range allCompressions[1:] {
		out, typ := compress(c, nil, random)
		require.Equal(t, None, typ, c.String())
		require.Equal(t, random, out)
		out, typ = compress(c, nil, text)
		require.Equal(t, c, typ)
		require.Less(t, len(out), len(text)/4)
		back, err := decompress(typ, out, nil, maxBlockSize)
		require.NoError(t, err)
		require.Equal(t, text, back)
		_, err = decompress(typ, out, nil, len(text)-1)
		require.Error(t, err, "over the limit")
	}
}

func TestBlockChecksum(t *testing.T) {
	b := []byte("some block bytes")
	require.Equal(t, crc32.Checksum(append(bytes.Clone(b), 2), crcTable), blockChecksum(b, 2))
	require.Zero(t, testing.AllocsPerRun(10, func() { blockChecksum(b, 3) }))
}
