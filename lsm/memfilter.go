package lsm

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// memFilter is a register-blocked bloom filter over the user keys of one
// memtable, so that a Get for a key the memtable does not hold (most Gets,
// once the data outgrows a memtable) skips the skiplist search: a dozen or
// more dependent loads from an arena of megabytes, and a key comparison at
// each, replaced by one hash and one load.
//
// Register-blocked: all the probes of a key fall in one 64-bit word, chosen
// by the hash's high bits, so an add is one load and at most one atomic OR,
// and a lookup one load. A filter whose six probes spread over a 512-bit
// block (one cache line) cost an add about four locked instructions and
// masks built in a variable-indexed array: several times this one's cost,
// on the commit path of every write. The price is a higher false-positive
// rate at the same size: about 1.7% at the worst load, 10 bits a key (1%
// for the 512-bit block), and 0.03% at the 37 bits a key of 16-byte keys
// with 100-byte values. A false positive only costs the search the filter
// would have skipped.
//
// The one writer of the memtable sets bits with atomic OR before it inserts
// the entry; readers load words atomically. A reader reads at a sequence
// number published after the writer's OR, so it sees every bit of every
// entry it may see. The filter lives in process memory only and its hash
// is seeded per memtable: nothing about it is persisted.
type memFilter struct {
	seed  maphash.Seed
	words []atomic.Uint64
}

const (
	// memFilterProbes is the bits set per key, each 6 bits of the hash.
	// Five is the best count for one 64-bit word at 10 bits a key.
	memFilterProbes = 5
	// memFilterArenaBytesPerBit sizes the filter against the memtable's
	// arena: one bit per 4 arena bytes, 1/32 of the arena. An entry takes
	// at least about 40 arena bytes (node header, tower, 8-byte trailer, a
	// short key), so the filter has 10 or more bits per key.
	memFilterArenaBytesPerBit = 4
)

// newMemFilter returns an empty filter sized for an arena of the given
// capacity.
func newMemFilter(arenaBytes int64) *memFilter {
	nbits := max(arenaBytes/memFilterArenaBytesPerBit, 512)
	return &memFilter{
		seed:  maphash.MakeSeed(),
		words: make([]atomic.Uint64, (nbits+63)/64),
	}
}

// sizeBytes is the filter's memory.
func (f *memFilter) sizeBytes() int64 { return int64(len(f.words)) * 8 }

// probe returns the word of ukey and the mask of ukey's bits in it.
func (f *memFilter) probe(ukey []byte) (*atomic.Uint64, uint64) {
	h := maphash.Bytes(f.seed, ukey)
	w, _ := bits.Mul64(h, uint64(len(f.words))) // h scaled to [0, words), by its high bits
	// The bits come from h remixed, 6 at a time from the top of the
	// product, nearly independent of the word choice. The loop has a
	// constant count and unrolls: no array, no loads.
	p := h * 0x9e3779b97f4a7c15
	var m uint64
	for range memFilterProbes {
		m |= 1 << (p >> 58)
		p <<= 6
	}
	return &f.words[w], m
}

// add records ukey. Only the memtable's writer calls it, before inserting
// the entry.
func (f *memFilter) add(ukey []byte) {
	w, m := f.probe(ukey)
	// Load first: a key set again (an overwrite) dirties no line and
	// takes no locked instruction.
	if w.Load()&m != m {
		w.Or(m)
	}
}

// mayContain reports whether ukey may have been added: false means it
// certainly was not.
func (f *memFilter) mayContain(ukey []byte) bool {
	w, m := f.probe(ukey)
	return w.Load()&m == m
}
