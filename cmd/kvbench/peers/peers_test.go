package main

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/cmd/kvbench/internal/bench"
	"github.com/stretchr/testify/require"
)

// peers are the Stores this module registers; durable ones keep their data
// across Close.
var peers = []struct {
	name    string
	durable bool
}{
	{"pebble", true}, {"badger", true}, {"bbolt", true}, {"bbolt-nosync", true},
	{"goleveldb", true}, {"btree", false},
}

// TestBenchmarks runs every db_bench benchmark and YCSB workload on each peer
// through kvbench's driver, which verifies what it reads back (every key
// present after a fill, every value the one written for its key, scans in
// order with no key missing or extra); Run fails on any mismatch. It then
// checks that the reads really read: found counts equal what the state
// says must be there.
func TestBenchmarks(t *testing.T) {
	const num = 400
	for _, p := range peers {
		for _, batch := range []int{1, 7} {
			t.Run(fmt.Sprintf("%s/batch%d", p.name, batch), func(t *testing.T) {
				cfg := bench.DefaultConfig()
				cfg.Engines = []string{p.name}
				cfg.Benchmarks = append([]string{"fillseq", "readrandom", "readseq", "readreverse", "seekrandom",
					"fillrandom", "overwrite", "readrandom", "readseq", "deleterandom", "readrandom", "fillsync", "readseq"},
					bench.YCSBWorkloads...)
				cfg.Num, cfg.Threads, cfg.Batch, cfg.Ops = num, 2, batch, 300
				cfg.SyncNum = 20
				cfg.Dir = t.TempDir()
				cfg.Progress = bench.ProgressNever
				results, err := bench.Run(context.Background(), cfg, io.Discard, io.Discard)
				require.NoError(t, err)
				found := map[string][]int64{}
				for _, r := range results {
					require.Zero(t, r.Errors, "%s/%s", r.Benchmark, r.Op)
					if r.Op == "all" {
						found[r.Benchmark] = append(found[r.Benchmark], r.Found)
					}
				}
				// readrandom after fillseq and after overwrite finds every key;
				// after deleterandom (about 63% gone) it finds some but not all.
				require.Equal(t, []int64{num, num}, found["readrandom"][:2])
				require.Less(t, found["readrandom"][2], int64(num))
				require.Positive(t, found["readrandom"][2])
				require.Equal(t, []int64{num, num, 20}, found["readseq"])
				require.Equal(t, []int64{num}, found["readreverse"])
				require.Equal(t, []int64{num}, found["seekrandom"])
				for _, w := range bench.YCSBWorkloads {
					require.Len(t, found[w], 1, w)
					require.Positive(t, found[w][0], w)
				}
			})
		}
	}
}

func open(t *testing.T, name, dir string) bench.Store {
	t.Helper()
	s, err := bench.OpenStore(name, dir)
	require.NoError(t, err)
	return s
}

func keys(it logkv.Iterator, forward bool) (out []string) {
	ok := it.First()
	if !forward {
		ok = it.Last()
	}
	for ok {
		out = append(out, string(it.Key())+"="+string(it.Value()))
		if forward {
			ok = it.Next()
		} else {
			ok = it.Prev()
		}
	}
	return out
}

// TestStoreContract checks each adapter against the parts of logkv's
// contract the driver relies on: ErrNotFound, atomic batches, iterator
// bounds in both directions, direction changes, unpositioned moves, an
// iterator's snapshot, Close twice, and durability across reopen.
func TestStoreContract(t *testing.T) {
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, p.name, dir)
			for _, k := range []string{"a", "b", "c", "d", "e"} {
				require.NoError(t, s.Set([]byte(k), []byte("v"+k), nil))
			}
			require.NoError(t, s.Delete([]byte("c"), nil))
			_, err := s.Get([]byte("c"))
			require.ErrorIs(t, err, logkv.ErrNotFound)
			var b logkv.Batch
			b.Set([]byte("bb"), []byte("vbb"))
			b.Delete([]byte("e"))
			b.Set([]byte("c"), []byte("vc2"))
			require.NoError(t, s.Apply(&b, &logkv.WriteOptions{Sync: true}))
			v, err := s.Get([]byte("c"))
			require.NoError(t, err)
			require.Equal(t, "vc2", string(v))
			v[0] = 'X' // the caller owns it
			v, err = s.Get([]byte("c"))
			require.NoError(t, err)
			require.Equal(t, "vc2", string(v))

			it, err := s.NewIter(&logkv.IterOptions{LowerBound: []byte("b"), UpperBound: []byte("d")})
			require.NoError(t, err)
			// Written after NewIter: not seen by it.
			require.NoError(t, s.Set([]byte("bc"), []byte("new"), nil))
			require.Equal(t, []string{"b=vb", "bb=vbb", "c=vc2"}, keys(it, true))
			require.False(t, it.Next(), "Next on an exhausted iterator")
			require.False(t, it.Prev(), "Prev on an unpositioned iterator")
			require.Equal(t, []string{"c=vc2", "bb=vbb", "b=vb"}, keys(it, false))
			require.True(t, it.SeekGE([]byte("a")))
			require.Equal(t, "b", string(it.Key()), "SeekGE below the lower bound")
			require.True(t, it.SeekGE([]byte("ba")))
			require.Equal(t, "bb", string(it.Key()))
			require.True(t, it.Prev(), "Next then Prev")
			require.Equal(t, "b", string(it.Key()))
			require.True(t, it.Next(), "Prev then Next")
			require.Equal(t, "bb", string(it.Key()))
			require.True(t, it.SeekLT([]byte("c")))
			require.Equal(t, "bb", string(it.Key()))
			require.True(t, it.Next())
			require.Equal(t, "c", string(it.Key()))
			require.True(t, it.SeekLT([]byte("z")))
			require.Equal(t, "c", string(it.Key()), "SeekLT above the upper bound")
			require.False(t, it.SeekLT([]byte("b")))
			require.False(t, it.SeekGE([]byte("d")))
			require.NoError(t, it.Close())
			require.NoError(t, it.Close())
			require.False(t, it.First(), "First after Close")

			it, err = s.NewIter(nil)
			require.NoError(t, err)
			require.Equal(t, []string{"a=va", "b=vb", "bb=vbb", "bc=new", "c=vc2", "d=vd"}, keys(it, true))
			require.NoError(t, it.Close())

			require.NoError(t, s.Set([]byte("f"), []byte("vf"), &logkv.WriteOptions{Sync: true}))
			require.NoError(t, s.Close())
			if !p.durable {
				return
			}
			s = open(t, p.name, dir)
			defer s.Close()
			for k, want := range map[string]string{"a": "va", "bc": "new", "c": "vc2", "f": "vf"} {
				v, err := s.Get([]byte(k))
				require.NoError(t, err, k)
				require.Equal(t, want, string(v), k)
			}
			_, err = s.Get([]byte("e"))
			require.ErrorIs(t, err, logkv.ErrNotFound)
		})
	}
}

// TestScanRunner checks each peer's ScanRun, the loop the timed scans run
// over the peer's own iterator, against the loop through logkv.Iterator it
// replaces (bench.CheckScanRunner: the same steps, bytes and end, and the
// same key after each stretch), both ways, with no bounds and with bounds
// on either side, one of them a key the store does not hold.
func TestScanRunner(t *testing.T) {
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			s := open(t, p.name, t.TempDir())
			defer func() { require.NoError(t, s.Close()) }()
			var b logkv.Batch
			for i := range 300 {
				b.Set(fmt.Appendf(nil, "%08d", i), fmt.Appendf(nil, "value %d", i*i))
			}
			require.NoError(t, s.Apply(&b, nil))
			for _, o := range []*logkv.IterOptions{
				nil,
				{LowerBound: []byte("00000010"), UpperBound: []byte("00000290")},
				{LowerBound: []byte("000000105"), UpperBound: []byte("0000028")},
			} {
				require.NoError(t, bench.CheckScanRunner(s, o), "bounds %+v", o)
			}
		})
	}
}
