package bench

import (
	"bytes"
	"encoding/binary"
	"math"
	"sync"

	"github.com/logkv/logkv"
)

// NoopEngine is the name of the Store that stores nothing, registered so that
// `kvbench -engine noop,...` measures kvbench's own cost per operation: key
// and value generation, verification, timing and recording. Its figures are
// an upper bound of the driver's overhead, since they include the little the
// noop Store does (parsing a key a Get names, slicing a value, stepping an
// iterator).
const NoopEngine = "noop"

func init() {
	RegisterStore(NoopEngine, func(string) (Store, error) { return &noopStore{}, nil })
}

// noopStore pretends to hold the keys the driver says the database holds
// (see driven): key numbers 0..limit-1, of the run's key width, each with
// the value kvbench writes for it. Its writes do nothing at all, not even
// look at the key: tracking the largest key written took an atomic
// compare-and-swap on every fillseq write (11 ns on the development
// machine, where any locked instruction costs that), which made noop's
// fillseq measure the noop store rather than the driver. It keeps no
// values: the driver hands it the run's values, and a Get of key number n
// returns the window vals.value(n), a slice of the shared pool, without
// allocating or copying.
//
// How its reads are verified: the driver compares every value read with the
// window its key number must have, byte for byte, exactly as for a real
// engine. The noop store computes that window from the key bytes it was
// given (parsed back into a number), not from anything the driver told it
// about the operation, so a driver that sends one key and checks another, or
// formats keys wrongly, fails verification with noop too; and the compare's
// cost is in noop's figures, as it is in every engine's.
//
// Its iterators return keys from a table formatted when the driver names
// the key set (hold), so that a step costs what the calls cost and little
// more (an engine's step cannot cost less than an interface call and two
// stores): the noop figure of readseq is then the driver's.
type noopStore struct {
	limit int64 // keys 0..limit-1 are held
	width int   // their width
	vals  *valueSource
	// table holds the keys 0..len(table)/width-1 formatted, one after
	// another; nil when limit*width is over noopTableMax (YCSB's key space).
	table []byte
	// get16 is width == 16 && vals != nil: Get's fast path, tested once.
	get16 bool
}

var _ Store = (*noopStore)(nil)

// noopTableMax bounds the noop store's key table: 64 MiB, four million
// 16-byte keys. A key set larger than that (YCSB's, the whole key space)
// is walked by formatting keys instead.
var noopTableMax uint64 = 64 << 20 // a variable so that tests run the path without a table

// driven is the capability of a Store that answers reads from what the
// driver says rather than from what it stored: only the noop store. The
// session hands it the run's values right after opening it, and the key
// set whenever a benchmark changed it (before the next one starts; never
// while an operation is in flight).
type driven interface {
	useValues(*valueSource)
	// hold makes the store answer as if it held key numbers 0..limit-1 of
	// that width.
	hold(limit uint64, width int)
}

func (s *noopStore) useValues(v *valueSource) {
	s.vals = v
	s.get16 = s.width == 16 && s.vals != nil
}

func (s *noopStore) hold(limit uint64, width int) {
	limit = min(limit, math.MaxInt64)
	if int64(limit) == s.limit && width == s.width {
		return
	}
	s.limit, s.width, s.table = int64(limit), width, nil
	s.get16 = s.width == 16 && s.vals != nil
	if width > 0 && limit <= noopTableMax/uint64(width) {
		s.table = make([]byte, 0, limit*uint64(width))
		for n := range limit {
			s.table = appendKey(s.table, n, width)
		}
	}
}

// parseKey reads a zero-padded decimal key; ok is false for anything else.
// It takes eight digits at a time (SWAR: a check that all eight bytes are
// digits, then three multiplies that fold them into a number), since every
// noop read parses a key and the noop store's work is counted as the
// driver's.
func parseKey(k []byte) (n uint64, ok bool) {
	if len(k) == 16 {
		// kvbench's default width, and so every noop read's key: two
		// blocks and no tail, without the loops (a third of the parse,
		// and the noop store's Get is most of noop's YCSB C figure).
		n, bad := parse16(binary.LittleEndian.Uint64(k), binary.LittleEndian.Uint64(k[8:]))
		return n, bad == 0
	}
	if len(k) == 0 || len(k) > 19 {
		return 0, false
	}
	i := 0
	for ; len(k)-i >= 8; i += 8 {
		x, bad := fold8(binary.LittleEndian.Uint64(k[i:]))
		if bad != 0 {
			return 0, false
		}
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

// parse16 returns the number sixteen ASCII digits spell, the first eight
// in w1 and the rest in w2, each read little-endian; bad is not 0 when they
// hold anything but digits (n is then meaningless). It subtracts '0' from every byte first, so
// that one test covers both words: a digit leaves 0..9 and adding 6 to
// that does not reach the high nibble, while a byte below '0' wraps to
// 0xC0 or more (borrowing from the next byte, which cannot hide it) and one
// above '9' leaves 10 or more; the digits are then folded with no mask
// (fold8's first step). Two fold8 calls cost 8 instructions more a key
// (callgrind), on every noop Get and seek.
//
// It returns bad rather than ok, tests nothing itself and reuses its
// parameters, so that the compiler inlines it: cost 80 of the compiler's
// 80 (check with go build -gcflags=-m=2 after changing it); with the test
// it cost 91, and the call was 38 of the noop seek's 267 instructions.
func parse16(w1, w2 uint64) (n, bad uint64) {
	const zeros, sixes, high = 0x3030303030303030, 0x0606060606060606, 0xF0F0F0F0F0F0F0F0
	w1, w2 = w1-zeros, w2-zeros
	return foldDigits(w1)*100_000_000 + foldDigits(w2), (w1 | w2 | (w1 + sixes) | (w2 + sixes)) & high
}

// foldDigits returns the number eight bytes of 0..9 spell, the first in
// the low byte (fold8 after its check and mask).
func foldDigits(x uint64) uint64 {
	x = x * (1 + 10<<8) >> 8                           // pairs of digits
	x = (x & 0x00FF00FF00FF00FF) * (1 + 100<<16) >> 16 // groups of four
	return (x & 0x0000FFFF0000FFFF) * (1 + 10000<<32) >> 32
}

// fold8 returns the number eight ASCII digits spell, read little-endian
// (the first digit in the low byte), and bad != 0 when x holds anything but
// digits (the number is then meaningless). A byte is a digit when its high
// nibble is 3 and adding 6 does not carry out of its low nibble (no byte
// carries into the next).
func fold8(x uint64) (n, bad uint64) {
	bad = (x&0xF0F0F0F0F0F0F0F0 ^ 0x3030303030303030) | ((x+0x0606060606060606)&0xF0F0F0F0F0F0F0F0 ^ 0x3030303030303030)
	return foldDigits(x & 0x0F0F0F0F0F0F0F0F), bad
}

func (s *noopStore) Get(key []byte) ([]byte, error) {
	if len(key) == 16 && s.get16 {
		// parseKey's 16-byte case, inlined: the call was a fifth of
		// the noop store's Get.
		n, bad := parse16(binary.LittleEndian.Uint64(key), binary.LittleEndian.Uint64(key[8:]))
		if bad == 0 && n < uint64(s.limit) {
			return s.vals.value(n), nil
		}
		return nil, logkv.ErrNotFound
	}
	n, ok := parseKey(key)
	if !ok || len(key) != s.width || int64(n) >= s.limit || s.vals == nil {
		return nil, logkv.ErrNotFound
	}
	return s.vals.value(n), nil
}

// Set does nothing: see noopStore.
func (s *noopStore) Set(_, _ []byte, _ *logkv.WriteOptions) error { return nil }

// Delete does nothing: the store goes on answering for the key, and the
// driver expects deleted keys only to be counted as misses.
func (s *noopStore) Delete([]byte, *logkv.WriteOptions) error { return nil }

// Apply does nothing but report a batch's error, as every engine does.
func (s *noopStore) Apply(b *logkv.Batch, _ *logkv.WriteOptions) error { return b.Err() }

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
	it.width, it.hi, it.table, it.pos, it.vals, it.closed = s.width, s.limit-1, s.table, -1, s.vals, false
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
	it.seek16 = it.width == 16 && it.lower == nil && it.upper == nil
	// The numbers Next and Prev step through from the table, with no
	// bound to compare: those within bounds when the bounds are keys of
	// the store's width (numbers and keys then sort alike). Anything else
	// (no table, bounds of another form, the ends) takes the slow path.
	it.fastLo, it.fastHi = 0, -1
	if it.table != nil {
		it.fastHi = min(it.hi, int64(len(it.table)/max(it.width, 1))-1)
		if it.lower != nil {
			n, ok := parseKey(it.lower)
			if !ok || len(it.lower) != it.width || n > math.MaxInt64/2 {
				it.fastHi = -1
			}
			it.fastLo = int64(n)
		}
		if it.upper != nil {
			n, ok := parseKey(it.upper)
			if !ok || len(it.upper) != it.width || n > math.MaxInt64/2 {
				it.fastHi = -1
			}
			it.fastHi = min(it.fastHi, int64(n)-1)
		}
	}
	return it, nil
}

// noopIter walks the key numbers 0..hi as keys of the store's width, within
// bounds. pos is the current number, -1 when unpositioned.
type noopIter struct {
	width        int
	hi           int64
	table        []byte // the store's key table, or nil (see noopStore.hold)
	lower, upper []byte // nil: no bound; else lowerBuf, upperBuf
	// fastLo..fastHi are the numbers whose keys the table has and the
	// bounds admit (empty: fastHi < fastLo).
	fastLo, fastHi int64
	pos            int64
	key, value     []byte // key is a slice of table or buf
	vals           *valueSource
	closed         bool
	// seek16 is set while the iterator is open, its keys are 16 bytes
	// wide and it has no bounds: SeekGE's fast path, tested once.
	seek16 bool
	key16  [16]byte // the key a fast SeekGE landed on

	buf, lowerBuf, upperBuf []byte // kept across reuse
}

// keyOf sets it.key to key number n: from the table when it has it, else
// formatted into buf.
func (it *noopIter) keyOf(n int64) {
	if w := int64(it.width); (n+1)*w <= int64(len(it.table)) {
		it.key = it.table[n*w : (n+1)*w : (n+1)*w]
		return
	}
	it.buf = appendKey(it.buf[:0], uint64(n), it.width)
	it.key = it.buf
}

// at positions the iterator at number n if it is a key within bounds.
func (it *noopIter) at(n int64) bool {
	if it.closed || n < 0 || n > it.hi {
		it.pos = -1
		return false
	}
	it.keyOf(n)
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
	if len(k) == 16 && it.seek16 {
		// seekrandom's case (a 16-byte key, no bounds), with
		// parseKey's and inBounds' work inlined: the calls were a
		// quarter of the noop store's seek. A key held is the key
		// landed on; a key past the last lands nowhere. The key is
		// copied as the two words just parsed, into key16, rather than
		// through append (a call to memmove).
		w1, w2 := binary.LittleEndian.Uint64(k), binary.LittleEndian.Uint64(k[8:])
		if n, bad := parse16(w1, w2); bad == 0 {
			if it.hi < 0 || n > uint64(it.hi) {
				it.pos = -1
				return false
			}
			binary.LittleEndian.PutUint64(it.key16[:8], w1)
			binary.LittleEndian.PutUint64(it.key16[8:], w2)
			it.key, it.pos, it.value = it.key16[:], int64(n), it.vals.value(n)
			return true
		}
	}
	n, ok := parseKey(k)
	if !ok {
		return it.First()
	}
	if len(k) == it.width && !it.closed && int64(n) <= it.hi {
		// A key of the store's width at or above the lower bound is the
		// key landed on: copied rather than formatted anew or taken
		// from the table (a random seek's key is in the cache; its
		// place in a table of megabytes is not).
		if it.lower == nil || bytes.Compare(k, it.lower) >= 0 {
			it.buf = append(it.buf[:0], k...)
			it.key = it.buf
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

// Next takes the next key from the table: a step is then two slice
// headers and a value's window, what the calls around it cost at most.
// Without a table it increments the decimal key in place.
func (it *noopIter) Next() bool {
	n := it.pos + 1
	if it.pos >= 0 && n <= it.fastHi {
		w := int64(it.width)
		it.pos, it.key = n, it.table[n*w:(n+1)*w:(n+1)*w]
		it.value = it.vals.value(uint64(n))
		return true
	}
	// Without a table (YCSB E's scans, over the whole key space), nine
	// steps in ten only increment the last digit: done here rather than
	// in a call to nextSlow, which would be a fourth call in the step.
	if k := it.key; it.table == nil && it.upper == nil && it.pos >= 0 && n <= it.hi && len(k) > 0 && k[len(k)-1] < '9' {
		k[len(k)-1]++
		it.pos, it.value = n, it.vals.value(uint64(n))
		return true
	}
	return it.nextSlow()
}

func (it *noopIter) nextSlow() bool {
	if it.pos < 0 {
		return false
	}
	n := it.pos + 1
	if it.table != nil || n > it.hi || !stepKey(it.key, true) || (it.upper != nil && bytes.Compare(it.key, it.upper) >= 0) {
		return it.at(n) // past the end or a bound, or a carry out of the width: at decides
	}
	it.pos = n
	it.value = it.vals.value(uint64(n))
	return true
}

// Prev is Next backwards.
func (it *noopIter) Prev() bool {
	if n := it.pos - 1; n >= it.fastLo && it.pos <= it.fastHi {
		w := int64(it.width)
		it.pos, it.key = n, it.table[n*w:(n+1)*w:(n+1)*w]
		it.value = it.vals.value(uint64(n))
		return true
	}
	return it.prevSlow()
}

func (it *noopIter) prevSlow() bool {
	if it.pos < 0 {
		return false
	}
	n := it.pos - 1
	if it.table != nil || n < 0 || !stepKey(it.key, false) || (it.lower != nil && bytes.Compare(it.key, it.lower) < 0) {
		return it.at(n) // before the start or a bound, or a borrow out of the width: at decides
	}
	it.pos = n
	it.value = it.vals.value(uint64(n))
	return true
}

var _ ScanRunner = (*noopIter)(nil)

// ScanRun implements ScanRunner. The noop store holds nothing to walk, so
// its steps through a stretch of numbers whose keys need no compare (free)
// are counted, not made: every key has the store's width and every value
// the pool's window length, so a step's lengths are known without making
// either, and only the key and value it stops at are made. A step at an
// end or a bound is Next's or Prev's. So noop's scan figure is the
// driver's own cost per step (the call a stretch, the timed step, the
// sampler), the part of a scan that is kvbench's; every other adapter's
// ScanRun is a loop over its engine's own iterator, the loop a user of that
// engine writes, and its cost the engine's.
func (it *noopIter) ScanRun(n int, reverse bool) (done int, bytes int64, ok bool) {
	ok = true
	for done < n && ok {
		if k := it.free(n-done, reverse); k > 0 {
			bytes += int64(k) * int64(it.width+it.vals.size)
			d := int64(k)
			if reverse {
				d = -d
			}
			it.moveTo(it.pos + d)
			done += k
			continue
		}
		bytes += int64(len(it.key) + len(it.value))
		if reverse {
			ok = it.Prev()
		} else {
			ok = it.Next()
		}
		done++
	}
	return done, bytes, ok
}

// free returns how many of at most n steps from the iterator's position, in
// that direction, land on keys within bounds without a key compared: within
// fastLo..fastHi (the key table's numbers the bounds admit), or, with no
// table and no bound, within 0..hi (YCSB's key space, formatted).
func (it *noopIter) free(n int, reverse bool) int {
	lo, hi := it.fastLo, it.fastHi
	if it.table == nil && it.lower == nil && it.upper == nil {
		lo, hi = 0, it.hi
	}
	if it.pos < lo || it.pos > hi {
		return 0 // unpositioned (pos -1), or outside: the steps decide
	}
	if reverse {
		return int(min(int64(n), it.pos-lo))
	}
	return int(min(int64(n), hi-it.pos))
}

// moveTo positions the iterator at number n, a key free said is within
// bounds.
func (it *noopIter) moveTo(n int64) {
	it.keyOf(n)
	it.pos, it.value = n, it.vals.value(uint64(n))
}

func (it *noopIter) Valid() bool   { return it.pos >= 0 }
func (it *noopIter) Key() []byte   { return it.key }
func (it *noopIter) Value() []byte { return it.value }
func (it *noopIter) Error() error  { return nil }
func (it *noopIter) Close() error {
	if it.closed {
		return nil
	}
	it.closed, it.pos, it.seek16 = true, -1, false
	it.vals, it.value, it.key, it.table = nil, nil, nil, nil
	noopIters.Put(it)
	return nil
}
