package lsm

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/sstable"
	"github.com/logkv/logkv/vfs"
)

// Options configure an lsm DB. A nil *Options means the defaults; Open copies
// the struct, fills zero fields with defaults (EnsureDefaults) and validates
// it (Validate) before touching the disk. Every field has a yaml tag so a
// node's configuration file can carry it.
//
// # Memory
//
// The engine's memory is bounded by CacheSize (decompressed blocks) plus
// MemtableStopWritesThreshold * MemtableSize (memtable arenas, allocated
// whole, and up to a quarter of that again for their hash indexes, which
// grow with the distinct keys: 6-12% with 100-byte values) plus the open
// tables' indexes and filters (MaxOpenFiles tables at most) plus a small
// constant. Tables in OS files are read through read-only mappings: the
// file pages Gets touch count in the process's resident size, but they are
// the kernel's page cache (shared, reclaimable), not memory of the engine's.
type Options struct {
	// FS is the filesystem the DB lives on. Default vfs.Default; tests pass
	// a vfs.MemFS to simulate crashes.
	FS vfs.FS `yaml:"-"`

	// MemtableSize is the size of one memtable's arena, in bytes. A bigger
	// memtable means fewer, larger L0 tables (less write amplification) at
	// the price of memory and replay time. Default 8 MiB: with the default
	// MemtableStopWritesThreshold of 4 that is at most 32 MiB of memtables,
	// half the block cache's budget. Measured: an 8 MiB skiplist mostly
	// stays in the CPU caches, and random inserts into it cost about half
	// what they cost in a 32 MiB one, while L0 tables stay large enough
	// that L0->L1 compactions are few. (Pebble defaults to 4 MiB.)
	MemtableSize int64 `yaml:"memtable_size"`

	// MemtableStopWritesThreshold is how many memtables (the mutable one
	// plus those waiting to flush) may exist before writes stall until a
	// flush finishes. Default 4.
	MemtableStopWritesThreshold int `yaml:"memtable_stop_writes_threshold"`

	// L0CompactionThreshold is the number of L0 tables that triggers an
	// L0->L1 compaction. Default 4.
	L0CompactionThreshold int `yaml:"l0_compaction_threshold"`

	// L0SlowdownWritesThreshold is the number of L0 tables at which each
	// write is delayed by a millisecond to let compaction catch up.
	// Default 8.
	L0SlowdownWritesThreshold int `yaml:"l0_slowdown_writes_threshold"`

	// L0StopWritesThreshold is the number of L0 tables at which writes stall
	// until a compaction brings the count down. Default 12.
	L0StopWritesThreshold int `yaml:"l0_stop_writes_threshold"`

	// LBaseMaxBytes is the target size of L1; Ln's target is LBaseMaxBytes *
	// LevelMultiplier^(n-1). Default 64 MiB.
	LBaseMaxBytes int64 `yaml:"lbase_max_bytes"`

	// LevelMultiplier is the ratio between the target sizes of adjacent
	// levels. Default 10.
	LevelMultiplier int `yaml:"level_multiplier"`

	// TargetFileSize is the size at which compaction starts a new output
	// table. Default 8 MiB.
	TargetFileSize int64 `yaml:"target_file_size"`

	// BlockSize is the target uncompressed size of a table's data blocks.
	// Default 2048: a Get that misses the block cache reads, checks and
	// decompresses a whole block to return one entry, and S2 decoding was
	// a quarter of a Get's instructions with 4096-byte blocks; half the
	// block is half that work, for an index twice as long (held in memory:
	// about 20 bytes a block) and a slightly worse compression ratio.
	// Scans read ahead in 64-256 KiB regardless.
	BlockSize int `yaml:"block_size"`

	// Compression is the block compression of new tables: "none", "snappy",
	// "s2" or "zstd". Empty means the sstable package's default. (A string
	// rather than sstable.Compression so that the zero value means "the
	// default" and not "none".)
	Compression string `yaml:"compression"`

	// BloomBitsPerKey sizes each table's bloom filter. 0 means the default
	// of 10 (about 1% false positives); a negative value disables filters.
	BloomBitsPerKey int `yaml:"bloom_bits_per_key"`

	// CacheSize is the capacity of the shared block cache, in bytes.
	// Default 64 MiB (the size the Pebble comparison runs with).
	CacheSize int64 `yaml:"cache_size"`

	// MaxOpenFiles bounds the table cache: how many tables stay open.
	// Default 1000.
	MaxOpenFiles int `yaml:"max_open_files"`

	// DisableMmap reads table blocks with ReadAt (pread) instead of from a
	// read-only mapping of each table file. The mapping saves a Get that
	// misses the block cache a system call, but the file pages it touches
	// count in the process's resident size, and a page the kernel cannot
	// read (a failing disk, an NFS or FUSE mount, a table file shortened
	// under the DB) raises a fault that each read must recover from before
	// reading the block again with ReadAt (it then reports ErrCorrupt or
	// the I/O error, as ReadAt always does). Set it on such storage, or
	// where resident size is watched. Filesystems without file descriptors
	// (vfs.MemFS) always use ReadAt.
	DisableMmap bool `yaml:"disable_mmap"`

	// DisableWAL turns the write-ahead log off, for use under a node whose
	// commit log already is the WAL. Unflushed writes are then lost in a
	// crash, and LastSeq after a reopen is the newest sequence number
	// durable in tables, from which the node replays its log. Sync, a
	// synced write, and Close flush the memtable to make writes durable.
	DisableWAL bool `yaml:"disable_wal"`

	// SyncWrites makes every write synced, as if WriteOptions.Sync were
	// set.
	SyncWrites bool `yaml:"sync_writes"`

	// MaxManifestSize is the size past which the manifest is rewritten as
	// a new file holding a snapshot of the tree. Default 4 MiB.
	MaxManifestSize int64 `yaml:"max_manifest_size"`

	// Logger receives what recovery finds and does to the files of the
	// directory: every torn tail it cuts (a WAL segment's or the
	// manifest's, warnings), a newest WAL segment without its closing
	// marker (an unclean shutdown, a warning), every table it keeps rather
	// than delete, and every file it deletes as obsolete at Open (info),
	// each with the file, offset and bytes concerned, so that no cut is
	// silent. Nil means slog.Default(), the process's default logger.
	Logger *slog.Logger `yaml:"-"`
}

// EnsureDefaults fills o's zero fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MemtableSize == 0 {
		o.MemtableSize = 8 << 20
	}
	if o.MemtableStopWritesThreshold == 0 {
		o.MemtableStopWritesThreshold = 4
	}
	if o.L0CompactionThreshold == 0 {
		o.L0CompactionThreshold = 4
	}
	if o.L0SlowdownWritesThreshold == 0 {
		o.L0SlowdownWritesThreshold = 8
	}
	if o.L0StopWritesThreshold == 0 {
		o.L0StopWritesThreshold = 12
	}
	if o.LBaseMaxBytes == 0 {
		o.LBaseMaxBytes = 64 << 20
	}
	if o.LevelMultiplier == 0 {
		o.LevelMultiplier = 10
	}
	if o.TargetFileSize == 0 {
		o.TargetFileSize = 8 << 20
	}
	if o.BlockSize == 0 {
		o.BlockSize = 2048
	}
	if o.BloomBitsPerKey == 0 {
		o.BloomBitsPerKey = 10
	}
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	if o.MaxOpenFiles == 0 {
		o.MaxOpenFiles = 1000
	}
	if o.MaxManifestSize == 0 {
		o.MaxManifestSize = 4 << 20
	}
	return o
}

// errOptions is wrapped by every validation error.
var errOptions = errors.New("lsm: invalid options")

// Validate checks options that EnsureDefaults has filled.
func (o *Options) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errOptions}, args...)...)
	}
	switch {
	case o.MemtableSize < 64<<10 || o.MemtableSize > 4<<30:
		return bad("MemtableSize %d outside [64 KiB, 4 GiB]", o.MemtableSize)
	case o.MemtableStopWritesThreshold < 2:
		return bad("MemtableStopWritesThreshold %d below 2", o.MemtableStopWritesThreshold)
	case o.L0CompactionThreshold < 1:
		return bad("L0CompactionThreshold %d below 1", o.L0CompactionThreshold)
	case o.L0SlowdownWritesThreshold < o.L0CompactionThreshold:
		return bad("L0SlowdownWritesThreshold %d below L0CompactionThreshold %d", o.L0SlowdownWritesThreshold, o.L0CompactionThreshold)
	case o.L0StopWritesThreshold < o.L0SlowdownWritesThreshold:
		return bad("L0StopWritesThreshold %d below L0SlowdownWritesThreshold %d", o.L0StopWritesThreshold, o.L0SlowdownWritesThreshold)
	case o.LBaseMaxBytes < 1:
		return bad("LBaseMaxBytes %d below 1", o.LBaseMaxBytes)
	case o.LevelMultiplier < 2:
		return bad("LevelMultiplier %d below 2", o.LevelMultiplier)
	case o.TargetFileSize < 1:
		return bad("TargetFileSize %d below 1", o.TargetFileSize)
	case o.BlockSize < 64 || o.BlockSize > 1<<20:
		return bad("BlockSize %d outside [64, 1 MiB]", o.BlockSize)
	case o.BloomBitsPerKey > 64:
		return bad("BloomBitsPerKey %d above 64", o.BloomBitsPerKey)
	case o.CacheSize < 0:
		return bad("CacheSize %d negative", o.CacheSize)
	case o.MaxOpenFiles < 8:
		return bad("MaxOpenFiles %d below 8", o.MaxOpenFiles)
	case o.MaxManifestSize < 256:
		return bad("MaxManifestSize %d below 256", o.MaxManifestSize)
	}
	if o.Compression != "" {
		if _, err := sstable.ParseCompression(o.Compression); err != nil {
			return bad("Compression: %v", err)
		}
	}
	return nil
}

// writerOptions returns the table writer options the DB's options imply.
func (o *Options) writerOptions() sstable.WriterOptions {
	wo := sstable.WriterOptions{BlockSize: o.BlockSize, BloomBitsPerKey: o.BloomBitsPerKey}
	if o.BloomBitsPerKey < 0 {
		wo.BloomBitsPerKey = 0
	}
	if o.Compression != "" {
		wo.Compression, _ = sstable.ParseCompression(o.Compression)
	} else {
		wo.Compression = defaultCompression
	}
	return wo
}

// defaultCompression is used when Options.Compression is empty.
const defaultCompression = sstable.S2

// levelMaxBytes returns the target size of level (1..6).
func (o *Options) levelMaxBytes(level int) float64 {
	t := float64(o.LBaseMaxBytes)
	for l := 1; l < level; l++ {
		t *= float64(o.LevelMultiplier)
	}
	return t
}

// What the options tell callers about the engine (see logkv's capability
// interfaces).
var (
	_ logkv.ExternalWAL = (*Options)(nil)
	_ logkv.SyncCost    = (*Options)(nil)
	_ logkv.TestTuner   = (*Options)(nil)
)

// UseExternalWAL sets DisableWAL: under a node, the commit log is the WAL.
func (o *Options) UseExternalWAL() { o.DisableWAL = true }

// externalWALSyncEvery is SyncEvery without the WAL: at most this much of
// the caller's log is replayed after a crash, and each sync flushes the
// memtables, so syncs come once per 64 MiB (8 default memtables) of writes
// rather than once a second.
const externalWALSyncEvery = 64 << 20

// SyncEvery is 0 with the WAL (a sync is a WAL fsync) and 64 MiB without
// it (a sync flushes the memtables to new L0 tables).
func (o *Options) SyncEvery() int64 {
	if o.DisableWAL {
		return externalWALSyncEvery
	}
	return 0
}

// ShrinkForTest sets 64 KiB memtables, 32 KiB tables, a 128 KiB L1, L0
// compactions at 2 tables and a 4 KiB manifest: a few hundred KiB of writes
// flush, compact through several levels and rewrite the manifest.
func (o *Options) ShrinkForTest() {
	o.MemtableSize = 64 << 10
	o.L0CompactionThreshold = 2
	o.LBaseMaxBytes = 128 << 10
	o.TargetFileSize = 32 << 10
	o.MaxManifestSize = 4 << 10
}

// RandomizeForTest draws every tunable from r within Validate's limits,
// small enough that a test's writes exercise flushes and compactions.
// DisableWAL is left alone.
func (o *Options) RandomizeForTest(r *rand.Rand) {
	o.MemtableSize = 64<<10 + r.Int64N(1<<20)
	o.MemtableStopWritesThreshold = 2 + r.IntN(4)
	o.L0CompactionThreshold = 1 + r.IntN(5)
	o.L0SlowdownWritesThreshold = o.L0CompactionThreshold + r.IntN(6)
	o.L0StopWritesThreshold = o.L0SlowdownWritesThreshold + 1 + r.IntN(6)
	o.LBaseMaxBytes = 16<<10 + r.Int64N(1<<20)
	o.LevelMultiplier = 2 + r.IntN(9)
	o.TargetFileSize = 4<<10 + r.Int64N(256<<10)
	o.BlockSize = 64 << r.IntN(10) // 64 B to 32 KiB
	o.Compression = []string{"", "none", "snappy", "s2", "zstd"}[r.IntN(5)]
	o.BloomBitsPerKey = r.IntN(21) - 1 // -1: no filters
	o.CacheSize = r.Int64N(4 << 20)    // 0: the default
	o.MaxOpenFiles = 8 + r.IntN(64)
	o.SyncWrites = r.IntN(4) == 0
	o.MaxManifestSize = 256 + r.Int64N(64<<10)
}
