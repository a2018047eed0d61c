// Package wire is the replication protocol between a leader and its
// followers, and the format of checkpoint files: checksummed frames carrying
// handshake messages, batches of log records, snapshot chunks and acks.
//
// # Frames
//
// Everything on a replication stream (and in a checkpoint file) is a frame:
//
//	offset  size  field
//	0       1     type (see Type)
//	1       1     flags: bit 0 set = the payload is one zstd frame; others 0
//	2       4     len: the payload's length as sent, uint32 little-endian
//	6       4     CRC-32C (Castagnoli) of bytes 0..6 and the payload, LE
//	10      len   payload
//
// A reader refuses a len over MaxFrameSize before reading the payload, a
// checksum mismatch, unknown flags, and a zstd payload that decodes to more
// than MaxFrameSize bytes. All integers are little-endian; "uvarint" is
// encoding/binary's unsigned varint. Each message below is the (decoded)
// payload of one frame of its type.
//
// # Handshake
//
// The follower opens a stream and sends Hello; the leader answers Welcome (or
// Refuse and closes). Welcome says either Stream, from the fork point F (the
// follower truncates its log after F; records follow from F+1), or Resync at
// seq S (snapshot chunks follow, then SnapshotEnd, then records from S+1).
//
//	Hello:    version u8 = 1 | id: uvarint len (<= MaxIDLen), bytes |
//	          last seq u64 | applied seq u64 | history
//	Welcome:  version u8 = 1 | mode u8 (1 stream, 2 resync) |
//	          id: uvarint len, bytes | seq u64 | history |
//	          [sync delay: uvarint microseconds (<= MaxSyncDelay)]
//	Refuse:   reason: uvarint len (<= MaxReasonLen), bytes
//	history:  count uvarint (<= commitlog.MaxHistory), count x (epoch u64, seq u64)
//
// # Data
//
//	Records:       count uvarint (>= 1) | count x (seq u64 | epoch u64 |
//	               batch len uvarint | batch, a logkv.Batch encoding)
//	SnapshotChunk: count uvarint (>= 1) | count x (key len uvarint, key,
//	               value len uvarint, value), keys increasing across chunks
//	SnapshotEnd:   seq u64 | keys u64, the number of pairs sent
//	Ack:           written u64 | durable u64 | applied u64   (follower to leader)
//	Heartbeat:     leader last seq u64 | leader time, unix ns, int64
//
// Welcome's last field is optional: a leader sends the delay it wants its
// followers to wait before each fsync (short when it waits on their fsyncs
// for a quorum, longer when nothing waits on them); without it (and in a
// checkpoint) the follower uses its own.
//
// A checkpoint file is the frames Checkpoint, SnapshotChunk..., SnapshotEnd,
// where Checkpoint has the layout of Welcome (mode 2).
package wire
