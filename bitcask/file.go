package bitcask

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/logkv/logkv/vfs"
)

// File names in a bitcask directory:
//
//	LOCK                  the directory lock (vfs FS.Lock)
//	NNNNNNNN.data         a data file; NNNNNNNN is its id, 8 decimal digits
//	NNNNNNNN.hint         the hint file of the data file with the same id
//	NNNNNNNN.mdata        a merge output not yet committed (deleted by Open)
//	MERGE-NNNNNNNN        a committed merge's manifest (see merge.go)
//	*.tmp                 a file being written (deleted by Open)
const (
	lockName     = "LOCK"
	dataSuffix   = ".data"
	hintSuffix   = ".hint"
	mdataSuffix  = ".mdata"
	tmpSuffix    = ".tmp"
	mergePrefix  = "MERGE-"
	fileIDDigits = 8
)

func fileName(id uint32, suffix string) string {
	return fmt.Sprintf("%0*d%s", fileIDDigits, id, suffix)
}

// parseFileName returns the id and suffix of a data, hint or merge output
// file name.
func parseFileName(name string) (uint32, string, bool) {
	for _, suf := range []string{dataSuffix, hintSuffix, mdataSuffix} {
		if s, ok := strings.CutSuffix(name, suf); ok && len(s) == fileIDDigits {
			id, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return 0, "", false
			}
			return uint32(id), suf, true
		}
	}
	return 0, "", false
}

// dataFile is one open data file and what the DB knows about it.
type dataFile struct {
	id     uint32
	path   string
	f      vfs.File
	origin byte
	floor  uint64
	// salt salts the checksums of the file's records (0: format 2, none);
	// hdrSize is its header's size, where its first record starts.
	salt    uint64
	hdrSize int64

	// refs counts the DB's own reference (while the file is in DB.files)
	// plus one per snapshot, iterator or read in flight using it. The file
	// is closed (and deleted if obsolete) when it drops to zero.
	refs atomic.Int32
	// flushed is how many bytes ReadAt can see; the rest of size is still in
	// the write buffer (only for the active file).
	flushed atomic.Int64
	// mm maps the file read-only (the active file up to the size it may
	// grow to, reads staying within flushed; nil on filesystems without
	// file descriptors, or with Options.DisableMmap).
	// It is unmapped when refs drops to zero, so no reader can hold it then.
	mm atomic.Pointer[[]byte]
	// faulted is set when a read from mm faulted (readMapped): reads use
	// ReadAt from then on. mm stays mapped until the file is released.
	faulted atomic.Bool

	// syncedSize is how many bytes of the file are durable: what the synced
	// field of the next record appended says. Guarded by DB.wmu.
	syncedSize int64

	// Guarded by DB.kmu (dead and deadBytes by DB.deadMu).
	size      int64           // bytes written, buffered ones included
	dead      *roaring.Bitmap // offsets of dead records
	deadBytes int64
	records   int
	minSeq    uint64 // math.MaxUint64 while the file has no record
	maxSeq    uint64
	hasHint   bool
	active    bool // takes appends: never merged, no hint yet
	corrupt   bool // a bad record was found: never merged
	merging   bool
	obsolete  *manifest // set when a committed merge replaced the file
}

func newDataFile(id uint32, dir string, f vfs.File, h fileHeader) *dataFile {
	df := &dataFile{
		id:      id,
		path:    filepath.Join(dir, fileName(id, dataSuffix)),
		f:       f,
		origin:  h.origin,
		floor:   h.floor,
		salt:    h.salt,
		hdrSize: h.size,
		dead:    roaring.New(),
		minSeq:  math.MaxUint64,
	}
	df.refs.Store(1)
	return df
}

func (df *dataFile) noteSeq(seq uint64) {
	df.minSeq = min(df.minSeq, seq)
	df.maxSeq = max(df.maxSeq, seq)
}

// markDead records the record at off, of size bytes, as dead. The caller
// holds DB.deadMu (or is recovery, alone).
func (df *dataFile) markDead(off uint32, size int64) {
	if df.dead.CheckedAdd(off) {
		df.deadBytes += size
	}
}

// liveBytes is the file's size less its header and dead records. The
// caller holds DB.kmu and DB.deadMu.
func (df *dataFile) liveBytes() int64 {
	return max(df.size-df.hdrSize-df.deadBytes, 0)
}

// deadRatio is the share of the file's records' bytes that are dead. The
// caller holds DB.kmu and DB.deadMu.
func (df *dataFile) deadRatio() float64 {
	if df.size <= df.hdrSize {
		return 0
	}
	return float64(df.deadBytes) / float64(df.size-df.hdrSize)
}
