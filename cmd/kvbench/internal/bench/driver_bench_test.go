package bench

import (
	"context"
	"io"
	"slices"
	"testing"

	"github.com/logkv/logkv"
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

// BenchmarkNoopFloor is the noop store's own cost per operation under the
// loop db_bench runs, with nothing of kvbench's (no verification, timing,
// tallies or progress): a Set of the next sequential key with its value
// (fillseq), one iterator step with its Key and Value (readseq and
// readreverse), a Get of a sequential key (readrandom's call). The noop
// store's work is in BenchmarkDriver's figures and is no part of the
// driver's, so BenchmarkDriver minus this is what kvbench itself adds to an
// operation (measured 2026-12-06 in cmd/kvbench/README.md).
func BenchmarkNoopFloor(b *testing.B) {
	const width = 16
	vals := newValueSource(100, 1, 1)
	fill := func(s *noopStore, n int) *keyPlan {
		s.useValues(vals)
		s.hold(uint64(n), width)
		return newKeyPlan(n, width, func(i int) uint64 { return uint64(i) })
	}
	b.Run("set", func(b *testing.B) {
		s := &noopStore{}
		s.useValues(vals)
		p := newKeyPlan(b.N, width, func(i int) uint64 { return uint64(i) }).withValues(vals)
		var st Store = s // called through the interface, as the driver calls it
		defer cpuPerOp(b)()
		for i := range b.N {
			if err := st.Set(p.key(i), p.value(i), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get", func(b *testing.B) {
		s := &noopStore{}
		p := fill(s, b.N)
		var st Store = s // called through the interface, as the driver calls it
		stop := cpuPerOp(b)
		n := 0
		for i := range b.N {
			v, err := st.Get(p.key(i))
			if err != nil {
				b.Fatal(err)
			}
			n += len(v)
		}
		stop()
		if n != b.N*100 {
			b.Fatalf("read %d bytes, want %d", n, b.N*100)
		}
	})
	for _, reverse := range []bool{false, true} {
		name := "next"
		if reverse {
			name = "prev"
		}
		b.Run(name, func(b *testing.B) {
			s := &noopStore{}
			fill(s, b.N)
			it, err := s.NewIter(nil)
			if err != nil {
				b.Fatal(err)
			}
			stop := cpuPerOp(b)
			n := 0
			for ok := position(it, reverse); ok; {
				n += len(it.Key()) + len(it.Value())
				if reverse {
					ok = it.Prev()
				} else {
					ok = it.Next()
				}
			}
			stop()
			if n != b.N*(width+100) {
				b.Fatalf("read %d bytes, want %d", n, b.N*(width+100))
			}
			if err := it.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkStepFloor is the least an iterator step can cost under
// db_bench's loop through logkv.Iterator (Next, Key and Value, each through
// the interface, as the driver calls an iterator that is not a ScanRunner:
// logkv's own engines'): an iterator whose methods do nothing but count and
// return fixed slices. No such engine's step costs less; the noop store's
// through the interface (BenchmarkNoopFloor/next) costs this and the
// little it does.
func BenchmarkStepFloor(b *testing.B) {
	it := newFloorIter(b.N)
	stop := cpuPerOp(b)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n += len(it.Key()) + len(it.Value())
	}
	stop()
	if n != b.N*116 {
		b.Fatalf("read %d bytes, want %d", n, b.N*116)
	}
}

// newFloorIter returns a floorIter of n steps as an interface the compiler
// cannot see through (a call it does not inline), so that its methods are
// called as an engine's are, not inlined.
//
//go:noinline
func newFloorIter(n int) logkv.Iterator {
	return &floorIter{left: n, key: make([]byte, 16), value: make([]byte, 100)}
}

// floorIter is BenchmarkStepFloor's iterator: left steps of fixed slices.
type floorIter struct {
	logkv.Iterator // the methods a scan does not call
	left           int
	key, value     []byte
}

func (it *floorIter) First() bool   { return it.left > 0 }
func (it *floorIter) Next() bool    { it.left--; return it.left > 0 }
func (it *floorIter) Key() []byte   { return it.key }
func (it *floorIter) Value() []byte { return it.value }

// cpuPerOp resets b's timer and returns the function that stops it and
// reports the process CPU time per operation since (cpu-ns/op): on a shared
// machine the wall time of a loop of nanoseconds is mostly waiting for a
// core, as BenchmarkDriver's ns/op says.
func cpuPerOp(b *testing.B) func() {
	b.ResetTimer()
	cpu0 := ProcessCPU()
	return func() {
		cpu := ProcessCPU() - cpu0
		b.StopTimer()
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(b.N, 1)), "cpu-ns/op")
	}
}
