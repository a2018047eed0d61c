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
// # Segment format
//
// A segment is a sequence of internal/record frames (crc32c | len | payload;
// see that package), one per record. The payload of a record is:
//
//	offset  size  field
//	0       8     seq: the batch's sequence number, uint64 little-endian
//	8       8     epoch: the epoch of the leader that wrote it, uint64 LE
//	16      ...   the batch, in logkv's Batch encoding (never empty)
//
// so a whole record is 8 (frame header) + 16 + len(batch) bytes.
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
// Append and AppendRecord write a record to the segment file and return; Sync
// makes every record up to a seq durable. Concurrent callers of Sync share one
// fsync: the first to arrive syncs everything written so far, and those that
// queued behind it find their record already durable. Readers see only durable
// records, so a follower never holds a record its leader could lose in a
// crash.
//
// # Recovery
//
// Open reads every segment. A torn tail (record.ErrTornTail) in the last
// segment is cut off; anywhere else, and for any other failed check (a gap in
// the numbering, a record out of place), Open fails with an error wrapping
// logkv.ErrCorrupt that names the file and offset.
package commitlog
