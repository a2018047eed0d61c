package lsm

import (
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/lsm/internal/sstable"
)

// internalIter walks internal keys in base.Compare order. Positioning
// methods return whether it is at an entry.
type internalIter interface {
	First() bool
	Last() bool
	SeekGE(ikey []byte) bool
	SeekLT(ikey []byte) bool
	Next() bool
	Prev() bool
	Valid() bool
	Key() []byte
	Value() []byte
	Error() error
	Close() error
}

func closeIters(iters []internalIter) {
	for _, it := range iters {
		it.Close()
	}
}

// mergingIter merges child iterators with a heap: a min-heap of keys going
// forward, a max-heap going backward. Internal keys are unique across the
// children of one read state (every version has its own seq, and a table and
// the memtable it was flushed from are never in the same read state).
type mergingIter struct {
	iters   []internalIter
	heap    []int // indexes of valid children
	forward bool
	err     error
	scratch []byte
}

func newMergingIter(iters []internalIter) *mergingIter {
	return &mergingIter{iters: iters, heap: make([]int, 0, len(iters)), forward: true}
}

func (m *mergingIter) less(i, j int) bool {
	c := base.Compare(m.iters[m.heap[i]].Key(), m.iters[m.heap[j]].Key())
	if m.forward {
		return c < 0
	}
	return c > 0
}

func (m *mergingIter) down(i int) {
	n := len(m.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && m.less(r, l) {
			j = r
		}
		if !m.less(j, i) {
			return
		}
		m.heap[i], m.heap[j] = m.heap[j], m.heap[i]
		i = j
	}
}

// rebuild collects the valid children into the heap and checks errors.
func (m *mergingIter) rebuild() bool {
	m.heap = m.heap[:0]
	for i, it := range m.iters {
		if it.Valid() {
			m.heap = append(m.heap, i)
		} else if err := it.Error(); err != nil && m.err == nil {
			m.err = err
		}
	}
	if m.err != nil {
		m.heap = m.heap[:0]
		return false
	}
	for i := len(m.heap)/2 - 1; i >= 0; i-- {
		m.down(i)
	}
	return len(m.heap) > 0
}

func (m *mergingIter) First() bool {
	m.forward = true
	for _, it := range m.iters {
		it.First()
	}
	return m.rebuild()
}

func (m *mergingIter) Last() bool {
	m.forward = false
	for _, it := range m.iters {
		it.Last()
	}
	return m.rebuild()
}

func (m *mergingIter) SeekGE(ikey []byte) bool {
	m.forward = true
	for _, it := range m.iters {
		it.SeekGE(ikey)
	}
	return m.rebuild()
}

func (m *mergingIter) SeekLT(ikey []byte) bool {
	m.forward = false
	for _, it := range m.iters {
		it.SeekLT(ikey)
	}
	return m.rebuild()
}

func (m *mergingIter) Next() bool {
	if !m.Valid() {
		return false
	}
	if !m.forward {
		// Every child but the current one is before the current key: move
		// each to the first entry after it.
		cur := m.heap[0]
		m.scratch = append(m.scratch[:0], m.iters[cur].Key()...)
		for i, it := range m.iters {
			if i == cur {
				continue
			}
			if it.SeekGE(m.scratch) && base.Compare(it.Key(), m.scratch) == 0 {
				it.Next()
			}
		}
		m.iters[cur].Next()
		m.forward = true
		return m.rebuild()
	}
	return m.settle(m.iters[m.heap[0]].Next())
}

func (m *mergingIter) Prev() bool {
	if !m.Valid() {
		return false
	}
	if m.forward {
		cur := m.heap[0]
		m.scratch = append(m.scratch[:0], m.iters[cur].Key()...)
		for i, it := range m.iters {
			if i == cur {
				continue
			}
			it.SeekLT(m.scratch)
		}
		m.iters[cur].Prev()
		m.forward = false
		return m.rebuild()
	}
	return m.settle(m.iters[m.heap[0]].Prev())
}

// settle restores the heap after its top iterator moved in the current
// direction: moved says whether it is still positioned; if not it leaves the
// heap (or, on an error, ends the merge).
func (m *mergingIter) settle(moved bool) bool {
	if !moved {
		if err := m.iters[m.heap[0]].Error(); err != nil {
			m.err = err
			m.heap = m.heap[:0]
			return false
		}
		last := len(m.heap) - 1
		m.heap[0] = m.heap[last]
		m.heap = m.heap[:last]
	}
	if len(m.heap) > 0 {
		m.down(0)
	}
	return len(m.heap) > 0
}

func (m *mergingIter) Valid() bool   { return m.err == nil && len(m.heap) > 0 }
func (m *mergingIter) Key() []byte   { return m.iters[m.heap[0]].Key() }
func (m *mergingIter) Value() []byte { return m.iters[m.heap[0]].Value() }
func (m *mergingIter) Error() error  { return m.err }

func (m *mergingIter) Close() error {
	for _, it := range m.iters {
		if err := it.Close(); err != nil && m.err == nil {
			m.err = err
		}
	}
	m.iters = nil
	m.heap = m.heap[:0]
	return m.err
}

// tableIter is a table's iterator holding its table cache reference.
type tableIter struct {
	*sstable.Iter
	d *DB
	e *tableEntry
}

func (d *DB) newTableIter(f *manifest.FileMeta, lower, upper []byte) (*tableIter, error) {
	e, err := d.tc.get(f)
	if err != nil {
		return nil, err
	}
	return &tableIter{Iter: e.r.NewIter(lower, upper), d: d, e: e}, nil
}

func (t *tableIter) Close() error {
	if t.e == nil {
		return nil
	}
	err := t.Iter.Close()
	t.d.tc.release(t.e)
	t.e = nil
	return err
}

// levelIter concatenates the disjoint, sorted tables of one level below L0,
// opening each only when the walk reaches it and skipping tables wholly
// outside the user-key bounds [lower, upper).
type levelIter struct {
	d            *DB
	files        []*manifest.FileMeta
	lower, upper []byte
	idx          int
	cur          *tableIter
	err          error
}

func (l *levelIter) load(i int) bool {
	if l.cur != nil && l.idx == i {
		return true
	}
	if l.cur != nil {
		if err := l.cur.Close(); err != nil && l.err == nil {
			l.err = err
		}
		l.cur = nil
	}
	l.idx = i
	if i < 0 || i >= len(l.files) || l.err != nil {
		return false
	}
	t, err := l.d.newTableIter(l.files[i], l.lower, l.upper)
	if err != nil {
		l.err = err
		return false
	}
	l.cur = t
	return true
}

func (l *levelIter) beyondUpper(i int) bool {
	return l.upper != nil && string(base.UserKey(l.files[i].Smallest)) >= string(l.upper)
}

func (l *levelIter) belowLower(i int) bool {
	return l.lower != nil && string(base.UserKey(l.files[i].Largest)) < string(l.lower)
}

func (l *levelIter) curErr() bool {
	if l.cur != nil {
		if err := l.cur.Error(); err != nil {
			if l.err == nil {
				l.err = err
			}
			return true
		}
	}
	return l.err != nil
}

// skipForward moves to the first entry of the following tables while the
// current one is exhausted.
func (l *levelIter) skipForward(ok bool) bool {
	for !ok {
		if l.curErr() {
			return false
		}
		i := l.idx + 1
		if i >= len(l.files) || l.beyondUpper(i) {
			l.load(-1)
			return false
		}
		if !l.load(i) {
			return false
		}
		ok = l.cur.First()
	}
	return true
}

func (l *levelIter) skipBackward(ok bool) bool {
	for !ok {
		if l.curErr() {
			return false
		}
		i := l.idx - 1
		if i < 0 || l.belowLower(i) {
			l.load(-1)
			return false
		}
		if !l.load(i) {
			return false
		}
		ok = l.cur.Last()
	}
	return true
}

func (l *levelIter) SeekGE(ikey []byte) bool {
	i := manifest.SearchLevel(l.files, base.UserKey(ikey))
	if i >= len(l.files) || l.beyondUpper(i) {
		l.load(-1)
		return false
	}
	if !l.load(i) {
		return false
	}
	return l.skipForward(l.cur.SeekGE(ikey))
}

func (l *levelIter) SeekLT(ikey []byte) bool {
	i := manifest.SearchLevel(l.files, base.UserKey(ikey))
	if i >= len(l.files) {
		i = len(l.files) - 1
	}
	if i < 0 || l.belowLower(i) {
		l.load(-1)
		return false
	}
	if !l.load(i) {
		return false
	}
	return l.skipBackward(l.cur.SeekLT(ikey))
}

func (l *levelIter) First() bool {
	if l.lower != nil {
		return l.SeekGE(base.MakeSearchKey(l.lower, base.MaxSeq))
	}
	if len(l.files) == 0 || l.beyondUpper(0) || !l.load(0) {
		l.load(-1)
		return false
	}
	return l.skipForward(l.cur.First())
}

func (l *levelIter) Last() bool {
	if l.upper != nil {
		return l.SeekLT(base.MakeSearchKey(l.upper, base.MaxSeq))
	}
	n := len(l.files) - 1
	if n < 0 || l.belowLower(n) || !l.load(n) {
		l.load(-1)
		return false
	}
	return l.skipBackward(l.cur.Last())
}

func (l *levelIter) Next() bool {
	if l.cur == nil {
		return false
	}
	return l.skipForward(l.cur.Next())
}

func (l *levelIter) Prev() bool {
	if l.cur == nil {
		return false
	}
	return l.skipBackward(l.cur.Prev())
}

func (l *levelIter) Valid() bool   { return l.cur != nil && l.err == nil && l.cur.Valid() }
func (l *levelIter) Key() []byte   { return l.cur.Key() }
func (l *levelIter) Value() []byte { return l.cur.Value() }
func (l *levelIter) Error() error {
	if l.err != nil {
		return l.err
	}
	if l.cur != nil {
		return l.cur.Error()
	}
	return nil
}

func (l *levelIter) Close() error {
	l.load(-1)
	return l.err
}
