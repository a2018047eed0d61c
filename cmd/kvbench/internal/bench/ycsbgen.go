package bench

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// The YCSB request generators, after YCSB's core package (ZipfianGenerator,
// ScrambledZipfianGenerator, SkewedLatestGenerator, CounterGenerator with
// acknowledgements), which follow Gray et al., "Quickly Generating
// Billion-Record Synthetic Databases" (SIGMOD 1994). Each is owned by one
// goroutine; only the acknowledged insert counter is shared.

// zeta returns the sum of 1/i^theta for i in 1..n. Up to zetaExact terms are
// summed; the rest of the sum is the Euler-Maclaurin approximation (the
// integral plus the end-point and first-derivative corrections), whose error
// at that point is far below float64's precision of the result. So zeta of
// YCSB's 10^10 items costs no more than that of 10^5.
func zeta(n uint64, theta float64) float64 {
	const zetaExact = 100_000
	m := min(n, zetaExact)
	sum := zetaRange(0, m, theta)
	if n <= m {
		return sum
	}
	// Terms m+1..n.
	a, b := float64(m+1), float64(n)
	f := func(x float64) float64 { return math.Pow(x, -theta) }
	df := func(x float64) float64 { return -theta * math.Pow(x, -theta-1) }
	integral := (math.Pow(b, 1-theta) - math.Pow(a, 1-theta)) / (1 - theta)
	return sum + integral + (f(a)+f(b))/2 + (df(b)-df(a))/12
}

// zetaRange returns the sum of 1/i^theta for i in from+1..to.
func zetaRange(from, to uint64, theta float64) float64 {
	sum := 0.0
	for i := from + 1; i <= to; i++ {
		sum += math.Pow(float64(i), -theta)
	}
	return sum
}

// zipfian draws integers in [0, items) with P(i) proportional to
// 1/(i+1)^theta: 0 is the most popular. It follows YCSB's ZipfianGenerator,
// including its way of growing: when asked for more items than it was built
// for, it adds the new terms to zeta(n) rather than starting over.
type zipfian struct {
	items      uint64
	theta      float64
	alpha      float64
	zetan      float64
	zeta2theta float64
	eta        float64
	// second is 1 + 0.5^theta, the bound of a draw of item 1: a constant,
	// kept rather than recomputed with a Pow on every draw.
	second float64
}

func newZipfian(items uint64, theta float64) *zipfian {
	return newZipfianZeta(items, theta, zeta(items, theta))
}

func newZipfianZeta(items uint64, theta, zetan float64) *zipfian {
	z := &zipfian{items: items, theta: theta, alpha: 1 / (1 - theta), zetan: zetan, zeta2theta: zeta(2, theta), second: 1 + math.Pow(0.5, theta)}
	z.setEta()
	return z
}

func (z *zipfian) setEta() {
	z.eta = (1 - math.Pow(2/float64(z.items), 1-z.theta)) / (1 - z.zeta2theta/z.zetan)
}

// next draws from [0, z.items).
func (z *zipfian) next(r *rand.Rand) uint64 {
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.second {
		return 1
	}
	// b^alpha as exp(alpha*ln b): math.Pow's general path (argument
	// reduction, special cases) costs about twice the two hardware-assisted
	// calls, and this runs once per YCSB operation. Its relative error is
	// |alpha*ln b| ulp, at most about 1e-13 before the result underflows:
	// of 10^10 items the draw moves by less than one (TestZipfianMatchesPow).
	v := uint64(float64(z.items) * math.Exp(z.alpha*math.Log(z.eta*u-z.eta+1)))
	return min(v, z.items-1)
}

// grow extends the generator to items (never shrinks it).
func (z *zipfian) grow(items uint64) {
	if items <= z.items {
		return
	}
	z.zetan += zetaRange(z.items, items, z.theta)
	z.items = items
	z.setEta()
}

// scrambledItems and scrambledZetan are YCSB's: the scrambled zipfian draws
// from 10^10 items, whose zeta for the constant 0.99 YCSB hard-codes
// (26.46902820178302; zeta computes it for other constants), then hashes the
// draw into the key space, so the popular keys are spread over it rather than
// clustered at its start.
const (
	scrambledItems = 10_000_000_000
	scrambledZetan = 26.46902820178302
)

type scrambledZipfian struct {
	z     *zipfian
	items uint64
}

func newScrambledZipfian(items uint64, theta float64) *scrambledZipfian {
	zn := scrambledZetan
	if theta != 0.99 {
		zn = zeta(scrambledItems, theta)
	}
	return &scrambledZipfian{z: newZipfianZeta(scrambledItems, theta, zn), items: items}
}

func (s *scrambledZipfian) next(r *rand.Rand) uint64 {
	return fnvHash64(s.z.next(r)) % s.items
}

// fnvHash64 is YCSB's Utils.fnvhash64: FNV-1a over the 8 bytes of v, low
// byte first, made non-negative as Java's Math.abs does.
func fnvHash64(v uint64) uint64 {
	h := uint64(0xCBF29CE484222325)
	for range 8 {
		h ^= v & 0xff
		h *= 1099511628211
		v >>= 8
	}
	if int64(h) < 0 {
		h = uint64(-int64(h))
	}
	return h
}

// latest draws recently inserted records most often: the newest with the
// zipfian's top probability, the one before it next, and so on (YCSB's
// SkewedLatestGenerator).
type latest struct {
	z *zipfian
}

// next draws from [0, limit): limit-1 is the newest record.
func (l *latest) next(r *rand.Rand, limit uint64) uint64 {
	l.z.grow(limit)
	for {
		off := l.z.next(r)
		if off < limit {
			return limit - 1 - off
		}
	}
}

// ackCounter hands out the numbers of records to insert and tracks which are
// done, so readers only choose records whose insert has completed (YCSB's
// AcknowledgedCounterGenerator): limit is the length of the prefix of
// numbers all acknowledged.
type ackCounter struct {
	next    atomic.Uint64
	limit   atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]bool
}

func newAckCounter(start uint64) *ackCounter {
	a := &ackCounter{pending: map[uint64]bool{}}
	a.next.Store(start)
	a.limit.Store(start)
	return a
}

// take returns the number of the next record to insert.
func (a *ackCounter) take() uint64 { return a.next.Add(1) - 1 }

// ack marks record n inserted.
func (a *ackCounter) ack(n uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lim := a.limit.Load()
	if n != lim {
		a.pending[n] = true
		return
	}
	lim++
	for a.pending[lim] {
		delete(a.pending, lim)
		lim++
	}
	a.limit.Store(lim)
}

// chooser picks the record an operation targets among the limit records
// inserted so far (limit >= 1). Each worker has its own.
type chooser interface {
	next(r *rand.Rand, limit uint64) uint64
}

// newChooser returns the chooser of distribution dist for a run starting with
// records records. A zipfian chooser spans items records (YCSB: the records
// plus twice the inserts expected) and redraws those not inserted yet;
// zetaRecords, if non-zero, is zeta(records, theta), computed once for all
// workers.
func newChooser(dist string, records, items uint64, theta, zetaRecords float64) chooser {
	switch dist {
	case DistZipfian:
		return zipfianChooser{newScrambledZipfian(max(items, records, 1), theta)}
	case DistLatest:
		if zetaRecords == 0 {
			zetaRecords = zeta(max(records, 1), theta)
		}
		return &latest{z: newZipfianZeta(max(records, 1), theta, zetaRecords)}
	}
	return uniformChooser{}
}

type uniformChooser struct{}

func (uniformChooser) next(r *rand.Rand, limit uint64) uint64 { return r.Uint64N(limit) }

type zipfianChooser struct{ s *scrambledZipfian }

func (c zipfianChooser) next(r *rand.Rand, limit uint64) uint64 {
	for {
		if k := c.s.next(r); k < limit {
			return k
		}
	}
}
