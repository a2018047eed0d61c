package bench

import (
	"encoding/binary"
	"math/rand/v2"
)

// valueSource hands out values as db_bench's RandomGenerator does: slices of a
// pool of random data built so that each stretch compresses to about
// compressibility of its size (1: random bytes). The pool is read-only and
// shared; each thread keeps its own position in it.
type valueSource struct {
	pool []byte
	size int
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
	return &valueSource{pool: pool, size: size}
}

// valueCursor is one thread's position in a valueSource.
type valueCursor struct {
	src *valueSource
	pos int
	buf []byte
}

func (s *valueSource) cursor(thread int) *valueCursor {
	return &valueCursor{src: s, pos: (thread * 7919) % (len(s.pool) - s.size + 1), buf: make([]byte, s.size)}
}

// next returns the next value, stamped with key number n (see stamp). The
// slice is reused by the next call.
func (c *valueCursor) next(n uint64) []byte {
	if c.pos+c.src.size > len(c.src.pool) {
		c.pos = 0
	}
	copy(c.buf, c.src.pool[c.pos:c.pos+c.src.size])
	c.pos += c.src.size
	stamp(c.buf, n)
	return c.buf
}

// stampSize is the length of the key number at the front of every value of at
// least this size. Reads check it, so an engine returning another key's value
// is caught, not only a missing key.
const stampSize = 8

func stamp(v []byte, n uint64) {
	if len(v) >= stampSize {
		binary.BigEndian.PutUint64(v, n)
	}
}

// checkValue reports whether v is a value written for key number n by a run
// with values of size bytes.
func checkValue(v []byte, n uint64, size int) bool {
	if len(v) != size {
		return false
	}
	return len(v) < stampSize || binary.BigEndian.Uint64(v) == n
}
