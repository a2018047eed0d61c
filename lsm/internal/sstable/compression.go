package sstable

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Compression is the algorithm a table's blocks are compressed with. Each
// block records its own compression in its trailer, so a reader handles
// tables (and blocks) written with any of them.
type Compression uint8

// Compressions. S2 is the default: on this project's benchmarks it encodes
// faster than Snappy at a similar ratio and decodes about as fast; Zstd
// compresses best and costs the most CPU.
const (
	// None stores blocks as they are.
	None Compression = 0
	// Snappy is the Snappy block format (written with s2's
	// Snappy-compatible encoder).
	Snappy Compression = 1
	// S2 is klauspost/compress's S2 block format, a faster Snappy extension.
	S2 Compression = 2
	// Zstd is Zstandard at its fastest level, one frame per block.
	Zstd Compression = 3

	numCompressions = 4
)

var compressionNames = [numCompressions]string{"none", "snappy", "s2", "zstd"}

// String returns the compression's name as ParseCompression reads it.
func (c Compression) String() string {
	if int(c) < len(compressionNames) {
		return compressionNames[c]
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// ParseCompression parses "none", "snappy", "s2" or "zstd" (case
// insensitive).
func ParseCompression(s string) (Compression, error) {
	for i, n := range compressionNames {
		if strings.EqualFold(s, n) {
			return Compression(i), nil
		}
	}
	return 0, fmt.Errorf("sstable: unknown compression %q (want none, snappy, s2 or zstd)", s)
}

// MarshalText encodes the compression as its name, for YAML and JSON.
func (c Compression) MarshalText() ([]byte, error) {
	if int(c) >= numCompressions {
		return nil, fmt.Errorf("sstable: unknown compression %d", uint8(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText decodes a compression name, as ParseCompression.
func (c *Compression) UnmarshalText(b []byte) error {
	v, err := ParseCompression(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// maxBlockSize bounds a decompressed block: one entry may hold the largest
// key and value the engine accepts, plus its header and a restart array.
const maxBlockSize = 40 << 20

// zstd encoders and decoders are expensive to build (tables, history
// windows): they are pooled and each is used by one goroutine at a time.
var (
	zstdEncoders = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true),
			zstd.WithEncoderCRC(false),   // the block trailer has a CRC
			zstd.WithSingleSegment(true)) // the frame records the block's size
		if err != nil {
			panic(err) // only for invalid options, fixed above
		}
		return e
	}}
	zstdDecoders = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(maxBlockSize))
		if err != nil {
			panic(err) // only for invalid options, fixed above
		}
		return d
	}}
)

// compress compresses src with c into dst (reusing its capacity) and returns
// the result, or src itself and None when compression does not save at least
// an eighth of the block: reading an uncompressed block costs no decode.
func compress(c Compression, dst, src []byte) ([]byte, Compression) {
	var out []byte
	switch c {
	case Snappy:
		if n := s2.MaxEncodedLen(len(src)); cap(dst) < n {
			dst = make([]byte, n)
		}
		out = s2.EncodeSnappy(dst[:cap(dst)], src)
	case S2:
		if n := s2.MaxEncodedLen(len(src)); cap(dst) < n {
			dst = make([]byte, n)
		}
		out = s2.Encode(dst[:cap(dst)], src)
	case Zstd:
		e := zstdEncoders.Get().(*zstd.Encoder)
		out = e.EncodeAll(src, dst[:0])
		zstdEncoders.Put(e)
	default:
		return src, None
	}
	if len(out) > len(src)-len(src)/8 {
		return src, None
	}
	return out, c
}

// decompress decodes a block compressed with c into dst's memory if it is
// large enough, else into a new buffer. Blocks handed to the cache must not
// share memory with anything reused, so those callers pass a nil dst. A
// block that would decode to more than limit bytes is refused before
// anything is allocated for it: Snappy and S2 blocks, and the zstd frames
// this package writes, state their decoded size up front.
func decompress(c Compression, src, dst []byte, limit int) ([]byte, error) {
	switch c {
	case None:
		return append(dst[:0], src...), nil
	case Snappy, S2:
		n, err := s2.DecodedLen(src)
		if err != nil {
			return nil, err
		}
		if n > limit {
			return nil, fmt.Errorf("decoded length %d exceeds %d", n, limit)
		}
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		return s2.Decode(dst[:n], src)
	case Zstd:
		var h zstd.Header
		if err := h.Decode(src); err != nil {
			return nil, err
		}
		if !h.HasFCS {
			return nil, errors.New("zstd frame without a content size")
		}
		if h.FrameContentSize > uint64(limit) {
			return nil, fmt.Errorf("decoded length %d exceeds %d", h.FrameContentSize, limit)
		}
		if uint64(cap(dst)) < h.FrameContentSize {
			dst = make([]byte, 0, h.FrameContentSize)
		}
		d := zstdDecoders.Get().(*zstd.Decoder)
		out, err := d.DecodeAll(src, dst[:0])
		zstdDecoders.Put(d)
		if err == nil && len(out) > limit {
			err = fmt.Errorf("decoded length %d exceeds %d", len(out), limit)
		}
		return out, err
	}
	return nil, fmt.Errorf("unknown compression %d", uint8(c))
}
