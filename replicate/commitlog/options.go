package commitlog

import (
	"fmt"
	"log/slog"

	"github.com/logkv/logkv/vfs"
)

// DefaultSegmentSize is the size past which a segment is sealed and a new one
// started, unless Options says otherwise.
const DefaultSegmentSize = 64 << 20

// Options configure a Log. A nil *Options means the defaults; Open copies
// the struct, fills zero fields with defaults (EnsureDefaults) and validates
// it (Validate) before touching the disk, as the engines' options do.
type Options struct {
	// FS is the filesystem; nil means vfs.Default.
	FS vfs.FS
	// SegmentSize is the size in bytes past which the current segment is
	// sealed; 0 means DefaultSegmentSize. A record is never split, so a
	// segment may pass it by one record.
	SegmentSize int64
	// Logger receives recovery events; nil discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills o's zero fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate checks options that EnsureDefaults has filled.
func (o *Options) Validate() error {
	if o.SegmentSize < 0 {
		return fmt.Errorf("commitlog: negative SegmentSize %d; 0 means the default of %d", o.SegmentSize, DefaultSegmentSize)
	}
	return nil
}
