package commitlog

import (
	"encoding/binary"

	"github.com/logkv/logkv"
)

// RecordHeaderSize is the size of a record encoding's seq and epoch fields.
const RecordHeaderSize = 16

// MaxRecordSize is the largest record encoding: the header and the largest
// batch. (A segment frame's payload adds an 8-byte synced field.)
const MaxRecordSize = RecordHeaderSize + logkv.MaxBatchSize

// Record is one entry of the log: a batch with its sequence number and the
// epoch of the leader that committed it.
type Record struct {
	Seq   uint64
	Epoch uint64
	// Batch is the batch's encoding (logkv.Batch.Repr). Records returned by a
	// Reader alias its buffer: they are valid until its next call.
	Batch []byte
}

// AppendRecord appends the encoding of r to dst: seq and epoch (uint64
// little-endian each), then the batch. It is the tail of a segment record's
// payload (see the package doc).
func AppendRecord(dst []byte, r Record) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, r.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, r.Epoch)
	return append(dst, r.Batch...)
}

// DecodeRecord decodes a record encoding (see AppendRecord). The batch is validated as by
// logkv.DecodeBatch and aliases p. Errors wrap logkv.ErrCorrupt.
func DecodeRecord(p []byte) (Record, error) {
	if len(p) < RecordHeaderSize {
		return Record{}, logkv.CorruptError("record", 0, "record payload of %d bytes is shorter than its %d-byte header", len(p), RecordHeaderSize)
	}
	if len(p) > MaxRecordSize {
		return Record{}, logkv.CorruptError("record", 0, "record payload of %d bytes is over the limit %d", len(p), MaxRecordSize)
	}
	r := Record{
		Seq:   binary.LittleEndian.Uint64(p[0:8]),
		Epoch: binary.LittleEndian.Uint64(p[8:16]),
		Batch: p[RecordHeaderSize:],
	}
	if r.Seq == 0 {
		return Record{}, logkv.CorruptError("record", 0, "sequence number 0")
	}
	if len(r.Batch) == 0 {
		return Record{}, logkv.CorruptError("record", RecordHeaderSize, "empty batch")
	}
	var b logkv.Batch
	if err := b.SetRepr(r.Batch); err != nil {
		return Record{}, err
	}
	return r, nil
}
