package bench

import (
	"context"
	"io"
	"slices"
	"testing"
)

// BenchmarkDriver measures kvbench's own cost per operation on each db_bench
// benchmark and YCSB workload: the driver loop over the noop Store, which
// keeps nothing (see NoopEngine). b.N is the benchmark's operations (keys of
// a fill or scan, reads, writes, YCSB operations), so
//
//	go test -run '^$' -bench Driver -benchtime 1000000x ./cmd/kvbench/internal/bench
//
// times a million of each. ns/op is the process CPU time per operation of
// the benchmark measured (not of the fill before a read, nor of YCSB's load),
// which a loaded machine disturbs less than the wall time; wall-ns/op is the
// wall time. Against the engines' own figures this is the share of
// kvbench's own cost; cmd/kvbench/peers' BenchmarkOverhead computes that
// share against the fastest engine, peers included.
func BenchmarkDriver(b *testing.B) {
	for _, name := range append(slices.Clone(DBBenchmarks), YCSBWorkloads...) {
		b.Run(name, func(b *testing.B) {
			n := max(b.N, 1000)
			cfg := DefaultConfig()
			cfg.Engines = []string{NoopEngine}
			cfg.Num, cfg.SyncNum, cfg.Ops = n, n, n
			cfg.Progress = ProgressNever
			cfg.Benchmarks = []string{name}
			switch name {
			case "readrandom", "readseq", "readreverse", "seekrandom", "deleterandom", "overwrite":
				cfg.Benchmarks = []string{"fillseq", name}
			}
			b.ResetTimer()
			res, err := Run(context.Background(), cfg, io.Discard, io.Discard)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res {
				if r.Kind == "result" && r.Benchmark == name && r.Op == "all" && r.Ops > 0 {
					b.ReportMetric(r.CPUSeconds*1e9/float64(r.Ops), "ns/op")
					b.ReportMetric(r.Seconds*1e9/float64(r.Ops), "wall-ns/op")
				}
			}
		})
	}
}
