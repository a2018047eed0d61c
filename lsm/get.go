package lsm

import (
	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/lsm/internal/sstable"
)

var (
	_ logkv.ValueAppender = (*DB)(nil)
	_ logkv.ValueAppender = (*snapshot)(nil)
)

// Get returns the value of key at the DB's latest state.
func (d *DB) Get(key []byte) ([]byte, error) {
	return owned(d.AppendGet(nil, key))
}

// AppendGet appends the value of key at the DB's latest state to dst and
// returns the extended slice (logkv.ValueAppender): Get without a new slice
// per read. If key is not present it returns dst and logkv.ErrNotFound; on
// any other error it returns dst.
func (d *DB) AppendGet(dst, key []byte) ([]byte, error) {
	if d.closed.Load() {
		return dst, errClosedDB
	}
	seq := d.visible.Load()
	rs := d.loadReadState()
	defer rs.unref()
	return d.get(rs, dst, key, seq)
}

// owned turns AppendGet(nil, ...)'s result into Get's: a present key with
// an empty value is an empty slice, not nil.
func owned(v []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// get appends the value of key as of seq to dst. It is the one lookup behind
// Get and AppendGet, of the DB and of snapshots.
func (d *DB) get(rs *readState, dst, key []byte, seq uint64) ([]byte, error) {
	d.m.gets.Add(1)
	if err := logkv.CheckKey(key); err != nil {
		return dst, err
	}
	if v, kind, ok := rs.mem.get(key, seq); ok {
		return found(dst, v, kind)
	}
	for i := len(rs.imm) - 1; i >= 0; i-- {
		if v, kind, ok := rs.imm[i].get(key, seq); ok {
			return found(dst, v, kind)
		}
	}
	h := sstable.HashKey(key) // the filters' hash of key, for every table probed
	l0 := rs.v.Levels[0]
	for i := len(l0) - 1; i >= 0; i-- {
		f := l0[i]
		if !inRange(f, key) {
			continue
		}
		v, kind, ok, err := d.getFromTable(f, dst, key, h, seq)
		if err != nil {
			return dst, err
		}
		if ok {
			return foundAppended(dst, v, kind)
		}
	}
	for lvl := 1; lvl < manifest.NumLevels; lvl++ {
		files := rs.v.Levels[lvl]
		i := manifest.SearchLevel(files, key)
		if i == len(files) || !inRange(files[i], key) {
			continue
		}
		v, kind, ok, err := d.getFromTable(files[i], dst, key, h, seq)
		if err != nil {
			return dst, err
		}
		if ok {
			return foundAppended(dst, v, kind)
		}
	}
	return dst, logkv.ErrNotFound
}

// found answers a Get from a memtable's entry: v aliases the memtable's
// arena, so it is copied onto dst.
func found(dst, v []byte, kind base.Kind) ([]byte, error) {
	if kind == base.KindDelete {
		return dst, logkv.ErrNotFound
	}
	return append(dst, v...), nil
}

// foundAppended answers a Get from a table's entry: sstable.Reader.AppendGet
// already appended the value to dst, giving v.
func foundAppended(dst, v []byte, kind base.Kind) ([]byte, error) {
	if kind == base.KindDelete {
		return dst, logkv.ErrNotFound
	}
	return v, nil
}

func inRange(f *manifest.FileMeta, ukey []byte) bool {
	return string(ukey) >= string(base.UserKey(f.Smallest)) && string(ukey) <= string(base.UserKey(f.Largest))
}

// getFromTable looks key (of filter hash h) up in table f, appending a
// value found to dst.
func (d *DB) getFromTable(f *manifest.FileMeta, dst, key []byte, h, seq uint64) ([]byte, base.Kind, bool, error) {
	e, err := d.tc.get(f)
	if err != nil {
		return dst, 0, false, err
	}
	defer d.tc.release(e)
	return e.r.AppendGet(dst, key, h, seq)
}
