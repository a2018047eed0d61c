package bitcask

import (
	"fmt"
	"github.com/logkv/logkv"
	"path/filepath"
	"slices"

	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
)

// SalvagedRecord is one record Salvage read from a data file. Key and Value
// are valid only during the call that receives it.
type SalvagedRecord struct {
	Seq       uint64 // the sequence number of the batch that wrote it
	Key       []byte
	Value     []byte // empty for a tombstone
	Tombstone bool   // the key was deleted
	// Last is false when more records of the same batch follow it (its
	// flagMore).
	Last bool
}

// Skipped is a stretch of a damaged data file that Salvage could not read.
type Skipped = logkv.Skipped

// Salvage reads every record that still checks out from the data files in
// dir (NNNNNNNN.data, in id order), for kvnode salvage, and changes nothing
// there: it opens the files read-only, takes no lock and ignores hint
// files, merge manifests and uncommitted merge output. It calls keep with
// each record in file order and skip with each stretch it could not read.
// After damage it resynchronises on the next frame that checks out and
// holds a well-formed record (known flags, lengths within the limits, a
// synced field before its own offset). The caller resolves the records:
// the one with the highest Seq wins a key, as in recovery, and a file a
// finished merge replaced may still be there, repeating records. Each file
// is read whole into memory. An error from keep or skip ends the salvage
// and is returned.
//
// A frame forged inside a value (bytes shaped like a record, with a valid
// checksum) passes every check, so a resynchronisation that lands inside a
// damaged record's value could take one for a record.
func Salvage(fs vfs.FS, dir string, keep func(SalvagedRecord) error, skip func(Skipped) error) error {
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("bitcask: salvage: %w", err)
	}
	slices.Sort(names) // ids are fixed-width decimal
	for _, name := range names {
		if _, suffix, ok := parseFileName(name); !ok || suffix != dataSuffix {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := vfs.ReadFile(fs, path)
		if err != nil {
			return fmt.Errorf("bitcask: salvage: %w", err)
		}
		accept := func(off int64, p []byte) bool {
			if off == 0 {
				_, _, why, err := decodeFileHeader(path, data[:record.HeaderSize+len(p)])
				return why == "" && err == nil
			}
			r, why := decodePayload(p)
			return why == "" && r.synced <= uint64(off)
		}
		err = record.Scan(data, maxRecordPayload, accept,
			func(off int64, p []byte) error {
				if off == 0 {
					return nil // the file header
				}
				r, _ := decodePayload(p)
				return keep(SalvagedRecord{Seq: r.seq, Key: r.key, Value: r.value,
					Tombstone: r.flags&flagTombstone != 0, Last: r.flags&flagMore == 0})
			},
			func(s record.Skipped) error {
				return skip(Skipped{Path: path, Off: s.Off, Len: s.Len, Why: s.Why})
			})
		if err != nil {
			return err
		}
	}
	return nil
}
