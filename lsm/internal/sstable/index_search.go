package sstable

import (
	"bytes"
	"encoding/binary"
	"unsafe"

	"github.com/logkv/logkv/lsm/internal/base"
)

// indexSearch finds a point lookup's entry in a table's index block without
// the block's binary search, which decodes a cold entry of a large block
// (hundreds of kilobytes for a table of a few megabytes) at every step. It
// holds, for each index entry in order, eight bytes of its separator's user
// key as an integer: the bytes after the prefix all separators share (keys
// of one table often share their first bytes, db_bench's zero-padded
// decimal keys their first eight), big-endian, zero-padded. A search
// bisects that dense array, touching a few cache lines, and compares full
// keys only among entries whose eight bytes tie with the search key's.
//
// It is built in memory when a Reader opens, from the index block already
// read and checked, and is nothing on disk: the table format is unchanged.
// Zero-padding keeps the order (a < b implies pad(a) <= pad(b)); ties, and
// only ties, go to the full comparison, so the answer is exactly the
// block's SeekGE answer.
//
// The array is searched as a static B-tree of 8-entry nodes, one cache line
// each (the arrays are 64-byte aligned): above keys, each level holds the
// last (largest) entry of each node of the level below, up to a level of at
// most 8 entries. A search reads one line a level and one of keys (four
// for a table of 4,000 blocks: 3,999 keys under levels of 500, 63 and 8
// entries; five only past 4,096 keys; the top ones shared by every search)
// where bisecting the flat array touched about ten.
type indexSearch struct {
	prefix []byte     // the bytes every summarised separator's user key starts with
	keys   []uint64   // per entry but the last, the 8 bytes after prefix
	levels [][]uint64 // the tree above keys, its top (at most 8 entries) first; none if keys fit in one node
}

// searchFanout is the entries of a node of indexSearch's tree: one cache
// line of uint64.
const searchFanout = 8

// alignedUint64s returns a slice of length 0 and capacity n whose array
// starts on a 64-byte boundary.
func alignedUint64s(n int) []uint64 {
	buf := make([]uint64, n+searchFanout-1)
	skip := int((64 - uintptr(unsafe.Pointer(unsafe.SliceData(buf)))%64) % 64 / 8)
	return buf[skip : skip : skip+n]
}

// buildLevels builds s.levels over s.keys.
func (s *indexSearch) buildLevels() {
	s.levels = nil
	lvl := s.keys
	for len(lvl) > searchFanout {
		up := alignedUint64s((len(lvl) + searchFanout - 1) / searchFanout)
		for i := searchFanout - 1; i < len(lvl)+searchFanout-1; i += searchFanout {
			up = append(up, lvl[min(i, len(lvl)-1)])
		}
		s.levels = append([][]uint64{up}, s.levels...)
		lvl = up
	}
}

// lowerBound returns the index of the first of s.keys >= t (len(s.keys) if
// none), descending the tree.
func (s *indexSearch) lowerBound(t uint64) int {
	g := 0 // the node of the current level to look in: entries [8g, 8g+8)
	for _, lvl := range s.levels {
		i, end := nodeLowerBound(lvl, g, t)
		if i == end {
			// Only at the top (a lower node's largest entry is its parent's
			// entry, >= t): every key is < t.
			return len(s.keys)
		}
		g = i
	}
	i, _ := nodeLowerBound(s.keys, g, t)
	return i
}

// nodeLowerBound returns the index in lvl of the first entry >= t of node
// g (entries [8g, 8g+8) of the level), and the node's end: i == end when
// every entry of the node is < t.
func nodeLowerBound(lvl []uint64, g int, t uint64) (i, end int) {
	i, end = g*searchFanout, min(g*searchFanout+searchFanout, len(lvl))
	for i < end && lvl[i] < t {
		i++
	}
	return i, end
}

// target returns the 8 bytes of ukey the summary compares (those after
// the prefix, padded), and false when ukey does not start with the prefix.
func (s *indexSearch) target(ukey []byte) (uint64, bool) {
	p := len(s.prefix)
	if len(ukey) < p || string(ukey[:p]) != string(s.prefix) {
		return 0, false
	}
	return pad8(ukey[p:]), true
}

// newIndexSearch builds the summary of the index block b iterates, which
// must be at its start with no error. It returns nil (callers fall back to
// the block's own search) when the block is not one entry per restart
// point, as this package writes index blocks, so that positioning at entry
// i is positioning at restart point i.
func newIndexSearch(b *blockIter) *indexSearch {
	if b.numRestarts == 0 {
		return nil
	}
	var first, last []byte
	n := 0
	for ok := b.First(); ok; ok = b.Next() {
		if n >= b.numRestarts {
			return nil
		}
		// Entry n must be restart point n, a full key.
		if r, ok := b.restart(n); !ok || r != b.offset {
			return nil
		}
		if k, ok := b.restartKey(n); !ok || string(k) != string(b.key) {
			return nil
		}
		if n == 0 {
			first = bytes.Clone(base.UserKey(b.key))
		}
		n++
	}
	if b.err != nil || n != b.numRestarts {
		return nil
	}
	// The last separator is a short successor of the table's last key
	// ("1" after "0000000000020993"), which would cut the shared prefix
	// to nothing: the summary covers the entries before it, and a search
	// past them compares with the last entry itself.
	m := n - 1
	s := &indexSearch{keys: alignedUint64s(m)}
	i := 0
	for ok := b.First(); ok && i < m; ok = b.Next() {
		if i == m-1 {
			last = bytes.Clone(base.UserKey(b.key))
		}
		i++
	}
	// Separators are sorted, so the prefix of the first and the last
	// summarised is the prefix of all of them.
	p := 0
	for p < len(first) && p < len(last) && first[p] == last[p] {
		p++
	}
	s.prefix = first[:p:p]
	i = 0
	for ok := b.First(); ok && i < m; ok = b.Next() {
		s.keys = append(s.keys, pad8(base.UserKey(b.key)[p:]))
		i++
	}
	if b.err != nil || len(s.keys) != m {
		return nil
	}
	s.buildLevels()
	return s
}

// pad8 returns the first 8 bytes of k, zero-padded, as a big-endian integer.
func pad8(k []byte) uint64 {
	if len(k) >= 8 {
		return binary.BigEndian.Uint64(k)
	}
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

// seekGE positions b (an iterator over the summarised index block) at the
// first entry >= ikey, the internal key of (ukey, some trailer), as
// b.SeekGE(ikey) would.
func (s *indexSearch) seekGE(b *blockIter, ukey, ikey []byte) bool {
	n := len(s.keys) // the summarised entries: all but the last
	var lo, hi int
	t, ok := s.target(ukey)
	switch {
	case ok:
		// lo: the first entry whose 8 bytes are >= t; hi: the first > t,
		// looked for in lo's line first (ties are few but for keys that
		// share more than 8 bytes past the prefix).
		lo = s.lowerBound(t)
		hi = lo
		for hi < n && hi < lo+searchFanout && s.keys[hi] == t {
			hi++
		}
		if hi == lo+searchFanout {
			hi = upperBound(s.keys[hi:], t) + hi
		}
		// Among the ties, the full keys decide.
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			k, ok := b.restartKey(m)
			if !ok {
				return false
			}
			if base.Compare(k, ikey) < 0 {
				lo = m + 1
			} else {
				hi = m
			}
		}
	case string(ukey) < string(s.prefix):
		lo = 0 // before every summarised separator
	default:
		lo = n // after every summarised separator
	}
	if lo == n {
		// The last entry, or past the end.
		k, ok := b.restartKey(n)
		if !ok {
			return false
		}
		if base.Compare(k, ikey) < 0 {
			lo = n + 1
		}
	}
	return b.seekRestart(lo)
}

// upperBound returns the index of the first element of the sorted keys
// greater than t.
func upperBound(keys []uint64, t uint64) int {
	lo, hi := 0, len(keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if keys[m] <= t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
