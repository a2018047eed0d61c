package lsm

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/lsm/internal/sstable"
	"github.com/logkv/logkv/vfs"
)

// SalvagedEntry is one entry Salvage read from a table or a WAL. Key and
// Value are valid only during the call that receives it.
type SalvagedEntry struct {
	Seq    uint64 // the sequence number of the batch that wrote it
	Key    []byte
	Value  []byte // empty for a deletion
	Delete bool   // the key was deleted
}

// Skipped is a part of a damaged file that Salvage could not read: a
// stretch of a WAL (Off, Len), or the entries of a table between two keys
// (Off is the damaged block's offset when the error names one, else -1;
// Len is -1).
type Skipped = logkv.Skipped

// Salvage reads every entry that still checks out from the tables and WAL
// segments in dir, for kvnode salvage, and changes nothing there: it opens
// the files read-only, takes no lock and does not read the MANIFEST (which
// tables are live does not matter when every entry carries its sequence
// number: the caller keeps, for each key, the entry with the highest). It
// calls keep with each entry and skip with each part it could not read.
//
// A WAL is read frame by frame (internal/record.Scan), resynchronising
// after damage on the next frame that holds a well-formed record. A table
// is read forward from its first entry until a damaged block stops the
// iterator, then backward from its last entry until damage stops it again
// or it meets the forward pass: one damaged data block costs that block's
// entries only (two or more cost the entries between the first and the
// last). A table whose footer, index or properties are damaged cannot be
// read at all and is skipped whole. Each WAL is read whole into memory.
// An error from keep or skip ends the salvage and is returned.
func Salvage(fs vfs.FS, dir string, keep func(SalvagedEntry) error, skip func(Skipped) error) error {
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("lsm: salvage: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		path := filepath.Join(dir, name)
		switch filepath.Ext(name) {
		case ".sst":
			err = salvageTable(fs, path, keep, skip)
		case ".log":
			err = salvageWAL(fs, path, keep, skip)
		default:
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func salvageWAL(fs vfs.FS, path string, keep func(SalvagedEntry) error, skip func(Skipped) error) error {
	data, err := vfs.ReadFile(fs, path)
	if err != nil {
		return fmt.Errorf("lsm: salvage: %w", err)
	}
	accept := func(off int64, p []byte) bool {
		_, synced, _, err := decodeWALRecord(p, path, off)
		return err == nil && synced <= uint64(off)
	}
	return record.Scan(data, maxWALPayload, accept,
		func(off int64, p []byte) error {
			seq, _, b, _ := decodeWALRecord(p, path, off)
			if b == nil {
				return nil // a closing marker
			}
			r := b.Reader()
			for {
				kind, k, v, ok := r.Next()
				if !ok {
					return nil
				}
				// Every entry of a batch has the batch's seq, as in the
				// memtable; within a batch the later entry of a key wins,
				// so the caller applies equal seqs in the order given.
				if err := keep(SalvagedEntry{Seq: seq, Key: k, Value: v, Delete: kind == logkv.KindDelete}); err != nil {
					return err
				}
			}
		},
		func(s record.Skipped) error {
			return skip(Skipped{Path: path, Off: s.Off, Len: s.Len, Why: s.Why})
		})
}

func salvageTable(fs vfs.FS, path string, keep func(SalvagedEntry) error, skip func(Skipped) error) error {
	f, err := fs.Open(path)
	if err != nil {
		return fmt.Errorf("lsm: salvage: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("lsm: salvage: %w", err)
	}
	// ReadAt, not a mapping: salvage reads each block once, often from a
	// failing disk, where a mapped page the kernel cannot read faults.
	r, err := sstable.Open(f, st.Size(), sstable.ReaderOptions{Name: path, DisableMmap: true})
	if err != nil {
		return skip(Skipped{Path: path, Off: 0, Len: st.Size(), Why: fmt.Sprintf("table unreadable (footer, index or properties): %v", err)})
	}
	defer r.Close()
	emit := func(ik, v []byte) error {
		return keep(SalvagedEntry{Seq: base.Seq(ik), Key: base.UserKey(ik), Value: v, Delete: base.KindOf(ik) == base.KindDelete})
	}
	it := r.NewCompactionIter()
	var last []byte // the last internal key read forward
	for ok := it.First(); ok; ok = it.Next() {
		if err := emit(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
		last = append(last[:0], it.Key()...)
	}
	ferr := it.Error()
	it.Close()
	if ferr == nil {
		return nil
	}
	// Damage stopped the forward pass: read back from the end to meet it.
	it = r.NewIter(nil, nil)
	defer it.Close()
	var first []byte // the first internal key read backward
	for ok := it.Last(); ok; ok = it.Prev() {
		if last != nil && base.Compare(it.Key(), last) <= 0 {
			break
		}
		if err := emit(it.Key(), it.Value()); err != nil {
			return err
		}
		first = append(first[:0], it.Key()...)
	}
	why := fmt.Sprintf("entries after %s and before %s unreadable: %v", fmtKey(last), fmtKey(first), ferr)
	return skip(Skipped{Path: path, Off: -1, Len: -1, Why: why})
}

// fmtKey shows an internal key in a skip report, or "the table's start/end".
func fmtKey(ik []byte) string {
	if ik == nil {
		return "the table's edge"
	}
	return fmt.Sprintf("%q", bytes.Clone(base.UserKey(ik)))
}
