package sstable

import (
	"encoding/binary"
	"math/bits"
)

// Bloom filter over the user keys of a table (see doc.go, "Filter block").
//
// The hash is this package's own, fixed by the format: a filter written by
// one process is read by another, so a per-process seeded hash such as
// hash/maphash cannot be used. Probes use double hashing: probe i tests bit
// ((h1 + i*h2) mod 2^32) * nbits >> 32, where h1 and h2 are the low and high
// 32 bits of the 64-bit hash.

const (
	hashM1 = 0xa0761d6478bd642f
	hashM2 = 0xe7037ed1a0b428db
	hashM3 = 0x8ebc6af09c88c6e3
)

// mix multiplies a by b into 128 bits and folds the halves.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// HashKey is the filter's 64-bit hash of a user key (Reader.AppendGet takes
// it, so that a Get probing several tables hashes its key once).
func HashKey(p []byte) uint64 {
	h := uint64(len(p))*hashM1 ^ hashM3
	for len(p) >= 8 {
		h = mix(h^binary.LittleEndian.Uint64(p), hashM2)
		p = p[8:]
	}
	var t uint64
	for i, c := range p {
		t |= uint64(c) << (8 * i)
	}
	h = mix(h^t^hashM1, hashM2)
	return mix(h^h>>29, hashM3)
}

// maxFilterProbes caps k: beyond it a probe costs more than it saves.
const maxFilterProbes = 30

// filterProbes returns k for bitsPerKey bits per key: bitsPerKey*ln 2,
// rounded, which minimises the false-positive rate.
func filterProbes(bitsPerKey int) int {
	k := (bitsPerKey*69 + 50) / 100
	return max(1, min(k, maxFilterProbes))
}

// appendFilter appends to dst the filter for the given key hashes.
func appendFilter(dst []byte, hashes []uint64, bitsPerKey int) []byte {
	nbits := uint64(len(hashes)) * uint64(bitsPerKey)
	nbits = max(nbits, 64)
	nbits = min(nbits, 8*(maxBlockSize-1)) // readers refuse larger blocks
	nbytes := int((nbits + 7) / 8)
	nbits = uint64(nbytes) * 8
	k := filterProbes(bitsPerKey)
	start := len(dst)
	dst = append(dst, make([]byte, nbytes)...)
	f := dst[start:]
	for _, h := range hashes {
		a, b := uint32(h), uint32(h>>32)
		for range k {
			bit := uint64(a) * nbits >> 32
			f[bit>>3] |= 1 << (bit & 7)
			a += b
		}
	}
	return append(dst, byte(k))
}

// filter is a decoded filter block: the bit array and the probe count.
type filter struct {
	bits  []byte
	nbits uint64
	k     int
}

// decodeFilter checks a filter block's shape. It reports false if the block
// cannot be a filter this package wrote.
func decodeFilter(b []byte) (filter, bool) {
	if len(b) < 2 || uint64(len(b)-1)*8 >= 1<<32 {
		return filter{}, false
	}
	k := int(b[len(b)-1])
	if k < 1 || k > maxFilterProbes {
		return filter{}, false
	}
	return filter{bits: b[:len(b)-1], nbits: uint64(len(b)-1) * 8, k: k}, true
}

// mayContain reports whether a key with hash h may be in the set.
func (f *filter) mayContain(h uint64) bool {
	a, b := uint32(h), uint32(h>>32)
	for range f.k {
		bit := uint64(a) * f.nbits >> 32
		if f.bits[bit>>3]&(1<<(bit&7)) == 0 {
			return false
		}
		a += b
	}
	return true
}
