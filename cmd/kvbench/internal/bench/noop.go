package bench

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/logkv/logkv"
)

// NoopEngine is the name of the Store that stores nothing, registered so that
// `kvbench -engine noop,...` measures kvbench's own cost per operation: key
// and value generation, verification, timing and recording. Its figures are
// an upper bound of the driver's overhead, since they include the little the
// noop Store does (parsing a key, slicing the value a Get returns).
const NoopEngine = "noop"

func init() {
	RegisterStore(NoopEngine, func(string) (Store, error) { return &noopStore{}, nil })
}

// noopStore pretends to hold every key number 0..max (the largest written)
// at the width of the last key written, each with the value kvbench writes
// for it. Writes only note the largest key number and the key width; deletes
// are ignored. It keeps no values: the driver hands it the run's values
// (useValues), and a Get of key number n returns the window vals.value(n),
// a slice of the shared pool, without allocating or copying.
//
// How its reads are verified: the driver compares every value read with the
// window its key number must have, byte for byte, exactly as for a real
// engine. The noop store computes that window from the key bytes it was
// given (parsed back into a number), not from anything the driver told it
// about the operation, so a driver that sends one key and checks another, or
// formats keys wrongly, fails verification with noop too; and the compare's
// cost is in noop's figures, as it is in every engine's.
type noopStore struct {
	limit    atomic.Int64 // 1 + the largest key number written; 0 before any
	keyWidth atomic.Int64
	vals     *valueSource // set by useValues before any operation
}

var _ Store = (*noopStore)(nil)

// valueUser is the capability of a Store that answers reads from the run's
// values rather than from what it stored: only the noop store. The session
// hands the values over right after opening the Store, before any operation.
type valueUser interface {
	useValues(*valueSource)
}

func (s *noopStore) useValues(v *valueSource) { s.vals = v }

// parseKey reads a zero-padded decimal key; ok is false for anything else.
// It takes eight digits at a time (SWAR: a check that all eight bytes are
// digits, then three multiplies that fold them into a number), since every
// noop read parses a key and the noop store's work is counted as the
// driver's.
func parseKey(k []byte) (n uint64, ok bool) {
	if len(k) == 0 || len(k) > 19 {
		return 0, false
	}
	i := 0
	for ; len(k)-i >= 8; i += 8 {
		x := binary.LittleEndian.Uint64(k[i:])
		// A byte is a digit when its high nibble is 3 and adding 6 does
		// not carry out of its low nibble (no byte carries into the next).
		if x&0xF0F0F0F0F0F0F0F0 != 0x3030303030303030 || (x+0x0606060606060606)&0xF0F0F0F0F0F0F0F0 != 0x3030303030303030 {
			return 0, false
		}
		x &= 0x0F0F0F0F0F0F0F0F
		x = x * (1 + 10<<8) >> 8                           // pairs of digits
		x = (x & 0x00FF00FF00FF00FF) * (1 + 100<<16) >> 16 // groups of four
		x = (x & 0x0000FFFF0000FFFF) * (1 + 10000<<32) >> 32
		n = n*100_000_000 + x
	}
	for ; i < len(k); i++ {
		c := k[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func (s *noopStore) noteWrite(key []byte) {
	n, ok := parseKey(key)
	if !ok {
		return
	}
	for {
		cur := s.limit.Load()
		if int64(n) < cur || s.limit.CompareAndSwap(cur, int64(n)+1) {
			break
		}
	}
	if int64(len(key)) != s.keyWidth.Load() {
		s.keyWidth.Store(int64(len(key)))
	}
}

func (s *noopStore) has(n uint64) bool {
	return int64(n) < s.limit.Load()
}

func (s *noopStore) Get(key []byte) ([]byte, error) {
	n, ok := parseKey(key)
	if !ok || !s.has(n) || s.vals == nil {
		return nil, logkv.ErrNotFound
	}
	return s.vals.value(n), nil
}

func (s *noopStore) Set(key, value []byte, _ *logkv.WriteOptions) error {
	s.noteWrite(key)
	return nil
}

func (s *noopStore) Delete([]byte, *logkv.WriteOptions) error { return nil }

func (s *noopStore) Apply(b *logkv.Batch, _ *logkv.WriteOptions) error {
	if err := b.Err(); err != nil {
		return err
	}
	r := b.Reader()
	for {
		kind, k, _, ok := r.Next()
		if !ok {
			return nil
		}
		if kind == logkv.KindSet {
			s.noteWrite(k)
		}
	}
}

func (s *noopStore) Close() error { return nil }

// noopIters keeps closed noop iterators for the next NewIter: YCSB E opens
// one per scan, and the noop store's allocation would otherwise be counted
// as the driver's cost (a real engine's iterator creation is the engine's).
var noopIters = sync.Pool{New: func() any { return new(noopIter) }}

// NewIter returns an iterator from noopIters, reset; Close gives it back, so
// an iterator must not be used after Close (logkv's contract already says
// so).
func (s *noopStore) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	it := noopIters.Get().(*noopIter)
	it.width, it.hi, it.pos, it.vals, it.closed = int(s.keyWidth.Load()), s.limit.Load()-1, -1, s.vals, false
	it.lower, it.upper = nil, nil
	if it.vals == nil {
		it.hi = -1 // no values to answer with: an empty store
	}
	if o != nil {
		if o.LowerBound != nil {
			it.lowerBuf = append(it.lowerBuf[:0], o.LowerBound...)
			it.lower = it.lowerBuf
		}
		if o.UpperBound != nil {
			it.upperBuf = append(it.upperBuf[:0], o.UpperBound...)
			it.upper = it.upperBuf
		}
	}
	return it, nil
}

// noopIter walks the key numbers 0..hi as keys of the store's width, within
// bounds. pos is the current number, -1 when unpositioned.
type noopIter struct {
	width        int
	hi           int64
	lower, upper []byte // nil: no bound; else lowerBuf, upperBuf
	pos          int64
	key, value   []byte
	vals         *valueSource
	closed       bool

	lowerBuf, upperBuf []byte // kept across reuse
}

// at positions the iterator at number n if it is a key within bounds.
func (it *noopIter) at(n int64) bool {
	if it.closed || n < 0 || n > it.hi {
		it.pos = -1
		return false
	}
	it.key = appendKey(it.key[:0], uint64(n), it.width)
	return it.inBounds(n)
}

// inBounds positions the iterator at n, whose key is it.key, if the key is
// within bounds.
func (it *noopIter) inBounds(n int64) bool {
	if (it.lower != nil && bytes.Compare(it.key, it.lower) < 0) || (it.upper != nil && bytes.Compare(it.key, it.upper) >= 0) {
		it.pos = -1
		return false
	}
	it.pos = n
	it.value = it.vals.value(uint64(n))
	return true
}

// bound returns the key number a bound names, or def when it is nil or not
// a key.
func bound(b []byte, def int64) int64 {
	if n, ok := parseKey(b); ok && b != nil {
		return int64(n)
	}
	return def
}

func (it *noopIter) First() bool { return it.at(bound(it.lower, 0)) }
func (it *noopIter) Last() bool  { return it.at(min(it.hi, bound(it.upper, it.hi+1)-1)) }
func (it *noopIter) SeekGE(k []byte) bool {
	n, ok := parseKey(k)
	if !ok {
		return it.First()
	}
	if len(k) == it.width && !it.closed && int64(n) <= it.hi {
		// A key of the store's width at or above the lower bound is the
		// key landed on: copied rather than formatted anew.
		if it.lower == nil || bytes.Compare(k, it.lower) >= 0 {
			it.key = append(it.key[:0], k...)
			return it.inBounds(int64(n))
		}
	}
	return it.at(max(int64(n), bound(it.lower, 0)))
}
func (it *noopIter) SeekLT(k []byte) bool {
	n, ok := parseKey(k)
	if !ok {
		return it.Last()
	}
	return it.at(min(int64(n)-1, bound(it.upper, it.hi+1)-1))
}

// Next increments the decimal key in place rather than formatting it anew:
// the noop store's own work is counted as the driver's, so it is kept to
// what a real engine's step costs at least.
func (it *noopIter) Next() bool {
	if it.pos < 0 {
		return false
	}
	n := it.pos + 1
	if n > it.hi || !stepKey(it.key, true) || (it.upper != nil && bytes.Compare(it.key, it.upper) >= 0) {
		return it.at(n) // past the end, or a carry out of the width: the slow path decides
	}
	it.pos = n
	it.value = it.vals.value(uint64(n))
	return true
}

// Prev decrements the key in place, as Next increments it.
func (it *noopIter) Prev() bool {
	if it.pos < 0 {
		return false
	}
	n := it.pos - 1
	if n < 0 || !stepKey(it.key, false) || (it.lower != nil && bytes.Compare(it.key, it.lower) < 0) {
		return it.at(n) // before the start, or a borrow out of the width: the slow path decides
	}
	it.pos = n
	it.value = it.vals.value(uint64(n))
	return true
}
func (it *noopIter) Valid() bool   { return it.pos >= 0 }
func (it *noopIter) Key() []byte   { return it.key }
func (it *noopIter) Value() []byte { return it.value }
func (it *noopIter) Error() error  { return nil }
func (it *noopIter) Close() error {
	if it.closed {
		return nil
	}
	it.closed, it.pos = true, -1
	it.vals, it.value = nil, nil
	noopIters.Put(it)
	return nil
}
