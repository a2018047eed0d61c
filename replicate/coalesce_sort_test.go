package replicate

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv"
	_ "github.com/logkv/logkv/bitcask"
	"github.com/logkv/logkv/lsm"
	"github.com/stretchr/testify/require"
)

// orderEngine records, for each Apply, whether the batch's keys were in
// order and how many operations it held; it prefers key order if prefers.
type orderEngine struct {
	logkv.Engine
	prefers bool
	inOrder []bool
	lens    []int
}

func (o *orderEngine) PrefersKeyOrder() bool { return o.prefers }

// keyOrderEngine is an engine that prefers key order, and does nothing more.
type keyOrderEngine struct{ logkv.Engine }

func (keyOrderEngine) PrefersKeyOrder() bool { return true }

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

// A coalesced batch of sortFrom operations or more reaches an engine that
// prefers key order in key order, and leaves the engine as the records
// applied one by one: operations on one key keep their order (a later set or
// delete still wins), on the memory and lsm engines. A smaller batch, and
// any batch to an engine that does not prefer key order, is applied as it
// came.
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
	for _, c := range []struct {
		name    string
		prefers bool
	}{{"memory", true}, {"lsm", true}, {"lsm", false}} {
		name := c.name
		t.Run(fmt.Sprintf("%s/prefers=%v", name, c.prefers), func(t *testing.T) {
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
			eng := &orderEngine{Engine: inner, prefers: c.prefers}
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
			var big, bigAsCame, smallAsCame int
			for i, n := range eng.lens {
				switch {
				case n < sortFrom:
					if !eng.inOrder[i] {
						smallAsCame++
					}
				case !eng.inOrder[i]:
					bigAsCame++
					big++
				default:
					big++
				}
			}
			require.Equal(t, 4, big)
			require.Positive(t, smallAsCame, "small batches are applied as they came")
			if c.prefers {
				require.Zero(t, bigAsCame, "a large batch applied out of key order")
			} else {
				require.Equal(t, 4, bigAsCame, "large batches sorted for an engine that did not ask")
			}
		})
	}
}

// BenchmarkCoalescerApply applies records of 16 random keys (kvnode's SETs
// under redis-benchmark -P 16 -r 1000000) through a coalescer to an engine, in
// groups of a given number of records, with the key-order apply (the engine
// wrapped to prefer it) and without it. cpu-ns/op is the process's CPU a key, background flushes
// included: on a shared machine wall time follows the CPU it is given.
func BenchmarkCoalescerApply(b *testing.B) {
	for _, engine := range []string{"lsm", "memory", "bitcask"} {
		for _, group := range []int{150, 300, 400} {
			for _, sorted := range []bool{false, true} {
				b.Run(fmt.Sprintf("engine=%s/ops=%d/sorted=%v", engine, group*16, sorted), func(b *testing.B) {
					benchCoalescerApply(b, engine, group, sorted)
				})
			}
		}
	}
}

func benchCoalescerApply(b *testing.B, engine string, group int, sorted bool) {
	var db logkv.Engine
	var err error
	if engine == "lsm" {
		o := &lsm.Options{}
		o.UseExternalWAL()
		db, err = lsm.Open(b.TempDir(), o)
	} else {
		db, err = logkv.Open(engine, b.TempDir(), nil)
	}
	require.NoError(b, err)
	defer db.Close()
	if sorted {
		db = keyOrderEngine{db}
	}
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
}

// TestEnginesKeyOrder: kvnode opens its engine by name; lsm, whose
// skiplist gains from sorted batches, asks for key order through that
// path, and bitcask and memory, whose trees lose (the coalescer's comment),
// do not.
func TestEnginesKeyOrder(t *testing.T) {
	for name, want := range map[string]bool{"lsm": true, "bitcask": false, "memory": false} {
		eng, err := logkv.Open(name, t.TempDir(), nil)
		require.NoError(t, err, name)
		require.Equal(t, want, prefersKeyOrder(eng), name)
		require.NoError(t, eng.Close(), name)
	}
}
