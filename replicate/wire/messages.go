package wire

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
)

// Version is the protocol version in Hello and Welcome.
const Version = 1

// Limits on handshake fields.
const (
	// MaxIDLen is the longest node id.
	MaxIDLen = 255
	// MaxReasonLen is the longest Refuse reason.
	MaxReasonLen = 4096
)

// Welcome modes.
const (
	// ModeStream: records follow from the fork point + 1.
	ModeStream = 1
	// ModeResync: a snapshot follows, then records from its seq + 1.
	ModeResync = 2
)

// Hello is the follower's opening message.
type Hello struct {
	ID      string
	LastSeq uint64 // the last record in its log
	Applied uint64 // its engine's LastSeq
	History []commitlog.EpochStart
}

// Welcome is the leader's answer to Hello (and, as a Checkpoint frame, the
// header of a checkpoint file).
type Welcome struct {
	Mode    uint8
	ID      string
	Seq     uint64 // ModeStream: the fork point; ModeResync: the snapshot's seq
	History []commitlog.EpochStart
	// SyncDelay, when HasSyncDelay, is how long the follower waits after
	// records arrive before it fsyncs them (the leader knows whether it
	// waits on follower fsyncs); otherwise the follower uses its own.
	SyncDelay    time.Duration
	HasSyncDelay bool
}

// MaxSyncDelay bounds Welcome.SyncDelay.
const MaxSyncDelay = 10 * time.Second

// Ack reports a follower's progress.
type Ack struct {
	Written, Durable, Applied uint64
}

// Heartbeat tells a follower the leader's tail when there is nothing to send.
type Heartbeat struct {
	LastSeq  uint64
	UnixNano int64
}

// SnapshotEnd closes a snapshot.
type SnapshotEnd struct {
	Seq  uint64
	Keys uint64
}

// decoder reads a message payload; the first failure sticks.
type decoder struct {
	b       []byte
	off     int
	err     error
	msg     string
	scratch [binary.MaxVarintLen64]byte
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d: %s", ErrProtocol, d.msg, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) u8() uint8 {
	if d.err != nil || d.off+1 > len(d.b) {
		d.fail("truncated")
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *decoder) u64() uint64 {
	if d.err != nil || d.off+8 > len(d.b) {
		d.fail("truncated")
		return 0
	}
	d.off += 8
	return binary.LittleEndian.Uint64(d.b[d.off-8:])
}

func (d *decoder) uvarint(limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	if n != len(binary.AppendUvarint(d.scratch[:0], v)) {
		// Non-minimal: one message must have exactly one encoding.
		d.fail("uvarint of %d bytes is not minimal", n)
		return 0
	}
	if v > limit {
		d.fail("%d over the limit %d", v, limit)
		return 0
	}
	d.off += n
	return v
}

// bytes returns n bytes aliasing the payload, n checked against limit.
func (d *decoder) bytes(limit uint64) []byte {
	n := d.uvarint(limit)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("length %d past the end", n)
		return nil
	}
	d.off += int(n)
	return d.b[d.off-int(n) : d.off : d.off]
}

func (d *decoder) history() []commitlog.EpochStart {
	n := d.uvarint(commitlog.MaxHistory)
	if d.err != nil {
		return nil
	}
	if n*16 > uint64(len(d.b)-d.off) {
		d.fail("history of %d entries past the end", n)
		return nil
	}
	h := make([]commitlog.EpochStart, n)
	for i := range h {
		h[i] = commitlog.EpochStart{Epoch: d.u64(), Seq: d.u64()}
	}
	if d.err == nil {
		if err := commitlog.ValidHistory(h); err != nil {
			d.fail("%v", err)
		}
	}
	return h
}

func (d *decoder) done() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d trailing bytes", len(d.b)-d.off)
	}
	return d.err
}

func appendHistory(dst []byte, h []commitlog.EpochStart) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(h)))
	for _, e := range h {
		dst = binary.LittleEndian.AppendUint64(dst, e.Epoch)
		dst = binary.LittleEndian.AppendUint64(dst, e.Seq)
	}
	return dst
}

// AppendHello appends the encoding of h.
func AppendHello(dst []byte, h Hello) []byte {
	dst = append(dst, Version)
	dst = binary.AppendUvarint(dst, uint64(len(h.ID)))
	dst = append(dst, h.ID...)
	dst = binary.LittleEndian.AppendUint64(dst, h.LastSeq)
	dst = binary.LittleEndian.AppendUint64(dst, h.Applied)
	return appendHistory(dst, h.History)
}

// DecodeHello decodes a Hello payload.
func DecodeHello(p []byte) (Hello, error) {
	d := decoder{b: p, msg: "hello"}
	if v := d.u8(); d.err == nil && v != Version {
		d.fail("protocol version %d, want %d", v, Version)
	}
	h := Hello{ID: string(d.bytes(MaxIDLen)), LastSeq: d.u64(), Applied: d.u64(), History: d.history()}
	return h, d.done()
}

// AppendWelcome appends the encoding of w.
func AppendWelcome(dst []byte, w Welcome) []byte {
	dst = append(dst, Version, w.Mode)
	dst = binary.AppendUvarint(dst, uint64(len(w.ID)))
	dst = append(dst, w.ID...)
	dst = binary.LittleEndian.AppendUint64(dst, w.Seq)
	dst = appendHistory(dst, w.History)
	if w.HasSyncDelay {
		dst = binary.AppendUvarint(dst, uint64(w.SyncDelay/time.Microsecond))
	}
	return dst
}

// DecodeWelcome decodes a Welcome (or Checkpoint) payload.
func DecodeWelcome(p []byte) (Welcome, error) {
	d := decoder{b: p, msg: "welcome"}
	if v := d.u8(); d.err == nil && v != Version {
		d.fail("protocol version %d, want %d", v, Version)
	}
	w := Welcome{Mode: d.u8()}
	if d.err == nil && w.Mode != ModeStream && w.Mode != ModeResync {
		d.fail("unknown mode %d", w.Mode)
	}
	w.ID = string(d.bytes(MaxIDLen))
	w.Seq = d.u64()
	w.History = d.history()
	if d.err == nil && d.off < len(d.b) {
		w.SyncDelay = time.Duration(d.uvarint(uint64(MaxSyncDelay/time.Microsecond))) * time.Microsecond
		w.HasSyncDelay = d.err == nil
	}
	return w, d.done()
}

// AppendRefuse appends the encoding of a Refuse reason.
func AppendRefuse(dst []byte, reason string) []byte {
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	dst = binary.AppendUvarint(dst, uint64(len(reason)))
	return append(dst, reason...)
}

// DecodeRefuse decodes a Refuse payload.
func DecodeRefuse(p []byte) (string, error) {
	d := decoder{b: p, msg: "refuse"}
	s := string(d.bytes(MaxReasonLen))
	return s, d.done()
}

// RecordsEncoder builds a Records payload.
type RecordsEncoder struct {
	buf   []byte
	count int
}

// Reset empties the payload.
func (e *RecordsEncoder) Reset() { e.buf, e.count = e.buf[:0], 0 }

// Add appends a record.
func (e *RecordsEncoder) Add(r commitlog.Record) {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, r.Seq)
	e.buf = binary.LittleEndian.AppendUint64(e.buf, r.Epoch)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(r.Batch)))
	e.buf = append(e.buf, r.Batch...)
	e.count++
}

// Len returns the number of records added.
func (e *RecordsEncoder) Len() int { return e.count }

// Size returns the payload size so far.
func (e *RecordsEncoder) Size() int { return len(e.buf) + binary.MaxVarintLen64 }

// Payload returns the payload; it aliases the encoder's buffer.
func (e *RecordsEncoder) Payload(dst []byte) []byte {
	dst = binary.AppendUvarint(dst[:0], uint64(e.count))
	return append(dst, e.buf...)
}

// DecodeRecords decodes a Records payload: consecutive seqs, non-decreasing
// epochs, every batch valid. The records' batches alias p.
func DecodeRecords(p []byte, dst []commitlog.Record) ([]commitlog.Record, error) {
	d := decoder{b: p, msg: "records"}
	// A record takes at least 17 + 5 bytes: that bounds the count.
	n := d.uvarint(uint64(len(p) / 22))
	if d.err == nil && n == 0 {
		d.fail("no records")
	}
	dst = dst[:0]
	for i := uint64(0); i < n && d.err == nil; i++ {
		r := commitlog.Record{Seq: d.u64(), Epoch: d.u64(), Batch: d.bytes(logkv.MaxBatchSize)}
		if d.err != nil {
			break
		}
		if len(dst) > 0 {
			prev := dst[len(dst)-1]
			if r.Seq != prev.Seq+1 || r.Epoch < prev.Epoch {
				d.fail("record %d (epoch %d) after %d (epoch %d)", r.Seq, r.Epoch, prev.Seq, prev.Epoch)
				break
			}
		}
		if r.Seq == 0 || r.Epoch == 0 {
			d.fail("record with a zero seq or epoch")
			break
		}
		var b logkv.Batch
		if err := b.SetRepr(r.Batch); err != nil || b.Empty() {
			d.fail("record %d: bad batch: %v", r.Seq, err)
			break
		}
		dst = append(dst, r)
	}
	return dst, d.done()
}

// ChunkEncoder builds a SnapshotChunk payload.
type ChunkEncoder struct {
	buf   []byte
	count int
}

// Reset empties the chunk.
func (e *ChunkEncoder) Reset() { e.buf, e.count = e.buf[:0], 0 }

// Add appends a pair.
func (e *ChunkEncoder) Add(key, value []byte) {
	e.buf = binary.AppendUvarint(e.buf, uint64(len(key)))
	e.buf = append(e.buf, key...)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(value)))
	e.buf = append(e.buf, value...)
	e.count++
}

// Len returns the number of pairs added.
func (e *ChunkEncoder) Len() int { return e.count }

// Size returns the payload size so far.
func (e *ChunkEncoder) Size() int { return len(e.buf) }

// Payload returns the payload.
func (e *ChunkEncoder) Payload(dst []byte) []byte {
	dst = binary.AppendUvarint(dst[:0], uint64(e.count))
	return append(dst, e.buf...)
}

// DecodeChunk calls fn for each pair of a SnapshotChunk payload, in order,
// after checking the whole chunk: keys valid and strictly increasing, after
// prev (nil for the first chunk). It returns the last key (aliasing p). The
// slices passed to fn alias p.
func DecodeChunk(p []byte, prev []byte, fn func(key, value []byte) error) ([]byte, error) {
	d := decoder{b: p, msg: "snapshot chunk"}
	// A pair takes at least 3 bytes.
	n := d.uvarint(uint64(len(p) / 3))
	if d.err == nil && n == 0 {
		d.fail("empty chunk")
	}
	start := d.off
	last := prev
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.bytes(logkv.MaxKeySize)
		d.bytes(logkv.MaxValueSize)
		if d.err != nil {
			break
		}
		if len(k) == 0 || (last != nil && string(k) <= string(last)) {
			d.fail("key %q out of order", k)
		}
		last = k
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	d.off = start
	for range n {
		k := d.bytes(logkv.MaxKeySize)
		v := d.bytes(logkv.MaxValueSize)
		if err := fn(k, v); err != nil {
			return nil, err
		}
	}
	return last, nil
}

// AppendSnapshotEnd appends the encoding of e.
func AppendSnapshotEnd(dst []byte, e SnapshotEnd) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, e.Seq)
	return binary.LittleEndian.AppendUint64(dst, e.Keys)
}

// DecodeSnapshotEnd decodes a SnapshotEnd payload.
func DecodeSnapshotEnd(p []byte) (SnapshotEnd, error) {
	d := decoder{b: p, msg: "snapshot end"}
	e := SnapshotEnd{Seq: d.u64(), Keys: d.u64()}
	return e, d.done()
}

// AppendAck appends the encoding of a.
func AppendAck(dst []byte, a Ack) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, a.Written)
	dst = binary.LittleEndian.AppendUint64(dst, a.Durable)
	return binary.LittleEndian.AppendUint64(dst, a.Applied)
}

// DecodeAck decodes an Ack payload.
func DecodeAck(p []byte) (Ack, error) {
	d := decoder{b: p, msg: "ack"}
	a := Ack{Written: d.u64(), Durable: d.u64(), Applied: d.u64()}
	return a, d.done()
}

// AppendHeartbeat appends the encoding of h.
func AppendHeartbeat(dst []byte, h Heartbeat) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, h.LastSeq)
	return binary.LittleEndian.AppendUint64(dst, uint64(h.UnixNano))
}

// DecodeHeartbeat decodes a Heartbeat payload.
func DecodeHeartbeat(p []byte) (Heartbeat, error) {
	d := decoder{b: p, msg: "heartbeat"}
	h := Heartbeat{LastSeq: d.u64(), UnixNano: int64(d.u64())}
	return h, d.done()
}
