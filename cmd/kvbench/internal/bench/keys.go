package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"unsafe"
)

// appendKey appends key number n as a zero-padded decimal exactly width bytes
// wide, as db_bench's "%016d" for the default width of 16. Config.Validate
// makes sure the numbers of a run fit their width; a number that does not
// keeps its low digits. It writes eight digits at a time (digits8) and the
// rest two per division: it runs on every operation whose key is not
// planned ahead (YCSB D's draws, inserts, the noop store's seeks), and the
// driver's cost is part of every figure.
func appendKey(dst []byte, n uint64, width int) []byte {
	start := len(dst)
	dst = slices.Grow(dst, width)[:start+width]
	i := start + width
	for ; i-start >= 8; i -= 8 {
		q := n / 100_000_000
		binary.LittleEndian.PutUint64(dst[i-8:], digits8(n-q*100_000_000))
		n = q
	}
	for ; i-start >= 2; i -= 2 {
		q := n / 100
		r := (n - q*100) * 2
		dst[i-1], dst[i-2] = digitPairs[r+1], digitPairs[r]
		n = q
	}
	if i > start {
		dst[i-1] = byte('0' + n%10)
	}
	return dst
}

// sameKey reports whether a and b are the same key, as bytes.Equal does,
// with keys of kvbench's default width (16 bytes) compared as two words
// inline: bytes.Equal calls runtime.memequal, which for 16 bytes took 30
// instructions of every seek the driver verifies (a tenth of noop's
// seekrandom by callgrind).
func sameKey(a, b []byte) bool {
	if len(a) == 16 && len(b) == 16 {
		return binary.LittleEndian.Uint64(a) == binary.LittleEndian.Uint64(b) &&
			binary.LittleEndian.Uint64(a[8:]) == binary.LittleEndian.Uint64(b[8:])
	}
	return bytes.Equal(a, b)
}

// digits8 returns x < 10^8 as eight ASCII decimal digits, zero-padded, the
// first digit in the low byte (so that a little-endian store writes them in
// order). It splits x in lanes of the one word rather than dividing digit
// by digit: two halves of four digits in 32-bit lanes, each halved again
// into pairs in 16-bit lanes, each pair into tens and units in bytes. Each
// lane's divide is a multiply and shift exact over the lane's range (x/100
// as x*5243>>19 for x < 10^4; x/10 as x*103>>10 for x < 100), and no
// product overflows its lane.
func digits8(x uint64) uint64 {
	hi := x / 10_000
	v := hi | (x-hi*10_000)<<32 // [high four | low four]
	q := (v * 5243 >> 19) & 0x0000_007F_0000_007F
	v = q | (v-q*100)<<16 // four 16-bit lanes of two digits
	t := (v * 103 >> 10) & 0x000F_000F_000F_000F
	v = t | (v-t*10)<<8 // eight bytes of one digit
	return v | 0x3030_3030_3030_3030
}

// stepKey adds one to (up) or subtracts one from a decimal key in place;
// false, with k unspecified, if the result does not fit its width.
func stepKey(k []byte, up bool) bool {
	if up {
		for i := len(k) - 1; i >= 0; i-- {
			if k[i] < '9' {
				k[i]++
				return true
			}
			k[i] = '0'
		}
		return false
	}
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] > '0' {
			k[i]--
			return true
		}
		k[i] = '9'
	}
	return false
}

// digitPairs holds "00" to "99".
const digitPairs = "0001020304050607080910111213141516171819" +
	"2021222324252627282930313233343536373839" +
	"4041424344454647484950515253545556575859" +
	"6061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// permutation is a keyed bijection of [0, n): at(i) for i in [0, n) visits
// every number of [0, n) exactly once, in a pseudo-random order, without
// storing the order. fillrandom uses it to write every key once in random
// order with any number of threads; YCSB uses it to scramble record numbers
// into keys (YCSB's "hashed" insert order) without collisions.
//
// It is a mixing function that is a bijection on [0, 2^k) (2^k >= n) —
// additions of keys, multiplications by odd constants and xor-shifts, each
// invertible modulo 2^k — walked in cycles until it lands below n, which
// makes it a bijection on [0, n). Fewer than two steps are needed on average.
type permutation struct {
	n     uint64
	mask  uint64
	shift uint
	k1    uint64
	k2    uint64
}

func newPermutation(n, seed uint64) permutation {
	if n == 0 {
		n = 1
	}
	k := uint(bits.Len64(n - 1))
	if k == 0 {
		k = 1
	}
	mask := uint64(1)<<k - 1
	if k == 64 {
		mask = ^uint64(0)
	}
	s := splitmix(seed)
	return permutation{n: n, mask: mask, shift: max(1, k/2), k1: s, k2: splitmix(s)}
}

func (p permutation) step(x uint64) uint64 {
	x = (x + p.k1) & p.mask
	x = (x * 0x9e3779b97f4a7c15) & p.mask
	x ^= x >> p.shift
	x = (x + p.k2) & p.mask
	x = (x * 0xbf58476d1ce4e5b9) & p.mask
	x ^= x >> p.shift
	return x
}

// at returns the i-th number of the permutation. i must be below n: it
// panics otherwise, a caller's error, where walking on could loop forever
// (the cycle through i of the bijection on [0, 2^k) need hold no number
// below n) or return a number another i also maps to.
func (p permutation) at(i uint64) uint64 {
	if i >= p.n {
		panicPastN(i, p.n)
	}
	x := p.step(i)
	for x >= p.n {
		x = p.step(x)
	}
	return x
}

// panicPastN is at's panic, out of line to keep at small.
//
//go:noinline
func panicPastN(i, n uint64) {
	panic(fmt.Sprintf("bench: permutation.at(%d) of a permutation of [0, %d)", i, n))
}

// splitmix is SplitMix64's output function: a good 64-bit mixer for seeds.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// keyPlan is one worker's keys for one benchmark, drawn and formatted before
// the timer starts (as db_bench's design allows: the keys a benchmark uses do
// not depend on what the engine answers), so the timed loop reads key i as a
// slice of one flat buffer instead of drawing and formatting it. Key i is
// keys[i*width:(i+1)*width], with key number nums[i]. A plan for writes also
// holds each key's value, as its window's offset in the pool (withValues):
// db_bench's values come from a ring of pregenerated bytes, and so do
// these, but each is the one its key number must have, found before the
// timer.
type keyPlan struct {
	width int
	nums  []uint64
	keys  []byte
	kbase unsafe.Pointer // &keys[0] (or nil when empty): see key
	offs  []uint32       // value i is pool[offs[i]:][:vsize]; nil without values
	pool  unsafe.Pointer // &pool[0] of the values' source: see value
	vsize int
}

// planMaxBytes bounds the memory of one benchmark's key plans, all workers
// together; a benchmark that would need more draws and formats its keys in
// the timed loop, as before, rather than risk the machine's memory.
var planMaxBytes uint64 = 256 << 20 // a variable so that tests run the unplanned path too

// planFits reports whether n keys of width bytes, with their values'
// offsets, fit planMaxBytes.
func planFits(n, width int) bool {
	return n >= 0 && uint64(n)*uint64(width+12) <= planMaxBytes
}

// newKeyPlan draws and formats n keys of width bytes; num(i) is the number
// of key i, called in order.
func newKeyPlan(n, width int, num func(i int) uint64) *keyPlan {
	p := &keyPlan{width: width, nums: make([]uint64, n), keys: make([]byte, 0, n*width)}
	for i := range n {
		k := num(i)
		p.nums[i] = k
		p.keys = appendKey(p.keys, k, width)
	}
	p.kbase = unsafe.Pointer(unsafe.SliceData(p.keys))
	return p
}

// withValues adds to p each key's value from vals, and returns p. The pool
// is under 2^32 bytes (Config.Validate bounds the value size).
func (p *keyPlan) withValues(vals *valueSource) *keyPlan {
	p.pool, p.vsize = vals.base, vals.size
	p.offs = make([]uint32, len(p.nums))
	for i, k := range p.nums {
		p.offs[i] = uint32(vals.offset(k))
	}
	return p
}

// key returns key i of the plan. Its capacity is its length, so a Store
// cannot append into the next key. i is checked against the plan's length
// (nums'), and the key made with unsafe.Slice: key i is within keys for
// every i below it (newKeyPlan formats len(nums) keys of width bytes), and
// the slice expression's bounds checks, with the multiply they needed,
// were 15 to 20 instructions of every planned read and write (callgrind).
func (p *keyPlan) key(i int) []byte {
	_ = p.nums[i]
	return unsafe.Slice((*byte)(unsafe.Add(p.kbase, i*p.width)), p.width)
}

// value returns the value of key i of a plan made withValues: the window
// vals.value(nums[i]), capacity its length (offs[i] is an offset of the
// pool's, so the window ends within it; see valueSource.value).
func (p *keyPlan) value(i int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(p.pool, p.offs[i])), p.vsize)
}
