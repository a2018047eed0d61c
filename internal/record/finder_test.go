package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// directFrame is the plain check a Finder must agree with.
func directFrame(data []byte, off, limit int, salt uint64) bool {
	if len(data)-off < HeaderSize {
		return false
	}
	n := binary.LittleEndian.Uint32(data[off+4:])
	if int64(n) > int64(limit) || int64(n) > int64(len(data)-off-HeaderSize) {
		return false
	}
	end := off + HeaderSize + int(n)
	return Checksum(data[off+4:end], salt) == binary.LittleEndian.Uint32(data[off:])
}

// A Finder's verdict at every offset is the plain check's, salted or not,
// for frames short and long (the prefix path starts above directMax), in
// any order of offsets.
func TestFinderAgreesWithTheDirectCheck(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, salt := range []uint64{0, 0x9e3779b97f4a7c15} {
		var data []byte
		for range 200 {
			p := make([]byte, rng.IntN(3*directMax+cpStride))
			for i := range p {
				p[i] = byte(rng.IntN(4)) // small bytes: many plausible lengths
			}
			data = AppendSalted(data, p, salt)
			if rng.IntN(3) == 0 {
				data = append(data, byte(rng.IntN(256))) // garbage between frames
			}
		}
		f := NewFinder(data, 1<<20, salt)
		found := 0
		for _, off := range rng.Perm(len(data)) {
			p, why := f.Frame(off)
			require.Equal(t, directFrame(data, off, 1<<20, salt), why == "", "offset %d, salt %x", off, salt)
			if why == "" {
				found++
				require.Equal(t, binary.LittleEndian.Uint32(data[off+4:]), uint32(len(p)))
			}
		}
		require.GreaterOrEqual(t, found, 200, "every real frame is found")
	}
}

// shift is multiplication by x^(8m): the register after m zero bytes.
func TestShiftIsFeedingZeros(t *testing.T) {
	for _, m := range []int{0, 1, 3, 64, 255, 256, 257, 65535, 65536, 1<<20 + 7} {
		r := uint32(0xdeadbeef)
		require.Equal(t, raw(r, make([]byte, m)), shift(r, uint64(m)), "m = %d", m)
	}
}

// garbageClaimingLongFrames returns data whose first stretch, n bytes, is
// garbage in which every fourth offset holds a length field claiming a
// frame of claim bytes (and others claim 8 KiB), followed by claim+1 KiB of
// real frames: every claim fits in the data, so only the checksum refutes
// it. The old search checksummed each claim whole, n/4 x claim bytes.
func garbageClaimingLongFrames(n, claim int) (data []byte, frames []string) {
	var pat [4]byte
	binary.LittleEndian.PutUint32(pat[:], uint32(claim))
	data = bytes.Repeat(pat[:], n/4)
	for i := 0; len(data) < n+claim+1<<10; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 1000)
		frames = append(frames, string(p))
		data = Append(data, p)
	}
	return data, frames
}

// Scan's search past damage is linear: 1 MiB of garbage whose length
// fields claim 2 MiB frames took the old search 2^18 checksums of 2 MiB
// (half a terabyte: minutes); it now takes a fraction of a second (a few
// seconds under the race detector). The budget is generous, so a loaded
// machine cannot fail it, and far below what the quadratic search needs.
func TestScanIsLinearOverGarbage(t *testing.T) {
	const claim = 2 << 20
	data, frames := garbageClaimingLongFrames(1<<20, claim)
	start := time.Now()
	var kept []string
	var skipped []Skipped
	require.NoError(t, Scan(data, 4<<20, nil,
		func(_ int64, p []byte) error { kept = append(kept, string(p)); return nil },
		func(s Skipped) error { skipped = append(skipped, s); return nil }))
	took := time.Since(start)
	require.Equal(t, frames, kept)
	require.Len(t, skipped, 1)
	require.Equal(t, Skipped{Off: 0, Len: 1 << 20, Why: skipped[0].Why}, skipped[0])
	require.Less(t, took, 20*time.Second, "Scan over 1 MiB of garbage claiming long frames")
	t.Logf("Scan over %d MiB: %v", len(data)>>20, took)
}

// The Reader's verdict on a bad frame (torn tail or corruption) searches
// the rest of the file the same way: linear, and still right.
func TestReaderBadIsLinearOverGarbage(t *testing.T) {
	const claim = 2 << 20
	garbage, _ := garbageClaimingLongFrames(1<<20, claim)
	data := append(build("head"), garbage...)
	start := time.Now()
	r := NewReader(bytes.NewReader(data), "f", int64(len(data)), 4<<20)
	_, err := r.Next()
	require.NoError(t, err)
	_, err = r.Next()
	require.ErrorIs(t, err, logkv.ErrCorrupt, "valid frames follow the garbage")
	require.Less(t, time.Since(start), 20*time.Second)

	// Garbage to the end: a torn tail.
	torn := append(build("head"), garbage[:1<<20]...)
	r = NewReader(bytes.NewReader(torn), "f", int64(len(torn)), 4<<20)
	_, err = r.Next()
	require.NoError(t, err)
	_, err = r.Next()
	require.True(t, errors.Is(err, ErrTornTail), "%v", err)
}

// Each visits what the plain walk visits: every frame that checks out,
// jumping past those fn takes and stepping one byte past those it refuses.
func TestEachIsThePlainWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var data []byte
	for i := range 300 {
		p := make([]byte, rng.IntN(2*directMax))
		p = append(p, byte(i))
		inner := Append(nil, []byte{byte(i)}) // a frame inside a frame
		data = Append(data, append(p, inner...))
		if rng.IntN(4) == 0 {
			data = append(data, byte(rng.IntN(256)))
		}
	}
	take := func(off int, p []byte) bool { return (off+len(p))%3 != 0 }
	var plain, each []int
	for off := 0; off+HeaderSize <= len(data); {
		if directFrame(data, off, 1<<20, 0) {
			plain = append(plain, off)
			n := int(binary.LittleEndian.Uint32(data[off+4:]))
			if take(off, data[off+HeaderSize:off+HeaderSize+n]) {
				off += HeaderSize + n
				continue
			}
		}
		off++
	}
	NewFinder(data, 1<<20, 0).Each(0, func(off int, p []byte) bool {
		each = append(each, off)
		return take(off, p)
	})
	require.Equal(t, plain, each)
	require.Greater(t, len(each), 300)
}
