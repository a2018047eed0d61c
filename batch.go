package logkv

import (
	"encoding/binary"
	"fmt"
)

// Kind is the kind of one operation in a Batch.
type Kind uint8

// Operation kinds, as encoded in a batch.
const (
	KindSet    Kind = 1
	KindDelete Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindSet:
		return "set"
	case KindDelete:
		return "delete"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// batchVersion is the first byte of every encoded batch.
const batchVersion = 1

// batchHeaderSize is the size of the version byte and the operation count.
const batchHeaderSize = 5

// A Batch is an ordered list of Sets and Deletes committed atomically by
// Engine.Apply. The zero value is an empty batch ready to use. A Batch is not
// safe for concurrent use.
//
// # Encoding
//
// The batch is kept in its encoded form, which is the payload of every log
// record in logkv (the lsm WAL, the node's commit log, replication frames):
//
//	offset  size  field
//	0       1     version, 1
//	1       4     count: the number of operations, uint32 little-endian
//	5       ...   count operations, each:
//	                kind       1 byte: 1 = set, 2 = delete
//	                key len    uvarint, 1..MaxKeySize
//	                key        key len bytes
//	                value len  uvarint, 0..MaxValueSize (set only)
//	                value      value len bytes (set only)
//
// Nothing follows the last operation. The whole encoding is at most
// MaxBatchSize bytes. It carries no sequence number and no checksum: the log
// record around it holds those.
type Batch struct {
	data  []byte // encoded; empty until the first operation
	count uint32
	err   error
}

// Set adds an operation storing value under key. key and value are copied. If
// key or value is invalid, the batch records the error (see Err) and Apply
// will reject it.
func (b *Batch) Set(key, value []byte) {
	b.add(KindSet, key, value)
}

// Delete adds an operation removing key. key is copied.
func (b *Batch) Delete(key []byte) {
	b.add(KindDelete, key, nil)
}

func (b *Batch) add(kind Kind, key, value []byte) {
	if b.err != nil {
		return
	}
	if err := CheckKey(key); err != nil {
		b.err = err
		return
	}
	if err := CheckValue(value); err != nil {
		b.err = err
		return
	}
	if b.encodedLen(len(key), len(value), kind) > MaxBatchSize {
		b.err = fmt.Errorf("%w: adding a %d-byte key and %d-byte value passes %d bytes (MaxBatchSize); split the batch", ErrBatchTooLarge, len(key), len(value), MaxBatchSize)
		return
	}
	if len(b.data) == 0 {
		b.data = append(b.data[:0], batchVersion, 0, 0, 0, 0)
	}
	b.data = append(b.data, byte(kind))
	b.data = binary.AppendUvarint(b.data, uint64(len(key)))
	b.data = append(b.data, key...)
	if kind == KindSet {
		b.data = binary.AppendUvarint(b.data, uint64(len(value)))
		b.data = append(b.data, value...)
	}
	b.count++
	binary.LittleEndian.PutUint32(b.data[1:5], b.count)
}

// encodedLen is the exact size b would have after adding one operation.
func (b *Batch) encodedLen(klen, vlen int, kind Kind) int {
	n := len(b.data)
	if n == 0 {
		n = batchHeaderSize
	}
	n += 1 + uvarintLen(uint64(klen)) + klen
	if kind == KindSet {
		n += uvarintLen(uint64(vlen)) + vlen
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// Len returns the number of operations in the batch.
func (b *Batch) Len() int { return int(b.count) }

// Empty reports whether the batch holds no operation.
func (b *Batch) Empty() bool { return b.count == 0 }

// Size returns the length in bytes of the batch's encoding.
func (b *Batch) Size() int { return len(b.data) }

// Err returns the first invalid operation's error, if any. A batch with an
// error is rejected whole by Apply.
func (b *Batch) Err() error { return b.err }

// Reset empties the batch, keeping its buffer for reuse.
func (b *Batch) Reset() {
	b.data = b.data[:0]
	b.count = 0
	b.err = nil
}

// Repr returns the batch's encoding (see the Batch doc), or nil for an empty
// batch. The slice aliases the batch's buffer: it is valid until the next
// change to the batch.
func (b *Batch) Repr() []byte {
	if b.count == 0 {
		return nil
	}
	return b.data
}

// SetRepr replaces the batch's contents with the decoded data, after checking
// every length against the limits (and that each is minimally encoded, so a
// batch has exactly one encoding). The batch aliases data (no copy): the
// caller must not change data while the batch is in use. An error wraps
// ErrCorrupt and leaves the batch empty. An empty data is an empty batch.
func (b *Batch) SetRepr(data []byte) error {
	b.Reset()
	if len(data) == 0 {
		return nil
	}
	count, err := validateRepr(data)
	if err != nil {
		return err
	}
	// Clipped: an operation added later reallocates instead of writing into
	// the caller's buffer past data.
	b.data, b.count = data[:len(data):len(data)], count
	return nil
}

// AppendRepr appends the operations of an encoded batch (validated as by
// SetRepr) to b, after b's own: applying the result is applying b, then
// data's batch, with a later operation on a key overriding an earlier one.
// data is copied. An error wraps ErrCorrupt, or ErrBatchTooLarge when the
// result would pass MaxBatchSize, and leaves b as it was.
func (b *Batch) AppendRepr(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	count, err := validateRepr(data)
	if err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	if len(b.data) == 0 {
		b.data = append(b.data[:0], data...)
		b.count = count
		return nil
	}
	if len(b.data)+len(data)-batchHeaderSize > MaxBatchSize {
		return fmt.Errorf("%w: appending a %d-byte batch to a %d-byte one passes MaxBatchSize", ErrBatchTooLarge, len(data), len(b.data))
	}
	b.data = append(b.data, data[batchHeaderSize:]...)
	b.count += count
	binary.LittleEndian.PutUint32(b.data[1:5], b.count)
	return nil
}

// DecodeBatch returns a batch holding data, validated as by SetRepr.
func DecodeBatch(data []byte) (*Batch, error) {
	b := new(Batch)
	if err := b.SetRepr(data); err != nil {
		return nil, err
	}
	return b, nil
}

func validateRepr(data []byte) (uint32, error) {
	bad := func(off int, format string, args ...any) error {
		return CorruptError("batch", int64(off), format, args...)
	}
	if len(data) > MaxBatchSize {
		return 0, bad(0, "encoded batch is %d bytes, over MaxBatchSize", len(data))
	}
	if len(data) < batchHeaderSize {
		return 0, bad(0, "%d bytes is shorter than the header", len(data))
	}
	if data[0] != batchVersion {
		return 0, FormatError("batch", 0, "batch version %d; this version reads %d", data[0], batchVersion)
	}
	count := binary.LittleEndian.Uint32(data[1:5])
	if count == 0 {
		return 0, bad(1, "encoded batch with no operations")
	}
	off := batchHeaderSize
	for i := uint32(0); i < count; i++ {
		if off >= len(data) {
			return 0, bad(off, "batch ends after %d of %d operations", i, count)
		}
		kind := Kind(data[off])
		if kind != KindSet && kind != KindDelete {
			return 0, bad(off, "unknown operation kind %d", kind)
		}
		off++
		klen, n := binary.Uvarint(data[off:])
		if n <= 0 || n != uvarintLen(klen) || klen == 0 || klen > MaxKeySize || klen > uint64(len(data)-off-n) {
			return 0, bad(off, "bad key length")
		}
		off += n + int(klen)
		if kind == KindSet {
			vlen, n := binary.Uvarint(data[off:])
			if n <= 0 || n != uvarintLen(vlen) || vlen > MaxValueSize || vlen > uint64(len(data)-off-n) {
				return 0, bad(off, "bad value length")
			}
			off += n + int(vlen)
		}
	}
	if off != len(data) {
		return 0, bad(off, "%d trailing bytes after %d operations", len(data)-off, count)
	}
	return count, nil
}

// Reader returns a reader over the batch's operations, in order.
func (b *Batch) Reader() BatchReader {
	if b.count == 0 {
		return BatchReader{}
	}
	return BatchReader{data: b.data[batchHeaderSize:], left: b.count}
}

// BatchReader walks the operations of a Batch. The batch must not change
// while it is read.
type BatchReader struct {
	data []byte
	left uint32
}

// Next returns the next operation. key and value alias the batch's buffer;
// value is nil for a delete. ok is false after the last operation.
func (r *BatchReader) Next() (kind Kind, key, value []byte, ok bool) {
	if r.left == 0 {
		return 0, nil, nil, false
	}
	// The encoding was validated when it was built or decoded.
	kind = Kind(r.data[0])
	klen, n := binary.Uvarint(r.data[1:])
	p := 1 + n
	key = r.data[p : p+int(klen) : p+int(klen)]
	p += int(klen)
	if kind == KindSet {
		vlen, n := binary.Uvarint(r.data[p:])
		p += n
		value = r.data[p : p+int(vlen) : p+int(vlen)]
		p += int(vlen)
	}
	r.data = r.data[p:]
	r.left--
	return kind, key, value, true
}
