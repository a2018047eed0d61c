package bench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Overhead takes the median over rounds of each engine's time per operation
// and compares the noop engine's with the fastest other one, by wall and by
// CPU time separately; benchmarks without a noop result are left out.
func TestOverhead(t *testing.T) {
	res := func(engine, bench string, ops int64, secs, cpu float64) Result {
		return Result{Kind: "result", Engine: engine, Benchmark: bench, Op: "all", Ops: ops, Seconds: secs, CPUSeconds: cpu}
	}
	results := []Result{
		res(NoopEngine, "readseq", 1000, 20e-6, 10e-6),
		res("a", "readseq", 1000, 400e-6, 100e-6),
		res("b", "readseq", 1000, 300e-6, 200e-6),
		res(NoopEngine, "readseq", 1000, 40e-6, 30e-6),
		res("a", "readseq", 1000, 200e-6, 300e-6),
		res("b", "readseq", 1000, 500e-6, 400e-6),
		res(NoopEngine, "readseq", 1000, 30e-6, 20e-6),
		res("a", "readseq", 1000, 600e-6, 200e-6),
		res("b", "readseq", 1000, 350e-6, 300e-6),
		{Kind: "result", Engine: "a", Benchmark: "readseq", Op: "read", Ops: 1, Seconds: 1e-9}, // a part: ignored
		{Kind: "summary", Engine: NoopEngine, Benchmark: "readseq", Op: "all", Ops: 1, Seconds: 1e-9},
		res("a", "fillseq", 1000, 1e-3, 1e-3), // no noop: left out
	}
	rows := Overhead(results)
	require.Len(t, rows, 1)
	r := rows[0]
	require.Equal(t, "readseq", r.Benchmark)
	require.InDelta(t, 30, r.NoopWall, 1e-9)
	require.InDelta(t, 20, r.NoopCPU, 1e-9)
	require.Equal(t, "b", r.FastestWallEngine) // medians: a 400, b 350
	require.InDelta(t, 350, r.FastestWall, 1e-9)
	require.Equal(t, "a", r.FastestCPUEngine) // medians: a 200, b 300
	require.InDelta(t, 200, r.FastestCPU, 1e-9)
	require.InDelta(t, 10, r.CPUShare(), 1e-9)
	require.InDelta(t, 100*30.0/350, r.WallShare(), 1e-9)
}
