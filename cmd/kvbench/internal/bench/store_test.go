package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// The noop Store answers every read the driver verifies as a real engine
// would, so a run over it has no errors and finds every key: that is what
// makes its per-operation time the driver's own cost.
func TestNoopStorePassesVerification(t *testing.T) {
	cfg := testConfig(NoopEngine)
	cfg.Benchmarks = append(slices.Clone(DBBenchmarks), YCSBWorkloads...)
	cfg.Threads = 3
	res, out := runCfg(t, cfg)
	require.Contains(t, out, "noop     metrics: 0.0 MB on disk")
	for _, r := range res {
		require.Zero(t, r.Errors, "%s/%s", r.Benchmark, r.Op)
		if r.Benchmark == "readrandom" || r.Benchmark == "readseq" || r.Benchmark == "readreverse" {
			require.Equal(t, int64(cfg.Num), r.Found, r.Benchmark)
		}
	}
}

// A Store that returns another key's value is caught through the Store path
// as through logkv.Open: the driver is the same.
var registerWrongStore sync.Once

func TestStoreVerificationFails(t *testing.T) {
	// Once: the registry is global, and go test -count=N runs this again.
	registerWrongStore.Do(func() {
		RegisterStore("benchstorewrong", func(string) (Store, error) { return wrongStore{&noopStore{}}, nil })
	})
	cfg := testConfig("benchstorewrong")
	cfg.Benchmarks = []string{"fillseq", "readrandom"}
	_, err := Run(context.Background(), cfg, io.Discard, io.Discard)
	require.ErrorIs(t, err, ErrVerify)
}

type wrongStore struct{ *noopStore }

func (w wrongStore) Get(k []byte) ([]byte, error) {
	v, err := w.noopStore.Get(k)
	if err == nil {
		v = w.vals.value(12345678) // another key's value
	}
	return v, err
}

// A store whose iterators land on the key sought but answer with another
// key's value: seekrandom's reads go through SeekGE and Value, not Get.
var registerWrongIterStore sync.Once

type wrongIterStore struct{ *noopStore }

func (w wrongIterStore) NewIter(o *logkv.IterOptions) (logkv.Iterator, error) {
	it, err := w.noopStore.NewIter(o)
	return wrongValueIter{it, w.vals}, err
}

type wrongValueIter struct {
	logkv.Iterator
	vals *valueSource
}

func (it wrongValueIter) Value() []byte { return it.vals.value(12345678) }

// TestEveryReadVerified: readrandom and seekrandom time one read in 16 and
// run the others in a loop of their own (readRun); each read, timed or not,
// is checked. On a store that answers every key with another key's value,
// every key is found and every value counted bad, not only the timed ones
// (which alone would still make the run fail with ErrVerify).
func TestEveryReadVerified(t *testing.T) {
	registerWrongStore.Do(func() {
		RegisterStore("benchstorewrong", func(string) (Store, error) { return wrongStore{&noopStore{}}, nil })
	})
	registerWrongIterStore.Do(func() {
		RegisterStore("benchstorewrongiter", func(string) (Store, error) { return wrongIterStore{&noopStore{}}, nil })
	})
	for bench, engine := range map[string]string{"readrandom": "benchstorewrong", "seekrandom": "benchstorewrongiter"} {
		cfg := testConfig(engine)
		cfg.Benchmarks = []string{"fillseq", bench}
		res, err := Run(context.Background(), cfg, io.Discard, io.Discard)
		require.ErrorIs(t, err, ErrVerify, bench)
		i := slices.IndexFunc(res, func(r Result) bool { return r.Benchmark == bench && r.Op == "all" })
		require.GreaterOrEqual(t, i, 0, bench)
		r := res[i]
		require.Equal(t, int64(cfg.Num), r.Ops, bench)
		require.Equal(t, int64(cfg.Num), r.Found, bench)
		require.Equal(t, r.Found, r.BadValues, bench)
	}
}

func TestStoreUsage(t *testing.T) {
	require.Contains(t, EngineNames(), NoopEngine)
	require.Contains(t, EngineNames(), "lsm")
	require.Panics(t, func() { RegisterStore("lsm", func(string) (Store, error) { return nil, nil }) })
	require.Panics(t, func() { RegisterStore(NoopEngine, func(string) (Store, error) { return nil, nil }) })
	cfg := testConfig(NoopEngine)
	cfg.Benchmarks = []string{"replicate-write"}
	_, err := Run(context.Background(), cfg, io.Discard, io.Discard)
	require.ErrorIs(t, err, ErrUsage)
	require.Contains(t, err.Error(), "needs a logkv engine")
	cfg = testConfig("pebble")
	_, err = Run(context.Background(), cfg, io.Discard, io.Discard)
	require.ErrorIs(t, err, ErrUsage)
	require.Contains(t, err.Error(), "cmd/kvbench/peers")
}

var _ Store = logkv.Engine(nil)

// Latency sampling times about one operation in LatencyEvery, at random,
// while throughput counts all of them.
func TestLatencySampling(t *testing.T) {
	for _, every := range []int{1, 8} {
		cfg := testConfig(NoopEngine)
		cfg.Benchmarks = []string{"fillrandom", "readrandom"}
		cfg.Num = 40000
		cfg.LatencyEvery = every
		b := &benchRun{cfg: &cfg, index: 1}
		smp := newSampler(b.sampleEvery(), 12345)
		timed := 0
		for range cfg.Num {
			if smp.timed() {
				timed++
			}
		}
		if every == 1 {
			require.Equal(t, cfg.Num, timed)
		} else {
			require.InDelta(t, alwaysTimed+(cfg.Num-alwaysTimed)/every, timed, float64(cfg.Num/every)/10)
		}
		res, _ := runCfg(t, cfg)
		require.Equal(t, int64(cfg.Num), res[1].Ops)
		require.Positive(t, res[1].P50)
	}
	cfg := testConfig(NoopEngine)
	cfg.LatencyEvery = 6
	require.ErrorIs(t, cfg.Validate(), ErrUsage)
}

// The sampler's gaps are those of a coin flipped per operation: each
// operation is timed with probability 1/every, whatever happened before (the
// gap is geometric: P(gap = g) = (1-p)^g p), at rates from one in two to
// one in 1024.
func TestSamplerIsGeometric(t *testing.T) {
	for _, every := range []int{2, 8, 64, 1024} {
		smp := newSampler(every, 99)
		smp.warm = alwaysTimed
		const draws = 200000
		p := 1 / float64(every)
		var sum float64
		zero, short := 0, 0 // gaps of 0, and gaps below every
		for range draws {
			g := smp.gap()
			sum += float64(g)
			if g == 0 {
				zero++
			}
			if g < every {
				short++
			}
		}
		require.InEpsilon(t, float64(every-1), sum/draws, 0.03, "every %d: mean gap", every)
		// Within five standard deviations of the binomial count.
		require.InDelta(t, draws*p, float64(zero), 5*math.Sqrt(draws*p*(1-p)), "every %d: P(gap 0)", every)
		require.InEpsilon(t, 1-math.Pow(1-p, float64(every)), float64(short)/draws, 0.03, "every %d: P(gap < every)", every)
	}
}

// The noop iterator is reused after Close (NewIter takes it from a pool):
// a reused one has the new bounds and none of the old, and SeekGE lands on
// the key sought or on the lower bound, never below it; Next and Prev walk
// exactly the keys within bounds. With the key table and without it (a key
// set too large for one, as YCSB's).
func TestNoopIterReuseAndSeek(t *testing.T) {
	defer func(m uint64) { noopTableMax = m }(noopTableMax)
	for _, table := range []bool{true, false} {
		t.Run(fmt.Sprintf("table=%t", table), func(t *testing.T) {
			noopTableMax = 64 << 20
			if !table {
				noopTableMax = 0
			}
			s := &noopStore{}
			s.useValues(newValueSource(100, 1, 1))
			s.hold(100, 8)
			require.Equal(t, table, s.table != nil)
			key := func(n uint64) []byte { return appendKey(nil, n, 8) }
			walk := func(it logkv.Iterator, reverse bool) (got []uint64) {
				for ok := position(it, reverse); ok; ok = step(it, reverse) {
					n, _ := parseKey(it.Key())
					require.Equal(t, s.vals.value(n), it.Value())
					got = append(got, n)
				}
				return got
			}
			for range 3 {
				it, err := s.NewIter(&logkv.IterOptions{LowerBound: key(10), UpperBound: key(20)})
				require.NoError(t, err)
				require.True(t, it.SeekGE(key(15)))
				require.Equal(t, key(15), it.Key())
				require.Equal(t, s.vals.value(15), it.Value())
				require.True(t, it.SeekGE(key(3)))
				require.Equal(t, key(10), it.Key())
				require.False(t, it.SeekGE(key(20)))
				require.True(t, it.Last())
				require.Equal(t, key(19), it.Key())
				require.Equal(t, []uint64{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, walk(it, false))
				require.Equal(t, []uint64{19, 18, 17, 16, 15, 14, 13, 12, 11, 10}, walk(it, true))
				require.NoError(t, it.Close())

				it, err = s.NewIter(nil)
				require.NoError(t, err)
				require.True(t, it.First())
				require.Equal(t, key(0), it.Key())
				require.True(t, it.Last())
				require.Equal(t, key(99), it.Key())
				require.False(t, it.SeekGE(key(100)))
				require.Len(t, walk(it, false), 100)
				require.Len(t, walk(it, true), 100)
				require.NoError(t, it.Close())
			}
		})
	}
}
