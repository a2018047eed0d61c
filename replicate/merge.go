package replicate

import (
	"fmt"

	"github.com/logkv/logkv"
)

// mergeBytes caps the batches a merger builds.
const mergeBytes = 1 << 20

// merger applies consecutive log records to an engine as few batches. The
// records are consecutive in seq order, so applying several of them as one
// batch at the last one's seq leaves the engine where applying them one by
// one would (within a batch a later operation on a key overrides an earlier
// one), with the engine's per-batch work (its commit lock, seq bookkeeping,
// a memtable's room check) paid once: a node under a pipelining client, or a
// follower receiving a frame of records, applies dozens at a time. The seqs
// in between are never a state the engine shows, which no reader can tell
// from the records arriving together.
type merger struct {
	b           logkv.Batch
	first, last uint64
	// applied is called with the last seq of each batch once applied.
	applied func(seq uint64)
}

// makeRoom applies what is queued if a record of n more bytes would take
// the batch past mergeBytes. An error is the engine's.
func (m *merger) makeRoom(eng logkv.Engine, n int) error {
	if m.last != 0 && m.b.Size()+n > mergeBytes {
		return m.flush(eng)
	}
	return nil
}

// add queues record seq, whose encoded batch is data. An error is the
// record's: its encoding is invalid (wrapping logkv.ErrCorrupt).
func (m *merger) add(seq uint64, data []byte) error {
	if err := m.b.AppendRepr(data); err != nil {
		return fmt.Errorf("replicate: record %d: %w", seq, err)
	}
	if m.last == 0 {
		m.first = seq
	}
	m.last = seq
	return nil
}

// flush applies the queued records. An error is the engine's.
func (m *merger) flush(eng logkv.Engine) error {
	if m.last == 0 {
		return nil
	}
	first, last := m.first, m.last
	err := eng.Apply(&m.b, &logkv.WriteOptions{Seq: last})
	if m.b.Size() > 4*mergeBytes {
		m.b = logkv.Batch{} // one huge record: do not keep its buffer
	} else {
		m.b.Reset()
	}
	m.first, m.last = 0, 0
	if err != nil {
		if first == last {
			return fmt.Errorf("replicate: apply seq %d: %w", last, err)
		}
		return fmt.Errorf("replicate: apply seqs %d..%d: %w", first, last, err)
	}
	m.applied(last)
	return nil
}
