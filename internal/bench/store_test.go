package bench

import (
	"context"
	"io"
	"slices"
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
func TestStoreVerificationFails(t *testing.T) {
	RegisterStore("benchstorewrong", func(string) (Store, error) { return wrongStore{&noopStore{}}, nil })
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
		w := &worker{sampleMask: uint64(b.sampleEvery() - 1), sampleX: 12345}
		timed := 0
		for range cfg.Num {
			if w.timed() {
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
