package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

func build(payloads ...string) []byte {
	var b []byte
	for _, p := range payloads {
		b = Append(b, []byte(p))
	}
	return b
}

func readAll(data []byte, limit int) (got []string, off int64, err error) {
	r := NewReader(bytes.NewReader(data), "test.log", int64(len(data)), limit)
	for {
		p, err := r.Next()
		if err != nil {
			return got, r.Offset(), err
		}
		got = append(got, string(p))
	}
}

func TestRoundTrip(t *testing.T) {
	want := []string{"a", "", "hello world", string(make([]byte, 1000))}
	data := build(want...)
	require.Equal(t, len(data), Size(1)+Size(0)+Size(11)+Size(1000))
	got, off, err := readAll(data, 1<<20)
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, want, got)
	require.Equal(t, int64(len(data)), off)
}

// TestChecksumSalted checks a salted checksum against its definition, the
// CRC-32C of the salt's 8 bytes (little-endian) then the bytes, and that
// computing one allocates nothing (it did once a record: the salt's bytes
// escaped into package crc32).
func TestChecksumSalted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := []byte("a record's bytes")
	for range 1000 {
		salt := rng.Uint64()
		want := crc32.Checksum(append(binary.LittleEndian.AppendUint64(nil, salt), b...), crc32.MakeTable(crc32.Castagnoli))
		require.Equal(t, want, Checksum(b, salt), "salt %#x", salt)
	}
	require.Equal(t, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)), Checksum(b, 0))
	salt := rng.Uint64()
	require.Zero(t, testing.AllocsPerRun(100, func() { Checksum(b, salt) }))
}

func TestTornTail(t *testing.T) {
	full := build("one", "two", "three")
	end2 := int64(Size(3) + Size(3))
	for cut := end2 + 1; cut < int64(len(full)); cut++ {
		got, off, err := readAll(full[:cut], 1<<20)
		require.ErrorIs(t, err, ErrTornTail, "cut at %d", cut)
		require.NotErrorIs(t, err, logkv.ErrCorrupt)
		require.Equal(t, []string{"one", "two"}, got)
		require.Equal(t, end2, off, "the valid content ends after the second frame")
	}
	// Zeros or garbage after the last whole frame are a torn tail too.
	for _, tail := range [][]byte{make([]byte, 100), bytes.Repeat([]byte{0xff}, 37)} {
		got, off, err := readAll(append(build("one", "two"), tail...), 1<<20)
		require.ErrorIs(t, err, ErrTornTail)
		require.Equal(t, []string{"one", "two"}, got)
		require.Equal(t, end2, off)
	}
}

func TestCorruptionBeforeValidFrame(t *testing.T) {
	data := build("one", "two", "three")
	data[Size(3)+HeaderSize] ^= 1 // a bit of "two"'s payload
	got, off, err := readAll(data, 1<<20)
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	require.NotErrorIs(t, err, ErrTornTail)
	require.Contains(t, err.Error(), "test.log")
	require.Contains(t, err.Error(), fmt.Sprintf("offset %d", Size(3)))
	require.Equal(t, []string{"one"}, got)
	require.Equal(t, int64(Size(3)), off)
}

func TestEveryBitFlipIsDetected(t *testing.T) {
	clean := build("alpha", "beta", "gamma")
	for i := 0; i < len(clean)*8; i++ {
		data := bytes.Clone(clean)
		data[i/8] ^= 1 << (i % 8)
		got, _, err := readAll(data, 1<<20)
		require.Error(t, err)
		if errors.Is(err, io.EOF) {
			t.Fatalf("flip of bit %d went unnoticed: %q", i, got)
		}
		require.True(t, errors.Is(err, ErrTornTail) || errors.Is(err, logkv.ErrCorrupt), "bit %d: %v", i, err)
		for j, p := range got {
			require.Equal(t, []string{"alpha", "beta", "gamma"}[j], p, "bit %d returned wrong data", i)
		}
	}
}

func TestLimit(t *testing.T) {
	data := build("0123456789")
	_, off, err := readAll(data, 9)
	require.ErrorIs(t, err, ErrTornTail)
	require.Zero(t, off)
}

func FuzzReader(f *testing.F) {
	f.Add(build("one", "two"))
	f.Add(build("x")[:5])
	f.Add(append(build("a"), 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, off, err := readAll(data, 1<<16)
		if !(errors.Is(err, io.EOF) || errors.Is(err, ErrTornTail) || errors.Is(err, logkv.ErrCorrupt)) {
			t.Fatalf("unexpected error %v", err)
		}
		// Whatever was read re-encodes to exactly the valid prefix.
		require.True(t, bytes.Equal(data[:off], build(got...)), "valid prefix does not re-encode")
	})
}
