package commitlog

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
)

// # Segment layout (format 3)
//
// A segment is a sequence of internal/record frames (crc32c u32 | len u32 |
// payload) with nothing between them. The first frame is the header,
// unsalted, with a 16-byte payload:
//
//	offset  size  field
//	0       7     magic "LKVCLOG"
//	7       1     format version: 3
//	8       8     salt: non-zero, drawn at random when the segment is
//	              created, uint64 little-endian
//
// so the header frame is the segment's first 24 bytes. It is written and
// synced when the segment is created, before any record. Every later frame
// is one record, its checksum salted with the header's salt
// (record.Checksum: CRC-32C of the salt's 8 bytes, then the frame's length
// and payload), and its payload:
//
//	offset  size  field
//	0       8     synced: the segment's synced length in bytes (header
//	              included) when the record was framed, uint64 little-endian
//	8       8     seq, uint64 LE      \
//	16      8     epoch, uint64 LE     > the record as AppendRecord encodes it
//	24      n     the batch (n > 0)   /
//
// synced never exceeds the record's own offset. It lets recovery tell damage
// from a power loss in bytes that were never synced (a torn tail: cut) from
// damage in bytes a later record says were synced (corruption). The salt
// keeps a frame forged inside a batch's value (which anyone who writes a
// value can shape) from checking out when recovery or salvage looks for
// records past damage: the forger never sees the salt.
//
// Format 2 was format 3 without the salt: an 8-byte header payload (magic,
// version 2; a 16-byte header frame) and unsalted record frames. Open reads
// it (a log upgraded in place keeps its old segments; its new ones are
// format 3). Format 1 (before the synced field) had no header and 16-byte
// record headers; Open refuses its segments with ErrFormat.

// segmentVersion is the format version this package writes; it reads
// segmentVersion2 too.
const (
	segmentVersion  = 3
	segmentVersion2 = 2
)

// segmentMagic begins a segment header's payload.
const segmentMagic = "LKVCLOG"

// segHeaderSize is the size of a format 3 segment's header frame: where its
// first record starts. segHeaderSizeV2 is format 2's.
const (
	segHeaderSize   = record.HeaderSize + 7 + 1 + 8 // magic, version, salt
	segHeaderSizeV2 = record.HeaderSize + 7 + 1
)

// syncedFieldSize is the size of a segment record payload's synced field.
const syncedFieldSize = 8

// maxSegmentPayload is the largest frame payload of a segment.
const maxSegmentPayload = syncedFieldSize + MaxRecordSize

// ErrFormat reports a segment in a format this version cannot read. The
// wrapping error names the file. It wraps logkv.ErrFormat (and so
// logkv.ErrCorrupt): errors.Is with either holds.
var ErrFormat = logkv.NewFormatSentinel("commitlog: unsupported segment format")

// newSalt returns a segment's salt: random (math/rand/v2's generator is
// seeded from the operating system, so a writer of values cannot predict
// it) and never 0, which would mean no salt.
func newSalt() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}

// appendSegmentHeader appends the header frame of a format 3 segment with
// salt to dst.
func appendSegmentHeader(dst []byte, salt uint64) []byte {
	p := append([]byte(segmentMagic), segmentVersion)
	p = binary.LittleEndian.AppendUint64(p, salt)
	return record.Append(dst, p)
}

// checkSegmentHeader checks the payload of the first frame of segment path
// and returns the salt of its records (0 in format 2) and the size of its
// header frame.
func checkSegmentHeader(path string, p []byte) (salt uint64, size int64, err error) {
	if len(p) > len(segmentMagic) && string(p[:len(segmentMagic)]) == segmentMagic {
		switch v := p[len(segmentMagic)]; {
		case v == segmentVersion && len(p) == len(segmentMagic)+1+8:
			salt = binary.LittleEndian.Uint64(p[len(segmentMagic)+1:])
			if salt == 0 {
				return 0, 0, logkv.CorruptError(path, 0, "segment header with salt 0")
			}
			return salt, segHeaderSize, nil
		case v == segmentVersion2 && len(p) == len(segmentMagic)+1:
			return 0, segHeaderSizeV2, nil
		case v != segmentVersion && v != segmentVersion2:
			return 0, 0, fmt.Errorf("%w: %s is in format %d; this version reads formats %d and %d", ErrFormat, path, v, segmentVersion2, segmentVersion)
		}
		return 0, 0, logkv.CorruptError(path, 0, "bad segment header length %d", len(p))
	}
	if _, err := DecodeRecord(p); err == nil {
		return 0, 0, fmt.Errorf("%w: %s is in format 1 (no header, records without their synced length); "+
			"this version reads formats %d and %d only: resync the node from its leader or a checkpoint", ErrFormat, path, segmentVersion2, segmentVersion)
	}
	return 0, 0, logkv.CorruptError(path, 0, "bad segment header")
}

// appendSegmentRecord appends the segment payload of r to dst: synced, then
// the record.
func appendSegmentRecord(dst []byte, synced uint64, r Record) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, synced)
	return AppendRecord(dst, r)
}

// decodeSegmentRecord decodes a segment record payload. The batch aliases p.
// Errors wrap logkv.ErrCorrupt.
func decodeSegmentRecord(p []byte) (synced uint64, r Record, err error) {
	if len(p) < syncedFieldSize {
		return 0, Record{}, logkv.CorruptError("record", 0, "segment record payload of %d bytes is shorter than its synced field", len(p))
	}
	r, err = DecodeRecord(p[syncedFieldSize:])
	if err != nil {
		return 0, Record{}, err
	}
	return binary.LittleEndian.Uint64(p), r, nil
}

// laterSynced returns the largest synced field of the intact records that
// start after offset bad in the size bytes of r, checking every offset with
// internal/record's Finder (linear in the tail): a value above bad proves
// the damage at bad lies in synced bytes. Frames that cannot be later
// records of this segment are skipped: a synced field past their own
// offset, or a seq not after prev (the seq of the last record before the
// damage), as in stale blocks of a removed segment that a torn write
// exposed. It reads the whole tail at once: recovery only.
func laterSynced(r io.ReaderAt, path string, bad, size int64, prev, salt uint64) (int64, error) {
	if size <= bad {
		return 0, nil
	}
	data := make([]byte, size-bad)
	if n, err := r.ReadAt(data, bad); n < len(data) {
		return 0, fmt.Errorf("commitlog: read %s at %d: %w", path, bad, err)
	}
	var best int64
	const minPayload = syncedFieldSize + RecordHeaderSize + 1
	record.NewFinder(data, maxSegmentPayload, salt).Each(1, func(off int, p []byte) bool {
		if len(p) < minPayload {
			return false
		}
		// The checksum vouches for the frame; the batch need not be decoded.
		synced := binary.LittleEndian.Uint64(p)
		seq := binary.LittleEndian.Uint64(p[syncedFieldSize:])
		if synced > uint64(bad)+uint64(off) || seq <= prev {
			return false
		}
		best = max(best, int64(synced))
		return true
	})
	return best, nil
}

// SegmentRecordSize returns the bytes that a record whose batch is n bytes
// long takes in a segment: its frame, synced field and header included.
func SegmentRecordSize(n int) int64 {
	return int64(record.Size(syncedFieldSize + RecordHeaderSize + n))
}

type segment struct {
	salt       uint64 // its records' checksum salt (0 in a format 2 segment)
	hdr        int64  // its header's size: where its first record starts
	first      uint64 // seq of its first record (or of its next, if empty)
	last       uint64 // seq of its last record; first-1 if empty
	size       int64  // bytes written
	syncedSize int64  // bytes synced (equal to size once sealed)
	path       string
}

func segName(first uint64) string { return fmt.Sprintf("%016x.log", first) }

func parseSegName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".log")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	return v, err == nil && v > 0
}

// openActive opens path, a new or cut segment, as the file appends go to.
// A failure fails the log: l.f is gone and nothing more can be written.
// l.mu is held.
func (l *Log) openActive(path string) (vfs.File, error) {
	f, err := l.fs.OpenReadWrite(path)
	if err != nil {
		return nil, l.fail(fmt.Errorf("commitlog: %w", err))
	}
	return f, nil
}

// newSegment returns the in-memory state of a new segment whose first record
// will be first.
func (l *Log) newSegment(first uint64) *segment {
	return &segment{first: first, last: first - 1, size: segHeaderSize, syncedSize: segHeaderSize,
		salt: newSalt(), hdr: segHeaderSize, path: filepath.Join(l.dir, segName(first))}
}

// createSegment creates (or empties) the file of segment s, holding only
// its header (with s.salt), and makes it durable.
func (l *Log) createSegment(s *segment) error {
	path := s.path
	f, err := l.fs.Create(path)
	if err != nil {
		return fmt.Errorf("commitlog: %w", err)
	}
	_, err = f.Write(appendSegmentHeader(nil, s.salt))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		return fmt.Errorf("commitlog: create %s: %w", path, err)
	}
	return nil
}
