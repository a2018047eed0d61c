package bench

import (
	"math"
	"math/bits"
)

// sampler chooses which operations a worker times: the first alwaysTimed,
// then each one independently with probability 2^-m (one in Config.LatencyEvery),
// as a coin flip per operation would, but without flipping a coin per
// operation. It draws the gap to the next timed operation instead: the number
// of failures before a success of a coin that lands one way with probability
// p is geometric, and the operations between two timed ones cost a
// decrement each. A random sample, not every k-th operation, so that no
// periodic behaviour of an engine (a flush every so many writes, a block
// boundary every so many steps) lines up with the samples; and a sample
// drawn independently of the latencies, so its percentiles estimate the
// whole distribution's.
type sampler struct {
	skip int    // operations to let pass before the next timed one
	warm int    // operations timed so far, up to alwaysTimed
	m    uint   // log2 of the sampling rate's inverse; 0 times every operation
	x    uint64 // the random state (SplitMix64's counter)
	// perLog is 1/ln(1-p), p = 2^-m: gap's scale.
	perLog float64
}

func newSampler(every int, seed uint64) sampler {
	s := sampler{m: uint(bits.TrailingZeros(uint(every))), x: seed}
	if s.m > 0 {
		s.perLog = 1 / math.Log1p(-1/float64(uint64(1)<<s.m))
	}
	return s
}

// timed says whether to time the next operation.
func (s *sampler) timed() bool {
	if s.skip > 0 {
		s.skip--
		return false
	}
	s.draw()
	return true
}

// draw sets skip for the operation after a timed one: kept out of timed so
// that timed, which runs on every operation, is inlined.
//
//go:noinline
func (s *sampler) draw() {
	if s.m > 0 {
		if s.warm < alwaysTimed {
			s.warm++
		} else {
			s.skip = s.gap()
		}
	}
}

// gap draws how many operations pass untimed before the next timed one,
// from the geometric distribution by its inverse: floor(ln(u)/ln(1-p)) for u
// uniform in (0, 1] is g with probability (1-p)^g p, since it is at least g
// exactly when u <= (1-p)^g. One random word and a logarithm. It used to
// draw m-bit groups of random words until one was all zeros: 2^m/(64/m)
// words a draw on average, 32 at one in 256 (scan steps), twelve to fifteen
// times this draw's cost, and most of the noop store's readseq once its
// steps cost nothing (issue #21).
func (s *sampler) gap() int {
	// SplitMix64 over a Weyl sequence: 53 bits of it make u.
	s.x += 0x9e3779b97f4a7c15
	u := float64(splitmix(s.x)>>11+1) / (1 << 53)
	return int(math.Log(u) * s.perLog)
}
