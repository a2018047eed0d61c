package main

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/logkv/logkv"
	"github.com/logkv/logkv/cmd/kvbench/internal/bench"
)

// Pebble as a careful user opens it, with lsm's budget: 10-bit bloom filters
// on every level (Pebble's default has none), the block cache lsm has
// (lsm.Options.CacheSize, 64 MiB) and lsm's memtable arrangement (8 MiB, up
// to 4 before writes stall); the newest on-disk format; everything else
// Pebble's defaults (Snappy blocks, 4 KiB).
func init() {
	bench.RegisterStore("pebble", func(dir string) (bench.Store, error) {
		o := &pebble.Options{
			CacheSize:                   lsmCacheSize,
			MemTableSize:                8 << 20,
			MemTableStopWritesThreshold: 4,
			FormatMajorVersion:          pebble.FormatNewest,
			Logger:                      quietLogger{},
		}
		for i := range o.Levels {
			o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		}
		db, err := pebble.Open(dir, o)
		if err != nil {
			return nil, err
		}
		return &pebbleStore{db: db}, nil
	})
}

// lsmCacheSize is lsm's default block cache (lsm.Options.CacheSize), the
// budget Pebble, goleveldb and Badger get.
const lsmCacheSize = 64 << 20

type pebbleStore struct{ db *pebble.DB }

func pebbleSync(o *logkv.WriteOptions) *pebble.WriteOptions {
	if o != nil && o.Sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

func (s *pebbleStore) Get(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, logkv.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...) // v lives until closer.Close
	return out, closer.Close()
}

func (s *pebbleStore) Set(k, v []byte, o *logkv.WriteOptions) error {
	return s.db.Set(k, v, pebbleSync(o))
}

func (s *pebbleStore) Delete(k []byte, o *logkv.WriteOptions) error {
	return s.db.Delete(k, pebbleSync(o))
}

func (s *pebbleStore) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	pb := s.db.NewBatch()
	defer pb.Close()
	err := forEach(b, func(kind logkv.Kind, k, v []byte) error {
		if kind == logkv.KindSet {
			return pb.Set(k, v, nil)
		}
		return pb.Delete(k, nil)
	})
	if err != nil {
		return err
	}
	return s.db.Apply(pb, pebbleSync(o))
}

// NewIter uses Pebble's iterator as it is: it has logkv's bounds, directions
// and implicit snapshot already.
func (s *pebbleStore) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	po := &pebble.IterOptions{}
	if o != nil {
		po.LowerBound, po.UpperBound = o.LowerBound, o.UpperBound
	}
	it, err := s.db.NewIter(po)
	if err != nil {
		return nil, err
	}
	return &pebbleIter{Iterator: it}, nil
}

// pebbleIter adds two of logkv.Iterator's rules to Pebble's iterator: Next
// and Prev on an unpositioned iterator return false (Pebble's Prev after
// running off the end moves to the last key), and Close is safe twice.
type pebbleIter struct {
	*pebble.Iterator
	closed bool
	err    error
}

var _ bench.ScanRunner = (*pebbleIter)(nil)

// ScanRun is bench.ScanRunner's loop over Pebble's own iterator, which
// keeps the bounds itself (the cursors' run, on *pebble.Iterator).
func (it *pebbleIter) ScanRun(n int, reverse bool) (done int, bytes int64, ok bool) {
	p := it.Iterator
	ok = it.Valid()
	for ; done < n && ok; done++ {
		bytes += int64(len(p.Key()) + len(p.Value()))
		if reverse {
			ok = p.Prev()
		} else {
			ok = p.Next()
		}
	}
	return done, bytes, ok
}

func (it *pebbleIter) Next() bool { return it.Valid() && it.Iterator.Next() }
func (it *pebbleIter) Prev() bool { return it.Valid() && it.Iterator.Prev() }

// After Close, Pebble's iterator must not be touched; logkv's returns false.
func (it *pebbleIter) First() bool          { return !it.closed && it.Iterator.First() }
func (it *pebbleIter) Last() bool           { return !it.closed && it.Iterator.Last() }
func (it *pebbleIter) SeekGE(k []byte) bool { return !it.closed && it.Iterator.SeekGE(k) }
func (it *pebbleIter) SeekLT(k []byte) bool { return !it.closed && it.Iterator.SeekLT(k) }
func (it *pebbleIter) Valid() bool          { return !it.closed && it.Iterator.Valid() }
func (it *pebbleIter) Error() error {
	if it.closed {
		return it.err
	}
	return it.Iterator.Error()
}

func (it *pebbleIter) Close() error {
	if !it.closed {
		it.closed, it.err = true, it.Iterator.Close()
	}
	return it.err
}

// Metrics reports what Pebble knows of its space: disk usage and the block
// cache and memtables in memory; it does not count keys.
func (s *pebbleStore) Metrics() logkv.Metrics {
	m := s.db.Metrics()
	return logkv.Metrics{
		Keys:      -1,
		DiskBytes: int64(m.DiskSpaceUsage()),
		MemBytes:  m.BlockCache.Size + int64(m.MemTable.Size),
	}
}

func (s *pebbleStore) Close() error { return s.db.Close() }

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(f string, a ...any) {
	panic("pebble: fatal: " + f) // Pebble's own contract: Fatalf does not return
}
