package commitlog

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
)

// Skipped is a stretch of a damaged file that salvage could not read.
type Skipped = logkv.Skipped

// Salvage reads every record that still checks out from the segments in
// dir, for kvnode salvage, and changes nothing there: it opens the files
// read-only and takes no lock. It calls keep with each record in file
// order (r.Batch is valid only during the call) and skip with each stretch
// it could not read. After damage it resynchronises on the next frame that
// checks out and holds a well-formed record (a synced field before its own
// offset, a batch that decodes); records are not checked for order, gaps or
// epochs, which the caller sorts out (kvnode salvage orders them by seq).
// Each segment is read whole into memory. An error from keep or skip ends
// the salvage and is returned.
//
// A format 3 segment's records are checked with the salt its header names,
// so a frame forged inside a batch's value, without the salt, is never
// taken for a record; a segment whose header is damaged loses its records
// with it. In a format 2 segment (unsalted) a forged frame with a valid
// checksum passes every check, so a resynchronisation that lands inside a
// damaged record's value could take one for a record.
func Salvage(fs vfs.FS, dir string, keep func(Record) error, skip func(Skipped) error) error {
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("commitlog: salvage: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, ok := parseSegName(name); !ok {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := vfs.ReadFile(fs, path)
		if err != nil {
			return fmt.Errorf("commitlog: salvage: %w", err)
		}
		// The header, unsalted, names the salt of the records after it.
		salt, hdr := uint64(0), int64(0)
		if len(data) >= record.HeaderSize {
			n := int64(binary.LittleEndian.Uint32(data[4:]))
			if n <= int64(len(data))-record.HeaderSize && n <= 16 &&
				record.Checksum(data[4:record.HeaderSize+n], 0) == binary.LittleEndian.Uint32(data) {
				salt, hdr, err = checkSegmentHeader(path, data[record.HeaderSize:record.HeaderSize+n])
				if err != nil {
					salt, hdr = 0, 0
				}
			}
		}
		if hdr == 0 {
			// Without its header a format 3 segment's records cannot be
			// checked: they are skipped too (a format 2 segment's are
			// read, unsalted).
			hdr = min(int64(segHeaderSize), int64(len(data)))
			if err := skip(Skipped{Path: path, Off: 0, Len: hdr, Why: "damaged segment header (the salt that checks the records after it is lost)"}); err != nil {
				return err
			}
		}
		accept := func(off int64, p []byte) bool {
			synced, r, err := decodeSegmentRecord(p)
			if err != nil || synced > uint64(hdr+off) {
				return false
			}
			_, err = logkv.DecodeBatch(r.Batch)
			return err == nil
		}
		err = record.ScanSalted(data[hdr:], maxSegmentPayload, salt, accept,
			func(off int64, p []byte) error {
				_, r, _ := decodeSegmentRecord(p)
				return keep(r)
			},
			func(s record.Skipped) error {
				return skip(Skipped{Path: path, Off: hdr + s.Off, Len: s.Len, Why: s.Why})
			})
		if err != nil {
			return err
		}
	}
	return nil
}
