package lsm

import (
	"bytes"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
)

// NewIter returns an iterator over the DB's state as of now: it pins the
// memtables and the table version of this moment, and reads at the newest
// visible seq.
func (d *DB) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	if d.closed.Load() {
		return nil, errClosedDB
	}
	seq := d.visible.Load()
	rs := d.loadReadState()
	return d.newIter(rs, seq, o)
}

// newIter builds an iterator over rs at seq; it takes over rs's reference.
func (d *DB) newIter(rs *readState, seq uint64, o *logkv.IterOptions) (*dbIter, error) {
	it := &dbIter{d: d, rs: rs, seq: seq}
	if o != nil {
		if o.LowerBound != nil {
			it.lower = append([]byte{}, o.LowerBound...)
		}
		if o.UpperBound != nil {
			it.upper = append([]byte{}, o.UpperBound...)
		}
	}
	var iters []internalIter
	iters = append(iters, rs.mem.newIter())
	for i := len(rs.imm) - 1; i >= 0; i-- {
		iters = append(iters, rs.imm[i].newIter())
	}
	l0 := rs.v.Levels[0]
	for i := len(l0) - 1; i >= 0; i-- {
		f := l0[i]
		if it.upper != nil && string(base.UserKey(f.Smallest)) >= string(it.upper) {
			continue
		}
		if it.lower != nil && string(base.UserKey(f.Largest)) < string(it.lower) {
			continue
		}
		ti, err := d.newTableIter(f, it.lower, it.upper)
		if err != nil {
			closeIters(iters)
			rs.unref()
			return nil, err
		}
		iters = append(iters, ti)
	}
	for lvl := 1; lvl < len(rs.v.Levels); lvl++ {
		if len(rs.v.Levels[lvl]) == 0 {
			continue
		}
		iters = append(iters, &levelIter{d: d, files: rs.v.Levels[lvl], lower: it.lower, upper: it.upper, idx: -1})
	}
	it.m = newMergingIter(iters)
	return it, nil
}

// dbIter turns the merged stream of internal keys into user keys: it skips
// versions newer than its seq, shows only the newest remaining version of
// each key, and hides keys whose newest version is a tombstone.
//
// Going forward, the merging iterator sits on the entry shown. Going
// backward, it sits before every entry of the key shown (on the previous
// key's oldest entry), and the key and value shown are copies; this is
// LevelDB's DBIter scheme, which makes direction changes a re-walk of one
// key's versions.
type dbIter struct {
	d       *DB
	rs      *readState
	seq     uint64
	m       *mergingIter
	lower   []byte
	upper   []byte
	forward bool
	valid   bool
	key     []byte // backward: the key shown; forward: scratch
	value   []byte // backward: the value shown
	err     error
	closed  bool
}

func (it *dbIter) check() bool {
	if it.closed {
		it.valid = false
		if it.err == nil {
			it.err = errClosedDB
		}
		return false
	}
	if it.d.closed.Load() {
		it.valid = false
		if it.err == nil {
			it.err = errClosedDB
		}
		return false
	}
	return it.err == nil
}

func (it *dbIter) done() bool {
	if err := it.m.Error(); err != nil && it.err == nil {
		it.err = err
	}
	if it.err != nil {
		it.valid = false
	}
	return it.valid
}

// findNext moves forward to the newest visible version of the next key
// shown, skipping keys <= skip (when skipping) whose versions are hidden.
func (it *dbIter) findNext(skipping bool) {
	for it.m.Valid() {
		ik := it.m.Key()
		if base.Seq(ik) <= it.seq {
			uk := base.UserKey(ik)
			if skipping && bytes.Compare(uk, it.key) <= 0 {
				// An older version of a key already shown or deleted.
			} else {
				if it.upper != nil && bytes.Compare(uk, it.upper) >= 0 {
					break
				}
				if base.KindOf(ik) == base.KindDelete {
					it.key = append(it.key[:0], uk...)
					skipping = true
				} else {
					it.valid = true
					return
				}
			}
		}
		it.m.Next()
	}
	it.valid = false
}

// findPrev moves backward to the key before the merging iterator's position
// whose newest visible version is a set.
func (it *dbIter) findPrev() {
	found := false // it.key/it.value hold a set for the key being walked
	for it.m.Valid() {
		ik := it.m.Key()
		if base.Seq(ik) <= it.seq {
			uk := base.UserKey(ik)
			if found && bytes.Compare(uk, it.key) < 0 {
				break // past the versions of the key found
			}
			if it.lower != nil && bytes.Compare(uk, it.lower) < 0 {
				break
			}
			if base.KindOf(ik) == base.KindDelete {
				found = false
			} else {
				it.key = append(it.key[:0], uk...)
				it.value = append(it.value[:0], it.m.Value()...)
				found = true
			}
		}
		it.m.Prev()
	}
	it.valid = found
}

func (it *dbIter) First() bool {
	if !it.check() {
		return false
	}
	if it.lower != nil {
		return it.seekGE(it.lower)
	}
	it.forward = true
	it.m.First()
	it.findNext(false)
	return it.done()
}

func (it *dbIter) Last() bool {
	if !it.check() {
		return false
	}
	if it.upper != nil {
		return it.seekLT(it.upper)
	}
	it.forward = false
	it.m.Last()
	it.findPrev()
	return it.done()
}

func (it *dbIter) SeekGE(key []byte) bool {
	if !it.check() {
		return false
	}
	if it.lower != nil && bytes.Compare(key, it.lower) < 0 {
		key = it.lower
	}
	return it.seekGE(key)
}

func (it *dbIter) seekGE(key []byte) bool {
	it.forward = true
	it.m.SeekGE(base.MakeSearchKey(key, it.seq))
	it.findNext(false)
	return it.done()
}

func (it *dbIter) SeekLT(key []byte) bool {
	if !it.check() {
		return false
	}
	if it.upper != nil && bytes.Compare(key, it.upper) > 0 {
		key = it.upper
	}
	return it.seekLT(key)
}

func (it *dbIter) seekLT(key []byte) bool {
	it.forward = false
	it.m.SeekLT(base.MakeSearchKey(key, base.MaxSeq))
	it.findPrev()
	return it.done()
}

func (it *dbIter) Next() bool {
	if !it.check() || !it.valid {
		return false
	}
	if !it.forward {
		// The merging iterator is before the current key's versions: step
		// onto them, then past them.
		it.forward = true
		if !it.m.Valid() {
			it.m.First()
		} else {
			it.m.Next()
		}
	} else {
		it.key = append(it.key[:0], base.UserKey(it.m.Key())...)
		it.m.Next()
	}
	it.findNext(true)
	return it.done()
}

func (it *dbIter) Prev() bool {
	if !it.check() || !it.valid {
		return false
	}
	if it.forward {
		// Move before every version of the current key.
		it.key = append(it.key[:0], base.UserKey(it.m.Key())...)
		for {
			if !it.m.Prev() {
				break
			}
			if bytes.Compare(base.UserKey(it.m.Key()), it.key) < 0 {
				break
			}
		}
		it.forward = false
		if it.m.Error() != nil {
			return it.done()
		}
	}
	it.findPrev()
	return it.done()
}

func (it *dbIter) Valid() bool { return it.valid && it.err == nil && !it.closed }

func (it *dbIter) Key() []byte {
	if it.forward {
		return base.UserKey(it.m.Key())
	}
	return it.key
}

func (it *dbIter) Value() []byte {
	if it.forward {
		return it.m.Value()
	}
	return it.value
}

func (it *dbIter) Error() error { return it.err }

func (it *dbIter) Close() error {
	if it.closed {
		return nil
	}
	it.closed = true
	it.valid = false
	if err := it.m.Close(); err != nil && it.err == nil {
		it.err = err
	}
	it.rs.unref()
	if it.err == errClosedDB {
		return nil
	}
	return it.err
}
