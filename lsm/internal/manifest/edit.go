package manifest

import (
	"encoding/binary"
	"fmt"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
)

// NumLevels is the number of levels of the LSM tree, L0 to L6.
const NumLevels = 7

// MaxEditSize bounds an encoded edit (a manifest record's payload).
const MaxEditSize = 64 << 20

// maxFiles bounds the number of files one edit may add or delete, so a
// decoder never allocates by a count read from input beyond what its bytes
// can hold.
const maxFiles = 1 << 20

// FileMeta describes one SSTable.
type FileMeta struct {
	Num         uint64
	Size        uint64
	Smallest    []byte // internal key
	Largest     []byte // internal key
	SmallestSeq uint64
	LargestSeq  uint64
	Entries     uint64 // internal keys in the table (versions and tombstones)

	// refs counts the live versions holding the file (owned by the DB's
	// version set, under its lock).
	Refs int32
	// Compacting is set while a compaction reads the file (under the DB's
	// lock).
	Compacting bool
}

// NewFile is a file an edit adds to a level.
type NewFile struct {
	Level int
	Meta  *FileMeta
}

// DeletedFile is a file an edit removes from a level.
type DeletedFile struct {
	Level int
	Num   uint64
}

// Edit is one change to the LSM tree's state: files added and removed, and
// the counters that must survive a restart. Zero counters are absent (not
// changed).
type Edit struct {
	LogNum      uint64 // WAL segments numbered below LogNum are flushed
	NextFileNum uint64 // the next unused file number
	LastSeq     uint64 // the newest sequence number durable in tables
	Deleted     []DeletedFile
	Added       []NewFile
}

// Tags of an encoded edit's fields.
const (
	tagLogNum      = 1
	tagNextFileNum = 2
	tagLastSeq     = 3
	tagDeleted     = 4
	tagAdded       = 5
)

// Encode appends e's encoding to dst.
//
// # Encoding
//
// An edit is a sequence of fields, each a uvarint tag followed by the
// field's data; a field may repeat (deleted and added files):
//
//	tag  name           data
//	1    log number     uvarint
//	2    next file num  uvarint
//	3    last seq       uvarint
//	4    deleted file   level uvarint, file number uvarint
//	5    added file     level uvarint, file number uvarint, size uvarint,
//	                    smallest key (uvarint length, bytes),
//	                    largest key (uvarint length, bytes),
//	                    smallest seq uvarint, largest seq uvarint,
//	                    entries uvarint
//
// Keys are internal keys (lsm/internal/base). Unknown tags are corruption:
// a newer format bumps the manifest's file name, not the edit.
func (e *Edit) Encode(dst []byte) []byte {
	if e.LogNum != 0 {
		dst = binary.AppendUvarint(dst, tagLogNum)
		dst = binary.AppendUvarint(dst, e.LogNum)
	}
	if e.NextFileNum != 0 {
		dst = binary.AppendUvarint(dst, tagNextFileNum)
		dst = binary.AppendUvarint(dst, e.NextFileNum)
	}
	if e.LastSeq != 0 {
		dst = binary.AppendUvarint(dst, tagLastSeq)
		dst = binary.AppendUvarint(dst, e.LastSeq)
	}
	for _, d := range e.Deleted {
		dst = binary.AppendUvarint(dst, tagDeleted)
		dst = binary.AppendUvarint(dst, uint64(d.Level))
		dst = binary.AppendUvarint(dst, d.Num)
	}
	for _, a := range e.Added {
		m := a.Meta
		dst = binary.AppendUvarint(dst, tagAdded)
		dst = binary.AppendUvarint(dst, uint64(a.Level))
		dst = binary.AppendUvarint(dst, m.Num)
		dst = binary.AppendUvarint(dst, m.Size)
		dst = binary.AppendUvarint(dst, uint64(len(m.Smallest)))
		dst = append(dst, m.Smallest...)
		dst = binary.AppendUvarint(dst, uint64(len(m.Largest)))
		dst = append(dst, m.Largest...)
		dst = binary.AppendUvarint(dst, m.SmallestSeq)
		dst = binary.AppendUvarint(dst, m.LargestSeq)
		dst = binary.AppendUvarint(dst, m.Entries)
	}
	return dst
}

// Decode parses an edit from data, the payload of a manifest record in file
// name starting at offset off (for errors). Every length is checked against
// the data left and the limits before use; errors wrap logkv.ErrCorrupt.
func Decode(data []byte, name string, off int64) (*Edit, error) {
	if len(data) > MaxEditSize {
		return nil, logkv.CorruptError(name, off, "version edit of %d bytes over the limit", len(data))
	}
	d := decoder{data: data, name: name, base: off}
	e := &Edit{}
	for d.pos < len(d.data) && d.err == nil {
		tag := d.uvarint()
		switch tag {
		case tagLogNum:
			e.LogNum = d.uvarint()
		case tagNextFileNum:
			e.NextFileNum = d.uvarint()
		case tagLastSeq:
			e.LastSeq = d.uvarint()
			if e.LastSeq > base.MaxSeq {
				d.fail("last seq %d over the maximum", e.LastSeq)
			}
		case tagDeleted:
			lvl := d.level()
			num := d.uvarint()
			if len(e.Deleted) >= maxFiles {
				d.fail("too many deleted files")
			}
			e.Deleted = append(e.Deleted, DeletedFile{Level: lvl, Num: num})
		case tagAdded:
			lvl := d.level()
			m := &FileMeta{}
			m.Num = d.uvarint()
			m.Size = d.uvarint()
			m.Smallest = d.key()
			m.Largest = d.key()
			m.SmallestSeq = d.uvarint()
			m.LargestSeq = d.uvarint()
			m.Entries = d.uvarint()
			if d.err == nil && base.Compare(m.Smallest, m.Largest) > 0 {
				d.fail("file %d has smallest key above its largest", m.Num)
			}
			if len(e.Added) >= maxFiles {
				d.fail("too many added files")
			}
			e.Added = append(e.Added, NewFile{Level: lvl, Meta: m})
		default:
			if d.err == nil {
				d.fail("unknown version edit tag %d", tag)
			}
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return e, nil
}

type decoder struct {
	data []byte
	pos  int
	name string
	base int64
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = logkv.CorruptError(d.name, d.base+int64(d.pos), "version edit: "+format, args...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.data[d.pos:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.pos += n
	return v
}

func (d *decoder) level() int {
	v := d.uvarint()
	if v >= NumLevels {
		d.fail("level %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) key() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n < base.TrailerSize || n > logkv.MaxKeySize+base.TrailerSize || n > uint64(len(d.data)-d.pos) {
		d.fail("bad key length %d", n)
		return nil
	}
	k := append([]byte(nil), d.data[d.pos:d.pos+int(n)]...)
	d.pos += int(n)
	if !base.Valid(k) {
		d.fail("invalid internal key")
		return nil
	}
	return k
}

// String renders an edit for tests and debugging.
func (e *Edit) String() string {
	s := fmt.Sprintf("log=%d next=%d last=%d", e.LogNum, e.NextFileNum, e.LastSeq)
	for _, d := range e.Deleted {
		s += fmt.Sprintf(" -L%d:%d", d.Level, d.Num)
	}
	for _, a := range e.Added {
		s += fmt.Sprintf(" +L%d:%d[%s..%s]", a.Level, a.Meta.Num, base.Format(a.Meta.Smallest), base.Format(a.Meta.Largest))
	}
	return s
}
