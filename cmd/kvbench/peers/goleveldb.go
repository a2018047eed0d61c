package main

import (
	"errors"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/cmd/kvbench/internal/bench"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// goleveldb with lsm's budget: a 10-bit bloom filter (none by default), the
// 64 MiB block cache lsm has (8 MiB by default) and lsm's 8 MiB write buffer
// (4 MiB by default); everything else its defaults (Snappy, 4 KiB blocks).
func init() {
	bench.RegisterStore("goleveldb", func(dir string) (bench.Store, error) {
		db, err := leveldb.OpenFile(dir, &opt.Options{
			Filter:             filter.NewBloomFilter(10),
			BlockCacheCapacity: lsmCacheSize,
			WriteBuffer:        8 << 20,
		})
		if err != nil {
			return nil, err
		}
		return &levelStore{db: db}, nil
	})
}

type levelStore struct{ db *leveldb.DB }

func levelSync(o *logkv.WriteOptions) *opt.WriteOptions {
	return &opt.WriteOptions{Sync: o != nil && o.Sync}
}

func (s *levelStore) Get(k []byte) ([]byte, error) {
	v, err := s.db.Get(k, nil) // a fresh slice
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, logkv.ErrNotFound
	}
	return v, err
}

func (s *levelStore) Set(k, v []byte, o *logkv.WriteOptions) error {
	return s.db.Put(k, v, levelSync(o))
}

func (s *levelStore) Delete(k []byte, o *logkv.WriteOptions) error {
	return s.db.Delete(k, levelSync(o))
}

func (s *levelStore) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	var lb leveldb.Batch
	err := forEach(b, func(kind logkv.Kind, k, v []byte) error {
		if kind == logkv.KindSet {
			lb.Put(k, v)
		} else {
			lb.Delete(k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.db.Write(&lb, levelSync(o))
}

// NewIter gives goleveldb the bounds (its iterator reads an implicit
// snapshot); bounded adds logkv's rules for unpositioned iterators.
func (s *levelStore) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	var r *util.Range
	if o != nil && (o.LowerBound != nil || o.UpperBound != nil) {
		r = &util.Range{Start: o.LowerBound, Limit: o.UpperBound}
	}
	return newBounded(&levelCursor{it: s.db.NewIterator(r, nil)}, o), nil
}

func (s *levelStore) Close() error { return s.db.Close() }

type levelCursor struct{ it iterator.Iterator }

func (c *levelCursor) first() bool          { return c.it.First() }
func (c *levelCursor) last() bool           { return c.it.Last() }
func (c *levelCursor) seekGE(k []byte) bool { return c.it.Seek(k) }
func (c *levelCursor) seekLT(k []byte) bool {
	if c.it.Seek(k) {
		return c.it.Prev()
	}
	return c.it.Last()
}
func (c *levelCursor) next() bool    { return c.it.Next() }
func (c *levelCursor) prev() bool    { return c.it.Prev() }
func (c *levelCursor) key() []byte   { return c.it.Key() }
func (c *levelCursor) value() []byte { return c.it.Value() }
func (c *levelCursor) err() error    { return c.it.Error() }
func (c *levelCursor) close() error {
	err := c.it.Error()
	c.it.Release()
	return err
}

// run is cursor.run: see there why each cursor has its own copy.
func (c *levelCursor) run(n int, reverse bool, limit []byte) (done int, bytes int64, ok bool) {
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
