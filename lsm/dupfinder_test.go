package lsm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// naiveDups is dupFinder.find's model: op i is skipped when a later op has
// its key. (A map of each key's last index, not a pairwise scan: the
// pairwise model cost minutes at 40,000 ops under -race.)
func naiveDups(keys []string) []bool {
	lastAt := make(map[string]int, len(keys))
	for i, k := range keys {
		lastAt[k] = i
	}
	skip := make([]bool, len(keys))
	found := false
	for i, k := range keys {
		if lastAt[k] > i {
			skip[i], found = true, true
		}
	}
	if !found {
		return nil
	}
	return skip
}

func TestDupFinder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var d dupFinder
	for _, n := range []int{2, 3, 8, 9, 16, 17, 100, 1000, 40000} {
		for _, distinct := range []int{1, 2, n / 2, n, 4 * n} {
			if distinct < 1 {
				continue
			}
			var b logkv.Batch
			keys := make([]string, n)
			for i := range keys {
				keys[i] = fmt.Sprintf("k%d", rng.IntN(distinct))
				if i%7 == 3 {
					b.Delete([]byte(keys[i]))
				} else {
					b.Set([]byte(keys[i]), []byte("v"))
				}
			}
			want := naiveDups(keys)
			got := d.find(&b)
			if want == nil {
				require.Nil(t, got, "n=%d distinct=%d", n, distinct)
				continue
			}
			require.Equal(t, want, got, "n=%d distinct=%d", n, distinct)
		}
	}
	// Keys that differ only past a shared prefix, and the empty-looking
	// zero byte.
	var b logkv.Batch
	for _, k := range []string{"\x00", "a", "a\x00", "\x00", "a"} {
		b.Set([]byte(k), nil)
	}
	require.Equal(t, []bool{true, true, false, false, false}, d.find(&b))
}

// A batch that writes keys more than once leaves the last write of each,
// after reopening too.
func TestBatchRepeatedKeys(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, 4))
	model := map[string]string{}
	for round := range 50 {
		var b logkv.Batch
		for i := range 1 + rng.IntN(64) {
			k := fmt.Sprintf("key%02d", rng.IntN(20))
			if rng.IntN(4) == 0 {
				b.Delete([]byte(k))
				delete(model, k)
			} else {
				v := fmt.Sprintf("v%d.%d", round, i)
				b.Set([]byte(k), []byte(v))
				model[k] = v
			}
		}
		require.NoError(t, db.Apply(&b, nil))
	}
	check := func(db *DB) {
		for i := range 20 {
			k := fmt.Sprintf("key%02d", i)
			v, err := db.Get([]byte(k))
			if want, ok := model[k]; ok {
				require.NoError(t, err, k)
				require.Equal(t, want, string(v), k)
			} else {
				require.ErrorIs(t, err, logkv.ErrNotFound, k)
			}
		}
	}
	check(db)
	require.NoError(t, db.Close())
	db, err = Open(dir, nil)
	require.NoError(t, err)
	defer db.Close()
	check(db)
}

// BenchmarkDupFinder: one 16-operation batch, as a pipelined redis-benchmark
// -P 16 gives the leader, with distinct keys and with one key.
func BenchmarkDupFinder(b *testing.B) {
	for _, distinct := range []int{16, 1} {
		b.Run(fmt.Sprintf("distinct=%d", distinct), func(b *testing.B) {
			var batch logkv.Batch
			for i := range 16 {
				batch.Set(fmt.Appendf(nil, "key:%012d", i%distinct), []byte("xxx"))
			}
			var d dupFinder
			b.ReportAllocs()
			for b.Loop() {
				d.find(&batch)
			}
		})
	}
}
