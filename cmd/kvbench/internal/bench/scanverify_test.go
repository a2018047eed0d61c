package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// scanFault is one way an engine's iterator can be wrong, at one key.
type scanFault int

const (
	faultValue   scanFault = iota // the value of another key, of the same length
	faultShort                    // the value one byte short
	faultMissing                  // the key skipped
	faultSwapped                  // the key and the next one returned in each other's place
	faultExtra                    // the key returned twice
)

var scanFaultNames = map[scanFault]string{faultValue: "value", faultShort: "short", faultMissing: "missing", faultSwapped: "swapped", faultExtra: "extra"}

// faultyStore is the noop store with an iterator that is wrong at one key
// number, faultAt. With firstOnly only the first iterator is wrong: the
// scan's timed loop sees the fault and verifyScan, which opens the second,
// does not. With runner the wrong iterator is a ScanRunner, wrong in its
// ScanRun as in its methods, so that the timed loop's untimed stretches
// run through ScanRun.
type faultyStore struct {
	*noopStore
	fault     scanFault
	firstOnly bool
	runner    bool
	iters     atomic.Int64
}

// faultAt is the key number the faulty store is wrong at.
const faultAt = 100

func (s *faultyStore) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	it, err := s.noopStore.NewIter(o)
	if err != nil || (s.firstOnly && s.iters.Add(1) > 1) {
		return it, err
	}
	fi := &faultyIter{Iterator: it, s: s, at: faultAt}
	if s.runner {
		return faultyRunner{fi}, nil
	}
	return fi, nil
}

// faultyRunner is a faultyIter whose ScanRun steps through its faulty
// methods.
type faultyRunner struct{ *faultyIter }

func (it faultyRunner) ScanRun(n int, reverse bool) (int, int64, bool) {
	return scanRun(it.faultyIter, n, reverse)
}

type faultyIter struct {
	logkv.Iterator
	s        *faultyStore
	at       uint64
	repeated bool // faultExtra: the key at was returned twice already
}

// num is the key number the inner iterator is at.
func (it *faultyIter) num() uint64 {
	n, _ := parseKey(it.Iterator.Key())
	return n
}

// skip moves past the missing key when the move landed on it.
func (it *faultyIter) skip(ok bool, next func() bool) bool {
	if ok && it.s.fault == faultMissing && it.num() == it.at {
		return next()
	}
	return ok
}

func (it *faultyIter) First() bool { return it.skip(it.Iterator.First(), it.Iterator.Next) }
func (it *faultyIter) Last() bool  { return it.skip(it.Iterator.Last(), it.Iterator.Prev) }
func (it *faultyIter) Next() bool {
	return it.repeat() || it.skip(it.Iterator.Next(), it.Iterator.Next)
}
func (it *faultyIter) Prev() bool {
	return it.repeat() || it.skip(it.Iterator.Prev(), it.Iterator.Prev)
}

// repeat stays on the key at once, for faultExtra: a move that does not
// move.
func (it *faultyIter) repeat() bool {
	if it.s.fault != faultExtra || it.repeated || !it.Iterator.Valid() || it.num() != it.at {
		return false
	}
	it.repeated = true
	return true
}

// shown is the key number the iterator claims to be at.
func (it *faultyIter) shown() uint64 {
	n := it.num()
	if it.s.fault == faultSwapped {
		switch n {
		case it.at:
			return it.at + 1
		case it.at + 1:
			return it.at
		}
	}
	return n
}

func (it *faultyIter) Key() []byte {
	k := it.Iterator.Key()
	return appendKey(nil, it.shown(), len(k))
}

func (it *faultyIter) Value() []byte {
	n := it.shown()
	v := it.s.vals.value(n) // a swapped key comes with its own value
	if n == it.at {
		switch it.s.fault {
		case faultValue:
			v = it.s.vals.value(n + 1000)
		case faultShort:
			v = v[:len(v)-1]
		}
	}
	return v
}

var registerFaultyStores sync.Once

// faultyName is the registered name of the faulty store of that kind.
func faultyName(f scanFault, firstOnly, runner bool) string {
	return fmt.Sprintf("benchscan-%s-%t-%t", scanFaultNames[f], firstOnly, runner)
}

// A scan catches an engine that is wrong at a single key, whichever way (a
// wrong or short value, a key missing, two keys swapped, a key twice): the
// untimed pass after the timed loop compares every key and value. The timed
// loop, which only moves the iterator and sums lengths, catches alone (an
// engine right on the second pass, firstOnly) what its counts show: a key
// missing or in excess, a value of the wrong length. A value of the right
// length that is wrong, or two keys swapped, in the timed pass only, is
// what kvbench no longer sees: checking them would cost the timed loop
// more than kvbench's budget (issue #21). The same whether the timed loop
// steps through logkv.Iterator or through the iterator's ScanRunner.
func TestScanVerificationCatchesBrokenEngine(t *testing.T) {
	// Once: the registry is global, and go test -count=N runs this again.
	registerFaultyStores.Do(func() {
		for f := range scanFaultNames {
			for _, firstOnly := range []bool{false, true} {
				for _, runner := range []bool{false, true} {
					RegisterStore(faultyName(f, firstOnly, runner), func(string) (Store, error) {
						return &faultyStore{noopStore: &noopStore{}, fault: f, firstOnly: firstOnly, runner: runner}, nil
					})
				}
			}
		}
	})
	for f, name := range scanFaultNames {
		for _, firstOnly := range []bool{false, true} {
			if firstOnly && (f == faultValue || f == faultSwapped) {
				continue // the timed loop's counts cannot show these (see above)
			}
			for _, runner := range []bool{false, true} {
				for _, bench := range []string{"readseq", "readreverse"} {
					t.Run(fmt.Sprintf("%s/firstOnly=%t/runner=%t/%s", name, firstOnly, runner, bench), func(t *testing.T) {
						cfg := testConfig(faultyName(f, firstOnly, runner))
						cfg.Benchmarks = []string{"fillseq", bench}
						res, err := Run(context.Background(), cfg, io.Discard, io.Discard)
						require.ErrorIs(t, err, ErrVerify)
						require.Len(t, res, 2)
						r := res[1]
						require.Zero(t, res[0].Errors, "the fill")
						require.Positive(t, r.Errors)
						switch f {
						case faultMissing:
							require.Equal(t, int64(1), r.NotFound)
						case faultValue, faultShort:
							require.Equal(t, int64(1), r.BadValues, "exactly the one wrong key")
							require.Zero(t, r.NotFound)
						case faultSwapped:
							require.Equal(t, int64(2), r.BadValues, "the two keys out of place")
						case faultExtra:
							require.Positive(t, r.BadValues)
							require.Zero(t, r.NotFound)
						}
					})
				}
			}
		}
	}
}

// The same engine, right: no errors. Without this, the faults above could
// be caught by something the faulty iterator gets wrong everywhere.
func TestScanVerificationPassesRightEngine(t *testing.T) {
	cfg := testConfig(NoopEngine)
	cfg.Benchmarks = []string{"fillseq", "readseq", "readreverse"}
	res, _ := runCfg(t, cfg)
	for _, r := range res[1:] {
		require.Zero(t, r.Errors, r.Benchmark)
		require.Equal(t, int64(cfg.Num), r.Found, r.Benchmark)
	}
}

// No two keys closer than span/sqrt(5) share a value window (value's
// comment): so a Store that answers with a neighbour's value, or any
// nearby key's, is always caught. 400000 consecutive keys from an
// arbitrary start, under the default pool (span about 2^20), all differ.
func TestValueWindowsOfNeighboursDiffer(t *testing.T) {
	vals := newValueSource(100, 1, 3)
	require.Greater(t, float64(vals.span)/math.Sqrt(5), 400000.0)
	seen := make([]uint64, (vals.span+63)/64)
	start := uint64(987654321)
	for n := start; n < start+400000; n++ {
		off, _ := bits.Mul64((n+vals.salt)*0x9e3779b97f4a7c15, vals.span)
		require.Equal(t, &vals.pool[off], &vals.value(n)[0], "the offset is value's")
		require.Zero(t, seen[off/64]&(1<<(off%64)), "key %d shares a window with a key within 400000", n)
		seen[off/64] |= 1 << (off % 64)
	}
}

// The timed loops tally their untimed stretches once per stretch: every
// write and every scan step is counted, with its bytes, whatever the
// sampler times, over several threads and scan passes, and on a real engine
// (memory) as on noop.
func TestStretchTallies(t *testing.T) {
	for _, engine := range []string{NoopEngine, "memory"} {
		for _, every := range []int{1, 16} {
			t.Run(fmt.Sprintf("%s/every=%d", engine, every), func(t *testing.T) {
				cfg := testConfig(engine)
				cfg.Threads, cfg.ScanPasses, cfg.LatencyEvery = 3, 3, every
				cfg.Benchmarks = []string{"fillrandom", "readseq", "readreverse", "deleterandom"}
				res, _ := runCfg(t, cfg)
				require.Len(t, res, 4)
				kv, n := int64(cfg.KeySize+cfg.ValueSize), int64(cfg.Num)
				require.Equal(t, n, res[0].Ops)
				require.Equal(t, n*kv, res[0].Bytes)
				for _, r := range res[1:3] {
					require.Equal(t, 3*n, r.Ops, r.Benchmark)
					require.Equal(t, 3*n*kv, r.Bytes, r.Benchmark)
					require.Equal(t, 3*n, r.Found, r.Benchmark)
					require.Zero(t, r.Errors, r.Benchmark)
					require.Positive(t, r.P50, r.Benchmark)
				}
				require.Equal(t, n, res[3].Ops)
				require.Equal(t, n*int64(cfg.KeySize), res[3].Bytes)
			})
		}
	}
}
