package main

import (
	"fmt"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/cmd/kvbench/internal/bench"
	"github.com/stretchr/testify/require"
)

// BenchmarkScanLoop is why each cursor writes its own run loop: a full
// forward scan of 200000 keys on bbolt-nosync and btree, stepped three
// ways, reporting the process CPU per step (cpu-ns/step): "interface"
// through logkv.Iterator (Next, Key, Value; on these peers bounded's
// methods then the cursor interface's), "concrete" through bounded's
// ScanRun (the cursor's own loop), and "generic" through the same loop
// written once as a generic function over the cursor type, which Go
// instantiates once for all pointer types and so calls the cursor's
// methods through its dictionary:
//
//	cd cmd/kvbench/peers && go test -run '^$' -bench ScanLoop -benchtime 20x -count 3
func BenchmarkScanLoop(b *testing.B) {
	const n = 200000
	for _, name := range []string{"bbolt-nosync", "btree"} {
		s, err := bench.OpenStore(name, b.TempDir())
		require.NoError(b, err)
		var batch logkv.Batch
		val := make([]byte, 100)
		for i := range n {
			batch.Set(fmt.Appendf(nil, "%016d", i), val)
		}
		require.NoError(b, s.Apply(&batch, nil))
		// One scan first, so that no way pays for the first touch of
		// the data (bbolt's mmap faults it in).
		it, err := s.NewIter(nil)
		require.NoError(b, err)
		require.True(b, it.First())
		require.Equal(b, n, scanLoop(it.(*bounded), "concrete"))
		require.NoError(b, it.Close())
		for _, mode := range []string{"interface", "concrete", "generic"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				steps := 0
				cpu0 := bench.ProcessCPU()
				for range b.N {
					it, err := s.NewIter(nil)
					require.NoError(b, err)
					require.True(b, it.First())
					steps += scanLoop(it.(*bounded), mode)
					require.NoError(b, it.Close())
				}
				b.ReportMetric(float64((bench.ProcessCPU()-cpu0).Nanoseconds())/float64(max(steps, 1)), "cpu-ns/step")
				if steps != b.N*n {
					b.Fatalf("%d steps, want %d", steps, b.N*n)
				}
			})
		}
		require.NoError(b, s.Close())
	}
}

// scanLoop scans it, positioned at its first key, to the end, one of
// BenchmarkScanLoop's ways, and returns the steps made.
func scanLoop(it *bounded, mode string) int {
	const all = 1 << 30
	switch mode {
	case "concrete":
		done, _, _ := it.ScanRun(all, false)
		return done
	case "generic":
		switch c := it.c.(type) {
		case *boltCursor:
			done, _, _ := runGeneric(c, all, false, nil)
			return done
		case *btreeCursor:
			done, _, _ := runGeneric(c, all, false, nil)
			return done
		}
		panic(fmt.Sprintf("scanLoop: no generic case for %T", it.c))
	}
	var li logkv.Iterator = it
	steps, n := 0, 0
	for ok := true; ok; ok = li.Next() {
		steps++
		n += len(li.Key()) + len(li.Value())
	}
	return steps
}

// runGeneric is cursor.run written once for every cursor type.
func runGeneric[C cursor](c C, n int, reverse bool, limit []byte) (done int, bytes int64, ok bool) {
	ok = true
	for ; done < n && ok; done++ {
		bytes += int64(len(c.key()) + len(c.value()))
		if reverse {
			ok = c.prev()
		} else {
			ok = c.next()
		}
		ok = ok && within(c.key(), limit, reverse)
	}
	return done, bytes, ok
}
