// Package logkv is the contract shared by logkv's storage engines.
//
// logkv is a log-structured key/value store. Three engines of its own implement
// the one interface defined here:
//
//   - lsm: a WAL, a memtable, SSTables and leveled compaction; for data larger
//     than memory, ordered scans and compression.
//   - bitcask: append-only data files with an ordered in-memory keydir; one disk
//     read per Get.
//   - memory: an ordered in-memory engine with MVCC snapshots; keeps nothing
//     across Close.
//
// This package holds only the contract: [Engine] (a [Reader] and a [Writer]),
// [Batch] and its binary encoding, [Iterator], [Snapshot], options, errors and
// the registry through which an engine is opened by name. Engine packages
// register themselves in init, like database/sql drivers:
//
//	import _ "github.com/logkv/logkv/lsm"
//
//	e, err := logkv.Open("lsm", dir, nil)
//
// # Ownership of bytes
//
// Slices passed to an engine (keys, values, batches) may be reused by the
// caller as soon as the call returns. A slice returned by Get belongs to the
// caller. Key and Value of an Iterator stay valid only until the iterator's
// next move or Close.
//
// # Concurrency
//
// Every method of an Engine is safe for concurrent use. An Iterator or a
// Snapshot belongs to one goroutine at a time; distinct iterators and snapshots
// may be used concurrently.
//
// # Sequence numbers
//
// Every committed batch (and every Set or Delete, which is a batch of one) has
// one sequence number, strictly increasing over the engine's history. An engine
// assigns the next one, or the caller gives it in [WriteOptions].Seq (a node
// replaying or receiving its commit log). [Engine.LastSeq] reports the newest
// applied; after a reopen, the newest recovered, so a node replays its log from
// LastSeq()+1.
//
// # Limits
//
// Keys are 1 to [MaxKeySize] bytes; values 0 to [MaxValueSize] bytes; an
// encoded batch at most [MaxBatchSize] bytes. Writes beyond them fail with
// [ErrKeyTooLarge], [ErrValueTooLarge], [ErrBatchTooLarge] or [ErrEmptyKey],
// and nothing of the write is applied.
package logkv
