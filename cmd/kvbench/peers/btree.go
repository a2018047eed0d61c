package main

import (
	"sync"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/cmd/kvbench/internal/bench"
	"github.com/tidwall/btree"
)

// btree is the in-memory reference point: tidwall/btree's ordered Map behind
// a read-write lock, with none of an engine's work (no log, no durability;
// nothing survives Close). An iterator reads a copy-on-write copy of the
// map, taken in O(1), so it sees the map as of its creation as logkv's do.
func init() {
	bench.RegisterStore("btree", func(string) (bench.Store, error) { return &btreeStore{}, nil })
}

type btreeStore struct {
	mu sync.RWMutex
	m  btree.Map[string, []byte]
}

func (s *btreeStore) Get(k []byte) ([]byte, error) {
	s.mu.RLock()
	v, ok := s.m.Get(string(k)) // no allocation: the conversion is only a lookup key
	s.mu.RUnlock()
	if !ok {
		return nil, logkv.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (s *btreeStore) Set(k, v []byte, _ *logkv.WriteOptions) error {
	s.set(string(k), append([]byte(nil), v...))
	return nil
}

func (s *btreeStore) set(k string, v []byte) {
	s.mu.Lock()
	s.m.Set(k, v)
	s.mu.Unlock()
}

func (s *btreeStore) Delete(k []byte, _ *logkv.WriteOptions) error {
	s.mu.Lock()
	s.m.Delete(string(k))
	s.mu.Unlock()
	return nil
}

// Apply copies the batch first, then applies it under one lock hold, so
// readers see all of it or none.
func (s *btreeStore) Apply(b *logkv.Batch, _ *logkv.WriteOptions) error {
	type op struct {
		k   string
		v   []byte
		del bool
	}
	var ops []op
	err := forEach(b, func(kind logkv.Kind, k, v []byte) error {
		ops = append(ops, op{string(k), append([]byte(nil), v...), kind == logkv.KindDelete})
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range ops {
		if o.del {
			s.m.Delete(o.k)
		} else {
			s.m.Set(o.k, o.v)
		}
	}
	return nil
}

func (s *btreeStore) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	s.mu.Lock() // Copy marks the map copy-on-write: a write to it
	m := s.m.Copy()
	s.mu.Unlock()
	return newBounded(&btreeCursor{m: m, it: m.Iter()}, o), nil
}

func (s *btreeStore) Close() error { return nil }

type btreeCursor struct {
	m  *btree.Map[string, []byte]
	it btree.MapIter[string, []byte]
	k  []byte
}

func (c *btreeCursor) at(ok bool) bool {
	if ok {
		c.k = append(c.k[:0], c.it.Key()...)
	}
	return ok
}

func (c *btreeCursor) first() bool          { return c.at(c.it.First()) }
func (c *btreeCursor) last() bool           { return c.at(c.it.Last()) }
func (c *btreeCursor) seekGE(k []byte) bool { return c.at(c.it.Seek(string(k))) }
func (c *btreeCursor) seekLT(k []byte) bool {
	if c.it.Seek(string(k)) {
		return c.at(c.it.Prev())
	}
	return c.at(c.it.Last())
}
func (c *btreeCursor) next() bool    { return c.at(c.it.Next()) }
func (c *btreeCursor) prev() bool    { return c.at(c.it.Prev()) }
func (c *btreeCursor) key() []byte   { return c.k }
func (c *btreeCursor) value() []byte { return c.it.Value() }
func (c *btreeCursor) err() error    { return nil }
func (c *btreeCursor) close() error  { return nil }

// run is cursor.run: see there why each cursor has its own copy.
func (c *btreeCursor) run(n int, reverse bool, limit []byte) (done int, bytes int64, ok bool) {
	ok = true
	for ; done < n && ok; done++ {
		bytes += int64(len(c.key()) + len(c.value()))
		if reverse {
			ok = c.prev()
		} else {
			ok = c.next()
		}
		ok = ok && within(c.key(), limit, reverse)
	}
	return done, bytes, ok
}
