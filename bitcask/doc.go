// Package bitcask is logkv's Bitcask engine (after Sheehy and Smith, 2010):
// every write is an append to the active data file, every key lives in an
// in-memory keydir that points at its value, and every read is one keydir
// lookup and one positioned read. On top of the paper it offers ordered scans,
// snapshots, merges that never block writes, fast starts from hint files and
// precise crash behaviour.
//
//	db, err := bitcask.Open(dir, nil) // or logkv.Open("bitcask", dir, nil)
//
// # Files
//
// A directory holds data files (NNNNNNNN.data, format version 3; 2 is read), one of
// which is active and takes the appends; it is closed (flushed, synced, made
// read-only) when it reaches Options.MaxFileSize, and a closed file never
// changes. Each closed
// file gets a hint file (NNNNNNNN.hint) listing its records without values,
// sorted by key. The formats are documented byte by byte in record.go (data
// files and records), hint.go (hint files) and merge.go (merge manifests);
// file.go lists the names.
//
// # Keydir
//
// The keydir is a B-tree ordered by key, in memory, with lazy path copying:
// a snapshot or an iterator clones it in O(1), and the writes that follow
// copy the nodes they change. Nodes store their items as parallel arrays:
// each key's first 16 bytes inline (zero padded, as two big-endian words
// that a search compares without touching other memory), its location
// (file id, offset, value length, key length) beside them, and the bytes of
// a key past the 16th behind a pointer. An item is 32 bytes, so a key of up
// to 16 bytes costs 32 to 64 bytes (nodes 50-100% full) and no allocation
// of its own; a longer key adds 8 bytes and its tail. The metric
// bitcask_keydir_overhead_bytes_per_key reports the live figure beyond the
// keys' own bytes. Open builds the keydir packed full from sorted hint
// files. keydir.go describes the layout and the ordering argument.
//
// # Writes and durability
//
// A write (Set, Delete, Apply) takes the commit lock, gets its sequence
// number, appends its records to the write buffer, updates the keydir and
// returns. The buffer goes to the file when it fills, on a sync and on
// rotation; a Get of a record still in the buffer is served from the buffer.
// A batch is atomic in memory (the keydir changes under one lock) and across
// crashes (its records are framed with flagMore; recovery drops a batch whose
// last record is missing).
//
// A write with WriteOptions.Sync returns once its records are fsynced.
// Concurrent syncing writers share fsyncs: one syncs everything written so
// far while the others wait for that fsync together, then find their records
// covered or elect the next to sync (group commit).
// Options.Sync picks what the engine does on its own: "request" (default:
// only what callers ask, plus rotation and Close), "interval" (also a
// background sync every Options.SyncInterval) or "always" (every write as if
// it asked for Sync).
//
// A write to the file that fails (a full disk) keeps what it wrote, which is
// the buffer's exact prefix, and the rest of the buffer: the next flush
// writes the rest after it, and a read of a record split across the two
// finds both halves. A rotation that cannot create the next file removes
// what it made and leaves the active file taking appends past MaxFileSize.
// Meanwhile writes without Sync go on into the buffer,
// and a Sync (or a write with Sync) returns the error until a flush
// succeeds; no reopen is needed. A failed fsync, or a failed write in the
// middle of a batch larger than the buffer, makes the engine refuse every
// later write until it is reopened: after a failed fsync the kernel may
// have dropped the pages it could not write (PostgreSQL's "fsyncgate").
//
// # Reads
//
// Get looks the key up under a read lock, pins the file, and reads the record
// (header, key, value) with one positioned read: from the file's read-only
// memory map (or with ReadAt, given Options.DisableMmap or a filesystem
// without descriptors), or, for a record not yet flushed, from the write
// buffer. The record's CRC-32C is checked on every read; a bad
// record is an error wrapping logkv.ErrCorrupt that names the file and
// offset, and only the keys whose values lie there are affected.
//
// A page of a mapping the kernel cannot supply (the file was shortened after
// Open, or the disk failed the page's read) raises SIGBUS, which would kill
// the process: each read from a mapping runs under debug.SetPanicOnFault,
// recovers the fault, reads the record again with ReadAt (a record past the
// file's end is ErrCorrupt naming file and offset; a failed read, the I/O
// error) and stops using that file's mapping, which stays mapped until the
// file is released.
//
// # Merge
//
// Each file keeps a roaring bitmap of the offsets of its dead records
// (overwritten, deleted, tombstones) and their byte count, so the engine knows
// each file's dead ratio exactly. A background merger (or DB.Merge) rewrites
// the closed files past Options.MergeThreshold into new files holding only
// live records, commits the result with a manifest, and switches the keydir
// in short steps; readers and writers go on meanwhile. Replaced files are
// deleted when the last snapshot or iterator that may read them closes. The
// steps and their crash safety are described in merge.go.
//
// # Recovery
//
// Open finishes or undoes interrupted merges, loads each closed file from its
// hint (or reads it whole when it has none, or a damaged one), and builds the
// keydir by merging the files' sorted runs; the record with the highest
// sequence number wins. Only the newest append file, after a crash (it has
// no hint), may end in a torn tail; every record carries how many bytes of
// its file were synced when it was appended, so damage in bytes a later
// record says were synced is corruption, not a torn tail. Recovery cuts a
// torn tail at the start of its batch and logs the file, offset and bytes
// removed to Options.Logger; any other damage it finds (in synced bytes, in
// a file closed whole, a hint whose recorded size disagrees with its data
// file) fails Open with an error wrapping logkv.ErrCorrupt that names the
// file and offset, and changes nothing. A file of another format fails Open
// with ErrFormat. LastSeq after Open is the newest sequence number recovered
// (each file's header also records the LastSeq at its creation, so that
// dropping records in a merge cannot move it back). See recover.go, which
// also says what recovery cannot see.
//
// # Concurrency
//
// Open takes an exclusive lock on the directory (vfs FS.Lock): a second Open,
// in this process or another, fails with an error wrapping vfs.ErrLocked.
// Close stops the background goroutines, syncs, writes the active file's
// hint and releases the lock; a second Close returns nil.
package bitcask
