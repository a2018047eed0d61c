package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/logkv/logkv/replicate/commitlog"
)

// ErrProtocol: a peer sent something the protocol does not allow (a bad
// checksum, an over-limit length, an unknown type, a malformed message).
var ErrProtocol = errors.New("replicate/wire: protocol error")

// Type is a frame's type.
type Type uint8

// Frame types.
const (
	TypeHello         Type = 1
	TypeWelcome       Type = 2
	TypeRefuse        Type = 3
	TypeRecords       Type = 4
	TypeSnapshotChunk Type = 5
	TypeSnapshotEnd   Type = 6
	TypeAck           Type = 7
	TypeHeartbeat     Type = 8
	TypeCheckpoint    Type = 9
)

func (t Type) String() string {
	names := [...]string{"", "hello", "welcome", "refuse", "records", "snapshot-chunk", "snapshot-end", "ack", "heartbeat", "checkpoint"}
	if int(t) < len(names) && t != 0 {
		return names[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// HeaderSize is the size of a frame header.
const HeaderSize = 10

// MaxFrameSize is the largest frame payload, compressed or decoded: room for
// one record holding the largest batch.
const MaxFrameSize = commitlog.MaxRecordSize + 64

const flagZstd = 1

// minCompress is the smallest payload worth compressing.
const minCompress = 256

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var encoder = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
	if err != nil {
		panic(err) // only bad options fail
	}
	return e
})

// AppendFrame appends the frame of a payload of type t to dst, zstd-compressing
// the payload if compress is set and that makes it smaller.
func AppendFrame(dst []byte, t Type, payload []byte, compress bool) []byte {
	start := len(dst)
	dst = append(dst, byte(t), 0, 0, 0, 0, 0, 0, 0, 0, 0)
	flags := byte(0)
	if compress && len(payload) >= minCompress {
		dst = encoder().EncodeAll(payload, dst)
		if len(dst)-start-HeaderSize < len(payload) {
			flags = flagZstd
		} else {
			dst = append(dst[:start+HeaderSize], payload...)
		}
	} else {
		dst = append(dst, payload...)
	}
	dst[start+1] = flags
	binary.LittleEndian.PutUint32(dst[start+2:], uint32(len(dst)-start-HeaderSize))
	crc := crc32.Update(0, castagnoli, dst[start:start+6])
	crc = crc32.Update(crc, castagnoli, dst[start+HeaderSize:])
	binary.LittleEndian.PutUint32(dst[start+6:], crc)
	return dst
}

// Writer writes frames to a stream.
type Writer struct {
	w        io.Writer
	compress bool
	buf      []byte
	written  int64
}

// NewWriter returns a Writer to w that zstd-compresses payloads when compress
// is set.
func NewWriter(w io.Writer, compress bool) *Writer {
	return &Writer{w: w, compress: compress}
}

// WriteFrame writes one frame.
func (w *Writer) WriteFrame(t Type, payload []byte) error {
	w.buf = AppendFrame(w.buf[:0], t, payload, w.compress && t != TypeAck && t != TypeHeartbeat)
	n, err := w.w.Write(w.buf)
	w.written += int64(n)
	return err
}

// Written returns the bytes written so far, headers included.
func (w *Writer) Written() int64 { return w.written }

// Frame is one frame read by a Reader.
type Frame struct {
	Type Type
	// Payload is decoded (decompressed); it is valid until the next ReadFrame.
	Payload []byte
	// WireSize is the frame's size on the wire, header included.
	WireSize int
}

// Reader reads frames from a stream.
type Reader struct {
	limit int // MaxFrameSize, but for tests
	r     *bufio.Reader
	dec   *zstd.Decoder
	raw   []byte
	plain []byte
	read  int64
}

// NewReader returns a Reader from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), limit: MaxFrameSize}
}

// Read returns the bytes read so far.
func (r *Reader) Read() int64 { return r.read }

// ReadFrame reads the next frame. At a clean end of the stream (between
// frames) it returns io.EOF; a stream cut inside a frame is
// io.ErrUnexpectedEOF; a frame that fails a check is an error wrapping
// ErrProtocol. Nothing is allocated for a length over MaxFrameSize.
func (r *Reader) ReadFrame() (Frame, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return Frame{}, err
	}
	t, flags := Type(hdr[0]), hdr[1]
	n := binary.LittleEndian.Uint32(hdr[2:])
	if t == 0 || t > TypeCheckpoint {
		return Frame{}, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, hdr[0])
	}
	if flags&^flagZstd != 0 {
		return Frame{}, fmt.Errorf("%w: unknown frame flags %#x", ErrProtocol, flags)
	}
	if int64(n) > int64(r.limit) {
		return Frame{}, fmt.Errorf("%w: %s frame of %d bytes is over the limit %d", ErrProtocol, t, n, r.limit)
	}
	if cap(r.raw) < int(n) {
		r.raw = make([]byte, n)
	}
	raw := r.raw[:n]
	if _, err := io.ReadFull(r.r, raw); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	crc := crc32.Update(0, castagnoli, hdr[:6])
	crc = crc32.Update(crc, castagnoli, raw)
	if crc != binary.LittleEndian.Uint32(hdr[6:]) {
		return Frame{}, fmt.Errorf("%w: %s frame checksum mismatch", ErrProtocol, t)
	}
	r.read += int64(HeaderSize + n)
	f := Frame{Type: t, Payload: raw, WireSize: HeaderSize + int(n)}
	if flags&flagZstd != 0 {
		if r.dec == nil {
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(r.limit)))
			if err != nil {
				return Frame{}, err
			}
			r.dec = d
		}
		plain, err := r.dec.DecodeAll(raw, r.plain[:0])
		if err != nil {
			return Frame{}, fmt.Errorf("%w: %s frame: zstd: %v", ErrProtocol, t, err)
		}
		if len(plain) > r.limit {
			return Frame{}, fmt.Errorf("%w: %s frame decodes to %d bytes, over the limit", ErrProtocol, t, len(plain))
		}
		r.plain = plain
		f.Payload = plain
	}
	return f, nil
}

// Close releases the decoder. Calling it twice is safe.
func (r *Reader) Close() {
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
}
