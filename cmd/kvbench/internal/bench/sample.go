package bench

import "math/bits"

// sampler chooses which operations a worker times: the first alwaysTimed,
// then each one independently with probability 2^-m (one in Config.LatencyEvery),
// as a coin flip per operation would, but without flipping a coin per
// operation. It draws the gap to the next timed operation instead: the number
// of failures before a success of a coin that lands one way with probability
// 2^-m is geometric, and the operations between two timed ones cost a
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
	// lows has the lowest bit of each whole m-bit group of a word set.
	lows uint64
	// group maps a bit's index to its group's: a table rather than a
	// division, which costs as much as the rest of a draw.
	group [64]uint8
}

func newSampler(every int, seed uint64) sampler {
	s := sampler{m: uint(bits.TrailingZeros(uint(every))), x: seed}
	if s.m > 0 {
		for g := range 64 / s.m {
			s.lows |= 1 << (g * s.m)
		}
		for i := range s.group {
			s.group[i] = uint8(uint(i) / s.m)
		}
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

// gap draws how many operations pass untimed before the next timed one: the
// number of m-bit groups of random words before one that is all zeros (each
// group a trial that succeeds with probability 2^-m).
func (s *sampler) gap() int {
	groups := int(64 / s.m)
	n := 0
	for {
		// SplitMix64 over a Weyl sequence: xorshift64's low bits are too
		// regular for groups of ten zeros to come at their rate.
		s.x += 0x9e3779b97f4a7c15
		x := splitmix(s.x)
		// or has, at each group's lowest bit, the OR of the group's bits.
		or := x
		for i := uint(1); i < s.m; i++ {
			or |= x >> i
		}
		if zero := ^or & s.lows; zero != 0 {
			return n + int(s.group[bits.TrailingZeros64(zero)])
		}
		n += groups
	}
}
