package sstable

import (
	"encoding/binary"

	"github.com/logkv/logkv/lsm/internal/base"
)

// separatorTrailer makes the smallest internal key of a user key: internal
// keys order by trailer descending, and no trailer exceeds MaxSeq<<8|KindSet.
var separatorTrailer = base.MakeTrailer(base.MaxSeq, base.KindSet)

// separator appends to dst a short internal key sep with a <= sep < b, for
// the index entry between two data blocks whose last and first keys are a
// and b (a < b). When the user keys leave room, sep is a shorter user key s
// with ua < s < ub and the smallest trailer: every version of ua sorts before
// sep because s > ua, and sep sorts before b because s < ub. Otherwise sep is
// a itself.
func separator(dst, a, b []byte) []byte {
	ua, ub := base.UserKey(a), base.UserKey(b)
	n := 0
	for n < len(ua) && n < len(ub) && ua[n] == ub[n] {
		n++
	}
	if n >= len(ua) || n >= len(ub) {
		return append(dst, a...) // ua is a prefix of ub (or equal)
	}
	// ua[n] < ub[n]. Any key starting with ua[:n+1] is < ub; bump the first
	// byte that can grow, at n if that stays below ub[n], else after n.
	m := n
	if ua[n]+1 >= ub[n] {
		m = n + 1
		for m < len(ua) && ua[m] == 0xff {
			m++
		}
	}
	return shortened(dst, a, m)
}

// successor appends to dst a short internal key >= a, for the index entry of
// a table's last block: ua cut after its first byte below 0xff, that byte
// incremented, with the smallest trailer; or a itself.
func successor(dst, a []byte) []byte {
	ua := base.UserKey(a)
	m := 0
	for m < len(ua) && ua[m] == 0xff {
		m++
	}
	return shortened(dst, a, m)
}

// shortened appends ua[:m+1] with its last byte incremented and the smallest
// trailer, or a itself when that would not be shorter than ua.
func shortened(dst, a []byte, m int) []byte {
	ua := base.UserKey(a)
	if m+1 >= len(ua) {
		return append(dst, a...)
	}
	dst = append(dst, ua[:m+1]...)
	dst[len(dst)-1]++
	return binary.LittleEndian.AppendUint64(dst, separatorTrailer)
}
