package lsm

import (
	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/lsm/internal/manifest"
)

// Get returns the value of key at the DB's latest state.
func (d *DB) Get(key []byte) ([]byte, error) {
	if d.closed.Load() {
		return nil, errClosedDB
	}
	seq := d.visible.Load()
	rs := d.loadReadState()
	defer rs.unref()
	return d.get(rs, key, seq)
}

func (d *DB) get(rs *readState, key []byte, seq uint64) ([]byte, error) {
	d.m.gets.Add(1)
	if err := logkv.CheckKey(key); err != nil {
		return nil, err
	}
	if v, kind, ok := rs.mem.get(key, seq); ok {
		return found(v, kind)
	}
	for i := len(rs.imm) - 1; i >= 0; i-- {
		if v, kind, ok := rs.imm[i].get(key, seq); ok {
			return found(v, kind)
		}
	}
	l0 := rs.v.Levels[0]
	for i := len(l0) - 1; i >= 0; i-- {
		f := l0[i]
		if !inRange(f, key) {
			continue
		}
		v, kind, ok, err := d.getFromTable(f, key, seq)
		if err != nil {
			return nil, err
		}
		if ok {
			return foundOwned(v, kind)
		}
	}
	for lvl := 1; lvl < manifest.NumLevels; lvl++ {
		files := rs.v.Levels[lvl]
		i := manifest.SearchLevel(files, key)
		if i == len(files) || !inRange(files[i], key) {
			continue
		}
		v, kind, ok, err := d.getFromTable(files[i], key, seq)
		if err != nil {
			return nil, err
		}
		if ok {
			return foundOwned(v, kind)
		}
	}
	return nil, logkv.ErrNotFound
}

// found answers a Get from a memtable's entry: v aliases the memtable's
// arena, so the caller gets a copy.
func found(v []byte, kind base.Kind) ([]byte, error) {
	if kind == base.KindDelete {
		return nil, logkv.ErrNotFound
	}
	return append(make([]byte, 0, len(v)), v...), nil
}

// foundOwned answers a Get from a table's entry: sstable.Reader.Get already
// returned a copy the caller owns, so it is handed over as it is (copying it
// again cost an allocation and a copy per Get).
func foundOwned(v []byte, kind base.Kind) ([]byte, error) {
	if kind == base.KindDelete {
		return nil, logkv.ErrNotFound
	}
	if v == nil {
		v = []byte{} // present with an empty value: not nil
	}
	return v, nil
}

func inRange(f *manifest.FileMeta, ukey []byte) bool {
	return string(ukey) >= string(base.UserKey(f.Smallest)) && string(ukey) <= string(base.UserKey(f.Largest))
}

func (d *DB) getFromTable(f *manifest.FileMeta, key []byte, seq uint64) ([]byte, base.Kind, bool, error) {
	e, err := d.tc.get(f)
	if err != nil {
		return nil, 0, false, err
	}
	defer d.tc.release(e)
	return e.r.Get(key, seq)
}
