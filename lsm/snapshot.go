package lsm

import (
	"slices"

	"github.com/logkv/logkv"
)

// snapshot is a frozen view at a seq. Its seq is in the DB's snapshot list
// while it is open, so compactions keep the versions it sees.
type snapshot struct {
	d      *DB
	seq    uint64
	closed bool
}

// NewSnapshot returns a view of the DB as of now.
func (d *DB) NewSnapshot() (logkv.Snapshot, error) {
	if d.closed.Load() {
		return nil, errClosedDB
	}
	d.mu.Lock()
	// Under d.mu, a compaction that starts later sees this seq; one already
	// running only reads data older than the current visible seq, whose
	// newest versions it keeps.
	seq := d.visible.Load()
	i, _ := slices.BinarySearch(d.snapshots, seq)
	d.snapshots = slices.Insert(d.snapshots, i, seq)
	d.mu.Unlock()
	return &snapshot{d: d, seq: seq}, nil
}

// Seq returns the snapshot's sequence number.
func (s *snapshot) Seq() uint64 { return s.seq }

// Get returns the value of key as of the snapshot.
func (s *snapshot) Get(key []byte) ([]byte, error) {
	return owned(s.AppendGet(nil, key))
}

// AppendGet appends the value of key as of the snapshot to dst, as
// DB.AppendGet does at the DB's latest state.
func (s *snapshot) AppendGet(dst, key []byte) ([]byte, error) {
	if s.closed || s.d.closed.Load() {
		return dst, errClosedDB
	}
	rs := s.d.loadReadState()
	defer rs.unref()
	return s.d.get(rs, dst, key, s.seq)
}

// NewIter returns an iterator over the snapshot's view.
func (s *snapshot) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	if s.closed || s.d.closed.Load() {
		return nil, errClosedDB
	}
	return s.d.newIter(s.d.loadReadState(), s.seq, o)
}

// Close releases the snapshot.
func (s *snapshot) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	d := s.d
	d.mu.Lock()
	if i, ok := slices.BinarySearch(d.snapshots, s.seq); ok {
		d.snapshots = slices.Delete(d.snapshots, i, i+1)
	}
	d.mu.Unlock()
	return nil
}
