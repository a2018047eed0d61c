package sstable

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// Bloom filter over the user keys of a table (see doc.go, "Filter block").
//
// The hash is this package's own, fixed by the format: a filter written by
// one process is read by another, so a per-process seeded hash such as
// hash/maphash cannot be used.
//
// Format version 2 tables (the ones this package writes) have a blocked
// filter: a key's probes all fall in one 64-byte block, one cache line, so
// a probe of a table costs at most one cache miss where the version 1
// filter's k probes spread over the whole bit array (seven lines at 10 bits
// a key for a key the table holds). The block is chosen by the high 32 bits
// of the hash; the probes' bit positions are the top 9 bits of the low 32
// bits multiplied by the golden-ratio constant once per probe (RocksDB's
// FastLocalBloom). Version 1 filters use double hashing: probe i tests bit
// ((h1 + i*h2) mod 2^32) * nbits >> 32, where h1 and h2 are the low and
// high 32 bits of the 64-bit hash.

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

// filterBlockBytes is the size of a blocked filter's block: a cache line.
const filterBlockBytes = 64

// filterProbeMul steps a blocked filter's probe: a probe tests the top 9
// bits of its 32-bit state, then multiplies the state by it.
const filterProbeMul = 0x9e3779b9

// appendFilter appends to dst the filter of the given table format version
// (blocked for version 2 and later) for the given key hashes.
func appendFilter(dst []byte, hashes []uint64, bitsPerKey int, version uint32) []byte {
	if version < 2 {
		return appendFilterV1(dst, hashes, bitsPerKey)
	}
	nbytes := (uint64(len(hashes))*uint64(bitsPerKey) + 7) / 8
	nbytes = (nbytes + filterBlockBytes - 1) / filterBlockBytes * filterBlockBytes
	nbytes = max(nbytes, filterBlockBytes)
	nbytes = min(nbytes, (maxBlockSize-1)/filterBlockBytes*filterBlockBytes) // readers refuse larger blocks
	nblocks := nbytes / filterBlockBytes
	k := filterProbes(bitsPerKey)
	start := len(dst)
	dst = append(dst, make([]byte, nbytes)...)
	f := dst[start:]
	for _, h := range hashes {
		blk := f[((h>>32)*nblocks>>32)*filterBlockBytes:][:filterBlockBytes]
		a := uint32(h)
		for range k {
			bit := a >> 23
			blk[bit>>3] |= 1 << (bit & 7)
			a *= filterProbeMul
		}
	}
	return append(dst, byte(k))
}

// appendFilterV1 appends a format version 1 filter: double hashing over the
// whole bit array.
func appendFilterV1(dst []byte, hashes []uint64, bitsPerKey int) []byte {
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
// A blocked filter's bits start on a 64-byte boundary in memory, so that
// each of its blocks is one cache line.
type filter struct {
	bits    []byte
	nbits   uint64
	nblocks uint64 // blocked (version 2) filters: the number of 64-byte blocks; 0 for version 1
	k       int
}

// decodeFilter checks the shape of a filter block of a table of the given
// format version. It reports false if the block cannot be a filter this
// package wrote. A blocked filter's bits are copied to memory aligned to
// 64 bytes unless b already is.
func decodeFilter(b []byte, version uint32) (filter, bool) {
	if len(b) < 2 || uint64(len(b)-1)*8 >= 1<<32 {
		return filter{}, false
	}
	k := int(b[len(b)-1])
	if k < 1 || k > maxFilterProbes {
		return filter{}, false
	}
	bits := b[:len(b)-1]
	f := filter{bits: bits, nbits: uint64(len(bits)) * 8, k: k}
	if version < 2 {
		return f, true
	}
	if len(bits)%filterBlockBytes != 0 {
		return filter{}, false
	}
	if uintptr(unsafe.Pointer(&bits[0]))%filterBlockBytes != 0 {
		buf := make([]byte, len(bits)+filterBlockBytes-1)
		skip := (filterBlockBytes - int(uintptr(unsafe.Pointer(&buf[0]))%filterBlockBytes)) % filterBlockBytes
		f.bits = buf[skip : skip+len(bits) : skip+len(bits)]
		copy(f.bits, bits)
	}
	f.nblocks = uint64(len(bits)) / filterBlockBytes
	return f, true
}

// mayContain reports whether a key with hash h may be in the set.
func (f *filter) mayContain(h uint64) bool {
	if f.nblocks > 0 {
		// One cache line: the block the high half of h picks.
		blk := (*[filterBlockBytes]byte)(f.bits[((h>>32)*f.nblocks>>32)*filterBlockBytes:])
		a := uint32(h)
		for range f.k {
			bit := a >> 23
			if blk[bit>>3]&(1<<(bit&7)) == 0 {
				return false
			}
			a *= filterProbeMul
		}
		return true
	}
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
