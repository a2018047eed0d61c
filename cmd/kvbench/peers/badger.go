package main

import (
	"bytes"
	"errors"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/logkv/logkv"
	"github.com/logkv/logkv/cmd/kvbench/internal/bench"
)

// Badger with its documented defaults (badger.DefaultOptions: SyncWrites
// off, 64 MiB memtables, values under 1 MiB kept in the LSM tree, Snappy
// blocks), its block cache set to lsm's 64 MiB (256 MiB by default) and its
// logger silenced. A write with WriteOptions.Sync commits and then calls
// DB.Sync, which fsyncs the value log and memtable WAL.
func init() {
	bench.RegisterStore("badger", func(dir string) (bench.Store, error) {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithBlockCacheSize(lsmCacheSize))
		if err != nil {
			return nil, err
		}
		return &badgerStore{db: db}, nil
	})
}

type badgerStore struct{ db *badger.DB }

func (s *badgerStore) Get(k []byte) ([]byte, error) {
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, logkv.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// update commits fn's writes in one transaction, then fsyncs if asked.
func (s *badgerStore) update(o *logkv.WriteOptions, fn func(txn *badger.Txn) error) error {
	if err := s.db.Update(fn); err != nil {
		return err
	}
	if o != nil && o.Sync {
		return s.db.Sync()
	}
	return nil
}

func (s *badgerStore) Set(k, v []byte, o *logkv.WriteOptions) error {
	// Badger keeps k and v until the commit, which Update finishes.
	return s.update(o, func(txn *badger.Txn) error { return txn.Set(k, v) })
}

func (s *badgerStore) Delete(k []byte, o *logkv.WriteOptions) error {
	return s.update(o, func(txn *badger.Txn) error { return txn.Delete(k) })
}

// Apply commits the batch as one transaction: atomic, as logkv's Apply is
// (Badger's WriteBatch may split into several). A batch beyond Badger's
// transaction limit fails with badger.ErrTxnTooBig.
func (s *badgerStore) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	if err := b.Err(); err != nil {
		return err
	}
	return s.update(o, func(txn *badger.Txn) error {
		return forEach(b, func(kind logkv.Kind, k, v []byte) error {
			if kind == logkv.KindSet {
				return txn.Set(k, v)
			}
			return txn.Delete(k)
		})
	})
}

// NewIter reads a read-only transaction (Badger's snapshot). Badger's
// iterators go one way, so the cursor keeps one per direction and re-seeks
// when the direction changes. Values are read as the cursor lands on a key
// (PrefetchValues off: with 100-byte values every value is in the LSM tree,
// and seekrandom would otherwise fetch 100 values per seek).
func (s *badgerStore) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	return newBounded(&badgerCursor{txn: s.db.NewTransaction(false)}, o), nil
}

func (s *badgerStore) Close() error { return s.db.Close() }

type badgerCursor struct {
	txn      *badger.Txn
	fwd, rev *badger.Iterator
	cur      *badger.Iterator // fwd or rev, whichever is positioned
	val      []byte
	e        error
}

func (c *badgerCursor) iter(reverse bool) *badger.Iterator {
	p := &c.fwd
	if reverse {
		p = &c.rev
	}
	if *p == nil {
		*p = c.txn.NewIterator(badger.IteratorOptions{Reverse: reverse})
	}
	c.cur = *p
	return *p
}

// land reads the value under the cursor's iterator, if it is at a key.
func (c *badgerCursor) land() bool {
	if !c.cur.Valid() {
		return false
	}
	c.val, c.e = c.cur.Item().ValueCopy(c.val[:0])
	return c.e == nil
}

func (c *badgerCursor) first() bool {
	c.iter(false).Rewind()
	return c.land()
}

func (c *badgerCursor) last() bool {
	c.iter(true).Rewind()
	return c.land()
}

func (c *badgerCursor) seekGE(k []byte) bool {
	c.iter(false).Seek(k)
	return c.land()
}

// seekLT: a reverse Seek lands on the largest key <= k; step off k itself.
func (c *badgerCursor) seekLT(k []byte) bool {
	it := c.iter(true)
	it.Seek(k)
	if it.Valid() && bytes.Equal(it.Item().Key(), k) {
		it.Next()
	}
	return c.land()
}

func (c *badgerCursor) next() bool {
	if c.cur == c.rev {
		// Turn around: the next key forwards is the first one above this.
		k := c.cur.Item().KeyCopy(nil)
		it := c.iter(false)
		it.Seek(k)
		if it.Valid() && bytes.Equal(it.Item().Key(), k) {
			it.Next()
		}
		return c.land()
	}
	c.cur.Next()
	return c.land()
}

func (c *badgerCursor) prev() bool {
	if c.cur == c.fwd {
		return c.seekLT(c.cur.Item().KeyCopy(nil))
	}
	c.cur.Next()
	return c.land()
}

func (c *badgerCursor) key() []byte   { return c.cur.Item().Key() }
func (c *badgerCursor) value() []byte { return c.val }
func (c *badgerCursor) err() error    { return c.e }

func (c *badgerCursor) close() error {
	for _, it := range []*badger.Iterator{c.fwd, c.rev} {
		if it != nil {
			it.Close()
		}
	}
	c.txn.Discard()
	return nil
}

// run is cursor.run: see there why each cursor has its own copy.
func (c *badgerCursor) run(n int, reverse bool, limit []byte) (done int, bytes int64, ok bool) {
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
