package memory

import (
	"runtime"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/ordtree"
)

// snapshot is a frozen root of the engine's tree. Nodes reachable from it are
// never changed (the writer copies them first), so it reads them without a
// lock.
type snapshot struct {
	db     *DB
	view   ordtree.View[val]
	ver    uint64
	seq    uint64
	closed bool
	leak   runtime.Cleanup // releases ver if the snapshot is dropped unclosed
}

func newSnapshot(db *DB, view ordtree.View[val], ver, seq uint64) *snapshot {
	s := &snapshot{db: db, view: view, ver: ver, seq: seq}
	s.leak = runtime.AddCleanup(s, db.release, ver)
	return s
}

var _ logkv.Snapshot = (*snapshot)(nil)

func (s *snapshot) usable() error {
	if s.closed || s.db.closed.Load() {
		return logkv.ErrClosed
	}
	return nil
}

// Get returns a copy of the value stored under key in the snapshot.
func (s *snapshot) Get(key []byte) ([]byte, error) {
	s.db.gets.Add(1)
	if err := s.usable(); err != nil {
		return nil, err
	}
	v, ok := s.view.Get(unsafeString(key))
	if !ok {
		return nil, logkv.ErrNotFound
	}
	b := v.value()
	out := make([]byte, len(b)) // make and copy: append's growth arithmetic cost ~10% of a Get's instructions
	copy(out, b)
	return out, nil
}

// NewIter returns an iterator over the snapshot. It holds the snapshot's data
// on its own: it stays usable if the snapshot is closed first.
func (s *snapshot) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	s.db.retain(s.ver)
	return newIterator(s.db, s.view, s.ver, o), nil
}

// Seq returns the sequence number of the newest batch the snapshot sees.
func (s *snapshot) Seq() uint64 { return s.seq }

// Close releases the snapshot. Calling it twice is safe.
func (s *snapshot) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.view = ordtree.View[val]{}
	s.leak.Stop()
	s.db.release(s.ver)
	return nil
}
