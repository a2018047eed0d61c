package bitcask

import (
	"encoding/binary"
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
// A frame forged inside a value does not check out in a format 3 file: its
// records' checksums are salted with the file's salt, which a writer of
// values never sees. In a format 2 file (no salt) a resynchronisation that
// lands inside a damaged record's value could take a forged frame for a
// record.
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
		// The header (unsalted) gives the records' salt. A damaged one is
		// skipped, and the salt guessed: its field in a format 3 header if
		// the record after such a header checks out with it, else none if
		// the record after a format 2 header checks out, else the field
		// anyway (only records framed with the right salt check out, so a
		// wrong guess loses only what no guess could read).
		h, why, err := decodeFileHeader(path, data)
		if err != nil {
			return err
		}
		start := h.size
		if why != "" {
			start = 0
			h.salt = guessSalt(data)
		}
		accept := func(off int64, p []byte) bool {
			r, why := decodePayload(p)
			return why == "" && r.synced <= uint64(start+off)
		}
		err = record.ScanSalted(data[start:], maxRecordPayload, h.salt, accept,
			func(off int64, p []byte) error {
				r, _ := decodePayload(p)
				return keep(SalvagedRecord{Seq: r.seq, Key: r.key, Value: r.value,
					Tombstone: r.flags&flagTombstone != 0, Last: r.flags&flagMore == 0})
			},
			func(s record.Skipped) error {
				if why != "" && s.Off == 0 {
					s.Why = "bad file header (" + why + "), then " + s.Why
				}
				return skip(Skipped{Path: path, Off: start + s.Off, Len: s.Len, Why: s.Why})
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// guessSalt returns the salt of the records of data, a data file whose
// header is damaged: the header's salt field if the first record of a
// format 3 file checks out with it, 0 if the first record of a format 2
// file checks out unsalted, else the field as it is.
func guessSalt(data []byte) uint64 {
	if len(data) < fileHeaderSize {
		return 0
	}
	field := binary.LittleEndian.Uint64(data[24:])
	for _, c := range []struct {
		salt uint64
		off  int
	}{{field, fileHeaderSize}, {0, fileHeaderSizeV2}} {
		if p, why := record.NewFinder(data, maxRecordPayload, c.salt).Frame(c.off); why == "" {
			if _, why := decodePayload(p); why == "" {
				return c.salt
			}
		}
	}
	return field
}
