package logkv

import "math/rand/v2"

// Capabilities: what an engine tells its callers about itself.
//
// Code outside an engine (a node, replication, the benchmarks, the crash
// harness) never asks which engine it holds, only what it can do, the way
// database/sql asks a driver whether it is a driver.Pinger. A switch on an
// engine's name would have to learn every new engine; a capability is
// declared once, by the engine that has it, and adding an engine is one
// package and one import.
//
// The questions come before Open: a node decides how to run its engine (with
// or without checkpoints, with its commit log as the engine's WAL) before it
// opens it. So an engine answers them through its options type, the value
// NewOptions returns and Open takes: *Options implements those of the
// interfaces below that apply, and the answer may depend on the options (lsm
// syncs cheaply with its WAL, and costly without). Options that implement
// none describe an engine with a log of its own that survives a restart and
// syncs cheaply, which is what a caller assumes of an engine registered
// without options (nil).

// ExternalWAL is implemented by the options of an engine that can run
// without a write-ahead log of its own because its caller keeps one: a node
// writes every batch to its commit log before it applies it to the engine,
// with the batch's sequence number (WriteOptions.Seq), and after a crash
// replays the log from the engine's LastSeq. The engine then writes each
// batch once instead of twice.
type ExternalWAL interface {
	// UseExternalWAL switches the engine's own log off. Unsynced writes
	// are then lost in a crash, and LastSeq after a reopen is the newest
	// sequence number durable in the engine's files; Sync, a synced write
	// and Close still make every write durable (at a cost: see SyncCost).
	UseExternalWAL()
}

// Volatile is implemented by the options of an engine that may keep nothing
// across Close or a crash (an in-memory engine). A caller that must survive
// a restart, such as a node, checkpoints it and replays its log after the
// checkpoint; such an engine needs no data directory of its own.
type Volatile interface {
	// Volatile reports whether the engine, with these options, loses its
	// data at Close.
	Volatile() bool
}

// SyncCost is implemented by the options of an engine whose Sync costs more
// than an fsync of a log: lsm without its WAL flushes its memtables. A caller
// that keeps its own log (ExternalWAL) and syncs the engine to trim that log
// should sync it only every SyncEvery bytes of log, trading replay time
// after a crash for fewer, larger syncs.
type SyncCost interface {
	// SyncEvery returns the bytes of the caller's log to let grow between
	// engine syncs; 0 means a sync is cheap, so sync whenever convenient.
	SyncEvery() int64
}

// TestTuner is implemented by the options of an engine that can tune itself
// for tests that know nothing of it: the crash harness and the metamorphic
// model test of package enginetest draw options through it, for whichever
// engines are registered.
type TestTuner interface {
	// ShrinkForTest sets sizes small enough that a test's few hundred KiB
	// of writes make the engine do all of its background work: flushes,
	// compactions, file rotations, merges.
	ShrinkForTest()
	// RandomizeForTest sets the engine's tunables to values drawn from r,
	// each within what Validate accepts and small enough for a test, so
	// that a model test covers the engine's configurations as Pebble's
	// metamorphic test does. Options that change durability (ExternalWAL)
	// are left alone.
	RandomizeForTest(r *rand.Rand)
}

// Salvager is implemented by the options of an engine whose files can be
// read back without opening the engine, keeping every entry that still
// passes its checks: kvnode salvage asks each registered engine's options
// for it, and hands each the engine directory it found, so that it names
// no engine.
type Salvager interface {
	// Salvage reads the engine's files in dir, through the options' file
	// system and never writing to it, and calls keep for every entry that
	// checks out and skip for every part it left out. Files that are not
	// the engine's are ignored: every Salvager may be asked about the same
	// directory. An error from keep or skip stops it and is returned; an
	// error reading dir itself is returned too.
	Salvage(dir string, keep func(SalvagedEntry) error, skip func(Skipped) error) error
}

// SalvagedEntry is one write a Salvager read back. Key and Value may be
// reused once keep returns: copy them to keep them.
type SalvagedEntry struct {
	Seq    uint64 // the sequence number of the batch that wrote it
	Key    []byte
	Value  []byte // empty for a deletion
	Delete bool   // the key was deleted
}

// ValueAppender is implemented by an engine (not its options: this one is
// asked of an open engine) whose Get can copy a value into a caller's
// buffer instead of a new slice. A caller that reads many values, such as a
// node answering GETs, keeps one buffer and allocates nothing per read.
// AppendGet below uses it when the engine has it and Get otherwise.
type ValueAppender interface {
	// AppendGet appends key's value to dst and returns the extended slice.
	// If key is not present it returns dst unchanged and ErrNotFound; on
	// any other error it returns dst unchanged. It reads what Get would.
	// A present key with an empty value appended to a nil dst may come
	// back as nil on one engine and as an empty slice on another: tell a
	// miss by the error, never by a nil result.
	AppendGet(dst, key []byte) ([]byte, error)
}

// AppendGet appends key's value in r to dst: through r's ValueAppender
// when it has one, and through Get otherwise. Its results are
// ValueAppender.AppendGet's.
func AppendGet(r Reader, dst, key []byte) ([]byte, error) {
	if a, ok := r.(ValueAppender); ok {
		return a.AppendGet(dst, key)
	}
	v, err := r.Get(key)
	if err != nil {
		return dst, err
	}
	return append(dst, v...), nil
}
