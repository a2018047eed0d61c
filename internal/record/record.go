// Package record frames the records of logkv's append-only logs: the lsm WAL
// and the node's commit log. Each record is checksummed, so recovery can tell
// a torn tail (a write cut short by a crash) from corruption elsewhere.
//
// # Format
//
// A log file is a sequence of frames with nothing between them:
//
//	offset  size  field
//	0       4     CRC-32C (Castagnoli) of bytes 4 .. 8+len, uint32 little-endian
//	4       4     len: the payload's length, uint32 little-endian
//	8       len   payload
//
// The checksum covers the length, so a torn or zeroed length field fails it
// too. A reader refuses a length above its limit before allocating anything.
//
// A file may salt its frames: the checksum is then CRC-32C of the salt, 8
// bytes little-endian, followed by bytes 4 .. 8+len (AppendSalted,
// Checksum). The bytes on disk are laid out as above; only the checksum's
// value differs, so a frame read with the wrong salt fails it. The file
// keeps its salt in an unsalted header frame of its own format.
//
// # Torn tails and corruption
//
// A crash can leave the end of the file written only in part, or extended with
// zeros or garbage. The Reader reports a frame that fails its checks as
// ErrTornTail when no valid frame follows it anywhere in the file (the rest of
// the file is the remains of writes in flight at the crash), and as
// logkv.ErrCorrupt, naming the file and offset, when a valid frame follows it
// (acknowledged data lies beyond the bad frame, so cutting there would lose
// it). The owner of the last file of a log cuts a torn tail at Offset; a torn
// tail in any earlier file is corruption too.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/logkv/logkv"
)

// HeaderSize is the size of a frame's header.
const HeaderSize = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTornTail reports a frame, at the end of a file, that was not wholly
// written: the file's valid content ends before it.
var ErrTornTail = errors.New("record: torn tail")

// Append appends the frame of payload to dst and returns the extended slice.
func Append(dst, payload []byte) []byte { return AppendSalted(dst, payload, 0) }

// AppendSalted appends the frame of payload to dst with salt mixed into its
// checksum (see Checksum), and returns the extended slice. Salt 0 is no
// salt: the frame is Append's.
func AppendSalted(dst, payload []byte, salt uint64) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(dst[start+4:], uint32(len(payload)))
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start:], Checksum(dst[start+4:], salt))
	return dst
}

// Checksum returns the checksum of a frame whose bytes from offset 4 (the
// length, then the payload) are b: CRC-32C of b, or with a non-zero salt,
// CRC-32C of the salt's 8 bytes (little-endian) followed by b.
//
// Why a salt: a checksum alone cannot tell a frame from bytes shaped like
// one inside another frame's payload, which anyone who writes a value can
// forge. Recovery and salvage, resynchronising after damage, would take a
// forged frame for a record. A salt drawn at random for each file and kept
// in its header (unsalted) makes a forgery need the salt, which a writer of
// values never sees: the per-log-number checksum of LevelDB and RocksDB's
// recyclable log format, there against stale records of a reused file.
func Checksum(b []byte, salt uint64) uint32 {
	if salt == 0 {
		return crc32.Checksum(b, castagnoli)
	}
	return crc32.Update(saltCRC(salt), castagnoli, b)
}

// saltCRC is the CRC-32C of salt's 8 bytes, little-endian, computed here by
// slicing by 8 (one lookup a byte, none depending on another): an [8]byte
// handed to package crc32, which calls through a function variable, would
// escape, one allocation a record.
func saltCRC(salt uint64) uint32 {
	x := salt ^ 0xFFFFFFFF // the initial ^0 meets the first 4 bytes
	t := &saltTables
	return ^(t[7][byte(x)] ^ t[6][byte(x>>8)] ^ t[5][byte(x>>16)] ^ t[4][byte(x>>24)] ^
		t[3][byte(x>>32)] ^ t[2][byte(x>>40)] ^ t[1][byte(x>>48)] ^ t[0][byte(x>>56)])
}

// saltTables extends castagnoli for slicing by 8: saltTables[k][b] is the
// CRC register after byte b and then k zero bytes, from a zero register.
var saltTables = func() (t [8][256]uint32) {
	t[0] = *castagnoli
	for k := 1; k < 8; k++ {
		for b := range 256 {
			c := t[k-1][b]
			t[k][b] = castagnoli[byte(c)] ^ c>>8
		}
	}
	return t
}()

// Size returns the size of the frame of a payload of n bytes.
func Size(n int) int { return HeaderSize + n }

// Reader reads the frames of one file in order.
type Reader struct {
	r     io.ReaderAt
	name  string
	size  int64
	limit int
	salt  uint64
	off   int64 // offset of the next frame
	buf   []byte
}

// NewReader returns a Reader over the size bytes of r, a file called name (for
// errors). Frames longer than limit bytes of payload are invalid.
func NewReader(r io.ReaderAt, name string, size int64, limit int) *Reader {
	return &Reader{r: r, name: name, size: size, limit: limit}
}

// SetSalt makes the frames from the next one on checked with salt (see
// Checksum): a file whose header, unsalted, names the salt of the frames
// after it sets it once it has read the header.
func (r *Reader) SetSalt(salt uint64) { r.salt = salt }

// Offset returns the offset of the next frame: after Next returned io.EOF or
// ErrTornTail, the length of the file's valid content.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next frame's payload, valid until the next call. At the
// clean end of the file it returns io.EOF. A frame that fails its checks gives
// an error wrapping ErrTornTail if nothing valid follows it, or
// logkv.ErrCorrupt naming the file and offset otherwise; the Reader does not
// move past either.
func (r *Reader) Next() ([]byte, error) {
	if r.off == r.size {
		return nil, io.EOF
	}
	payload, why, err := r.frameAt(r.off)
	if err != nil {
		return nil, err
	}
	if why != "" {
		return nil, r.bad(why)
	}
	r.off += int64(HeaderSize + len(payload))
	return payload, nil
}

// frameAt reads the frame at off. A frame that fails its checks returns a
// non-empty why; err is for I/O errors only.
func (r *Reader) frameAt(off int64) (payload []byte, why string, err error) {
	var hdr [HeaderSize]byte
	if r.size-off < HeaderSize {
		return nil, "incomplete header", nil
	}
	if _, err := r.r.ReadAt(hdr[:], off); err != nil {
		return nil, "", fmt.Errorf("record: read %s at %d: %w", r.name, off, err)
	}
	n := binary.LittleEndian.Uint32(hdr[4:])
	if int64(n) > int64(r.limit) {
		return nil, fmt.Sprintf("frame length %d over the limit %d", n, r.limit), nil
	}
	if int64(n) > r.size-off-HeaderSize {
		return nil, fmt.Sprintf("frame length %d past the end of the file", n), nil
	}
	if cap(r.buf) < HeaderSize+int(n) {
		r.buf = make([]byte, HeaderSize+int(n))
	}
	buf := r.buf[:HeaderSize+int(n)]
	if _, err := r.r.ReadAt(buf, off); err != nil && !(errors.Is(err, io.EOF) && len(buf) == int(r.size-off)) {
		return nil, "", fmt.Errorf("record: read %s at %d: %w", r.name, off, err)
	}
	if Checksum(buf[4:], r.salt) != binary.LittleEndian.Uint32(buf) {
		return nil, "checksum mismatch", nil
	}
	return buf[HeaderSize:], "", nil
}

// bad classifies the failed frame at r.off: torn if no valid frame starts at
// any later offset, corrupt otherwise. Only recovery after a crash pays for
// the search, which reads the rest of the file into memory once and checks
// each offset in time independent of the length its bytes claim (Finder):
// linear in the rest of the file, where a frame read per offset was
// quadratic over garbage that claims long frames.
func (r *Reader) bad(why string) error {
	rest := make([]byte, r.size-r.off)
	if n, err := r.r.ReadAt(rest, r.off); n < len(rest) {
		return fmt.Errorf("record: read %s at %d: %w", r.name, r.off, err)
	}
	if off, _ := NewFinder(rest, r.limit, r.salt).Next(1, nil); off > 0 {
		return logkv.CorruptError(r.name, r.off, "%s (a valid frame follows at offset %d)", why, r.off+int64(off))
	}
	return fmt.Errorf("%w at offset %d of %s: %s", ErrTornTail, r.off, r.name, why)
}

// Skipped is a stretch of a file that Scan could not read as frames.
type Skipped struct {
	Off int64 // where the stretch starts
	Len int64 // its length in bytes
	Why string
}

// Scan reads every frame of data, a whole file, that still checks out, for
// salvage: it calls keep with each frame's offset and payload (valid until
// keep returns) and skip with each stretch between them that it could not
// read. After a frame that fails its checks it tries every later offset
// until a frame checks out there and accept (nil: any) takes its payload,
// so that one damaged byte costs the frame that holds it, not the rest of
// the file. accept is the caller's check that a payload is one of its own:
// a checksum cannot tell a frame from bytes shaped like one inside another
// record's payload, and from inside a damaged stretch no frame boundary
// vouches for it. Frames longer than limit bytes of payload are invalid. An
// error from keep or skip ends the scan and is returned.
func Scan(data []byte, limit int, accept func(off int64, payload []byte) bool,
	keep func(off int64, payload []byte) error, skip func(Skipped) error) error {
	return ScanSalted(data, limit, 0, accept, keep, skip)
}

// ScanSalted is Scan over frames checked with salt (see Checksum).
//
// Its cost is linear in len(data) however the damage looks: the search past
// a damaged frame checks each offset in time independent of the length its
// bytes claim (Finder).
func ScanSalted(data []byte, limit int, salt uint64, accept func(off int64, payload []byte) bool,
	keep func(off int64, payload []byte) error, skip func(Skipped) error) error {
	f := NewFinder(data, limit, salt)
	frame := func(off int) ([]byte, string) {
		p, why := f.Frame(off)
		if why == "" && accept != nil && !accept(int64(off), p) {
			return nil, "payload refused"
		}
		return p, why
	}
	off := 0
	for off < len(data) {
		p, why := frame(off)
		if why == "" {
			if err := keep(int64(off), p); err != nil {
				return err
			}
			off += HeaderSize + len(p)
			continue
		}
		next, _ := f.Next(off+1, accept)
		if next < 0 {
			next = len(data)
		}
		if err := skip(Skipped{Off: int64(off), Len: int64(next - off), Why: why}); err != nil {
			return err
		}
		off = next
	}
	return nil
}
