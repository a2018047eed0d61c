package logkv

// WriteOptions control one write. A nil *WriteOptions means the zero value.
type WriteOptions struct {
	// Sync makes the write durable before the call returns: it survives a
	// process kill and a power loss. Without it a write is durable only after a
	// later Sync, a later synced write, or Close (engines may also sync on an
	// interval of their own; see their Options).
	Sync bool

	// Seq, when non-zero, is the sequence number of this batch, given by the
	// caller (a node applying its commit log). It must be greater than
	// LastSeq(), or the write fails with ErrSeqNotIncreasing and changes
	// nothing. Zero means the engine assigns LastSeq()+1.
	Seq uint64
}

// IterOptions bound an iterator. A nil *IterOptions means no bounds.
type IterOptions struct {
	// LowerBound, if non-nil, is the smallest key the iterator may return
	// (inclusive).
	LowerBound []byte
	// UpperBound, if non-nil, is the key every returned key is less than
	// (exclusive).
	UpperBound []byte
}

// SeqFor returns the sequence number a write with options o commits at, given
// the engine's last: o.Seq if set (checked to be greater than last), or
// last+1. Engines call it under their commit lock.
func SeqFor(o *WriteOptions, last uint64) (uint64, error) {
	if o == nil || o.Seq == 0 {
		return last + 1, nil
	}
	if o.Seq <= last {
		return 0, seqError(o.Seq, last)
	}
	return o.Seq, nil
}

// Contains reports whether key lies within o's bounds.
func (o *IterOptions) Contains(key []byte) bool {
	if o == nil {
		return true
	}
	if o.LowerBound != nil && string(key) < string(o.LowerBound) {
		return false
	}
	if o.UpperBound != nil && string(key) >= string(o.UpperBound) {
		return false
	}
	return true
}
