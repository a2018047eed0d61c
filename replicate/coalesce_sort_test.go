package replicate

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm"
	"github.com/stretchr/testify/require"
)

// orderEngine records, for each Apply, whether the batch's keys were in
// order and how many operations it held.
type orderEngine struct {
	logkv.Engine
	inOrder []bool
	lens    []int
}

func (o *orderEngine) Apply(b *logkv.Batch, w *logkv.WriteOptions) error {
	sorted := true
	var prev []byte
	r := b.Reader()
	for i := 0; ; i++ {
		_, key, _, ok := r.Next()
		if !ok {
			break
		}
		if i > 0 && bytes.Compare(prev, key) > 0 {
			sorted = false
		}
		prev = key
	}
	o.inOrder = append(o.inOrder, sorted)
	o.lens = append(o.lens, b.Len())
	return o.Engine.Apply(b, w)
}

// A coalesced batch of sortFrom operations or more reaches the engine in key
// order, and leaves the engine as the records applied one by one: operations
// on one key keep their order (a later set or delete still wins), on the
// memory and lsm engines. A smaller batch is applied as it came.
func TestCoalescerSortsLargeBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var records [][]byte
	for r := range 2000 {
		var b logkv.Batch
		for i := range 16 {
			// 300 keys, each written and deleted many times over.
			k := fmt.Appendf(nil, "k%03d", rng.IntN(300))
			if rng.IntN(4) == 0 {
				b.Delete(k)
			} else {
				b.Set(k, fmt.Appendf(nil, "r%d.%d", r, i))
			}
		}
		records = append(records, append([]byte(nil), b.Repr()...))
	}
	for _, name := range []string{"memory", "lsm"} {
		t.Run(name, func(t *testing.T) {
			open := func() logkv.Engine {
				if name == "memory" {
					e, err := openMemory(false)
					require.NoError(t, err)
					return e
				}
				o := &lsm.Options{}
				o.UseExternalWAL()
				e, err := lsm.Open(t.TempDir(), o)
				require.NoError(t, err)
				return e
			}
			one := open()
			defer one.Close()
			for i, data := range records {
				var b logkv.Batch
				require.NoError(t, b.SetRepr(data))
				require.NoError(t, one.Apply(&b, &logkv.WriteOptions{Seq: uint64(i + 1)}))
			}
			inner := open()
			defer inner.Close()
			eng := &orderEngine{Engine: inner}
			m := coalescer{applied: func(uint64) {}}
			// Groups of 20 records (320 operations, as they came), then of
			// 300 (4,800, sorted), whose last writes each key last.
			for i, data := range records {
				if (i < 800 && i%20 == 0) || (i >= 800 && (i-800)%300 == 0) {
					require.NoError(t, m.flush(eng))
				}
				require.NoError(t, m.makeRoom(eng, len(data)))
				require.NoError(t, m.add(uint64(i+1), data))
			}
			require.NoError(t, m.flush(eng))
			require.Equal(t, scan(t, one), scan(t, inner))
			require.Equal(t, uint64(len(records)), inner.LastSeq())
			var big, small int
			for i, n := range eng.lens {
				if n >= sortFrom {
					big++
					require.True(t, eng.inOrder[i], "a batch of %d operations applied out of key order", n)
				} else if !eng.inOrder[i] {
					small++
				}
			}
			require.Equal(t, 4, big)
			require.Positive(t, small, "small batches are applied as they came")
		})
	}
}

// BenchmarkCoalescerApply applies records of 16 random keys (kvnode's SETs
// under redis-benchmark -P 16 -r 1000000) through a coalescer to lsm, in
// groups of a given number of records, with the key-order apply (sortFrom)
// and without it. cpu-ns/op is the process's CPU a key, background flushes
// included: on a shared machine wall time follows the CPU it is given.
func BenchmarkCoalescerApply(b *testing.B) {
	for _, group := range []int{150, 300, 400} {
		for _, sorted := range []bool{false, true} {
			b.Run(fmt.Sprintf("ops=%d/sorted=%v", group*16, sorted), func(b *testing.B) {
				if !sorted {
					defer func(n int) { sortFrom = n }(sortFrom)
					sortFrom = math.MaxInt
				}
				o := &lsm.Options{}
				o.UseExternalWAL()
				db, err := lsm.Open(b.TempDir(), o)
				require.NoError(b, err)
				defer db.Close()
				rng := rand.New(rand.NewPCG(1, 2))
				var records [][]byte
				for i := 0; i < b.N; i += 16 {
					var rb logkv.Batch
					for range 16 {
						rb.Set(fmt.Appendf(nil, "\x00\x00\x01key:%012d", rng.IntN(1000000)), []byte("xxx"))
					}
					records = append(records, append([]byte(nil), rb.Repr()...))
				}
				m := coalescer{applied: func(uint64) {}}
				c0 := processCPU()
				b.ResetTimer()
				for i, data := range records {
					require.NoError(b, m.add(uint64(i+1), data))
					if (i+1)%group == 0 {
						require.NoError(b, m.flush(db))
					}
				}
				require.NoError(b, m.flush(db))
				b.StopTimer()
				b.ReportMetric(float64(processCPU()-c0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
