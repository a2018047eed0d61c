package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
)

// # Segment layout (format 2)
//
// A segment is a sequence of internal/record frames (crc32c u32 | len u32 |
// payload) with nothing between them. The first frame is the header, with an
// 8-byte payload:
//
//	offset  size  field
//	0       7     magic "LKVCLOG"
//	7       1     format version: 2
//
// so the header frame is the segment's first 16 bytes. It is written and
// synced when the segment is created, before any record. Every later frame is
// one record, whose payload is:
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
// damage in bytes a later record says were synced (corruption).
//
// Format 1 (before the synced field) had no header and 16-byte record
// headers; Open refuses its segments with ErrFormat.

// segmentVersion is the format version this package writes and reads.
const segmentVersion = 2

// segmentMagic begins a segment header's payload.
const segmentMagic = "LKVCLOG"

// segHeaderSize is the size of a segment's header frame: where its first
// record starts.
const segHeaderSize = record.HeaderSize + 8 // the magic and the version

// syncedFieldSize is the size of a segment record payload's synced field.
const syncedFieldSize = 8

// maxSegmentPayload is the largest frame payload of a segment.
const maxSegmentPayload = syncedFieldSize + MaxRecordSize

// ErrFormat reports a segment in a format this version cannot read. The
// wrapping error names the file.
var ErrFormat = errors.New("commitlog: unsupported segment format")

// appendSegmentHeader appends the header frame of a segment to dst.
func appendSegmentHeader(dst []byte) []byte {
	return record.Append(dst, append([]byte(segmentMagic), segmentVersion))
}

// checkSegmentHeader checks the payload of the first frame of segment path.
func checkSegmentHeader(path string, p []byte) error {
	if len(p) == len(segmentMagic)+1 && string(p[:len(segmentMagic)]) == segmentMagic {
		if v := p[len(segmentMagic)]; v != segmentVersion {
			return fmt.Errorf("%w: %s is in format %d; this version reads format %d", ErrFormat, path, v, segmentVersion)
		}
		return nil
	}
	if _, err := DecodeRecord(p); err == nil {
		return fmt.Errorf("%w: %s is in format 1 (no header, records without their synced length); "+
			"this version reads format %d only: resync the node from its leader or a checkpoint", ErrFormat, path, segmentVersion)
	}
	return logkv.CorruptError(path, 0, "bad segment header")
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
// start after offset bad in the size bytes of r, scanning every offset: a
// value above bad proves the damage at bad lies in synced bytes. Frames that
// cannot be later records of this segment are skipped: a synced field past
// their own offset, or a seq not after prev (the seq of the last record
// before the damage), as in stale blocks of a removed segment that a torn
// write exposed. It reads the whole tail at once: recovery only.
func laterSynced(r io.ReaderAt, path string, bad, size int64, prev uint64) (int64, error) {
	if size <= bad {
		return 0, nil
	}
	data := make([]byte, size-bad)
	if n, err := r.ReadAt(data, bad); n < len(data) {
		return 0, fmt.Errorf("commitlog: read %s at %d: %w", path, bad, err)
	}
	var best int64
	const minFrame = record.HeaderSize + syncedFieldSize + RecordHeaderSize + 1
	for off := 1; off+minFrame <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		end := off + record.HeaderSize + n
		if n < minFrame-record.HeaderSize || n > maxSegmentPayload || end > len(data) ||
			crc32.Checksum(data[off+4:end], castagnoli) != binary.LittleEndian.Uint32(data[off:]) {
			off++
			continue
		}
		// The checksum vouches for the frame; the batch need not be decoded.
		synced := binary.LittleEndian.Uint64(data[off+record.HeaderSize:])
		seq := binary.LittleEndian.Uint64(data[off+record.HeaderSize+syncedFieldSize:])
		if synced > uint64(bad)+uint64(off) || seq <= prev {
			off++
			continue
		}
		best = max(best, int64(synced))
		off = end
	}
	return best, nil
}

// SegmentRecordSize returns the bytes that a record whose batch is n bytes
// long takes in a segment: its frame, synced field and header included.
func SegmentRecordSize(n int) int64 {
	return int64(record.Size(syncedFieldSize + RecordHeaderSize + n))
}
