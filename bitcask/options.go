package bitcask

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
)

// SyncMode says when the engine makes writes durable on its own, beyond what
// callers ask for with WriteOptions.Sync, DB.Sync and Close (which it always
// honours).
type SyncMode string

// Sync modes.
const (
	// SyncOnRequest (the default) syncs only when asked: a write with
	// WriteOptions.Sync, DB.Sync, Close, and when the active file rotates.
	// A write without Sync may be lost in a power loss; a process crash
	// loses at most the write buffer (Options.BufferSize). This is the
	// "never" policy of the engine's own initiative.
	SyncOnRequest SyncMode = "request"
	// SyncInterval also syncs in the background every Options.SyncInterval,
	// bounding what a power loss can take to about that much time of writes.
	SyncInterval SyncMode = "interval"
	// SyncAlways makes every write durable before it returns, as if every
	// write had WriteOptions.Sync. Concurrent writers share fsyncs (group
	// commit).
	SyncAlways SyncMode = "always"
)

const (
	maxFileSizeLimit = 2 << 30 // record offsets are uint32; one batch may overshoot
	// maxBatchRecordBytes bounds the records of one batch: a batch of at
	// most MaxBatchSize bytes of encoding takes at most 6x that as records
	// (a 4-byte operation becomes a 22-byte record).
	maxBatchRecordBytes = 6 * logkv.MaxBatchSize
	minFileSize         = 1 << 10
)

// Options configure a DB. A nil *Options means the defaults; Open copies the
// options, fills in zero fields with defaults and validates them before it
// touches the disk. The YAML tags let a node's configuration file carry them.
type Options struct {
	// MaxFileSize is the size in bytes at which the active data file is
	// closed and a new one started (a batch is never split, so a file may
	// pass it by one batch). Merge output files are cut at the same size.
	// Default 256 MiB (Riak's bitcask defaults to 2 GiB; smaller files make
	// merges finer-grained and the scan of a crashed active file shorter);
	// at most 2 GiB.
	MaxFileSize int64 `yaml:"max_file_size"`

	// BufferSize is the size in bytes of the write buffer in front of the
	// active file. Writes are copied into it and written to the file when it
	// fills, on a sync, and on rotation. Default 256 KiB.
	BufferSize int `yaml:"buffer_size"`

	// Sync is the sync mode: "request" (default), "interval" or "always". See
	// SyncMode.
	Sync SyncMode `yaml:"sync"`

	// SyncInterval is how often the "interval" mode syncs. Default 1s.
	SyncInterval time.Duration `yaml:"sync_interval"`

	// MergeThreshold is the fraction of a closed file's bytes that must be
	// dead (overwritten or deleted) before a background merge rewrites it.
	// Default 0.5; must lie in (0, 1].
	MergeThreshold float64 `yaml:"merge_threshold"`

	// DisableAutoMerge turns off background merging; DB.Merge still merges on
	// request.
	DisableAutoMerge bool `yaml:"disable_auto_merge"`

	// DisableMmap makes reads use ReadAt (pread) instead of a read-only
	// memory map of each data file. Mapping saves a system call per value,
	// which is most of the cost of a key-order scan whose values are
	// scattered over the files. Records still in the write buffer are read
	// from it either way. Filesystems without file descriptors (MemFS) always
	// use ReadAt. A read from a mapping that faults (a file shortened after
	// Open, a page the disk cannot read) is read again with ReadAt, and that
	// file's mapping is not used again; the guard costs about 140
	// instructions a mapped read (callgrind).
	DisableMmap bool `yaml:"disable_mmap"`

	// FS is the filesystem the DB uses. Default vfs.Default (the operating
	// system's); tests pass an in-memory one.
	FS vfs.FS `yaml:"-"`

	// Logger receives what recovery does to the files on its own: each torn
	// tail it cuts (file, offset, bytes removed, why), each damaged hint it
	// sets aside, each half-created file it removes. Default slog.Default():
	// removing bytes from a data file must not go unseen because nobody
	// wired a logger (pass slog.New(slog.DiscardHandler) to silence it).
	Logger *slog.Logger `yaml:"-"`
}

// DefaultOptions returns the defaults, filled in.
func DefaultOptions() *Options { return new(Options).EnsureDefaults() }

// ensureDefaults is EnsureDefaults, under the name db.go calls.
func (o *Options) ensureDefaults() { o.EnsureDefaults() }

// EnsureDefaults fills o's zero fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.MaxFileSize == 0 {
		o.MaxFileSize = 256 << 20
	}
	if o.BufferSize == 0 {
		o.BufferSize = 256 << 10
	}
	if o.Sync == "" {
		o.Sync = SyncOnRequest
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = time.Second
	}
	if o.MergeThreshold == 0 {
		o.MergeThreshold = 0.5
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports the first invalid field of o, after defaults are filled.
func (o *Options) Validate() error {
	switch {
	case o.MaxFileSize < minFileSize || o.MaxFileSize > maxFileSizeLimit:
		return fmt.Errorf("bitcask: max_file_size %d is outside [%d, %d]", o.MaxFileSize, minFileSize, maxFileSizeLimit)
	case o.BufferSize < 0 || o.BufferSize > 64<<20:
		return fmt.Errorf("bitcask: buffer_size %d is outside [0, 64 MiB]", o.BufferSize)
	case o.Sync != SyncOnRequest && o.Sync != SyncInterval && o.Sync != SyncAlways:
		return fmt.Errorf("bitcask: sync %q is not one of %q, %q, %q", o.Sync, SyncOnRequest, SyncInterval, SyncAlways)
	case o.SyncInterval < time.Millisecond:
		return fmt.Errorf("bitcask: sync_interval %v is under 1ms", o.SyncInterval)
	case !(o.MergeThreshold > 0 && o.MergeThreshold <= 1):
		return fmt.Errorf("bitcask: merge_threshold %v is outside (0, 1]", o.MergeThreshold)
	}
	return nil
}

// What the options tell callers about the engine (see logkv's capability
// interfaces). Its data files are its log, so it has no ExternalWAL: under a
// node it writes each batch to them and the commit log both.
var (
	_ logkv.TestTuner = (*Options)(nil)
	_ logkv.Salvager  = (*Options)(nil)
)

// Salvage reads back every record of the data files in dir that passes its
// checks, through o.FS (Salvage, as logkv.Salvager asks: kvnode salvage).
func (o *Options) Salvage(dir string, keep func(logkv.SalvagedEntry) error, skip func(logkv.Skipped) error) error {
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	return Salvage(fs, dir, func(r SalvagedRecord) error {
		return keep(logkv.SalvagedEntry{Seq: r.Seq, Key: r.Key, Value: r.Value, Delete: r.Tombstone})
	}, skip)
}

// ShrinkForTest sets 32 KiB data files and merges at 30% dead bytes: a few
// hundred KiB of overwrites rotate files, write hints and merge.
func (o *Options) ShrinkForTest() {
	o.MaxFileSize = 32 << 10
	o.MergeThreshold = 0.3
}

// RandomizeForTest draws every tunable from r within Validate's limits,
// small enough that a test's writes rotate files and merge.
func (o *Options) RandomizeForTest(r *rand.Rand) {
	o.MaxFileSize = minFileSize + r.Int64N(256<<10)
	o.BufferSize = r.IntN(64 << 10) // 0: the default
	o.Sync = []SyncMode{SyncOnRequest, SyncInterval, SyncAlways}[r.IntN(3)]
	o.SyncInterval = time.Millisecond * time.Duration(1+r.IntN(50))
	o.MergeThreshold = 0.05 + 0.95*r.Float64()
	o.DisableAutoMerge = r.IntN(4) == 0
	o.DisableMmap = r.IntN(2) == 0
}
