package bench

import (
	"bytes"
	"math/bits"
	"math/rand/v2"
	"unsafe"
)

// valueSource hands out values as db_bench's RandomGenerator does: windows of
// one pool of random data, built so that each stretch compresses to about
// compressibility of its size (1: random bytes). A value is never copied or
// stamped: the value of key number n is the window of the pool at an offset
// drawn from n (see value), so writing costs a slice expression and
// verifying a read costs one comparison with the window it must equal.
// The pool is read-only and shared by all threads; Stores must not modify a
// value they are given or return (the logkv.Writer contract already forbids
// keeping it).
type valueSource struct {
	pool []byte
	base unsafe.Pointer // &pool[0]: see value
	size int
	span uint64 // number of window offsets: len(pool)-size+1
	salt uint64 // keys the offsets, so runs with other seeds use other windows
}

const valuePoolMin = 1 << 20

func newValueSource(size int, compressibility float64, seed uint64) *valueSource {
	r := rand.New(rand.NewPCG(seed, 0x76616c7565))
	n := max(valuePoolMin, 2*size)
	pool := make([]byte, 0, n+100)
	for len(pool) < n {
		// Pieces of 100 bytes: raw random bytes, then repeated, so a
		// compressor finds the repeats within its window.
		raw := max(1, int(100*compressibility))
		piece := make([]byte, raw)
		for i := range piece {
			piece[i] = byte(' ' + r.IntN(95)) // printable, like db_bench
		}
		for j := 0; j < 100; j++ {
			pool = append(pool, piece[j%raw])
		}
	}
	return &valueSource{pool: pool, base: unsafe.Pointer(unsafe.SliceData(pool)), size: size, span: uint64(len(pool) - size + 1), salt: splitmix(seed ^ 0x76616c7565)}
}

// value returns the value written for key number n: the size bytes of the
// pool at the offset h*span/2^64, h being (n+salt) times 2^64/phi (Fibonacci
// hashing: two multiplies, no division). Its capacity is its length, so an
// append by a Store cannot write into the pool. Two keys share a window
// only when their offsets collide: never for keys closer than span/sqrt(5)
// (the three-distance theorem: the first n with n*phi that close to an
// integer is a Fibonacci number that large), so never for a neighbour, the
// likeliest wrong answer of a broken engine; and about one pair in span
// (2^20 or more) of keys far apart. A Store that returns another key's
// value is caught but for that chance. Every value read or written mixes
// its key number here, the noop store's scan steps included, so the mix is
// one multiply (it was SplitMix64's three, a fifth of a noop scan step).
//
// The window is made with unsafe.Slice from the pool's start rather than
// sliced from pool: its offset is below span by construction (the high
// word of a product with span), so it ends within the pool, and the slice
// expression's two bounds checks were 5 of value's 19 instructions, paid
// on every write and every verified read of every engine, and by the noop
// store's Get and seek once more (callgrind; TestValueWindows checks every
// offset's window against the pool).
func (s *valueSource) value(n uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(s.base, s.offset(n))), s.size)
}

// offset is where in the pool the value of key number n starts: below
// span, so off+size <= len(pool).
func (s *valueSource) offset(n uint64) uint64 {
	off, _ := bits.Mul64((n+s.salt)*0x9e3779b97f4a7c15, s.span)
	return off
}

// check reports whether v is the value written for key number n.
func (s *valueSource) check(v []byte, n uint64) bool {
	return bytes.Equal(v, s.value(n))
}
