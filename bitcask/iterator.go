package bitcask

import (
	"github.com/logkv/logkv"
)

// view is a frozen keydir (a clone nobody writes) with a reference on every
// file it may read, so that merges delete none of them while it is open.
type view struct {
	db    *DB
	tree  *tree
	files map[uint32]*dataFile
	seq   uint64
}

func (db *DB) newView() (*view, error) {
	if db.closed.Load() {
		return nil, logkv.ErrClosed
	}
	db.kmu.Lock()
	v := &view{db: db, tree: db.tree.clone(), files: make(map[uint32]*dataFile, len(db.files)), seq: db.lastSeq.Load()}
	for id, df := range db.files {
		df.refs.Add(1)
		v.files[id] = df
	}
	db.kmu.Unlock()
	return v, nil
}

// share returns another view of the same frozen state, with its own
// references.
func (v *view) share() *view {
	w := &view{db: v.db, tree: v.tree, files: v.files, seq: v.seq}
	for _, df := range v.files {
		df.refs.Add(1)
	}
	return w
}

func (v *view) release() {
	for _, df := range v.files {
		v.db.unref(df)
	}
	v.files = nil
}

// appendGet appends key's value in the view to dst, as DB.AppendGet.
func (v *view) appendGet(dst, key []byte) ([]byte, error) {
	e, ok := v.tree.get(unsafeString(key))
	if !ok {
		return dst, logkv.ErrNotFound
	}
	return v.db.readValue(v.files[e.fid], e.off, key, e.vlen, dst)
}

// NewSnapshot returns a frozen view of the DB as of now. It costs O(1) in the
// number of keys (the keydir is copied lazily, by the writers that follow)
// and holds every current data file open until it is closed.
func (db *DB) NewSnapshot() (logkv.Snapshot, error) {
	v, err := db.newView()
	if err != nil {
		return nil, err
	}
	return &snapshot{v: v}, nil
}

type snapshot struct {
	v      *view
	closed bool
}

func (s *snapshot) Get(key []byte) ([]byte, error) { return s.AppendGet(nil, key) }

// AppendGet appends key's value as of the snapshot to dst, as
// DB.AppendGet does (logkv.ValueAppender).
func (s *snapshot) AppendGet(dst, key []byte) ([]byte, error) {
	if s.closed || s.v.db.closed.Load() {
		return dst, logkv.ErrClosed
	}
	s.v.db.stats.gets.Add(1)
	return s.v.appendGet(dst, key)
}

func (s *snapshot) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	if s.closed || s.v.db.closed.Load() {
		return nil, logkv.ErrClosed
	}
	return newIter(s.v.share(), o), nil
}

func (s *snapshot) Seq() uint64 { return s.v.seq }

func (s *snapshot) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.v.release()
	return nil
}

// NewIter returns an iterator over the DB as of now (see NewSnapshot).
func (db *DB) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	v, err := db.newView()
	if err != nil {
		return nil, err
	}
	return newIter(v, o), nil
}

// iterator walks a view's keydir within bounds, reading each value when
// Value is first called at a position.
type iterator struct {
	v            *view
	ti           treeIter
	lower, upper []byte
	valid        bool
	key, val     []byte
	valRead      bool
	err          error
	closed       bool
}

func newIter(v *view, o *logkv.IterOptions) *iterator {
	it := &iterator{v: v, ti: treeIter{t: v.tree}}
	if o != nil {
		if o.LowerBound != nil {
			it.lower = append([]byte{}, o.LowerBound...)
		}
		if o.UpperBound != nil {
			it.upper = append([]byte{}, o.UpperBound...)
		}
	}
	return it
}

// settle sets the iterator's position from the tree iterator's, checking
// the bounds.
func (it *iterator) settle(ok bool) bool {
	it.valRead = false
	it.valid = false
	if it.closed || it.err != nil {
		return false
	}
	if it.v.db.closed.Load() {
		it.err = logkv.ErrClosed
		return false
	}
	if !ok {
		return false
	}
	it.key = it.ti.appendKey(it.key[:0])
	if (it.lower != nil && string(it.key) < string(it.lower)) || (it.upper != nil && string(it.key) >= string(it.upper)) {
		return false
	}
	it.valid = true
	return true
}

func (it *iterator) First() bool {
	if it.lower != nil {
		return it.settle(it.ti.seekGE(string(it.lower)))
	}
	return it.settle(it.ti.first())
}

func (it *iterator) Last() bool {
	if it.upper != nil {
		return it.settle(it.ti.seekLT(string(it.upper)))
	}
	return it.settle(it.ti.last())
}

func (it *iterator) SeekGE(key []byte) bool {
	if it.lower != nil && string(key) < string(it.lower) {
		key = it.lower
	}
	return it.settle(it.ti.seekGE(string(key)))
}

func (it *iterator) SeekLT(key []byte) bool {
	if it.upper != nil && string(key) > string(it.upper) {
		key = it.upper
	}
	return it.settle(it.ti.seekLT(string(key)))
}

func (it *iterator) Next() bool {
	if !it.valid {
		return it.settle(false)
	}
	return it.settle(it.ti.next())
}

func (it *iterator) Prev() bool {
	if !it.valid {
		return it.settle(false)
	}
	return it.settle(it.ti.prev())
}

func (it *iterator) Valid() bool { return it.valid }

func (it *iterator) Key() []byte {
	if !it.valid {
		return nil
	}
	return it.key
}

func (it *iterator) Value() []byte {
	if !it.valid {
		return nil
	}
	if !it.valRead {
		e := it.ti.loc()
		v, err := it.v.db.readValue(it.v.files[e.fid], e.off, it.key, e.vlen, it.val[:0])
		if err != nil {
			it.err, it.valid = err, false
			return nil
		}
		it.val, it.valRead = v, true
	}
	return it.val
}

func (it *iterator) Error() error { return it.err }

func (it *iterator) Close() error {
	if !it.closed {
		it.closed, it.valid = true, false
		it.v.release()
	}
	return it.err
}
