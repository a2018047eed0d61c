package main

import (
	"path/filepath"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/cmd/kvbench/internal/bench"
	bolt "go.etcd.io/bbolt"
)

// bucket is the one bucket every key lives in.
var bucket = []byte("kv")

// bbolt as etcd runs it in production (etcd's backend): the hashmap freelist,
// not synced to disk (rebuilt on open), and every commit fsynced (NoSync
// off: bbolt's documentation reserves NoSync for bulk loads it can redo,
// since a power loss can then corrupt the file). bbolt has no write that
// skips the fsync safely, so its writes are all durable, WriteOptions.Sync
// or not: its fills measure an fsync per write unless -batch groups them.
// bbolt-nosync is the bulk-load setting for comparison: writes without
// WriteOptions.Sync commit with NoSync, writes with it fsync.
func init() {
	bench.RegisterStore("bbolt", func(dir string) (bench.Store, error) { return openBolt(dir, false) })
	bench.RegisterStore("bbolt-nosync", func(dir string) (bench.Store, error) { return openBolt(dir, true) })
}

func openBolt(dir string, nosync bool) (bench.Store, error) {
	db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, &bolt.Options{
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &boltStore{db: db, nosync: nosync}, nil
}

type boltStore struct {
	db     *bolt.DB
	nosync bool
}

func (s *boltStore) Get(k []byte) (out []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(k)
		if v == nil {
			return logkv.ErrNotFound
		}
		out = append([]byte(nil), v...) // v lives only as long as tx
		return nil
	})
	return out, err
}

// update commits fn in one read-write transaction. With nosync, a write
// without Sync skips the fsync: bbolt reads DB.NoSync only in a read-write
// transaction's commit, and bbolt runs one of those at a time, so setting
// it inside the transaction, before the commit, races with nothing.
func (s *boltStore) update(o *logkv.WriteOptions, fn func(b *bolt.Bucket) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if s.nosync {
			s.db.NoSync = o == nil || !o.Sync
		}
		return fn(tx.Bucket(bucket))
	})
}

func (s *boltStore) Set(k, v []byte, o *logkv.WriteOptions) error {
	return s.update(o, func(b *bolt.Bucket) error { return b.Put(k, v) })
}

func (s *boltStore) Delete(k []byte, o *logkv.WriteOptions) error {
	return s.update(o, func(b *bolt.Bucket) error { return b.Delete(k) })
}

func (s *boltStore) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	if err := b.Err(); err != nil {
		return err
	}
	return s.update(o, func(bk *bolt.Bucket) error {
		return forEach(b, func(kind logkv.Kind, k, v []byte) error {
			if kind == logkv.KindSet {
				return bk.Put(k, v)
			}
			return bk.Delete(k)
		})
	})
}

// NewIter holds a read-only transaction (bbolt's snapshot) until Close.
func (s *boltStore) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return newBounded(&boltCursor{tx: tx, c: tx.Bucket(bucket).Cursor()}, o), nil
}

// Close syncs first when writes skipped their fsync, so Close leaves every
// write durable as logkv's Close does.
func (s *boltStore) Close() error {
	var err error
	if s.nosync {
		err = s.db.Sync()
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}

type boltCursor struct {
	tx   *bolt.Tx
	c    *bolt.Cursor
	k, v []byte
}

func (c *boltCursor) at(k, v []byte) bool {
	c.k, c.v = k, v
	return k != nil
}

func (c *boltCursor) first() bool          { return c.at(c.c.First()) }
func (c *boltCursor) last() bool           { return c.at(c.c.Last()) }
func (c *boltCursor) seekGE(k []byte) bool { return c.at(c.c.Seek(k)) }
func (c *boltCursor) seekLT(k []byte) bool {
	if got, _ := c.c.Seek(k); got == nil {
		return c.at(c.c.Last())
	}
	return c.at(c.c.Prev())
}
func (c *boltCursor) next() bool    { return c.at(c.c.Next()) }
func (c *boltCursor) prev() bool    { return c.at(c.c.Prev()) }
func (c *boltCursor) key() []byte   { return c.k }
func (c *boltCursor) value() []byte { return c.v }
func (c *boltCursor) err() error    { return nil }
func (c *boltCursor) close() error  { return c.tx.Rollback() }

// run is cursor.run: see there why each cursor has its own copy.
func (c *boltCursor) run(n int, reverse bool, limit []byte) (done int, bytes int64, ok bool) {
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
