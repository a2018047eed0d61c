// Package lsm is logkv's log-structured merge-tree engine, registered as
// "lsm": a write-ahead log, arena skiplist memtables, and leveled SSTables
// (lsm/internal/sstable) compacted in the background, after LevelDB and Pebble.
//
// # Files
//
// A DB directory holds WAL segments (NNNNNN.log), tables (NNNNNN.sst), the
// manifest log (MANIFEST-NNNNNN), CURRENT naming the live manifest, and
// LOCK. See filenames.go.
//
// # Writes
//
// Every batch gets one sequence number (logkv.SeqFor), and each of its
// operations is stored under the internal key (user key, seq, kind) of
// lsm/internal/base. Apply, under the commit lock, assigns the seq, appends
// the WAL record (wal.go documents the payload byte by byte) to an in-memory
// buffer, inserts the operations into the mutable memtable and publishes
// the seq to readers, so readers see a batch all or nothing. A synced write
// then joins the WAL's group commit: one leader writes and fsyncs everything
// buffered while its followers wait, so concurrent synced writers share
// fsyncs. A batch naming a key twice is inserted without its overridden
// operations (both would carry the same internal key).
//
// When the memtable is full it becomes immutable, a new WAL segment starts
// (the old one is synced whole first), and a background goroutine flushes
// it to an L0 table; its WAL segment is deleted once the manifest records
// the table. Writes slow down (a 1 ms delay each) when L0 holds
// L0SlowdownWritesThreshold tables, and stall, waiting on a condition
// variable, when too many memtables wait to flush or L0 reaches
// L0StopWritesThreshold; both are counted and timed in Metrics.
//
// # Reads
//
// A read pins a read state (the memtables and the table Version of one
// moment, reference counted, taken without a lock) and reads at the newest
// published seq. Get consults the memtables newest first, each through a
// hash index from user key to its newest entry (memindex.go; the skiplist
// search only for a read older than that entry, or while the index, which
// the Gets build and the writer never touches, is behind: see memTable),
// then L0 tables newest first, then the one table of each deeper level
// whose key range holds the key, each behind its bloom filter. Iterators
// merge all of these with a heap and collapse versions: they show the
// newest version visible at their seq and hide tombstones. A snapshot is a
// seq kept in the DB's snapshot list while open; compaction keeps the
// newest version of each key visible to each snapshot.
//
// # Manifest and recovery
//
// Flushes and compactions record their changes as version edits appended
// (and synced) to the manifest (lsm/internal/manifest). Open replays the
// manifest named by CURRENT, replays WAL segments at or above its log
// number (cutting a torn tail of the last one; damage elsewhere is
// logkv.ErrCorrupt naming file and offset), checks the manifest's tree
// against the files on disk (recovery.go: a damaged last edit is a torn
// tail only if the tree before it is whole and the WAL covers every table
// it does not name), flushes what they held to L0,
// writes a fresh manifest holding a snapshot of the tree and switches
// CURRENT to it atomically (temporary file, sync, rename, directory sync).
// The manifest is rewritten the same way when it passes MaxManifestSize.
// A table is deleted when no live version (the current one, or one pinned
// by an iterator) holds it. Every cut and every file deleted at Open is
// logged to Options.Logger with the file, offset and bytes.
//
// # Compaction
//
// One background goroutine compacts the level with the highest score:
// L0's is its table count over L0CompactionThreshold, Ln's its size over
// LBaseMaxBytes * LevelMultiplier^(n-1). L0 compacts whole into L1; a
// deeper level compacts one table (round robin by key) with the tables it
// overlaps below. A table that overlaps nothing below moves down without
// being rewritten. Outputs split at TargetFileSize on key boundaries, so a
// user key never spans two tables of a level.
//
// # DisableWAL
//
// With Options.DisableWAL a write is durable only once its memtable is
// flushed: Sync, a synced write and Close flush. After a crash LastSeq is
// the newest seq in the tables, and a node replays its own log from
// LastSeq()+1.
package lsm
