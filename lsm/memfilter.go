package lsm

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// memFilter is a blocked bloom filter over the user keys of one memtable, so
// that a Get for a key the memtable does not hold (most Gets, once the data
// outgrows a memtable) skips the skiplist search: a dozen or more dependent
// loads from an arena of megabytes, and a key comparison at each, replaced
// by one hash and one cache line.
//
// Blocked: the probes of a key all fall in one 512-bit block (eight words,
// one cache line), chosen by the hash's high bits, so a lookup touches one
// line where a classic bloom filter touches one per probe. That costs a
// little in false positives at the same size, and a false positive only
// costs the search the filter would have skipped.
//
// The one writer of the memtable sets bits with atomic OR before it inserts
// the entry; readers load words atomically. A reader reads at a sequence
// number published after the writer's OR, so it sees every bit of every
// entry it may see. The filter lives in process memory only and its hash
// is seeded per memtable: nothing about it is persisted.
type memFilter struct {
	seed    maphash.Seed
	words   []atomic.Uint64 // nblocks blocks of memFilterBlockWords words
	nblocks uint64
}

const (
	// memFilterBlockWords is the words in a block: 8 x 64 bits, one cache
	// line.
	memFilterBlockWords = 8
	// memFilterProbes is the bits set per key, each 9 bits of the hash
	// (3 for the word, 6 for the bit).
	memFilterProbes = 6
	// memFilterArenaBytesPerBit sizes the filter against the memtable's
	// arena: one bit per 4 arena bytes, 1/32 of the arena. An entry takes
	// at least about 40 arena bytes (node header, tower, 8-byte trailer, a
	// short key), so the filter has 10 or more bits per key: about 1%
	// false positives for a blocked filter with 6 probes.
	memFilterArenaBytesPerBit = 4
)

// newMemFilter returns an empty filter sized for an arena of the given
// capacity.
func newMemFilter(arenaBytes int64) *memFilter {
	nbits := max(arenaBytes/memFilterArenaBytesPerBit, 512)
	nblocks := uint64(nbits+511) / 512
	return &memFilter{
		seed:    maphash.MakeSeed(),
		words:   make([]atomic.Uint64, nblocks*memFilterBlockWords),
		nblocks: nblocks,
	}
}

// sizeBytes is the filter's memory.
func (f *memFilter) sizeBytes() int64 { return int64(len(f.words)) * 8 }

// probes returns the block of ukey and, for each of its words, the mask of
// ukey's bits there.
func (f *memFilter) probes(ukey []byte) (block []atomic.Uint64, masks [memFilterBlockWords]uint64) {
	h := maphash.Bytes(f.seed, ukey)
	b, _ := bits.Mul64(h, f.nblocks) // h scaled to [0, nblocks), by its high bits
	// The probes come from h remixed: the top 54 bits of the product,
	// nearly independent of the block choice.
	p := h * 0x9e3779b97f4a7c15 >> 10
	for range memFilterProbes {
		masks[p&7] |= 1 << (p >> 3 & 63)
		p >>= 9
	}
	return f.words[b*memFilterBlockWords : (b+1)*memFilterBlockWords], masks
}

// add records ukey. Only the memtable's writer calls it, before inserting
// the entry.
func (f *memFilter) add(ukey []byte) {
	block, masks := f.probes(ukey)
	for i, m := range masks {
		// Load first: a key set again (an overwrite) dirties no line.
		if m != 0 && block[i].Load()&m != m {
			block[i].Or(m)
		}
	}
}

// mayContain reports whether ukey may have been added: false means it
// certainly was not.
func (f *memFilter) mayContain(ukey []byte) bool {
	block, masks := f.probes(ukey)
	for i, m := range masks {
		if block[i].Load()&m != m {
			return false
		}
	}
	return true
}
