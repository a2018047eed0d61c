package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"
)

// Finding frames past damage in linear time
//
// After damage, recovery and salvage look for the next frame that checks
// out by trying every offset. Checking a candidate the plain way costs its
// length: the checksum covers the whole frame. Garbage whose length fields
// read as large, plausible lengths (a value of repeated bytes such as
// 00 00 10 00 makes every fourth offset claim a 1 MiB frame) made that
// search cost offsets x length, quadratic in the damaged stretch: hours for
// a few MiB.
//
// A Finder checks a candidate in time independent of its length, from
// prefix checksums. CRC-32C without its initial and final inversion (the
// raw register, raw(r, p): the register after feeding p to a register
// holding r) is linear over GF(2):
//
//	raw(r, a||b) = shift(raw(r, a), len(b)) xor raw(0, b)
//
// where shift(r, m) = raw(r, m zero bytes) multiplies r by x^(8m) modulo the
// CRC polynomial. With Q(i) = raw(0, data[:i]), the checksum of the frame
// bytes data[s:e] (length and payload; s = off+4) is
//
//	^(Q(e) xor shift(Q(s) xor init, e-s))
//
// where init is the register a checksum starts from: 0xFFFFFFFF, or for a
// salted frame the complement of the salt's CRC-32C (Checksum). The Finder
// keeps Q at every 64th offset, computed once over the data as far as it
// is needed, and finds Q at any offset from the checkpoint below it plus
// at most 63 bytes; shift costs at most five carry-less multiplications
// from tables of x^(8 d 256^i). A candidate costs O(1), a search O(n).

// crcPoly is CRC-32C's polynomial, bit-reflected (crc32.Castagnoli).
const crcPoly = crc32.Castagnoli

// cpStride is the distance between a Finder's checkpoints: a checkpoint
// costs 4 bytes, so they take 1/16 of the data's size.
const cpStride = 64

// directMax is the longest candidate checked by computing its checksum
// directly: for short frames that is cheaper than two prefix look-ups and
// a shift.
const directMax = 2 * cpStride

// gfOne is the polynomial 1 in the reflected representation (x^0 is the
// top bit).
const gfOne = 1 << 31

// gfMul returns a*b modulo the CRC polynomial, both reflected.
func gfMul(a, b uint32) uint32 {
	// Branch-free: the bits of a are as good as random, so branches on
	// them would be mispredicted half the time.
	var p uint32
	for range 32 {
		p ^= b & -(a >> 31)
		a <<= 1
		b = b>>1 ^ crcPoly&-(b&1)
	}
	return p
}

// xPow8 holds x^(8 d 256^i) modulo the polynomial at [i][d], for the
// bytes i of a shift's length in bytes.
var xPow8 = sync.OnceValue(func() *[8][256]uint32 {
	var t [8][256]uint32
	step := uint32(gfOne >> 8) // x^8: shifting by one byte
	for i := range t {
		t[i][0] = gfOne
		for d := 1; d < 256; d++ {
			t[i][d] = gfMul(t[i][d-1], step)
		}
		step = gfMul(t[i][255], step) // x^(8 256^(i+1))
	}
	return &t
})

// shift returns raw(r, m zero bytes): r times x^(8m).
func shift(r uint32, m uint64) uint32 { return gfMul(xPow8m(m), r) }

// xPow8m returns x^(8m) modulo the polynomial.
func xPow8m(m uint64) uint32 {
	t := xPow8()
	p := uint32(gfOne)
	for i := 0; m != 0; i, m = i+1, m>>8 {
		if d := m & 0xff; d != 0 {
			p = gfMul(t[i][d], p)
		}
	}
	return p
}

// raw returns the raw CRC-32C register after feeding p to one holding r.
func raw(r uint32, p []byte) uint32 { return ^crc32.Update(^r, castagnoli, p) }

// A Finder checks frames at any offset of data, a whole file held in
// memory, in time independent of their length (see above): the way to
// look for the next frame after damage. Checking offsets in increasing
// order costs O(len(data)) in all.
type Finder struct {
	data  []byte
	limit int
	salt  uint64
	init  uint32
	cps   []uint32 // cps[k] = Q(k*cpStride), for the offsets reached so far
	// pows caches x^(8m) by m (direct-mapped): garbage repeats its claims,
	// so the table products need not be redone for each.
	pows [16]struct {
		m   uint64
		pow uint32
	}
}

// NewFinder returns a Finder over data for frames of at most limit bytes of
// payload, checked with salt (0: unsalted).
func NewFinder(data []byte, limit int, salt uint64) *Finder {
	f := &Finder{data: data, limit: limit, salt: salt, init: 0xFFFFFFFF}
	if salt != 0 {
		var s [8]byte
		binary.LittleEndian.PutUint64(s[:], salt)
		f.init = ^crc32.Checksum(s[:], castagnoli)
	}
	return f
}

// prefix returns Q(i): the raw register over data[:i].
func (f *Finder) prefix(i int) uint32 {
	k := i / cpStride
	for len(f.cps) <= k {
		n := len(f.cps)
		if n == 0 {
			f.cps = append(f.cps, 0)
			continue
		}
		f.cps = append(f.cps, raw(f.cps[n-1], f.data[(n-1)*cpStride:n*cpStride]))
	}
	return raw(f.cps[k], f.data[k*cpStride:i])
}

// Frame checks the frame at off: its payload if the frame's length is
// within the limit and the data and its checksum matches, or why not.
func (f *Finder) Frame(off int) (payload []byte, why string) {
	p, bad, n := f.frame(off)
	switch bad {
	case badHeader:
		return nil, "incomplete header"
	case badLimit:
		return nil, fmt.Sprintf("frame length %d over the limit %d", n, f.limit)
	case badPastEnd:
		return nil, fmt.Sprintf("frame length %d past the end of the file", n)
	case badChecksum:
		return nil, "checksum mismatch"
	}
	return p, ""
}

// Why a frame fails its checks, without formatting a message: the search
// past damage rejects most offsets, and needs no message for them.
const (
	frameOK = iota
	badHeader
	badLimit
	badPastEnd
	badChecksum
)

// frame checks the frame at off; bad is frameOK or why not, n the length
// its header claims.
func (f *Finder) frame(off int) (payload []byte, bad int, n uint32) {
	data := f.data
	if off < 0 || len(data)-off < HeaderSize {
		return nil, badHeader, 0
	}
	n = binary.LittleEndian.Uint32(data[off+4:])
	if int64(n) > int64(f.limit) {
		return nil, badLimit, n
	}
	if int64(n) > int64(len(data)-off-HeaderSize) {
		return nil, badPastEnd, n
	}
	end := off + HeaderSize + int(n)
	var sum uint32
	if n <= directMax {
		sum = Checksum(data[off+4:end], f.salt)
	} else {
		s := off + 4
		m := uint64(end - s)
		c := &f.pows[m%uint64(len(f.pows))]
		if c.m != m || c.pow == 0 {
			c.m, c.pow = m, xPow8m(m)
		}
		sum = ^(f.prefix(end) ^ gfMul(c.pow, f.prefix(s)^f.init))
	}
	if sum != binary.LittleEndian.Uint32(data[off:]) {
		return nil, badChecksum, n
	}
	return data[off+HeaderSize : end : end], frameOK, n
}

// Next returns the first offset at or after from where a frame checks out
// and accept (nil: any) takes its payload, with the payload; -1 if there is
// none. Checking every offset from from to the end costs O(len(data)).
func (f *Finder) Next(from int, accept func(off int64, payload []byte) bool) (int, []byte) {
	for off := max(from, 0); off+HeaderSize <= len(f.data); off++ {
		if p, bad, _ := f.frame(off); bad == frameOK && (accept == nil || accept(int64(off), p)) {
			return off, p
		}
	}
	return -1, nil
}

// Each calls fn with every frame that checks out at or after from, in
// order, as recovery walks the bytes after damage looking for records that
// vouch for it: after a frame fn takes (returns true) it goes on at the
// frame's end, after one fn refuses (bytes shaped like a frame that cannot
// be a later record of the file) at the next byte. Linear in len(data).
func (f *Finder) Each(from int, fn func(off int, payload []byte) bool) {
	for off := max(from, 0); off+HeaderSize <= len(f.data); {
		p, bad, _ := f.frame(off)
		if bad == frameOK && fn(off, p) {
			off += HeaderSize + len(p)
			continue
		}
		off++
	}
}
