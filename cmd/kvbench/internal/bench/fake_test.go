package bench

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/tidwall/btree"
)

// fakeEngine is a small ordered in-memory engine registered as "benchfake",
// so the harness can be tested without depending on the real engines. It
// keeps a tidwall/btree behind a RWMutex; iterators and snapshots read a
// copy-on-write clone.
type fakeEngine struct {
	mu     sync.RWMutex
	tree   *btree.BTreeG[kv]
	seq    uint64
	closed bool
	syncs  atomic.Int64
	gets   atomic.Uint64
	writes uint64
}

type kv struct{ k, v []byte }

func kvLess(a, b kv) bool { return bytes.Compare(a.k, b.k) < 0 }

func init() {
	logkv.Register("benchfake", func(dir string, opts any) (logkv.Engine, error) {
		return &fakeEngine{tree: btree.NewBTreeGOptions(kvLess, btree.Options{NoLocks: true})}, nil
	})
}

var _ logkv.Engine = (*fakeEngine)(nil)

func (e *fakeEngine) Get(key []byte) ([]byte, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, logkv.ErrClosed
	}
	e.gets.Add(1)
	item, ok := e.tree.Get(kv{k: key})
	if !ok {
		return nil, logkv.ErrNotFound
	}
	return bytes.Clone(item.v), nil
}

func (e *fakeEngine) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, logkv.ErrClosed
	}
	return newFakeIter(e.tree.Copy(), o), nil
}

func (e *fakeEngine) Set(key, value []byte, o *logkv.WriteOptions) error {
	var b logkv.Batch
	b.Set(key, value)
	return e.Apply(&b, o)
}

func (e *fakeEngine) Delete(key []byte, o *logkv.WriteOptions) error {
	var b logkv.Batch
	b.Delete(key)
	return e.Apply(&b, o)
}

func (e *fakeEngine) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	if err := b.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return logkv.ErrClosed
	}
	seq, err := logkv.SeqFor(o, e.seq)
	if err != nil || b.Empty() {
		return err
	}
	r := b.Reader()
	for {
		kind, k, v, ok := r.Next()
		if !ok {
			break
		}
		if kind == logkv.KindSet {
			e.tree.Set(kv{bytes.Clone(k), bytes.Clone(v)})
		} else {
			e.tree.Delete(kv{k: k})
		}
	}
	e.seq = seq
	e.writes++
	if o != nil && o.Sync {
		e.syncs.Add(1)
	}
	return nil
}

func (e *fakeEngine) NewSnapshot() (logkv.Snapshot, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, logkv.ErrClosed
	}
	return &fakeSnap{tree: e.tree.Copy(), seq: e.seq}, nil
}

func (e *fakeEngine) LastSeq() uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.seq
}

func (e *fakeEngine) Sync() error { e.syncs.Add(1); return nil }

func (e *fakeEngine) Metrics() logkv.Metrics {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return logkv.Metrics{Keys: int64(e.tree.Len()), Gets: e.gets.Load(), Writes: e.writes}
}

func (e *fakeEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	return nil
}

type fakeSnap struct {
	tree *btree.BTreeG[kv]
	seq  uint64
}

func (s *fakeSnap) Get(key []byte) ([]byte, error) {
	item, ok := s.tree.Get(kv{k: key})
	if !ok {
		return nil, logkv.ErrNotFound
	}
	return bytes.Clone(item.v), nil
}

func (s *fakeSnap) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	return newFakeIter(s.tree.Copy(), o), nil
}

func (s *fakeSnap) Seq() uint64  { return s.seq }
func (s *fakeSnap) Close() error { return nil }

type fakeIter struct {
	it     btree.IterG[kv]
	o      logkv.IterOptions
	valid  bool
	closed bool
}

func newFakeIter(t *btree.BTreeG[kv], o *logkv.IterOptions) *fakeIter {
	f := &fakeIter{it: t.Iter()}
	if o != nil {
		f.o = *o
	}
	return f
}

func (f *fakeIter) check(ok bool) bool {
	f.valid = ok && !f.closed && f.o.Contains(f.it.Item().k)
	return f.valid
}

func (f *fakeIter) First() bool {
	if f.o.LowerBound != nil {
		return f.SeekGE(f.o.LowerBound)
	}
	return f.check(f.it.First())
}

func (f *fakeIter) Last() bool {
	if f.o.UpperBound != nil {
		return f.SeekLT(f.o.UpperBound)
	}
	return f.check(f.it.Last())
}

func (f *fakeIter) SeekGE(key []byte) bool {
	if f.o.LowerBound != nil && bytes.Compare(key, f.o.LowerBound) < 0 {
		key = f.o.LowerBound
	}
	return f.check(f.it.Seek(kv{k: key}))
}

func (f *fakeIter) SeekLT(key []byte) bool {
	if f.o.UpperBound != nil && bytes.Compare(key, f.o.UpperBound) > 0 {
		key = f.o.UpperBound
	}
	if f.it.Seek(kv{k: key}) {
		return f.check(f.it.Prev())
	}
	return f.check(f.it.Last())
}

func (f *fakeIter) Next() bool {
	if !f.valid {
		return false
	}
	return f.check(f.it.Next())
}

func (f *fakeIter) Prev() bool {
	if !f.valid {
		return false
	}
	return f.check(f.it.Prev())
}

func (f *fakeIter) Valid() bool   { return f.valid }
func (f *fakeIter) Key() []byte   { return f.it.Item().k }
func (f *fakeIter) Value() []byte { return f.it.Item().v }
func (f *fakeIter) Error() error  { return nil }

func (f *fakeIter) Close() error {
	if !f.closed {
		f.closed, f.valid = true, false
		f.it.Release()
	}
	return nil
}
