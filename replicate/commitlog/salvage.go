package commitlog

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/internal/vfs"
)

// Skipped is a stretch of a damaged file that salvage could not read.
type Skipped struct {
	Path string
	Off  int64 // where the stretch starts
	Len  int64 // its length in bytes
	Why  string
}

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
// What salvage cannot do: a frame forged inside a batch's value (bytes
// shaped like a record, with a valid checksum) passes every check, so a
// resynchronisation that lands inside a damaged record's value could take
// one for a record.
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
		data, err := readWhole(fs, path)
		if err != nil {
			return err
		}
		accept := func(off int64, p []byte) bool {
			if off == 0 {
				return checkSegmentHeader(path, p) == nil
			}
			synced, r, err := decodeSegmentRecord(p)
			if err != nil || synced > uint64(off) {
				return false
			}
			_, err = logkv.DecodeBatch(r.Batch)
			return err == nil
		}
		err = record.Scan(data, maxSegmentPayload, accept,
			func(off int64, p []byte) error {
				if off == 0 {
					return nil // the header
				}
				_, r, _ := decodeSegmentRecord(p)
				return keep(r)
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

// readWhole reads the file at path.
func readWhole(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("commitlog: salvage: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("commitlog: salvage: %w", err)
	}
	data := make([]byte, st.Size())
	if n, err := f.ReadAt(data, 0); n < len(data) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("commitlog: salvage: read %s: %w", path, err)
	}
	return data, nil
}
