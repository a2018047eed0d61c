// Package base holds the lsm engine's internal key format, shared by the
// memtable, the WAL replay, SSTables and compaction.
//
// # Internal keys
//
// Every version of a user key is stored under an internal key: the user key
// followed by an 8-byte trailer.
//
//	offset  size  field
//	0       n     user key
//	n       8     trailer: seq<<8 | kind, uint64 little-endian
//
// seq is the sequence number of the batch that wrote the version (at most
// MaxSeq, 56 bits); kind is KindSet or KindDelete. Internal keys order by user
// key ascending (byte-wise), then by trailer descending, so the newest version
// of a key comes first and a seek to (key, seq) lands on the newest version
// visible at seq.
package base

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Kind is the kind of an internal key's version.
type Kind uint8

// Kinds of versions. A delete is a tombstone hiding older versions.
const (
	KindDelete Kind = 0
	KindSet    Kind = 1
)

// TrailerSize is the size of an internal key's trailer.
const TrailerSize = 8

// MaxSeq is the largest sequence number an internal key can carry.
const MaxSeq = 1<<56 - 1

// MakeTrailer packs seq and kind.
func MakeTrailer(seq uint64, kind Kind) uint64 { return seq<<8 | uint64(kind) }

// AppendInternalKey appends the internal key of (ukey, seq, kind) to dst.
func AppendInternalKey(dst, ukey []byte, seq uint64, kind Kind) []byte {
	dst = append(dst, ukey...)
	return binary.LittleEndian.AppendUint64(dst, MakeTrailer(seq, kind))
}

// MakeSearchKey returns the internal key that sorts before every version of
// ukey visible at seq: a SeekGE to it lands on the newest such version.
func MakeSearchKey(ukey []byte, seq uint64) []byte {
	return AppendInternalKey(make([]byte, 0, len(ukey)+TrailerSize), ukey, seq, KindSet)
}

// Valid reports whether ik is long enough to be an internal key and has a
// known kind.
func Valid(ik []byte) bool {
	if len(ik) < TrailerSize {
		return false
	}
	k := Kind(ik[len(ik)-TrailerSize])
	return k == KindSet || k == KindDelete
}

// UserKey returns the user key of ik, which must be Valid.
func UserKey(ik []byte) []byte { return ik[:len(ik)-TrailerSize] }

// Trailer returns the trailer of ik, which must be Valid.
func Trailer(ik []byte) uint64 { return binary.LittleEndian.Uint64(ik[len(ik)-TrailerSize:]) }

// Seq returns the sequence number of ik, which must be Valid.
func Seq(ik []byte) uint64 { return Trailer(ik) >> 8 }

// KindOf returns the kind of ik, which must be Valid.
func KindOf(ik []byte) Kind { return Kind(Trailer(ik)) }

// Compare orders internal keys: user key ascending, then trailer descending.
func Compare(a, b []byte) int {
	if c := bytes.Compare(UserKey(a), UserKey(b)); c != 0 {
		return c
	}
	ta, tb := Trailer(a), Trailer(b)
	switch {
	case ta > tb:
		return -1
	case ta < tb:
		return 1
	}
	return 0
}

// Format renders ik for errors and tests: "key#seq,kind".
func Format(ik []byte) string {
	if !Valid(ik) {
		return fmt.Sprintf("invalid(%q)", ik)
	}
	k := "set"
	if KindOf(ik) == KindDelete {
		k = "del"
	}
	return fmt.Sprintf("%q#%d,%s", UserKey(ik), Seq(ik), k)
}
