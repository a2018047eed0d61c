package sstable

import (
	"bytes"
	"encoding/binary"

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
type indexSearch struct {
	prefix []byte   // the bytes every summarised separator's user key starts with
	keys   []uint64 // per entry but the last, the 8 bytes after prefix
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
	s := &indexSearch{keys: make([]uint64, 0, m)}
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
	switch p := len(s.prefix); {
	case len(ukey) >= p && string(ukey[:p]) == string(s.prefix):
		t := pad8(ukey[p:])
		// lo: the first entry whose 8 bytes are >= t; hi: the first > t.
		lo, hi = 0, n
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if s.keys[m] < t {
				lo = m + 1
			} else {
				hi = m
			}
		}
		hi = upperBound(s.keys[lo:], t) + lo
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
