// Package commitlog is a node's commit log: the ordered, durable history of
// every batch the node committed, kept in segment files of bounded size, read
// by followers' senders from any retained sequence number, and cut at either
// end (TrimBefore for retention and checkpoints, TruncateAfter for a tail that
// diverged from a new leader's history).
//
// # Files
//
// A log lives in one directory:
//
//	<dir>/<first seq, 16 lower-case hex digits>.log   segments
//	<dir>/EPOCHS                                      the epoch history
//
// A segment is named for the sequence number of its first record (or, for an
// empty segment, of the record it will hold first), so the directory listing
// is the segment index. Records are numbered without gaps across segments.
// Every segment but the last is sealed; the last one is appended to.
//
// # Segment format (version 3)
//
// A segment is a sequence of internal/record frames with nothing between
// them: checksum (4 bytes LE) | len (4 bytes LE) | payload. The first frame
// is the segment's header, 24 bytes in all, unsalted, written and synced
// when the segment is created, before any record:
//
//	offset  size  field
//	0       4     crc32c of bytes 4..24, uint32 little-endian
//	4       4     len: 16, uint32 LE
//	8       7     magic "LKVCLOG"
//	15      1     format version: 3
//	16      8     salt: non-zero, random per segment, uint64 LE
//
// Every later frame is one record. Its checksum is salted: crc32c of the
// salt's 8 bytes (LE) followed by bytes 4..8+len of the frame
// (record.Checksum). Its payload is:
//
//	offset  size  field
//	0       8     synced: the segment's synced length in bytes (header
//	              included) when the record was framed, uint64 LE
//	8       8     seq: the batch's sequence number, uint64 LE
//	16      8     epoch: the epoch of the leader that wrote it, uint64 LE
//	24      n     the batch, in logkv's Batch encoding (n > 0)
//
// so a whole record is 8 (frame header) + 24 + n bytes (SegmentRecordSize).
// synced is never more than the record's own offset. Bytes 8.. of the payload
// are the Record encoding of AppendRecord and DecodeRecord; the synced field
// exists only on disk (replicate/wire ships Records, in its own encoding,
// without it).
//
// The salt is there for recovery and salvage, which look for records past
// damage by trying every offset: a checksum alone cannot tell a record from
// bytes shaped like one inside a batch's value, which any client can write,
// and such a forgery could vouch for damage (turning a torn tail into a
// refusal to start) or pass for a record. Without the salt, which no
// client sees, a forgery fails its checksum. (LevelDB and RocksDB's
// recyclable log format mixes the log number into each checksum, against
// stale records of a reused file.)
//
// # Format versions
//
// Format 2 is format 3 without the salt: a 16-byte header (len 8: the magic
// and version 2) and unsalted record checksums. Open reads format 2
// segments, and appends to a format 2 active segment in format 2; every
// segment it creates is format 3, so a log upgraded in place moves to
// format 3 as it rolls. Format 1 segments had no header and 16-byte record
// payload headers (seq, epoch): Open refuses them, and any version other
// than 2 and 3, with an error wrapping ErrFormat that names the file, and a
// node upgraded across that change resyncs from its leader or a checkpoint
// rather than reading records whose damage it cannot classify. An empty or
// torn header on the last segment, no longer than a header, is a segment
// whose creation a crash cut short: Open writes it again; a damaged header
// in a longer segment (the header was synced before any record) is
// corruption. testdata/format2 and testdata/format3 hold golden logs.
//
// # EPOCHS format
//
// The epoch history, rewritten whole (write a temporary file, sync, rename,
// sync the directory) each time it changes: a sequence of internal/record
// frames, each with a 16-byte payload:
//
//	offset  size  field
//	0       8     epoch, uint64 little-endian
//	8       8     seq: the first sequence number of that epoch, uint64 LE
//
// in increasing order of both fields (an epoch may be empty: two entries may
// share a seq, and the later one wins). The epoch of seq s is the epoch of the
// last entry whose seq is <= s. History outlives trimming: it describes the
// records before FirstSeq too.
//
// # Durability and group commit
//
// Append and AppendRecord frame a record into an in-memory buffer (written to
// the file once 256 KiB have gathered) and return;
// FlushTo(seq) writes the buffer to the segment file without syncing it (the
// records then survive a crash of the process, not of the machine), and Sync
// flushes and fsyncs, making every record up to a seq durable. Both group
// their callers. Concurrent callers of Sync share one fsync through
// internal/groupsync, the group commit bitcask, the lsm WAL and the node use
// too: the first to arrive syncs everything written so far, and those that
// arrive meanwhile wait for that fsync together; those it covered return,
// and one of the others syncs the rest. Likewise a FlushTo whose record an
// earlier write covered returns without a system call, and the first of
// those that queue writes everything buffered for the others (group flush);
// Flush writes whatever is buffered. Readers see only durable records, so a
// follower never holds a record its leader could lose in a crash.
//
// # Write failures
//
// A failed write (a full disk: ENOSPC, EDQUOT) is undone, not fatal: the
// active segment is cut back to where the write began, so the file holds
// whole records only, and the records stay buffered. Flush, FlushTo, Sync
// and Append return an error wrapping ErrWriteFailed (and the cause) until
// a write succeeds; each call tries the write again. Append takes no new
// record meanwhile, so no record is ever buffered behind ones that may not
// be written, and an Append whose own record made the write fail takes it
// back: its caller was told it failed, so it is never written. A segment
// that could not be created when the active one filled is removed, and the
// next Append tries again. Err reports the failure until a write succeeds.
//
// A failed fsync is different, and fails the log for good (ErrFailed), as
// does a failed write whose partial bytes could not be cut off: after a
// failed fsync, Linux may have dropped the dirty pages it could not write
// and marked them clean, so a later fsync that succeeds says nothing about
// them (PostgreSQL's "fsyncgate", 2018). Only a reopen, which reads what
// the disk holds, recovers.
//
// # Recovery
//
// Open reads every segment. A power loss can damage bytes that were written
// but never synced in place (a torn sector), and leave intact unsynced records
// after the damage. So in the last segment, a frame that fails its checks at
// offset X is a torn tail, cut off with a warning to the Logger, unless an
// intact record after it carries a synced field above X: then X was synced,
// and Open fails with an error wrapping logkv.ErrCorrupt that names the file
// and offset. Every segment but the last was synced whole before the next one
// began, so any damage there is corruption, as is any other failed check (a
// gap in the numbering, a record out of place, a bad header).
//
// The synced field is as of framing: the records of the last group commit
// before a crash do not vouch for themselves, so damage to them (which a
// power loss cannot cause, being synced; failing media can) is cut as a torn
// tail rather than reported. Records framed after a later Sync, or after
// Open (which syncs what it recovered), vouch for them.
//
// # Source files
//
// One concern each: log.go holds the Log, Open, Close and the accessors;
// recover.go what Open reads back and cuts; append.go the write path
// (Append, the buffer, its flush, sealing a full segment); sync.go the group
// commit; trim.go TrimBefore, TruncateAfter and Reset; history.go the epoch
// history and its file; segment.go the segment format and files; reader.go
// the readers; salvage.go the salvage reader.
package commitlog
